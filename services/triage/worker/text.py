"""Text as triage reads it: the addressing and tags that only name the campaign
set aside (:func:`strip_addressing`), what the model sees (:func:`text_for_model`),
the key of exact duplicates (:func:`exact_key`). The primary language and the
content words: :mod:`services.triage.classifier.textbits`."""

from __future__ import annotations

import hashlib
import re

from services.triage.classifier.deobfuscate import GROUP_WORDS
from services.triage.classifier.textbits import (
    HASHTAG_FIRST,
    MENTION_FIRST,
    URL_FIRST,
    language,
    searching,
)
from services.triage.classifier.textbits import HASHTAG_RE as _HASHTAG_RE
from services.triage.classifier.textbits import MENTION_RE as _MENTION_RE
from services.triage.classifier.textbits import URL_RE as _URL_RE
from services.triage.rules import normalise

#: A link, and a hashtag (the spam rules count them).
URL = re.compile(searching(URL_FIRST, _URL_RE), re.IGNORECASE)
HASHTAG = re.compile(searching(HASHTAG_FIRST, _HASHTAG_RE))
_URL_OR_MENTION = re.compile(
    searching(URL_FIRST + MENTION_FIRST, f"{_URL_RE}|{_MENTION_RE}"), re.IGNORECASE
)
_RETWEET = re.compile(r"^\s*RT\s+@\w+\s*:", re.IGNORECASE)
_TRAILING_PUNCT = r"[.,:;!…]*"
_ADDRESS_TOKEN = re.compile(f"(?:{_MENTION_RE}){_TRAILING_PUNCT}")
_TAG_TOKEN = re.compile(
    f"(?:{_URL_RE}|{_MENTION_RE}|{_HASHTAG_RE}){_TRAILING_PUNCT}", re.IGNORECASE
)
_WORDS = re.compile(r"\w+")
#: Words that aim a text at someone: the reader, a person, people, a group.
_TARGET_WORDS = (
    frozenset(
        """
        you your yours yourself yourselves u ur ya y'all yall thee he him his she her hers they
        them their theirs these those people person guy guys man men kid kids boy boys lot folk
        folks everyone everybody
        """.split()  # noqa: SIM905 - a word list reads best as words
    )
    | GROUP_WORDS
    # The same in the campaign's other languages (fr, de, es, it, pt, nl, tr, ar, sw,
    # so): the readers and groups an insult is aimed at. Words that are something
    # else in another listed language stay out ("je" is "I" in French, "die" English).
    | frozenset(
        """
        tu toi te ton ta tes vous votre vos il elle ils elles eux lui ces ceux celles gens
        espèce mec réfugié réfugiés migrant migrants immigré immigrés musulman musulmans
        juif juifs arabe arabes noir noirs étranger étrangers
        du dich dir dein deine deinen euch euer eure sie ihn ihm diese dieser leute typ
        flüchtling flüchtlinge ausländer migranten muslime juden araber
        tú ti usted ustedes vosotros él ella ellos ellas estos esos esas gente tipo
        refugiado refugiados inmigrante inmigrantes migrantes musulmanes judíos árabes
        negros extranjeros
        voi vostro lei loro questi quelli rifugiati stranieri immigrati
        você vocês ele ela eles elas esses essas refugiados estrangeiros
        jij jou jouw jullie hij zij hem haar mensen vluchtelingen buitenlanders
        sen seni sana siz sizi onlar bunlar mülteciler
        يا أنت انت أنتم انتم أنتي انتي هم هؤلاء هذا هذه لاجئ لاجئين اللاجئين اللاجئون
        المهاجرين الأجانب
        wewe ninyi nyinyi yeye wao hawa watu wakimbizi wageni
        adiga adigu idinka isaga iyaga dadkan kuwan qaxooti qaxootiga
        eres estás bist seid êtes sei tahay
        """.split()  # noqa: SIM905 - a word list reads best as words
    )
)
#: The languages whose readers and groups :data:`_TARGET_WORDS` names; a text in
#: another (known) language is taken as aimed at someone: the safe side.
TARGET_LANGUAGES = frozenset("en fr de es it pt nl tr ar sw so".split())  # noqa: SIM905
_INNER_MENTION = re.compile(r"(?<![\w@])@\w+")
_MAX_MODEL_CHARS = 2_000


def strip_addressing(text: str) -> str:
    """The text without what only addresses or tags it: a leading ``RT @user:``,
    leading @mentions and a trailing run of @mentions, hashtags and links.

    Every mention in the stream names the campaign (that is how it was
    heard), so "@TakeActionCamps ... #TakeAction #IWelcome" says nothing about
    the question; left in, it dominates the embedding of a short question and
    keeps near-duplicates apart. Hashtags inside a sentence stay. Token by
    token, so linear in the text's length. Falls back to the whole text when
    nothing else is left.
    """
    tokens = _RETWEET.sub("", text, count=1).split()
    start, end = 0, len(tokens)
    while start < end and _ADDRESS_TOKEN.fullmatch(tokens[start]):
        start += 1
    while end > start and _TAG_TOKEN.fullmatch(tokens[end - 1]):
        end -= 1
    return " ".join(tokens[start:end]) if end > start else " ".join(tokens)


def text_for_model(text: str) -> str:
    """What the classifier sees: :func:`strip_addressing`, links inside the
    text as ``URL`` (the token its training data uses), whitespace collapsed,
    length bounded. Texts that differ only by addressing, tags or link codes
    become equal, which helps duplicate caches as well as clustering.
    """
    return URL.sub("URL", strip_addressing(text))[:_MAX_MODEL_CHARS]


def exact_key(text: str) -> str:
    """Key for exact duplicates: the same words once addressing, tags, links,
    @mentions, case, punctuation and spacing are set aside."""
    body = _URL_OR_MENTION.sub(" ", strip_addressing(text))
    words = " ".join(_WORDS.findall(normalise(body)))
    return hashlib.sha256(words.encode("utf-8")).hexdigest()[:32]


def is_pure_retweet(text: str) -> bool:
    """``RT @user: …`` at the start: the retweeter added nothing of their own."""
    return _RETWEET.match(text) is not None


def aims_at_someone(text: str, lang: str | None = None) -> bool:
    """Whether the text (its addressing stripped) names a reader, a person or a
    group: "you", "she", "those people", "refugees", an @mention inside the
    sentence, in any of :data:`TARGET_LANGUAGES`. "This f***ing heat" aims at no
    one; "you f***ing idiot" ("espèce d'idiot", "يا حمار") does. A text in a
    language outside that list counts as aimed (its words cannot be told)."""
    primary = language(lang)
    if primary and primary not in TARGET_LANGUAGES:
        return True
    body = strip_addressing(text)
    if _INNER_MENTION.search(body):
        return True
    words = set(_WORDS.findall(normalise(body).replace("'", "")))
    words |= {w + "s" for w in words}
    return bool(words & _TARGET_WORDS)
