import pytest
import torch
import torch.nn.functional as F

from restoregen.attention import (
    attention_backend,
    available_backends,
    channel_attention,
    channel_self_attention,
    tlc_grid,
    tlc_merge,
    tlc_partition,
)


def _qkv(*shape, requires_grad=False):
    return [torch.randn(*shape, requires_grad=requires_grad) for _ in range(3)]


@pytest.mark.parametrize("activation", ["softmax", "relu", "gelu", "sigmoid", "identity"])
def test_matches_the_formula(activation):
    q, k, v = _qkv(2, 3, 4, 20)
    temperature = torch.rand(3, 1, 1) * 4
    scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * temperature
    act = {"softmax": lambda s: s.softmax(-1), "relu": F.relu, "gelu": F.gelu, "sigmoid": torch.sigmoid,
           "identity": lambda s: s}[activation]
    torch.testing.assert_close(channel_attention(q, k, v, temperature, activation), act(scores) @ v)


def test_relu_makes_the_scores_sparse():
    q, k, v = torch.rand(1, 1, 8, 30), -torch.rand(1, 1, 8, 30), torch.randn(1, 1, 8, 30)
    out = channel_attention(q, k, v, 1.0, "relu")  # every score is negative: nothing passes
    assert torch.equal(out, torch.zeros_like(out))
    assert channel_attention(q, k, v, 1.0, "softmax").abs().max() > 0.1


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "math"])
def test_softmax_backends_match_math_forward_and_backward(backend):
    # fused q/k/v as test_dlgsanet's softmax blocks make them (2 heads of 6 channels, 9x10): FlexAttention
    # then compiles once for both tests
    qkv = torch.randn(2, 36, 9, 10, requires_grad=True)
    temperature = (torch.rand(2, 1, 1) * 4).requires_grad_()
    results = []
    for name in ("math", backend):
        with attention_backend(name):
            out = channel_self_attention(qkv, 2, temperature)
        grads = torch.autograd.grad(out, (qkv, temperature), torch.ones_like(out) + out.detach())
        results.append((out.detach(), *grads))
    torch.testing.assert_close(results[1], results[0], rtol=1e-4, atol=1e-5)


def test_unknown_activation_is_explained():
    q, k, v = _qkv(1, 1, 2, 4)
    with pytest.raises(ValueError, match="activation 'tanh'"):
        channel_attention(q, k, v, 1.0, "tanh")


@pytest.mark.parametrize("size, kernel, crop, rows, cols", [
    ((24, 24), 16, (16, 16), (0, 8), (0, 8)),
    ((20, 27), 12, (12, 12), (0, 8), (0, 8, 15)),
    ((18, 22), 12, (12, 12), (0, 6), (0, 10)),
    ((16, 20), 48, (16, 20), (0,), (0,)),
    ((100, 49), 48, (48, 48), (0, 26, 52), (0, 1)),
])
def test_tlc_grid_follows_the_official_rule(size, kernel, crop, rows, cols):
    """Crops evenly spread (step ceil((L - k) / (n - 1))), the last one flush with the end."""
    got_crop, corners = tlc_grid(*size, kernel)
    assert got_crop == crop
    assert corners == tuple((i, j) for i in rows for j in cols)


def test_tlc_partition_and_merge_round_trip_per_sample():
    x = torch.randn(3, 5, 13, 18)
    crops = tlc_partition(x, 8)
    assert crops.shape == (3 * 6, 5, 8, 8)
    torch.testing.assert_close(crops[6:12], tlc_partition(x[1:2], 8))  # sample-major
    torch.testing.assert_close(tlc_merge(crops, 8, 13, 18), x)


def test_tlc_merge_averages_the_overlaps():
    crops = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 1, 4, 4)  # 4x6 map, kernel 4: crops at columns 0 and 2
    merged = tlc_merge(crops, 4, 4, 6)
    assert merged[0, 0, 0].tolist() == [0, 0, 0.5, 0.5, 1, 1]


def test_self_attention_with_a_large_tlc_kernel_is_global():
    qkv = torch.randn(2, 12, 6, 7)
    temperature = torch.rand(2, 1, 1)
    torch.testing.assert_close(channel_self_attention(qkv, 2, temperature, "relu", tlc_kernel=48),
                               channel_self_attention(qkv, 2, temperature, "relu"))


def test_self_attention_with_tlc_equals_attention_per_crop():
    qkv = torch.randn(1, 6, 10, 10)
    out = channel_self_attention(qkv, 1, 1.0, "relu", tlc_kernel=6)  # crops at 0 and 4 on both sides
    crop = channel_self_attention(qkv[..., 4:10, 0:6], 1, 1.0, "relu")
    torch.testing.assert_close(out[..., 6:10, 0:4], crop[..., 2:6, 0:4])  # covered by that crop only
