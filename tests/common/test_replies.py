"""Reply templates per language: every language the triage web writes a reply line in
has the publisher's templates, and a reply in a language without any falls back to
English."""

from __future__ import annotations

import pytest

from services.common.messages import Platform
from services.common.replies import (
    MAX_LENGTH,
    Recipient,
    Template,
    Templates,
    post_length,
    render,
    x_length,
)
from services.triage.web.domain import FALLBACK_TEXT


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates.load()


def test_every_language_with_a_reply_line_has_at_least_two_templates(
    templates: Templates,
) -> None:
    short = {
        lang: len(templates.by_language.get(lang, ()))
        for lang in FALLBACK_TEXT
        if len(templates.by_language.get(lang, ())) < 2
    }
    assert short == {}


@pytest.mark.parametrize(
    ("language", "expected"),
    [("fr-CA", "fr"), ("AR", "ar"), ("so", "so"), ("sw_KE", "sw"), ("it", "en"), (None, "en")],
)
def test_a_reply_gets_its_language_s_templates_or_english(
    templates: Templates, language: str | None, expected: str
) -> None:
    assert templates.for_language(language, "en") == templates.by_language[expected]


# --- how long a reply may be ---------------------------------------------------------

#: 240 characters, as the triage web cuts a caption.
CAPTION = (
    "We left home when the fighting reached our village and walked for eleven days. "
    "In Kakuma my children go to school again, I teach the little ones to read, and "
    "every evening we listen to the radio for news of the people we had to leave behind"
)[:240]


def _recipient(platform: Platform, text: str = CAPTION, language: str = "en") -> Recipient:
    return Recipient(text=text, language=language, platform=platform, handle="amina_k")


@pytest.mark.parametrize("platform", list(Platform))
def test_every_reply_fits_its_platform_with_the_answer_cut_at_a_word(
    templates: Templates, platform: Platform
) -> None:
    """The longest caption in every template, addressed or not, fits what the
    platform takes; the answer is cut at a word with an ellipsis when it must be."""
    for template in [t for items in templates.by_language.values() for t in items]:
        for address in (False, True):
            text = render(template, _recipient(platform), address=address)
            assert post_length(platform, text) <= MAX_LENGTH[platform], (template.id, text)
            if CAPTION not in text:
                kept = text[: text.index("…")]
                assert CAPTION.startswith(kept[kept.index("We left") :])
                assert CAPTION[len(kept[kept.index("We left") :])] == " "  # a whole word


def test_a_short_answer_is_left_whole() -> None:
    template = Template(id="t", text="{text} #TakeAction")
    assert render(template, _recipient(Platform.X, "School is good.")) == (
        "School is good. #TakeAction"
    )


def test_x_counts_cjk_twice_and_a_link_as_23() -> None:
    assert x_length("abc") == 3
    assert x_length("学校") == 4
    assert x_length("Kakuma, مرحبا, Привет") == 21  # Arabic and Cyrillic: once
    assert x_length("see https://example.org/" + "a" * 80) == 4 + 23
    assert x_length("e\u0301") == 1  # NFC: one é


def test_a_chinese_answer_is_cut_for_x_but_whole_on_mastodon() -> None:
    """200 Chinese characters are 400 on X's count (280 at most), 200 on Mastodon's."""
    template = Template(id="t", text="{text}")
    answer = "我们的孩子又回到了学校。" * 16 + "谢谢"
    on_x = render(template, _recipient(Platform.X, answer, "zh"))
    assert x_length(on_x) <= 280
    assert on_x.endswith("…")
    assert answer.startswith(on_x[:-1])
    assert render(template, _recipient(Platform.MASTODON, answer, "zh")).endswith(answer)
