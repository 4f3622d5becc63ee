"""The classifier's forward pass in ONNX Runtime: exported once, cached, then run.

One graph does what :meth:`TransformerClassifier._forward` does in torch: MiniLM
with the fine-tuned layers swapped in, the heads (temperature and shift applied,
sigmoid) and the mean-pooled, L2-normalised embedding. Inputs ``input_ids``,
``attention_mask`` [B, T] (int64) and ``features`` [B, 2] (float32); outputs
``scores`` [B, 3] and ``embedding`` [B, hidden].

The export happens at first use and is kept in ``TRIAGE_ONNX_DIR``
(``var/models/triage-onnx``) under a key made of everything the graph depends on
(the base weights' and the artefacts' sha256, the quantisation recipe, the
exporter's and ONNX Runtime's versions: :func:`cache_key`), so a new artefacts
version (a retrain promoted and hot-swapped, ``worker/live_model.py``) gets its
own export and a cached one is never stale. ``make onnx`` exports ahead of time.

Quantisation (optional, off by default: :data:`INT8_LAYERS`): dynamic int8 on the
``MatMul`` nodes of chosen encoder layers only; the last layers, which the heads
read, and the heads stay fp32. Measurements in the triage README ("Performance").
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Default cache of exported graphs (``TRIAGE_ONNX_DIR``).
DEFAULT_DIR = Path("var/models/triage-onnx")
#: Encoder layers whose matrix products run in dynamic int8; the rest stay fp32. None:
#: on these CPUs (AVX2, no VNNI) int8 layers 0-3 or 0-4 measured no faster than the
#: optimised fp32 graph and moved scores by up to 0.34 (mean 0.04 offensive), so the
#: export is fp32 (:func:`export` still quantises when asked, for other CPUs).
INT8_LAYERS: tuple[int, ...] = ()
#: Bumped whenever the graph this module exports changes (part of the cache key).
EXPORT_VERSION = 3
OPSET = 17
GRAPH_FILE = "model.onnx"
INFO_FILE = "export.json"


def cache_key(
    *, base_sha256: str, weights_sha256: str, int8_layers: Sequence[int], max_length: int
) -> str:
    """The folder name of an export: a hash of everything the graph depends on."""
    import onnxruntime  # noqa: PLC0415 - heavy
    import torch  # noqa: PLC0415

    recipe = {
        "export": EXPORT_VERSION,
        "opset": OPSET,
        "base": base_sha256,
        "weights": weights_sha256,
        "int8_layers": sorted(int8_layers),
        "max_length": max_length,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    blob = json.dumps(recipe, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def _scorer(
    model: Any,
    heads: Any,
    head_layers: Sequence[int],
    temperatures: torch.Tensor,
    shifts: torch.Tensor,
) -> torch.nn.Module:
    import torch  # noqa: PLC0415

    from services.triage.classifier.model import mean_pool  # noqa: PLC0415

    class Scorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.heads = heads
            self.register_buffer("temperatures", temperatures.clone())
            self.register_buffer("shifts", shifts.clone())

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, features: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            )
            hidden = out.hidden_states
            logits = self.heads([hidden[i] for i in head_layers], attention_mask, features)
            scores = torch.sigmoid(logits / self.temperatures - self.shifts)
            pooled = mean_pool(hidden[-1], attention_mask)
            return scores, torch.nn.functional.normalize(pooled, dim=-1)

    return Scorer().eval()


def export(
    target: Path,
    *,
    model: Any,
    heads: Any,
    head_layers: Sequence[int],
    temperatures: torch.Tensor,
    shifts: torch.Tensor,
    int8_layers: Sequence[int] = INT8_LAYERS,
) -> Path:
    """Export the scorer into ``target/model.onnx`` (written atomically), int8 where
    asked; return the graph's path."""
    import torch  # noqa: PLC0415
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        # Eager attention exports as plain MatMul/Softmax nodes that ONNX Runtime fuses.
        model.set_attn_implementation("eager")
        scorer = _scorer(model, heads, head_layers, temperatures, shifts)
        ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
        mask = (ids != 0).to(torch.int64)
        features = torch.zeros((2, 2), dtype=torch.float32)
        fp32 = work / "fp32.onnx"
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                scorer,
                (ids, mask, features),
                str(fp32),
                input_names=["input_ids", "attention_mask", "features"],
                output_names=["scores", "embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "features": {0: "batch"},
                    "scores": {0: "batch"},
                    "embedding": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        graph = work / GRAPH_FILE
        nodes = _matmuls(fp32, int8_layers)
        if nodes:
            quantize_dynamic(
                str(fp32),
                str(graph),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
                nodes_to_quantize=nodes,
                extra_options={"MatMulConstBOnly": True},
            )
            fp32.unlink()
        else:
            fp32.rename(graph)
        (work / INFO_FILE).write_text(
            json.dumps({"int8_layers": sorted(int8_layers), "int8_nodes": len(nodes)}, indent=1)
        )
        try:
            work.rename(target)
        except OSError:  # another process exported the same key meanwhile: keep theirs
            if not (target / GRAPH_FILE).exists():
                raise
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target / GRAPH_FILE


def _matmuls(path: Path, layers: Sequence[int]) -> list[str]:
    """Names of the weight ``MatMul`` nodes in the encoder layers ``layers``."""
    import onnx  # noqa: PLC0415

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    prefixes = tuple(f"/model/encoder/layer.{i}/" for i in layers)
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul"
        and node.name.startswith(prefixes)
        and any(name in weights for name in node.input)
    ]


def session_options(threads: int) -> Any:
    """Two cores: intra-op threads for the matrix products, sequential execution,
    threads that sleep rather than spin between ops."""
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # No busy-waiting between ops: the worker shares 2 cores with the web, ingest and
    # the broker; threads spinning while they wait would take CPU from those. The
    # classifier path runs as fast either way (2-core AVX2 EPYC, the bench's 2,000
    # tweets, three alternated processes each: 174-195 tweets/s off, 177-193 on).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxScorer:
    """An ONNX Runtime session over an exported scorer graph."""

    def __init__(self, graph: Path, threads: int) -> None:
        import onnxruntime as ort  # noqa: PLC0415

        self.path = graph
        self._session = ort.InferenceSession(
            str(graph), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.hidden_size = int(self._session.get_outputs()[1].shape[-1] or 0)

    def run(
        self,
        input_ids: npt.NDArray[np.int64],
        attention_mask: npt.NDArray[np.int64],
        features: npt.NDArray[np.float32],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        scores, embedding = self._session.run(
            None,
            {"input_ids": input_ids, "attention_mask": attention_mask, "features": features},
        )
        return np.asarray(scores, dtype=np.float32), np.asarray(embedding, dtype=np.float32)


def onnx_dir() -> Path:
    return Path(os.environ.get("TRIAGE_ONNX_DIR") or DEFAULT_DIR)


def main() -> int:
    """``make onnx``: load the live classifier with the ONNX runtime, exporting its graph
    if it is not cached yet; print where it is."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from services.triage.classifier import transformer  # noqa: PLC0415 - imports torch
    from services.triage.classifier.registry import Registry  # noqa: PLC0415
    from services.triage.config import ClassifierSettings  # noqa: PLC0415

    settings = ClassifierSettings()
    classifier = transformer.load_classifier(
        artefacts_dir=Registry(settings.models_dir).live().directory,
        model_path=settings.model_path,
        runtime="onnx",
        onnx_dir=settings.onnx_dir,
    )
    if classifier.runtime != "onnx":
        print(f"{classifier.version} runs in torch (no full artefacts): nothing to export")
        return 0
    assert classifier.onnx_graph is not None
    print(f"{classifier.version}: {classifier.onnx_graph}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
