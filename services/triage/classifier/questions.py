"""Is a mention asking something, by the words it uses rather than a final "?".

Many tweets drop the question mark, Arabic writes "؟" and Spanish opens with
"¿"; the classifier's question head is English-first. :func:`question_cue`
finds a language-aware cue — question punctuation in any script, an
interrogative word where the language puts it (the start of a sentence in
most; anywhere for the words that are never anything else), a cheap verb-first
inversion in English and German, the yes/no particles of Arabic (هل), Swahili
(je), Turkish (mı/mi/mu/mü), Somali (ma…/miyaa), Russian (ли), Ukrainian and
Polish (чи, czy), Romanian (oare), the sentence-final particles of Chinese (吗),
Vietnamese (không, chưa) and Thai (หรือเปล่า), interrogatives inside the
unspaced text of Chinese and Thai, and the Greek question mark ";" — and says
which, so the decision can cite it. Languages: en fr de nl es pt it ar sw so tr
ru uk el hi ur fa vi th zh ro pl id ms am. Without a language only the
punctuation counts: an interrogative word of one language is a plain word in
another ("was", "come"). Pure; no model.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from services.triage.classifier.textbits import content_words, language

#: Question marks in the scripts campaign mentions use: Latin, Arabic, Greek
#: question mark (;) is left out (it is also a semicolon), fullwidth, Armenian,
#: Ethiopic, inverted (Spanish opening).
_PUNCTUATION = re.compile("[?¿؟？՞፧⸮]")
_SENTENCE = re.compile(r"[.!…\n;:。！।॥]+|\s[-–—]\s")


def _combining_marks() -> str:
    """Every combining mark of the Basic Multilingual Plane as a regex class body
    (ranges): Devanagari and Thai vowel signs are marks, not letters, so a plain
    ``[^\\W\\d_]+`` cuts "कितने" into pieces."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x300, 0x10000):
        if unicodedata.category(chr(code)) in ("Mn", "Mc", "Me"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(f"\\u{a:04x}-\\u{b:04x}" if a != b else f"\\u{a:04x}" for a, b in ranges)


_LETTERS = f"(?:[^\\W\\d_]|[{_combining_marks()}])+"
_WORD = re.compile(f"{_LETTERS}(?:['’-]{_LETTERS})*")


@dataclass(frozen=True, slots=True)
class QuestionCue:
    """What made a text a question, for the decision's reasons."""

    kind: str  # "punctuation", "interrogative", "inversion", "particle"
    word: str
    lang: str

    def describe(self) -> str:
        where = f" ({self.lang})" if self.lang else ""
        return f"{self.kind} {self.word!r}{where}"


@dataclass(frozen=True, slots=True)
class _Cues:
    #: Interrogatives that count at the start of a sentence (one or two words).
    first: frozenset[str] = frozenset()
    #: Interrogatives or particles that count anywhere in a sentence.
    anywhere: frozenset[str] = frozenset()
    #: Verb-first inversion: one of these verbs, then one of ``subjects``.
    verbs: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()
    #: Words with one of these endings count anywhere (Turkish mısın, mıyız…).
    suffix_particles: tuple[str, ...] = ()
    #: Clitics a word may carry in front (Arabic و and ف: "وهل", "فلماذا").
    prefixes: tuple[str, ...] = ()
    #: Strings that count anywhere inside a sentence (scripts written without spaces
    #: between words: Chinese 什么, Thai อะไร).
    within: tuple[str, ...] = ()
    #: Particles that count at the end of a sentence (Chinese 吗, Thai หรือเปล่า,
    #: Vietnamese không), before any of ``trailing`` (Thai ครับ, ค่ะ).
    final: tuple[str, ...] = ()
    trailing: tuple[str, ...] = ()
    #: The language's own question mark, where it is something else elsewhere
    #: (Greek ";", a semicolon in other languages).
    marks: str = ""


def _longest_first(*groups: str) -> tuple[str, ...]:
    """Entries as :func:`_words`, in a fixed order (longest first, so "为什么" is
    named before "什么"): the reason a decision cites is the same on every run."""
    return tuple(sorted(_words(*groups), key=lambda w: (-len(w), w)))


def _words(*groups: str) -> frozenset[str]:
    """Whitespace-separated entries; ``_`` joins a two-word one (``kwa_nini``)."""
    return frozenset(w.replace("_", " ") for group in groups for w in group.split())


_EN_AUX = (
    "is are am was were do does did can could will would should shall may might must have has had"
)
_DE_VERBS = (
    "ist sind bist seid war waren hast habt haben hat hattest kannst könnt können kann "
    "konntest gibt gab wird werden wirst würdest würdet darf darfst dürfen soll sollen "
    "sollte solltest musst müssen magst mögt möchtest möchtet willst wollt weißt wisst "
    "spielst spielt geht gehst gehen machst macht lernst lernt lebst lebt vermisst fühlst"
)

CUES: dict[str, _Cues] = {
    "en": _Cues(
        first=_words("what why how when where who whom whose which", "anyone anybody"),
        anywhere=_words("wondering i_wonder"),
        verbs=_words(_EN_AUX, "isn't aren't don't doesn't didn't can't couldn't won't"),
        subjects=_words("you u we they he she it i there this that these those the your our their"),
    ),
    "fr": _Cues(
        first=_words(
            "qui que quoi quand où pourquoi comment combien quel quelle quels quelles",
            "est-ce qu'est-ce",
        ),
        anywhere=_words(
            "est-ce pourquoi as-tu es-tu peux-tu sais-tu vas-tu avez-vous êtes-vous "
            "pouvez-vous savez-vous allez-vous faites-vous est-il est-elle peut-on y-a-t-il"
            " a-t-il a-t-elle"
        ),
    ),
    "de": _Cues(
        first=_words(
            "wer wen wem wessen was wann wo warum wieso weshalb wie welche welcher welches "
            "welchen welchem woher wohin womit wozu worüber wofür"
        ),
        anywhere=_words("warum wieso weshalb"),
        verbs=_words(_DE_VERBS),
        subjects=_words("du ihr sie es er man wir ich das der die dein euer eure ihr"),
    ),
    "es": _Cues(
        # The accented forms are interrogative (or exclamative) by spelling.
        anywhere=_words("qué quién quiénes cuándo dónde adónde cómo cuál cuáles cuánto cuánta"),
        first=_words("cuántos cuántas por_qué"),
    ),
    "pt": _Cues(
        first=_words("quem quando onde qual quais quanto quanta quantos quantas porque"),
        anywhere=_words("porquê por_quê o_quê o_que"),
    ),
    "it": _Cues(
        first=_words("chi cosa quando dove perché come quale quali quanto quanta quanti quante"),
        anywhere=_words("che_cosa"),
    ),
    "nl": _Cues(first=_words("wie wat wanneer waar waarom hoe welke welk hoeveel")),
    "ar": _Cues(
        # Not ما or من alone: also "not" and "from".
        first=_words(
            "هل ماذا لماذا متى أين اين كيف كم أي اي ايش شو ليش وين ليه إيه امتى",
            "ما_هو ما_هي ما_هذا ماهو ماهي من_هو من_هي من_هم",
        ),
        anywhere=_words("ماذا لماذا متى أين كيف ليش وين ليه"),
        prefixes=("و", "ف"),
    ),
    "sw": _Cues(
        first=_words("je nani nini wapi lini vipi kwanini kwa_nini"),
        anywhere=_words("nini lini wapi nani ngapi gani vipi kwanini"),
    ),
    "so": _Cues(
        # Not "ma" alone: it also negates.
        first=_words("miyaa miyay miyuu miyaad maxaa maxay maxaad maxaan maxuu yaa"),
        anywhere=_words("goorma xaggee halkee sidee immisa meeqa maxay maxaa maxaad maxuu"),
    ),
    "tr": _Cues(
        anywhere=_words(
            "ne_zaman ne neden niye niçin nasıl nerede nereye nereden kim kimin kime hangi kaç",
            "mı mi mu mü",
        ),
        suffix_particles=_longest_first(
            "mısın misin musun müsün mıyım miyim muyum müyüm mıyız miyiz "
            "muyuz müyüz mısınız misiniz musunuz müsünüz mıdır midir mudur müdür"
        ),
    ),
    "ru": _Cues(
        first=_words(
            "кто кого кому кем что чего чем почему зачем сколько какой какая какое какие "
            "какого каких каким какую каков какова каково чей чья чьё чьи где куда откуда "
            "когда как разве неужели"
        ),
        # "ли": the yes/no particle ("Есть ли…", "Можем ли мы…").
        anywhere=_words("ли почему зачем сколько откуда"),
    ),
    "uk": _Cues(
        first=_words(
            "хто кого кому що чого чому навіщо скільки який яка яке які якого яких де куди "
            "звідки коли як чи чий чия чиє чиї"
        ),
        anywhere=_words("чому навіщо скільки звідки"),
    ),
    "el": _Cues(
        # Only the accented πού / πώς ask: unaccented που / πως mean "that". γιατί is
        # also "because": only first.
        first=_words("τι γιατί μήπως"),
        anywhere=_words(
            "ποιος ποια ποιο ποιοι ποιες ποιον ποιας ποιου ποιων ποιους πότε πού πώς "
            "πόσος πόση πόσο πόσοι πόσες πόσα πόσου πόσων πόσους"
        ),
        marks=";\u037e",
    ),
    "hi": _Cues(
        anywhere=_words(
            "क्या कौन कौनसा कौनसी किसने किसको किसका किसकी किसके किसे किससे कब कहाँ कहां "
            "क्यों कैसे कैसा कैसी कितना कितनी कितने"
        ),
    ),
    "ur": _Cues(
        # کیا is also "did" (the past of کرنا): only first.
        first=_words("کیا"),
        anywhere=_words("کون کب کہاں کیوں کیسے کیسا کیسی کتنا کتنی کتنے"),
    ),
    "fa": _Cues(
        first=_words("آیا چه کی"),
        anywhere=_words("چرا کجا چگونه چطور چند کدام چقدر"),
    ),
    "vi": _Cues(
        # Not "nào" or "mấy" alone ("bất kỳ … nào": any; "mấy ngày": a few days), and
        # "bao giờ" only first ("chưa bao giờ": never).
        first=_words("ai khi_nào bao_giờ có_phải"),
        anywhere=_words("gì bao_nhiêu bao_lâu tại_sao vì_sao thế_nào làm_sao ở_đâu đâu"),
        final=_longest_first("không chưa hả nhỉ à ư"),
    ),
    "th": _Cues(
        within=_longest_first("อะไร ใคร ที่ไหน เมื่อไหร่ เมื่อไร ทำไม อย่างไร ยังไง เท่าไหร่ เท่าไร กี่ ไหม มั้ย"),
        final=_longest_first("หรือเปล่า หรือไม่ เหรอ หรอ"),
        trailing=_longest_first("ครับ คะ ค่ะ ค๊ะ จ้ะ จ๊ะ นะ"),
    ),
    "zh": _Cues(
        within=_longest_first(
            "什么 什麼 谁 誰 哪 为什么 為什麼 怎么 怎麼 怎样 怎樣 如何 多少 多久 何时 何時 "
            "为何 為何 是不是 有没有 有沒有"
        ),
        final=_longest_first("吗 嗎 呢 么"),
    ),
    "ro": _Cues(
        first=_words(
            "ce cine când unde care cum cât câtă câți câte încotro de_ce de_unde de_când "
            "de_cât în_ce cu_cine pentru_ce"
        ),
        # "oare": a particle that only asks.
        anywhere=_words("oare"),
    ),
    "pl": _Cues(
        first=_words(
            "kto kogo komu kim co czego czemu czym dlaczego gdzie dokąd skąd kiedy jak jaki "
            "jaka jakie jakich który która które ile czy"
        ),
        anywhere=_words("dlaczego"),
    ),
    "id": _Cues(
        first=_words("apa apakah siapa kapan dimana di_mana mengapa kenapa bagaimana berapa"),
        anywhere=_words("apakah mengapa kenapa bagaimana berapa"),
    ),
    "am": _Cues(
        anywhere=_words("ምን ምንድን ምንድነው ማን ማነው መቼ የት የትኛው ለምን እንዴት ስንት በምን ከየት ወዴት"),
    ),
}
CUES["ms"] = CUES["id"]


#: Conjunctions a question may open with ("And where do you sleep").
_OPENERS = _words("and but so et mais alors und aber also y pero e ma na lakini ve ama en maar")
_PARTICLES = frozenset({"هل", "je", "miyaa", "miyay", "miyuu", "miyaad"})


def _sentences(text: str) -> list[str]:
    """Lower-case sentences with some letters, without @mentions, links and hashtags."""
    text = unicodedata.normalize("NFC", content_words(text)).lower().replace("’", "'")
    return [part.strip() for part in _SENTENCE.split(text) if _WORD.search(part)]


def _bare(word: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if word.startswith(prefix) and len(word) > len(prefix) + 1:
            return word[len(prefix) :]
    return word


def _in(words: list[str], i: int, vocabulary: frozenset[str], cues: _Cues) -> str | None:
    """The one- or two-word entry of ``vocabulary`` starting at ``words[i]``."""
    if i + 1 < len(words) and f"{words[i]} {words[i + 1]}" in vocabulary:
        return f"{words[i]} {words[i + 1]}"
    if words[i] in vocabulary:
        return words[i]
    bare = _bare(words[i], cues.prefixes)
    return bare if bare != words[i] and bare in vocabulary else None


def question_cue(text: str, lang: str | None) -> QuestionCue | None:
    """The first question cue in ``text`` for language ``lang``; ``None``: no cue."""
    code = language(lang)
    content = content_words(text)
    mark = _PUNCTUATION.search(content)
    cues = CUES.get(code)
    if mark is None and cues is not None and cues.marks:
        mark = re.search(f"[{re.escape(cues.marks)}]", content)
    if mark is not None:
        return QuestionCue("punctuation", mark.group(), code)
    return grammar_cue(text, lang)


def grammar_cue(text: str, lang: str | None) -> QuestionCue | None:
    """The first cue in ``text`` that is not punctuation — an interrogative, an
    inversion or a particle of language ``lang`` — for text whose marks are gone
    (the multilingual question head reads it beside the marks); ``None``: none,
    or no word list for the language (or none given)."""
    code = language(lang)
    cues = CUES.get(code)
    if cues is None:
        return None
    for sentence in _sentences(text):
        found = _unspaced_cue(sentence, cues, code) or _sentence_cue(
            _WORD.findall(sentence), cues, code
        )
        if found is not None:
            return found
    return None


def _unspaced_cue(sentence: str, cues: _Cues, code: str) -> QuestionCue | None:
    """A sentence-final particle, or an interrogative inside a run of letters (for
    the languages that need it)."""
    if cues.final:
        end, before = sentence, ""
        while end != before:  # politeness after the particle: "…หรือเปล่าครับ"
            before = end
            for polite in cues.trailing:
                if end.endswith(polite) and len(end) > len(polite):
                    end = end.removesuffix(polite).rstrip()
        for particle in cues.final:
            tail = end.removesuffix(particle)
            if tail != end and (not tail or not tail[-1].isalpha() or cues.within):
                return QuestionCue("particle", particle, code)
    for word in cues.within:
        if word in sentence:
            return QuestionCue("interrogative", word, code)
    return None


def _sentence_cue(words: list[str], cues: _Cues, code: str) -> QuestionCue | None:
    """The cue in one sentence (a non-empty list of lower-case words)."""
    start = 0
    while start < len(words) - 1 and words[start] in _OPENERS:
        start += 1
    words = words[start:]
    if (found := _in(words, 0, cues.first, cues)) is not None:
        kind = "particle" if found in _PARTICLES else "interrogative"
        return QuestionCue(kind, found, code)
    if len(words) > 1 and words[0] in cues.verbs and words[1] in cues.subjects:
        return QuestionCue("inversion", f"{words[0]} {words[1]}", code)
    for i, word in enumerate(words):
        if (found := _in(words, i, cues.anywhere, cues)) is not None:
            return QuestionCue("interrogative", found, code)
        if cues.suffix_particles and word.endswith(cues.suffix_particles):
            return QuestionCue("particle", word, code)
    return None
