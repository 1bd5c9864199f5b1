import pytest
import torch

from restoregen.attention import DYNAMIC_CONV_METHODS, dynamic_depthwise_conv
from restoregen.attention.backends import triton_runs_on

# the Triton kernel runs on CUDA tensors (tests/attention/test_kernels.py) or in Triton's interpreter
CPU_METHODS = [m for m in DYNAMIC_CONV_METHODS if m != "triton" or triton_runs_on(torch.empty(0))]


def _by_definition(x, weight):
    """out[b, c, h, w] = sum_ij weight[b, group(c), i, j, h, w] * x[b, c, h + i - p, w + j - p], zero outside."""
    b, c, height, width = x.shape
    groups, k = weight.shape[1], weight.shape[2]
    pad = (k - 1) // 2
    out = torch.zeros_like(x)
    for ch in range(c):
        g = ch // (c // groups)
        for i in range(k):
            for j in range(k):
                for h in range(height):
                    for w in range(width):
                        hi, wi = h + i - pad, w + j - pad
                        if 0 <= hi < height and 0 <= wi < width:
                            out[:, ch, h, w] += weight[:, g, i, j, h, w] * x[:, ch, hi, wi]
    return out


@pytest.mark.parametrize("method", CPU_METHODS)
def test_matches_the_definition(method):
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    weight = torch.randn(2, 2, 3, 3, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(dynamic_depthwise_conv(x, weight, method), _by_definition(x, weight))


@pytest.mark.parametrize("shape", [(1, 6, 9, 11, 3, 5), (2, 12, 7, 8, 2, 7), (1, 4, 3, 4, 4, 7)])
def test_shift_matches_unfold_forward_and_backward(shape):
    b, c, h, w, groups, k = shape  # the last one: kernel larger than the map
    x = torch.randn(b, c, h, w, requires_grad=True)
    weight = torch.randn(b, groups, k, k, h, w, requires_grad=True)

    def run(method):
        out = dynamic_depthwise_conv(x, weight, method)
        grads = torch.autograd.grad(out, (x, weight), torch.ones_like(out) + out.detach())
        return out.detach(), grads

    ref, ref_grads = run("unfold")
    out, grads = run("shift")
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_runs_in_inference_mode_and_half_precision():
    x = torch.randn(1, 4, 6, 6)
    weight = torch.randn(1, 2, 3, 3, 6, 6)
    with torch.inference_mode():
        ref = dynamic_depthwise_conv(x, weight)
    out = dynamic_depthwise_conv(x.bfloat16(), weight.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2)


def test_bad_inputs_are_explained():
    x = torch.randn(1, 6, 5, 5)
    with pytest.raises(ValueError, match="must be \\(B=1, G, k, k, H=5, W=5\\)"):
        dynamic_depthwise_conv(x, torch.randn(1, 2, 3, 3, 4, 5))
    with pytest.raises(ValueError, match="odd size"):
        dynamic_depthwise_conv(x, torch.randn(1, 2, 4, 4, 5, 5))
    with pytest.raises(ValueError, match="6 channels cannot be split into 4"):
        dynamic_depthwise_conv(x, torch.randn(1, 4, 3, 3, 5, 5))
    with pytest.raises(ValueError, match="unknown dynamic convolution method 'cupy'"):
        dynamic_depthwise_conv(x, torch.randn(1, 2, 3, 3, 5, 5), "cupy")
    if not triton_runs_on(x):
        with pytest.raises(ValueError, match="'triton' needs CUDA tensors"):
            dynamic_depthwise_conv(x, torch.randn(1, 2, 3, 3, 5, 5), "triton")
