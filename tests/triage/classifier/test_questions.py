"""Question cues by language (not on "?" alone), and the grammar cue the
multilingual question head reads."""

from __future__ import annotations

import pytest

from services.triage.classifier.questions import grammar_cue, question_cue

QUESTIONS = [
    ("en", "what do you miss most about home", "interrogative 'what'"),
    ("en", "do you play football in the camp", "inversion 'do you'"),
    ("en", "Is the school open again", "inversion 'is the'"),
    ("fr", "Qu'est-ce qui te manque le plus", 'interrogative "qu\'est-ce"'),
    ("fr", "Tu joues au foot, as-tu des amis", "interrogative 'as-tu'"),
    ("fr", "Comment est l'école", "interrogative 'comment'"),
    ("de", "Wann öffnet die Schule wieder", "interrogative 'wann'"),
    ("de", "Spielst du Fußball im Lager", "inversion 'spielst du'"),
    ("de", "Gibt es genug Wasser", "inversion 'gibt es'"),
    ("de-AT", "Wo wohnst du jetzt", "interrogative 'wo'"),
    ("es", "Dónde vives ahora", "interrogative 'dónde'"),
    ("es", "¿Cómo estás", "punctuation '¿'"),
    ("ar", "هل تلعب كرة القدم", "particle 'هل'"),
    ("ar", "ما هو حلمك", "interrogative 'ما هو'"),
    ("ar", "ولماذا لا توجد مدرسة", "interrogative 'لماذا'"),
    ("ar", "متى تفتح المدرسة؟", "punctuation '؟'"),
    ("sw", "Je, unapenda shule", "particle 'je'"),
    ("sw", "Unakosa nini zaidi kutoka nyumbani", "interrogative 'nini'"),
    ("so", "Maxaad aad u xiisaysaa", "interrogative 'maxaad'"),
    ("so", "Goorma ayaa dugsigu furmayaa", "interrogative 'goorma'"),
    ("it", "Dove vivi adesso", "interrogative 'dove'"),
    ("pt", "Onde você mora agora", "interrogative 'onde'"),
    ("tr", "Futbol oynuyor musun", "particle 'musun'"),
    ("tr", "Okul ne zaman açılacak", "interrogative 'ne zaman'"),
    ("nl", "Waar woon je nu", "interrogative 'waar'"),
    ("en", "Thanks. And where do you sleep", "interrogative 'where'"),  # second sentence
    ("ru", "Сколько детей учится в школе", "interrogative 'сколько'"),
    ("ru", "Нужна ли вам помощь", "interrogative 'ли'"),
    ("uk", "Чи є у вас вода", "interrogative 'чи'"),
    ("el", "Σε ποιο σχολείο πηγαίνεις", "interrogative 'ποιο'"),
    ("el", "Τι ώρα ανοίγει η αγορά;", "punctuation ';'"),
    ("hi", "तुम्हारा स्कूल कितना दूर है", "interrogative 'कितना'"),
    ("ur", "کیا آپ کے پاس پانی ہے", "interrogative 'کیا'"),
    ("fa", "چرا مدرسه بسته است", "interrogative 'چرا'"),
    ("vi", "Trường học cách đây bao xa không", "particle 'không'"),
    ("vi", "Tại sao trường đóng cửa", "interrogative 'tại sao'"),
    ("th", "โรงเรียนเปิดเมื่อไหร่ครับ", "interrogative 'เมื่อไหร่'"),
    ("th", "คุณสบายดีหรือเปล่าคะ", "particle 'หรือเปล่า'"),
    ("zh", "学校什么时候开门", "interrogative '什么'"),
    ("zh", "你们有水喝吗", "particle '吗'"),
    ("zh-TW", "學校為什麼關門", "interrogative '為什麼'"),  # the longest first
    ("ro", "Oare școala se deschide mâine", "interrogative 'oare'"),
    ("ro", "În ce clasă ești", "interrogative 'în ce'"),
    ("pl", "Czy szkoła jest otwarta", "interrogative 'czy'"),
    ("id", "Berapa umur kamu", "interrogative 'berapa'"),
    ("am", "ትምህርት ቤቱ መቼ ይከፈታል", "interrogative 'መቼ'"),
]

STATEMENTS = [
    ("en", "I love your videos"),
    ("en", "Have a nice day"),
    ("fr", "Merci pour tout, courage"),
    ("de", "Danke für alles"),
    ("de", "Ich liebe eure Videos"),
    ("es", "Gracias por todo"),
    ("ar", "شكرا لكم"),
    ("ar", "من كينيا مع الحب"),  # من: "from", not "who"
    ("sw", "Asante sana"),
    ("so", "Mahadsanid walaal"),
    ("it", "Grazie mille"),
    ("pt", "Obrigado por tudo"),
    ("tr", "Teşekkürler"),
    ("de", "@TakeAction https://t.co/x?y #wo"),  # a "?" in a link, a tag: not cues
    # Words that ask elsewhere, here not asking:
    ("ru", "Когда-нибудь я стану учителем"),  # "some day", not "when"
    ("ru", "Мы едим кашу, которую варит мама"),
    ("el", "Έφυγα γιατί είχε πόλεμο"),  # "because"
    ("el", "Το σχολείο που είναι κοντά"),  # unaccented που: "that"
    ("hi", "मैं स्कूल जाता हूँ"),
    ("ur", "میں نے کام کیا"),  # کیا: "did", not first
    ("vi", "Tôi chưa bao giờ thấy biển"),  # "never"
    ("vi", "Tôi thích môn này hơn bất kỳ môn nào khác"),
    ("th", "ผมชอบเล่นฟุตบอลกับเพื่อน"),
    ("zh", "我们每天都去学校"),
    ("ro", "Cartea pe care mi-ai trimis-o"),  # relative "care", not first
    ("pl", "Dziękuję za wszystko"),
    ("tr", "Okula her gün gidiyorum"),
]


@pytest.mark.parametrize(("lang", "text", "cue"), QUESTIONS)
def test_questions_without_a_question_mark_have_a_cue(lang: str, text: str, cue: str) -> None:
    found = question_cue(text, lang)
    assert found is not None
    assert found.describe().startswith(cue)


@pytest.mark.parametrize(("lang", "text"), STATEMENTS)
def test_statements_have_no_cue(lang: str, text: str) -> None:
    assert question_cue(text, lang) is None


def test_without_a_language_only_punctuation_counts() -> None:
    # "was" is German "what" and English "was"; "come" Italian "how" and English "come".
    assert question_cue("was it good", None) is None
    assert question_cue("come visit us", None) is None
    found = question_cue("متى تفتح المدرسة؟", None)
    assert found is not None
    assert found.describe() == "punctuation '؟'"


def test_a_language_without_a_word_list_uses_punctuation() -> None:
    assert question_cue("Mijn vraag", "din") is None
    assert question_cue("wëu yïn?", "din") is not None


def test_the_grammar_cue_ignores_punctuation() -> None:
    assert grammar_cue("Spielst du Fußball?", "de") is not None
    assert grammar_cue("Wir spielen Fußball?", "de") is None  # only the mark asks
    assert question_cue("Wir spielen Fußball?", "de") is not None
    assert grammar_cue("Wo wohnst du", None) is None  # no language, no word list


def test_sentences_without_words_are_skipped() -> None:
    assert question_cue("😂😂. !!! wann kommst du", "de") is not None
    assert question_cue("😂😂 … 🙏", "de") is None
