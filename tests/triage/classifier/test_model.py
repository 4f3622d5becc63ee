"""The heads on packed token states give the padded forward's logits."""

from __future__ import annotations

import warnings

import pytest
import torch

from services.triage.classifier.model import (
    TASKS,
    Heads,
    mean_pool,
    packed_mean,
    segment_sums,
)

LENGTHS = [1, 7, 3, 3, 12, 2, 7]


def _packed_and_padded(
    lengths: list[int], hidden: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random token states end to end, the same padded [texts, longest, hidden] with
    random junk in the padding (masked, so it must not count), and the mask."""
    generator = torch.Generator().manual_seed(seed)
    packed = torch.randn(sum(lengths), hidden, generator=generator)
    longest = max(lengths)
    padded = torch.randn(len(lengths), longest, hidden, generator=generator) * 100
    mask = torch.zeros(len(lengths), longest, dtype=torch.int64)
    start = 0
    for row, n in enumerate(lengths):
        padded[row, :n] = packed[start : start + n]
        mask[row, :n] = 1
        start += n
    return packed, padded, mask


def test_segment_sums_weights_each_texts_own_tokens() -> None:
    states = torch.arange(12, dtype=torch.float32).reshape(6, 2)  # 6 tokens, hidden 2
    lengths = torch.tensor([2, 1, 3])
    weights = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 5.0, 1.0, 0.0, 0.0]])
    got = segment_sums(lengths, weights, states)
    assert got.shape == (2, 3, 2)
    want_sum = torch.tensor([[2.0, 4.0], [4.0, 5.0], [24.0, 27.0]])
    want_weighted = torch.tensor([[4.0, 6.0], [20.0, 25.0], [6.0, 7.0]])
    torch.testing.assert_close(got[0], want_sum)
    torch.testing.assert_close(got[1], want_weighted)


def test_packed_mean_is_mean_pool_of_the_padded_states() -> None:
    packed, padded, mask = _packed_and_padded(LENGTHS, 16, seed=1)
    torch.testing.assert_close(packed_mean(torch.tensor(LENGTHS), packed), mean_pool(padded, mask))


def test_segment_sums_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        segment_sums(torch.tensor([2]), torch.ones(1, 2), torch.ones(2, 4))


@pytest.mark.parametrize("n_layers", [1, 3])
def test_forward_packed_gives_the_padded_forwards_logits(n_layers: int) -> None:
    torch.manual_seed(0)
    heads = Heads(hidden=16, width=8, n_layers=n_layers).eval()
    with torch.no_grad():
        heads.mix.copy_(torch.randn(n_layers))
    layers = [_packed_and_padded(LENGTHS, 16, seed=10 + i) for i in range(n_layers)]
    mask = layers[0][2]
    features = torch.tensor([[float(i % 2), float(i % 3 == 0)] for i in range(len(LENGTHS))])
    with torch.inference_mode():
        want = heads([padded for _, padded, _ in layers], mask, features)
        got = heads.forward_packed(
            [packed for packed, _, _ in layers], torch.tensor(LENGTHS), features
        )
    assert got.shape == (len(LENGTHS), len(TASKS))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_forward_packed_softmax_is_per_text() -> None:
    """A text with huge attention scores does not drown its neighbours' softmax: each
    text's pooling depends on its own tokens only."""
    heads = Heads(hidden=8, width=4).eval()
    generator = torch.Generator().manual_seed(3)
    quiet = torch.randn(5, 8, generator=generator)
    loud = torch.randn(4, 8, generator=generator) * 1000
    features = torch.zeros(2, 2)
    with torch.inference_mode():
        alone = heads.forward_packed([quiet], torch.tensor([5]), features[:1])
        beside = heads.forward_packed([torch.cat([loud, quiet])], torch.tensor([4, 5]), features)
    assert torch.isfinite(beside).all()
    torch.testing.assert_close(beside[1:], alone, rtol=1e-5, atol=1e-5)
