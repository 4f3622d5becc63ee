"""The distillation measurement compares the right rows: a student that computes
exactly the teacher's final states scores exactly as the teacher, one that does not
is told apart."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertLayer

from services.triage.classifier import artefacts
from services.triage.classifier.data import MISSING
from services.triage.classifier.features import HiddenStates
from services.triage.classifier.model import TASKS, Heads
from services.triage.classifier.train import Batches
from tests.bench.distill_student import Student, compare, outputs

HIDDEN = 384


def setup(n: int = 60) -> tuple[Student, Heads, HiddenStates, dict[str, Batches]]:
    """Texts of varied lengths whose cached final states are what ``student`` makes
    of their layer-2 states, rows in a shuffled order (as the cache keeps them)."""
    torch.manual_seed(0)
    config = BertConfig(hidden_size=HIDDEN, num_attention_heads=6, intermediate_size=64)
    config._attn_implementation = "sdpa"  # as AutoModel loads the base: masks are boolean
    layers = [BertLayer(config) for _ in range(2)]  # type: ignore[no-untyped-call]
    student = Student(nn.ModuleList(layers)).eval()
    lengths = [3 + (i * 7) % 17 for i in range(n)]
    low = [torch.randn(length, HIDDEN) for length in lengths]
    with torch.inference_mode():
        high = [student(x[None], torch.ones(1, len(x), dtype=torch.int64))[0] for x in low]
    offsets = torch.zeros(n + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(torch.tensor(lengths), dim=0)
    states = HiddenStates(
        texts=[f"text {i}" for i in range(n)],
        offsets=offsets,
        layers={2: torch.cat(low).half(), 6: torch.cat(high).half()},
    )
    heads = Heads(hidden=HIDDEN).eval()
    rows = torch.randperm(n)
    labels = torch.randint(0, 2, (n, len(TASKS))).float()
    labels[: n // 4, 2] = MISSING
    data = Batches(
        rows=rows,
        labels=labels,
        weights=torch.ones(n, len(TASKS)),
        features=torch.randint(0, 2, (n, 2)).float(),
    )
    return student, heads, states, {"olid": data, "hateval": data}


def test_a_student_making_the_teachers_states_scores_as_the_teacher() -> None:
    student, heads, states, val = setup()
    calibration = {t: artefacts.TaskCalibration() for t in TASKS}
    teacher = {
        name: outputs(None, heads, states=states, data=data, keep_base=2)
        for name, data in val.items()
    }
    # The student's own states, recomputed in padded length-sorted batches, are the
    # cached teacher's within fp16 rounding: each row lands back on its own text.
    logits, _ = outputs(student, heads, states=states, data=val["olid"], keep_base=2)
    assert abs(logits - teacher["olid"][0]).max() < 0.05
    common: dict[str, Any] = {
        "states": states,
        "val": val,
        "calibration": calibration,
        "teacher": teacher,
    }
    reference = compare(None, heads, keep_base=2, **common)
    same = compare(student, heads, keep_base=2, **common)
    assert reference["flips"] == dict.fromkeys(TASKS, 0.0)
    assert reference["cosine"]["mean"] > 0.9999
    assert same["cosine"]["p05"] > 0.999
    assert max(same["flips"].values()) <= 0.05
    assert (
        set(same["headline"])
        == set(reference["headline"])
        == {
            "olid/offensive macro-F1",
            "hateval/hate macro-F1",
        }
    )


def test_a_different_student_is_told_apart() -> None:
    student, heads, states, val = setup()
    other = copy.deepcopy(student)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p))
    calibration = {t: artefacts.TaskCalibration() for t in TASKS}
    teacher = {
        name: outputs(None, heads, states=states, data=data, keep_base=2)
        for name, data in val.items()
    }
    result = compare(
        other,
        heads,
        states=states,
        val=val,
        calibration=calibration,
        keep_base=2,
        teacher=teacher,
    )
    assert result["cosine"]["mean"] < 0.99
    assert max(result["flips"].values()) > 0.05
