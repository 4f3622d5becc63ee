"""The trainable part of the classifier, shared by training and inference.

The base model (all-MiniLM-L6-v2) runs unchanged up to layer ``6 - k``; its top
``k`` transformer layers are replaced by fine-tuned copies, and :class:`Heads`
reads the final token states. So inference is exactly one forward pass of a
model the size of the base, plus heads that cost next to nothing.

- ``embedding``: mean of the final token states (what sentence-transformers
  does for this model), L2-normalised; kept close to the base model's
  embedding by a preservation loss during training.
- ``offensive`` / ``hate`` / ``question``: one small MLP per task over
  [mean pooling, a task-specific attention pooling, two ``?`` features].
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

TASKS: tuple[str, ...] = ("offensive", "hate", "question")
N_TEXT_FEATURES = 2


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def text_features(texts: Sequence[str]) -> torch.Tensor:
    """``[has '?', ends with '?']`` per text (trailing links/mentions/emoji ignored)."""
    rows = []
    for text in texts:
        tail = text.rstrip()
        while tail and not (tail[-1].isalnum() or tail[-1] in "?.!"):
            tail = tail[:-1].rstrip()
        rows.append([float("?" in text), float(tail.endswith("?"))])
    return torch.tensor(rows, dtype=torch.float32).reshape(len(texts), N_TEXT_FEATURES)


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states where ``mask`` is 1 (``states`` [B, T, H], ``mask`` [B, T])."""
    m = mask.to(states.dtype).unsqueeze(-1)
    return (states * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def segment_sums(
    lengths: torch.Tensor, weights: torch.Tensor, states: torch.Tensor
) -> torch.Tensor:
    """Per-text weighted sums of packed token states: ``states`` [tokens, H] holds the
    texts' tokens end to end (``lengths`` [texts] of them each), ``weights`` [k, tokens];
    row ``(j, b)`` of the result [k, texts, H] sums ``weights[j, t] * states[t]`` over
    text ``b``'s tokens.

    One sparse product (CSR, the k weight rows of each text side by side): no padding
    and no gather, whatever the texts' lengths.
    """
    k, tokens = weights.shape
    texts = lengths.numel()
    starts = torch.zeros(texts, dtype=torch.int64)
    starts[1:] = torch.cumsum(lengths, 0)[:-1]
    rows = (starts + tokens * torch.arange(k).unsqueeze(1)).reshape(-1)
    crow = torch.cat([rows, torch.tensor([k * tokens])])
    columns = torch.arange(tokens).repeat(k)
    with warnings.catch_warnings():  # torch calls sparse CSR tensors beta, once a process
        warnings.simplefilter("ignore", UserWarning)
        matrix = torch.sparse_csr_tensor(
            crow, columns, weights.reshape(-1).to(states.dtype), size=(k * texts, tokens)
        )
    return (matrix @ states).view(k, texts, states.shape[-1])


def packed_mean(lengths: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """:func:`mean_pool` of packed token states (see :func:`segment_sums`): [texts, H]."""
    share = (1.0 / lengths.to(states.dtype)).repeat_interleave(lengths)
    return segment_sums(lengths, share.unsqueeze(0), states)[0]


def attention_mask_4d(mask: torch.Tensor) -> torch.Tensor:
    """The boolean [B, 1, T, T] mask BertLayer's SDPA attention expects (True = attend)."""
    b, t = mask.shape
    return mask.bool()[:, None, None, :].expand(b, 1, t, t)


class Heads(nn.Module):
    """Per-task attention pooling + MLP over token states -> logits [B, len(TASKS)].

    ``n_layers`` > 1: the heads read a learned softmax-weighted mix of several
    layers' token states (e.g. layers 4, 5 and 6 of a frozen base, all from
    the same forward pass).
    """

    def __init__(
        self, hidden: int = 384, width: int = 256, dropout: float = 0.1, n_layers: int = 1
    ) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.zeros(n_layers))
        self.attention = nn.Linear(hidden, len(TASKS))
        self.mlps = nn.ModuleList(
            nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(2 * hidden + N_TEXT_FEATURES, width),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(width, 1),
            )
            for _ in TASKS
        )

    def forward(
        self, layers: Sequence[torch.Tensor], mask: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        weights = torch.softmax(self.mix, dim=0)
        states = sum((w * s for w, s in zip(weights, layers, strict=True)), torch.zeros(()))
        mean = mean_pool(states, mask)
        scores = self.attention(states).masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
        attn = torch.softmax(scores, dim=1)  # [B, T, tasks]
        pooled = torch.einsum("btk,bth->bkh", attn, states)
        features = features.to(states.dtype)
        logits = [
            mlp(torch.cat([mean, pooled[:, k], features], dim=-1))
            for k, mlp in enumerate(self.mlps)
        ]
        return torch.cat(logits, dim=-1)

    def forward_packed(
        self, layers: Sequence[torch.Tensor], lengths: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`forward` on packed token states (``layers``: [tokens, H] each, the texts
        end to end, ``lengths`` [texts] tokens each): the same logits, without padding
        the states into a [texts, longest, H] block. The pooling is
        :func:`segment_sums`; each text's attention softmax runs over its own tokens.
        """
        if len(layers) == 1 and len(self.mix) == 1:
            states = layers[0]  # the mix of one layer is that layer (weight 1.0 exactly)
        else:
            weights = torch.softmax(self.mix, dim=0)
            states = sum((w * s for w, s in zip(weights, layers, strict=True)), torch.zeros(()))
        texts = lengths.numel()
        text_of = torch.arange(texts).repeat_interleave(lengths)
        scores = self.attention(states)  # [tokens, tasks]
        by_text = text_of.unsqueeze(1).expand_as(scores)
        top = scores.new_full((texts, len(TASKS)), float("-inf"))
        top = top.scatter_reduce(0, by_text, scores, "amax")
        attn = (scores - top[text_of]).exp()
        attn /= attn.new_zeros((texts, len(TASKS))).index_add_(0, text_of, attn)[text_of]
        share = (1.0 / lengths.to(states.dtype))[text_of]
        pooled = segment_sums(lengths, torch.cat([attn.T, share.unsqueeze(0)]), states)
        mean = pooled[-1]
        features = features.to(states.dtype)
        logits = [
            mlp(torch.cat([mean, pooled[k], features], dim=-1)) for k, mlp in enumerate(self.mlps)
        ]
        return torch.cat(logits, dim=-1)


def head_state(heads: Heads, task: str) -> dict[str, torch.Tensor]:
    """The parameters that only ``task``'s head uses (its MLP, its attention row)."""
    k = TASKS.index(task)
    state = {f"mlps.{k}.{name}": v.clone() for name, v in heads.mlps[k].state_dict().items()}
    state["attention.weight"] = heads.attention.weight[k].detach().clone()
    state["attention.bias"] = heads.attention.bias[k].detach().clone()
    return state


def restore_head(heads: Heads, task: str, state: dict[str, torch.Tensor]) -> None:
    k = TASKS.index(task)
    with torch.no_grad():
        prefix = f"mlps.{k}."
        heads.mlps[k].load_state_dict(
            {name[len(prefix) :]: v for name, v in state.items() if name.startswith(prefix)}
        )
        heads.attention.weight[k] = state["attention.weight"]
        heads.attention.bias[k] = state["attention.bias"]
