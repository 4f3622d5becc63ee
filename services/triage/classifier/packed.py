"""BERT's forward on packed tokens: the linear layers see only real tokens.

``BertModel`` takes a ``[rows, width]`` group padded to its longest text, so
every linear layer (about 80 % of the work) also multiplies the padding, and a
stream batch is cut into many small groups to keep that padding down, each a
round of small matrix products. :class:`PackedEncoder` runs the same weights on
all the texts' tokens laid end to end (``[tokens, hidden]``): each linear layer
is one large product over a whole stream batch with no padding (but a few zero
rows at the end: the token count is rounded, :func:`padded_rows`, so that oneDNN
reuses its primitives from one call to the next). Attention mixes
tokens within a text only: the encoder lays the texts out shortest first, so the
texts of one length are one contiguous run of tokens, and attention takes each
run as a ``[rows, heads, width, head_dim]`` view with nothing to pad or mask (a
stream batch of 256 tweets is 60-80 runs). Until 2026-12-05 it gathered groups
of similar length, padded and masked, and scattered the result back; the runs
took the encoder from 729-804 to 835-948 tweets/s on the bench's 2,000 (2-core
AMX CPU, interleaved), attention alone 905-971 to 608-626 ms per 2,000 tweets.

Numerics follow ``BertModel`` under CPU autocast: the residual stream and
LayerNorm in fp32, the linear layers, GELU and attention in ``dtype`` (bf16, or
fp32 for fp32; the fused GELU reads the product's fp32 sums before they are
rounded to ``dtype``). Measured on these CPUs (2 cores, AMX bf16), stream batches of
256 TweetEval tweets: 767-829 tweets/s for the encoder against 514-546 for
``BertModel`` on the classifier's padded groups; final states within 0.016 of
``BertModel`` under autocast (which is itself 0.015 from fp32).

The linear layers run as oneDNN products on weights laid out once for it
(``torch.ops.mkldnn._linear_pointwise``, the op torch's own compiler emits for
linear layers on CPU), the intermediate layer's exact GELU fused into its
product as a post-op, where those ops exist and agree with ``F.linear`` on a
probe (:func:`fused_linear_works`, once per process). On a 2-core Zen 4
([8192, 384] tokens, bf16) the up-projection with its GELU took 26 against 41
ms, the other products 9-15 % less, bit-identical to ``F.linear``; the whole
encoder 366 against 320 tweets/s on the bench's 2,000. Tried and left out:
attention as two plain batched products with an fp32 softmax (``BertModel``'s
eager attention) instead of SDPA, chosen per width by timing both at start-up:
the products alone were 2-3x faster on this CPU, but with the gather and
scatter around them the encoder ran 369 against 366 tweets/s, and on the AMX
CPU SDPA was the faster.

With a calibration (:mod:`.int8`, ``TRIAGE_INT8``) the four products of each
calibrated layer run as static int8 ones instead (oneDNN's VNNI kernels, the GELU
fused, its output handed to the down-projection as u8); :meth:`float_products`
switches back meanwhile, :meth:`observe` shows a calibration every product's input.

Only plain BERT encoders qualify (:meth:`PackedEncoder.supports`): absolute
positions, no decoder, the standard module layout; dynamic int8 layers keep
``BertModel``'s own forward.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention
from transformers import PreTrainedModel

from services.triage.classifier import int8 as int8_products

log = logging.getLogger(__name__)

#: The rows oneDNN lays the weights out for (any count works: a stream batch's tokens).
LAYOUT_ROWS = 8192


def padded_rows(rows: int) -> int:
    """``rows`` rounded up to a multiple of 64, or of an eighth of the power of two
    below it past 1,024 (fewer than 64 more rows, or at most 1/8 more; 48 counts up to
    16,384): the rows every product of a pass then has.

    oneDNN builds a primitive for each shape it is given and keeps a few
    (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``); every call of the packed path has its own
    token count, so each built its four products' primitives anew: [420, 384] x
    [384, 1536] with its GELU took 8.7 ms at a new row count against 0.8 at one seen
    before, [8000, ...] 43.9 against 13.9 (a 2-core AMX Xeon)."""
    if rows <= 64:
        return 64
    step = 1 << max(6, rows.bit_length() - 4)
    return -(-rows // step) * step


def length_groups(
    lengths: Sequence[int],
    *,
    max_padding: float,
    max_cells: int | None = None,
    max_rows: int | None = None,
) -> list[list[int]]:
    """Positions of ``lengths`` in groups of similar length: ascending, a group
    closing when the next text would make its padding more than ``max_padding`` of
    its cells (rows x longest), or pass ``max_cells`` cells or ``max_rows`` rows."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    group: list[int] = []
    tokens = 0
    for i in order:  # ascending length: the newcomer sets the group's width
        n = lengths[i]
        cells = (len(group) + 1) * n
        if group and (
            (max_rows is not None and len(group) >= max_rows)
            or (max_cells is not None and cells > max_cells)
            or cells - tokens - n > max_padding * cells
        ):
            groups.append(group)
            group, tokens = [], 0
        group.append(i)
        tokens += n
    if group:
        groups.append(group)
    return groups


@functools.cache
def fused_linear_works(dtype: torch.dtype) -> bool:
    """Whether torch's oneDNN linear ops are here and give ``F.linear``'s results
    (and ``F.gelu``'s after it) in ``dtype``: checked once per process on a probe."""
    ops = getattr(torch.ops, "mkldnn", None)
    if ops is None or not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(37, 64, generator=generator).to(dtype)
    weight = (torch.randn(96, 64, generator=generator) / 8).to(dtype)
    bias = torch.randn(96, generator=generator).to(dtype)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    try:
        laid_out = ops._reorder_linear_weight(weight, 64)
        plain = ops._linear_pointwise(x, laid_out, bias, "none", [], "")
        gelu = ops._linear_pointwise(x, laid_out, bias, "gelu", [], "none")
    except (RuntimeError, AttributeError) as exc:
        log.info("packed encoder: no oneDNN linear ops (%s): F.linear", exc)
        return False
    want = F.linear(x, weight, bias).float()
    ok = bool(
        plain.dtype == gelu.dtype == dtype
        and torch.allclose(plain.float(), want, atol=tolerance, rtol=tolerance)
        and torch.allclose(gelu.float(), F.gelu(want), atol=tolerance, rtol=tolerance)
    )
    if not ok:
        log.warning("packed encoder: oneDNN's linear ops disagree with F.linear: F.linear")
    return ok


class _Linear:
    """A linear layer in ``dtype``, optionally with the exact GELU after it: oneDNN's
    product on a weight laid out once, the GELU fused, where :func:`fused_linear_works`;
    ``F.linear`` (then ``F.gelu``) otherwise."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        dtype: torch.dtype,
        *,
        gelu: bool = False,
        fused: bool = True,
    ) -> None:
        self.fused = fused and fused_linear_works(dtype)
        self._gelu = gelu
        self._bias = bias.detach().to(dtype)
        weight = weight.detach().to(dtype)
        self._weight = (
            torch.ops.mkldnn._reorder_linear_weight(weight, LAYOUT_ROWS) if self.fused else weight
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self._bias.dtype)
        if self.fused:
            post, algorithm = ("gelu", "none") if self._gelu else ("none", "")
            return torch.ops.mkldnn._linear_pointwise(  # type: ignore[no-any-return]
                x, self._weight, self._bias, post, [], algorithm
            )
        out = F.linear(x, self._weight, self._bias)
        return F.gelu(out) if self._gelu else out


@dataclass(frozen=True)
class _Layer:
    qkv: _Linear
    out: _Linear
    norm1: torch.nn.LayerNorm
    up: _Linear  # with the activation when it is BERT's GELU
    activation: torch.nn.Module | None  # another activation, after ``up``
    down: _Linear
    norm2: torch.nn.LayerNorm
    #: The same products in static int8 (:mod:`.int8`), when calibrated.
    int8: int8_products.Int8Layer | None = None


@dataclass(frozen=True)
class PackedStates:
    """Token states of a packed forward: ``layers[i]`` is ``[tokens, hidden]`` fp32 for
    the i-th requested layer; text ``j``'s tokens are rows ``offsets[j]:offsets[j+1]``."""

    layers: list[torch.Tensor]
    offsets: torch.Tensor
    lengths: torch.Tensor

    def padded(self, rows: Sequence[int]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The requested layers for texts ``rows``, padded as ``BertModel`` would give
        them (``[len(rows), longest, hidden]``, zeros in the padding), and the
        ``[len(rows), longest]`` int64 attention mask."""
        index, valid = _gather_index(self.offsets, self.lengths, torch.tensor(rows))
        states = [layer[index] * valid.unsqueeze(-1) for layer in self.layers]
        return states, valid.to(torch.int64)


def _gather_index(
    offsets: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[rows, longest]`` indexes into the packed tokens (0 in the padding) and the
    mask of real tokens."""
    lens = lengths[rows]
    steps = torch.arange(int(lens.max()))
    valid = steps < lens.unsqueeze(1)
    index = torch.where(valid, offsets[rows].unsqueeze(1) + steps, 0)
    return index, valid


def _equal_length_runs(lengths: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(first token, texts, length)`` of each run of consecutive texts of one length
    in ``lengths`` (laid end to end)."""
    runs: list[tuple[int, int, int]] = []
    start = 0
    for n in lengths:
        if runs and runs[-1][2] == n and runs[-1][0] + runs[-1][1] * n == start:
            first, rows, _ = runs[-1]
            runs[-1] = (first, rows + 1, n)
        else:
            runs.append((start, 1, n))
        start += n
    return runs


class PackedEncoder:
    """A BERT encoder's weights, run on packed tokens (see the module docstring).

    ``words``: the word-embedding lookup (token ids -> [tokens, hidden] fp32), when
    the model's own table is not the one to use (:mod:`.e5_packed` keeps it 4-bit).

    ``dtype``: what the linear layers and attention compute in (``torch.bfloat16``
    or ``torch.float32``); the linear weights are copied once in it (query, key and
    value fused into one), laid out for oneDNN unless ``fused`` is False (then
    ``F.linear`` and a separate GELU)."""

    def __init__(
        self,
        model: PreTrainedModel,
        dtype: torch.dtype,
        *,
        words: Callable[[torch.Tensor], torch.Tensor] | None = None,
        fused: bool = True,
        int8: int8_products.Calibration | None = None,
    ) -> None:
        if not self.supports(model):
            raise ValueError(f"{type(model).__name__} is not a plain BERT encoder")
        bert: Any = model  # BertModel's submodules, which torch types as Tensor | Module
        config = bert.config
        self._heads = int(config.num_attention_heads)
        self._head_dim = int(config.hidden_size) // self._heads
        self._dtype = dtype
        embeddings = bert.embeddings
        table = embeddings.word_embeddings.weight
        self._words = words or (lambda tokens: F.embedding(tokens, table))
        self._positions = embeddings.position_embeddings.weight
        self._token_type = embeddings.token_type_embeddings.weight[0]
        self._norm: torch.nn.LayerNorm = embeddings.LayerNorm
        gelu = getattr(config, "hidden_act", None) == "gelu"  # BERT's: exact (erf) GELU
        self._modules = list(bert.encoder.layer)
        self._observer: Callable[[int, str, torch.Tensor], None] | None = None
        self._int8_on = False
        if int8 is not None and not gelu:
            log.info("packed encoder: int8 products need BERT's GELU: float products")
            int8 = None
        if int8 is not None and not int8_products.int8_products_work():
            int8 = None
        self._layers: list[_Layer] = []
        for n in range(len(self._modules)):
            qkv, out, up, down = (self.linear(n, kind) for kind in int8_products.KINDS)
            module = self._modules[n]
            self._layers.append(
                _Layer(
                    qkv=_Linear(*qkv, dtype, fused=fused),
                    out=_Linear(*out, dtype, fused=fused),
                    norm1=module.attention.output.LayerNorm,
                    up=_Linear(*up, dtype, gelu=gelu, fused=fused),
                    activation=None if gelu else module.intermediate.intermediate_act_fn,
                    down=_Linear(*down, dtype, fused=fused),
                    norm2=module.output.LayerNorm,
                    int8=self._int8_layer(n, int8) if int8 and int8.covers(n) else None,
                )
            )
        self._int8_on = any(layer.int8 is not None for layer in self._layers)

    def linear(self, layer: int, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The float weight and bias of ``layer``'s product ``kind`` (one of
        :data:`.int8.KINDS`; ``qkv``: query, key and value fused)."""
        module = self._modules[layer]
        if kind == "qkv":
            attn = module.attention.self
            return (
                torch.cat([attn.query.weight, attn.key.weight, attn.value.weight]),
                torch.cat([attn.query.bias, attn.key.bias, attn.value.bias]),
            )
        dense = {
            "out": module.attention.output.dense,
            "up": module.intermediate.dense,
            "down": module.output.dense,
        }[kind]
        return dense.weight, dense.bias

    def _int8_layer(
        self, n: int, calibration: int8_products.Calibration
    ) -> int8_products.Int8Layer:
        return int8_products.int8_layer(
            lambda kind: self.linear(n, kind),
            lambda kind: calibration.input(n, kind),
            self._dtype,
        )

    @staticmethod
    def supports(model: PreTrainedModel) -> bool:
        """A plain BERT encoder with float linear layers (not dynamic int8)."""
        bert: Any = model
        config = bert.config
        if getattr(config, "model_type", None) != "bert" or getattr(config, "is_decoder", False):
            return False
        if getattr(config, "position_embedding_type", "absolute") != "absolute":
            return False
        try:
            layers = list(bert.encoder.layer)
            dense = [
                module
                for layer in layers
                for module in (
                    layer.attention.self.query,
                    layer.attention.self.key,
                    layer.attention.self.value,
                    layer.attention.output.dense,
                    layer.intermediate.dense,
                    layer.output.dense,
                )
            ]
            bert.embeddings.word_embeddings  # noqa: B018
        except AttributeError:
            return False
        return all(type(m) is torch.nn.Linear for m in dense)

    @property
    def fused(self) -> bool:
        """Whether the linear layers run as oneDNN's products (GELU fused)."""
        return all(layer.qkv.fused for layer in self._layers)

    @property
    def int8(self) -> bool:
        """Whether the linear layers run as static int8 products (:mod:`.int8`)."""
        return self._int8_on

    def observe(self, observer: Callable[[int, str, torch.Tensor], None] | None) -> None:
        """Call ``observer(layer, kind, input)`` with every linear layer's input from
        now on (None: stop); for :func:`.int8.calibrate`."""
        self._observer = observer

    @contextmanager
    def float_products(self) -> Iterator[None]:
        """Run the float products meanwhile, even where int8 ones are built."""
        was, self._int8_on = self._int8_on, False
        try:
            yield
        finally:
            self._int8_on = was

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def encode(self, ids: Sequence[Sequence[int]], layers: Sequence[int]) -> PackedStates:
        """The states after each of ``layers`` (0: the embeddings, ``num_layers``: the
        last) for the token ids ``ids``, in their order.

        Inside, the texts are laid out shortest first, so that texts of one length
        are one contiguous run of tokens: attention takes each run as a
        ``[rows, width, ...]`` view (no gather, no padding, no mask) and writes its
        result back in place; the kept layers are put back in input order at the end.
        """
        lengths = torch.tensor([len(x) for x in ids], dtype=torch.int64)
        offsets = torch.zeros(len(ids) + 1, dtype=torch.int64)
        offsets[1:] = torch.cumsum(lengths, 0)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        tokens = torch.tensor([t for i in order for t in ids[i]], dtype=torch.int64)
        positions = torch.cat([torch.arange(len(ids[i])) for i in order])
        x = self._words(tokens) + F.embedding(positions, self._positions)
        x = self._norm(x + self._token_type)
        real = x.shape[0]
        if self._observer is None:  # a calibration sees only the real tokens
            x = F.pad(x, (0, 0, 0, padded_rows(real) - real))
        runs = _equal_length_runs([len(ids[i]) for i in order])
        back: torch.Tensor | None = None
        if order != sorted(order):  # laid out otherwise than given: the way back
            index, valid = _gather_index(offsets, lengths, torch.tensor(order))
            back = torch.empty(int(offsets[-1]), dtype=torch.int64)
            back[index[valid]] = torch.arange(int(offsets[-1]))
        wanted = set(layers)
        kept: dict[int, torch.Tensor] = {0: x} if 0 in wanted else {}
        for n, layer in enumerate(self._layers, start=1):
            x = self._layer(n - 1, layer, x, runs, real)
            if n in wanted:
                kept[n] = x
        states = [kept[i][:real] if back is None else kept[i][back] for i in layers]
        return PackedStates(states, offsets, lengths)

    def _layer(
        self,
        n: int,
        layer: _Layer,
        x: torch.Tensor,
        runs: Sequence[tuple[int, int, int]],
        real: int,
    ) -> torch.Tensor:
        """One layer over ``x``'s rows: the first ``real`` are the texts' tokens (in
        ``runs``), the rest padding (:func:`padded_rows`), kept finite and never read."""
        tokens, hidden = x.shape
        observe = self._observer
        int8 = layer.int8 if self._int8_on else None
        qkv, out, up, down = (
            (int8.qkv, int8.out, int8.up, int8.down)
            if int8 is not None
            else (layer.qkv, layer.out, layer.up, layer.down)
        )
        if observe is not None:
            observe(n, "qkv", x)
        mixed = qkv(x)
        context = torch.empty(tokens, hidden, dtype=self._dtype)
        context[real:].zero_()
        for start, rows, width in runs:
            end = start + rows * width
            q, k, v = (
                mixed[start:end]
                .view(rows, width, 3, self._heads, self._head_dim)
                .permute(2, 0, 3, 1, 4)
                .unbind(0)
            )
            result = F.scaled_dot_product_attention(q, k, v)
            context[start:end].view(rows, width, self._heads, self._head_dim).copy_(
                result.transpose(1, 2)
            )
        if observe is not None:
            observe(n, "out", context)
        x = layer.norm1(out(context).float() + x)
        if observe is not None:
            observe(n, "up", x)
        inner = up(x)
        if layer.activation is not None:
            inner = layer.activation(inner)
        if observe is not None:
            observe(n, "down", inner)
        result = down(inner).float()
        if int8 is not None and int8.outliers is not None:
            result = int8.outliers.add_to(result, x)
        return layer.norm2(result + x)  # type: ignore[no-any-return]
