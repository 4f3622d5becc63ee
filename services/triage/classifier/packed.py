"""BERT's forward on packed tokens: the linear layers see only real tokens.

``BertModel`` takes a ``[rows, width]`` group padded to its longest text, so
every linear layer (about 80 % of the work) also multiplies the padding, and a
stream batch is cut into many small groups to keep that padding down, each a
round of small matrix products. :class:`PackedEncoder` runs the same weights on
all the texts' tokens laid end to end (``[tokens, hidden]``): each linear layer
is one large product over a whole stream batch with no padding; only attention,
which mixes tokens within a text, gathers each group of similar-length texts
into ``[rows, heads, width, head_dim]`` (the padding masked as in ``BertModel``)
and scatters the result back.

Numerics follow ``BertModel`` under CPU autocast: the residual stream and
LayerNorm in fp32, the linear layers, GELU and attention in ``dtype`` (bf16, or
fp32 for fp32). Measured on these CPUs (2 cores, AMX bf16), stream batches of
256 TweetEval tweets: 767-829 tweets/s for the encoder against 514-546 for
``BertModel`` on the classifier's padded groups; final states within 0.016 of
``BertModel`` under autocast (which is itself 0.015 from fp32).

Only plain BERT encoders qualify (:meth:`PackedEncoder.supports`): absolute
positions, no decoder, the standard module layout; dynamic int8 layers keep
``BertModel``'s own forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention
from transformers import PreTrainedModel


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


@dataclass(frozen=True)
class _Layer:
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    out_weight: torch.Tensor
    out_bias: torch.Tensor
    norm1: torch.nn.LayerNorm
    up_weight: torch.Tensor
    up_bias: torch.Tensor
    activation: torch.nn.Module
    down_weight: torch.Tensor
    down_bias: torch.Tensor
    norm2: torch.nn.LayerNorm


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


class PackedEncoder:
    """A BERT encoder's weights, run on packed tokens (see the module docstring).

    ``words``: the word-embedding lookup (token ids -> [tokens, hidden] fp32), when
    the model's own table is not the one to use (:mod:`.e5_packed` keeps it 4-bit).

    ``dtype``: what the linear layers and attention compute in (``torch.bfloat16``
    or ``torch.float32``); the fused query/key/value weights are copied once in it,
    the others are used in place (cast if they are not in ``dtype`` already)."""

    def __init__(
        self,
        model: PreTrainedModel,
        dtype: torch.dtype,
        *,
        words: Callable[[torch.Tensor], torch.Tensor] | None = None,
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
        self._layers: list[_Layer] = []
        for layer in bert.encoder.layer:
            attn = layer.attention.self
            self._layers.append(
                _Layer(
                    qkv_weight=torch.cat(
                        [attn.query.weight, attn.key.weight, attn.value.weight]
                    ).to(dtype),
                    qkv_bias=torch.cat([attn.query.bias, attn.key.bias, attn.value.bias]).to(dtype),
                    out_weight=layer.attention.output.dense.weight.to(dtype),
                    out_bias=layer.attention.output.dense.bias.to(dtype),
                    norm1=layer.attention.output.LayerNorm,
                    up_weight=layer.intermediate.dense.weight.to(dtype),
                    up_bias=layer.intermediate.dense.bias.to(dtype),
                    activation=layer.intermediate.intermediate_act_fn,
                    down_weight=layer.output.dense.weight.to(dtype),
                    down_bias=layer.output.dense.bias.to(dtype),
                    norm2=layer.output.LayerNorm,
                )
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
    def num_layers(self) -> int:
        return len(self._layers)

    def encode(
        self,
        ids: Sequence[Sequence[int]],
        groups: Sequence[Sequence[int]],
        layers: Sequence[int],
    ) -> PackedStates:
        """The states after each of ``layers`` (0: the embeddings, ``num_layers``: the
        last) for the token ids ``ids``; ``groups`` partition ``range(len(ids))`` into
        the texts attention runs together (similar lengths waste less)."""
        lengths = torch.tensor([len(x) for x in ids], dtype=torch.int64)
        offsets = torch.zeros(len(ids) + 1, dtype=torch.int64)
        offsets[1:] = torch.cumsum(lengths, 0)
        tokens = torch.tensor([t for x in ids for t in x], dtype=torch.int64)
        positions = torch.cat([torch.arange(n) for n in lengths.tolist()])
        x = self._words(tokens) + F.embedding(positions, self._positions)
        x = self._norm(x + self._token_type)
        plans = []
        for group in groups:
            index, valid = _gather_index(offsets, lengths, torch.tensor(group))
            plans.append((index, valid, index[valid]))
        wanted = set(layers)
        kept: dict[int, torch.Tensor] = {0: x} if 0 in wanted else {}
        for n, layer in enumerate(self._layers, start=1):
            x = self._layer(layer, x, plans)
            if n in wanted:
                kept[n] = x
        return PackedStates([kept[i] for i in layers], offsets, lengths)

    def _layer(
        self,
        layer: _Layer,
        x: torch.Tensor,
        plans: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        tokens, hidden = x.shape
        qkv = F.linear(x.to(self._dtype), layer.qkv_weight, layer.qkv_bias)
        context = torch.empty(tokens, hidden, dtype=self._dtype)
        for index, valid, dest in plans:
            rows, width = index.shape
            q, k, v = (
                qkv[index]
                .view(rows, width, 3, self._heads, self._head_dim)
                .permute(2, 0, 3, 1, 4)
                .unbind(0)
            )
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :])
            context[dest] = out.transpose(1, 2).reshape(rows, width, hidden)[valid]
        attended = F.linear(context, layer.out_weight, layer.out_bias)
        x = layer.norm1(attended.float() + x)
        up = layer.activation(F.linear(x.to(self._dtype), layer.up_weight, layer.up_bias))
        down = F.linear(up, layer.down_weight, layer.down_bias)
        return layer.norm2(down.float() + x)  # type: ignore[no-any-return]
