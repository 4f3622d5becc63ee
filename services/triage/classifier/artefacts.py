"""The committed model artefacts: fine-tuned top layers + heads, and their metadata.

``services/triage/model/`` holds ``weights.safetensors`` (fp16: the replaced
top layers under their base-model names, ``encoder.layer.N.*``, and the heads
under ``heads.*``), ``metadata.json`` and ``MODEL_CARD.md``. The metadata pins
the base model by the sha256 of its ``model.safetensors``: artefacts trained
on one base are refused on another (:class:`BaseModelMismatch`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

ARTEFACT_DIR = Path(__file__).resolve().parents[1] / "model"
WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "metadata.json"
BASE_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
HEADS_PREFIX = "heads."

log = logging.getLogger(__name__)


class ArtefactError(Exception):
    """The committed artefacts are missing, corrupt or do not fit the base model."""


class BaseModelMismatch(ArtefactError):
    """The base model's weights are not the ones the artefacts were trained on."""


@dataclass(frozen=True, slots=True)
class TaskCalibration:
    """score = sigmoid(logit / temperature - shift); decide at ``threshold``.

    Since the 2026-12 models the decision threshold chosen on validation is
    folded into ``shift`` (``shift = logit(threshold chosen)``), so a score of
    0.5 *is* the threshold and ``threshold`` is 0.5: the rules can say "hate
    0.5" and mean "the validated decision point".
    """

    temperature: float = 1.0
    threshold: float = 0.5
    shift: float = 0.0


@dataclass(frozen=True, slots=True)
class Metadata:
    version: str
    base_model_id: str
    base_model_sha256: str
    replaced_layers: list[int]
    max_length: int
    head_width: int
    head_layers: list[int]
    weights_sha256: str
    tasks: dict[str, TaskCalibration]
    #: The heads were trained on the states of the base with its ``Linear`` layers
    #: in dynamic int8; the classifier runs it so unless told otherwise.
    quantized: bool = False
    relevance_center: float = 0.30
    relevance_scale: float = 0.08
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Metadata:
        raw = json.loads(text)
        raw["tasks"] = {k: TaskCalibration(**v) for k, v in raw["tasks"].items()}
        return cls(**raw)


def save_weights(directory: Path, state: dict[str, torch.Tensor], version: str) -> str:
    """Write the tensors as fp16 safetensors; returns the file's sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / WEIGHTS_FILE
    save_file(
        {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()},
        str(path),
        metadata={"version": version},
    )
    path.chmod(0o644)  # safetensors writes 0600; the artefacts are committed
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_metadata(directory: Path, metadata: Metadata) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / METADATA_FILE).write_text(metadata.to_json(), encoding="utf-8")


def load_metadata(directory: Path) -> Metadata:
    path = directory / METADATA_FILE
    try:
        return Metadata.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtefactError(f"no classifier metadata at {path}") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise ArtefactError(f"unreadable classifier metadata at {path}: {exc}") from exc


def load_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The fp16 tensors, converted to float32 for CPU inference."""
    path = directory / WEIGHTS_FILE
    if not path.exists():
        raise ArtefactError(f"no classifier weights at {path}")
    return {k: v.to(torch.float32) for k, v in load_file(str(path)).items()}


def with_body(base: Any, directory: Path) -> tuple[dict[str, torch.Tensor], list[int], str]:
    """Put the fine-tuned layers of the artefacts in ``directory`` into ``base``:
    (their weights, their layer indices, the artefacts' weights sha256)."""
    meta = load_metadata(directory)
    weights = load_weights(directory)
    encoder_layers: Any = base.encoder.layer
    body: dict[str, torch.Tensor] = {}
    for i in meta.replaced_layers:
        prefix = f"encoder.layer.{i}."
        part = {k: v for k, v in weights.items() if k.startswith(prefix)}
        encoder_layers[i].load_state_dict({k[len(prefix) :]: v.float() for k, v in part.items()})
        body.update(part)
    log.info("heads on the body of %s (layers %s)", meta.version, meta.replaced_layers)
    return body, meta.replaced_layers, meta.weights_sha256
