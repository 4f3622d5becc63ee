"""Remember predictions for texts the model has already seen, in bounded memory.

Campaign traffic repeats itself: retweets, copy-pasted questions, the same
link shared by many accounts. :func:`cache_key` maps every such repeat to one
key, so the worker runs the model once per distinct text:

- a leading retweet marker (``RT @someone:``, possibly nested) is dropped;
- mentions become ``@user`` and links ``URL`` (the classifier anonymises both
  before the model sees them, so they cannot change a prediction);
- HTML entities are unescaped and whitespace is collapsed.

The cache lives in one worker process: each worker (one per group of
partitions) keeps its own, so a repeat that lands on another worker's
partition is classified again there. It holds at most ``max_entries``
predictions (least recently used evicted first); ``max_entries=0`` disables it.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from services.triage.classifier.base import Prediction
from services.triage.classifier.data import normalise_text

_RETWEET = re.compile(r"^\s*RT\s+@\w+\s*:?\s*", re.IGNORECASE)


def strip_retweet(text: str) -> str:
    """``text`` without its leading retweet markers (``RT @a: RT @b: ...``)."""
    while True:
        stripped = _RETWEET.sub("", text, count=1)
        if stripped == text:
            return text
        text = stripped


def cache_key(text: str) -> str:
    """The key shared by a text, its exact duplicates and its retweets: the
    classifier's own normalisation (:func:`normalise_text`, one definition for
    training, inference and this key) of the text without its retweet markers;
    a retweet is scored as the text it repeats."""
    return normalise_text(strip_retweet(text))


class PredictionCache:
    """A least-recently-used map of :func:`cache_key` → :class:`Prediction`."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Prediction] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every prediction (another model is live: its scores differ)."""
        self._entries.clear()

    def get(self, key: str) -> Prediction | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: str, prediction: Prediction) -> None:
        if self.max_entries == 0:
            return
        self._entries[key] = prediction
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
