"""A tiny labelled data set laid out like ``../shared/data`` (TweetEval offensive
and hate, Davidson, DailyDialog), for running training and evaluation in tests."""

from __future__ import annotations

import csv
from pathlib import Path

ABUSE = ["you are a disgusting idiot", "shut up you stupid clown", "go away, trash person"]
HATE = ["send all of them back, they are vermin", "those people are animals, deport them"]
CALM = ["lovely weather in the camp today", "thanks for sharing this story", "football later"]
QUESTIONS = ["what do you eat for breakfast ?", "how far is the school ?", "can I help ?"]


def _tweeteval(root: Path, task: str, rows: list[tuple[str, int]]) -> None:
    folder = root / "tweeteval" / task
    folder.mkdir(parents=True)
    for split in ("train", "val"):
        texts = [f"{text} {split} {n}" for n, (text, _) in enumerate(rows)]
        (folder / f"{split}_text.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        labels = "\n".join(str(label) for _, label in rows) + "\n"
        (folder / f"{split}_labels.txt").write_text(labels, encoding="utf-8")


def tiny_data(root: Path) -> Path:
    offensive = [(t, 1) for t in ABUSE + HATE] + [(t, 0) for t in CALM + QUESTIONS]
    _tweeteval(root, "offensive", offensive * 4)
    _tweeteval(root, "hate", ([(t, 1) for t in HATE] + [(t, 0) for t in ABUSE + CALM]) * 4)
    davidson = root / "davidson"
    davidson.mkdir()
    with (davidson / "labeled_data.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        header = ["", "count", "hate_speech", "offensive_language", "neither", "class", "tweet"]
        writer.writerow(header)
        for n in range(90):
            cls, text = [(0, HATE[n % 2]), (1, ABUSE[n % 3]), (2, CALM[n % 3])][n % 3]
            writer.writerow([n, 3, 0, 0, 0, cls, f"{text} #{n}"])
    dialogues = root / "dailydialog"
    dialogues.mkdir()
    lines, acts = [], []
    for n in range(30):
        lines.append(f"{QUESTIONS[n % 3]} {n} __eou__ {CALM[n % 3]} {n} __eou__")
        acts.append("2 1")
    (dialogues / "dialogues_validation.txt").write_text("\n".join(lines) + "\n")
    (dialogues / "dialogues_act_validation.txt").write_text("\n".join(acts) + "\n")
    return root
