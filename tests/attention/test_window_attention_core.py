"""WindowAttentionCore (projection-free window attention) and map_windows."""

from __future__ import annotations

import pytest
import torch

from restoregen.attention import (
    WindowAttention,
    WindowAttentionCore,
    attention_backend,
    available_backends,
    map_windows,
    shifted_window_mask,
    window_merge,
    window_partition,
)


def _explicit(core: WindowAttentionCore, q, k, v, mask):
    """Softmax attention per window and head, written out."""
    b, nw, n, c = q.shape
    h = core.num_heads
    split = [t.reshape(b, nw, n, h, c // h).permute(0, 1, 3, 2, 4) for t in (q, k, v)]
    scores = split[0] * core.scale @ split[1].transpose(-1, -2) + core.bias()
    if mask is not None:
        scores = scores + mask[:, None]
    out = scores.softmax(-1) @ split[2]
    return out.permute(0, 1, 3, 2, 4).reshape(b, nw, n, c)


@pytest.mark.parametrize("backend", [b for b in ("math", "sdpa") if b in available_backends()])
def test_core_matches_explicit_attention(backend):
    torch.manual_seed(0)
    core = WindowAttentionCore(16, 4, num_heads=2, store_index=True)
    with torch.no_grad():
        core.relative_position_bias_table.normal_()
    q, k, v = (torch.randn(2, 4, 16, 16) for _ in range(3))
    mask = shifted_window_mask(8, 8, 4, 2)
    with attention_backend(backend):
        for m in (None, mask):
            torch.testing.assert_close(core(q, k, v, m), _explicit(core, q, k, v, m), atol=1e-5, rtol=1e-5)
    assert core.relative_position_index.dtype == torch.int64
    assert list(core.state_dict()) == ["relative_position_bias_table", "relative_position_index"]


def test_window_attention_is_core_plus_projections():
    torch.manual_seed(0)
    attn = WindowAttention(16, 4, num_heads=2)
    assert list(attn.state_dict()) == ["relative_position_bias_table", "qkv.weight", "qkv.bias", "proj.weight",
                                       "proj.bias"]
    windows = torch.randn(2, 4, 16, 16)
    q, k, v = attn.qkv(windows).chunk(3, -1)
    expected = attn.proj(WindowAttentionCore.forward(attn, q, k, v))
    torch.testing.assert_close(attn(windows), expected)


def test_core_builds_buffers_on_the_default_device():
    with torch.device("meta"):
        core = WindowAttentionCore(16, 8, 2, store_index=True)
    assert core.relative_position_index.device.type == "meta"


def test_map_windows_shift_roundtrip():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 8, 3)
    assert torch.equal(map_windows(lambda w: w, x, 4, 2), x)
    seen = []

    def spy(windows):
        seen.append(windows)
        return windows * 2

    out = map_windows(spy, x, 4, 2)
    torch.testing.assert_close(out, 2 * x)
    rolled = torch.roll(x, (-2, -2), (1, 2))
    assert torch.equal(seen[0], window_partition(rolled, 4))  # fn sees the windows of the shifted map
    assert torch.equal(window_merge(seen[0], 4, 8, 8), rolled)
