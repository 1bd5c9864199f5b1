"""Pure-PyTorch StyleGAN-family ops against independent definitions."""

from __future__ import annotations

import math

import pytest
import torch

from restoregen.archs.ops import (
    BlurDownsample,
    BlurUpsample,
    HaarTransform,
    InverseHaarTransform,
    haar_kernels,
    make_kernel,
    minibatch_stddev,
    sinusoidal_grid,
    upfirdn2d,
)


def _upfirdn_loops(x: torch.Tensor, kernel: torch.Tensor, up: int, down: int, pad: tuple[int, int, int, int]):
    """Textbook definition, float64 loops: y[i, j] = sum_k u[i*down + a, j*down + b] k[kh-1-a, kw-1-b]
    where u is x zero-upsampled and padded (x0, x1, y0, y1)."""
    px0, px1, py0, py1 = pad
    b, c, h, w = x.shape
    kh, kw = kernel.shape
    hu, wu = h * up + py0 + py1, w * up + px0 + px1
    u = torch.zeros(b, c, hu, wu, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            r, s = i * up + py0, j * up + px0
            if 0 <= r < hu and 0 <= s < wu:
                u[:, :, r, s] = x[:, :, i, j].double()
    out_h, out_w = (hu - kh) // down + 1, (wu - kw) // down + 1
    y = torch.zeros(b, c, out_h, out_w, dtype=torch.float64)
    for i in range(out_h):
        for j in range(out_w):
            patch = u[:, :, i * down:i * down + kh, j * down:j * down + kw]
            y[:, :, i, j] = (patch * kernel.double().flip(0, 1)).sum((-1, -2))
    return y


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 2, 0, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (2, 2, (0, 0, 0, 0)), (1, 1, (-1, 2, 1, -2))])
def test_upfirdn2d_matches_definition(up, down, pad):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6)
    kernel = torch.randn(4, 3)  # asymmetric: catches a missing flip or swapped axes
    got = upfirdn2d(x, kernel, up=up, down=down, pad=pad)
    torch.testing.assert_close(got.double(), _upfirdn_loops(x, kernel, up, down, pad), atol=1e-5, rtol=1e-5)


def test_fir_resampling_keeps_constants():
    x = torch.full((1, 2, 8, 8), 3.0)
    up, down = BlurUpsample((1, 3, 3, 1)), BlurDownsample((1, 3, 3, 1))
    assert up(x).shape == (1, 2, 16, 16) and down(x).shape == (1, 2, 4, 4)
    torch.testing.assert_close(up(x)[..., 2:-2, 2:-2], torch.full((1, 2, 12, 12), 3.0))  # away from the zero pad
    torch.testing.assert_close(down(x)[..., 1:-1, 1:-1], torch.full((1, 2, 2, 2), 3.0))
    assert math.isclose(make_kernel([1, 3, 3, 1]).sum().item(), 1.0)


def test_haar_is_orthonormal_and_invertible():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    bands = HaarTransform(3)(x)
    assert bands.shape == (2, 12, 4, 4)
    torch.testing.assert_close(bands.pow(2).sum(), x.pow(2).sum())  # energy preserved
    torch.testing.assert_close(InverseHaarTransform(3)(bands), x, atol=1e-6, rtol=1e-6)
    ll, lh, hl, hh = haar_kernels()
    # LL of a 2x2 block is its sum / 2; the first sub-band holds the LL of every channel
    torch.testing.assert_close(bands[:, :3], x.unfold(2, 2, 2).unfold(3, 2, 2).sum((-1, -2)) / 2)
    torch.testing.assert_close(ll, torch.full((2, 2), 0.5))
    assert lh.sum() == 0 and hl.sum() == 0 and hh.sum() == 0


def test_sinusoidal_grid_layout():
    grid = sinusoidal_grid(3, 5, 16)
    assert grid.shape == (3, 5, 16)
    freqs = 10000 ** (-torch.arange(4) / 3)
    col, row = 4, 2  # positions count from 1
    torch.testing.assert_close(grid[row, col, :4], torch.sin((col + 1) * freqs))
    torch.testing.assert_close(grid[row, col, 4:8], torch.cos((col + 1) * freqs))
    torch.testing.assert_close(grid[row, col, 8:12], torch.sin((row + 1) * freqs))
    assert torch.equal(grid[0, :, :8], grid[2, :, :8])  # first half depends on the column only


def test_minibatch_stddev_groups_are_strided():
    torch.manual_seed(0)
    x = torch.randn(8, 4, 2, 2)
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 5, 2, 2)
    for b in range(8):  # sample b is grouped with b % 2, i.e. samples {b % 2, b % 2 + 2, ...}
        group = x[b % 2::2]
        expected = (group.var(0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(out[b, 4], expected.expand(2, 2))
