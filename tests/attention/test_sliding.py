import json

import pytest
import torch
from safetensors.torch import load_file

from restoregen.attention import attention_backend, sliding_window_attention, sliding_window_mask
from restoregen.attention import sliding as sliding_module
from restoregen.attention.sliding import auto_sliding_backend, window_starts
from tests.reference_data import REFERENCE_DIR

REFERENCE = REFERENCE_DIR / "freeswim"
SWA_CASES = sorted(p.name for p in REFERENCE.glob("swa_*")) if REFERENCE.is_dir() else []
BACKENDS = ("math", "sdpa", "flex")


def load_case(name: str):
    config = json.loads((REFERENCE / name / "config.json").read_text())
    tensors = {k: v.clone() for k, v in load_file(REFERENCE / name / "io.safetensors").items()}
    return config, tensors


@pytest.mark.skipif(not SWA_CASES, reason="shared/reference/freeswim not found")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", SWA_CASES)
def test_official_cases(case, backend):
    config, io = load_case(case)
    args = config["args"]
    grid = (args["num_frames"], args["height"], args["width"])
    window = (args["num_frames"], 2 * args["d_h"] + 1, 2 * args["d_w"] + 1)
    assert torch.equal(sliding_window_mask(grid, window), io["mask"])
    out = sliding_window_attention(io["q"], io["k"], io["v"], grid, window, args["scale"], backend=backend)
    assert (out - io["output"]).abs().max() <= 1e-5


@pytest.mark.parametrize("n,d", [(8, 2), (12, 3), (6, 2), (5, 2), (4, 2), (30, 15), (68, 15), (120, 26)])
def test_window_starts_follow_the_official_clamping(n, d):
    q = torch.arange(n)
    lower = (q - d - (d + q - n + 1).clamp_min(0)).clamp_min(0)  # official mask bounds, clipped to the grid
    assert torch.equal(window_starts(n, 2 * d + 1).clamp_min(0), lower)


@pytest.mark.parametrize("grid,window,global_tokens", [
    ((3, 7, 9), (2, 3, 5), 5),
    ((11, 13), (4, 6), 0),  # even windows, 2-D grid
    ((2, 5, 7), (None, 3, 5), 130),  # more global tokens than a flex block
    ((40,), (7,), 3),
])
@pytest.mark.parametrize("backend", ("sdpa", "flex"))
def test_backends_match_math_forward_and_backward(grid, window, global_tokens, backend):
    torch.manual_seed(0)
    length = global_tokens + torch.Size(grid).numel()
    q, k, v = (torch.randn(2, 3, length, 8, requires_grad=True) for _ in range(3))
    ref = sliding_window_attention(q, k, v, grid, window, 0.3, global_tokens=global_tokens, backend="math")
    ref_grads = torch.autograd.grad((ref * ref.detach()).sum(), (q, k, v))
    out = sliding_window_attention(q, k, v, grid, window, 0.3, global_tokens=global_tokens, backend=backend)
    grads = torch.autograd.grad((out * ref.detach()).sum(), (q, k, v))
    assert (out - ref).abs().max() <= 1e-5
    for grad, ref_grad in zip(grads, ref_grads, strict=True):
        assert (grad - ref_grad).abs().max() <= 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_query_attends_exactly_the_window(backend):
    """Uniform attention (q = 0) over one-hot values counts each query's keys."""
    grid, window = (2, 6, 8), (None, 3, 5)
    length = 2 * 6 * 8
    q = torch.zeros(1, 1, length, 128)
    v = torch.eye(length, 128)[None, None]
    weights = sliding_window_attention(q, q, v, grid, window, backend=backend)[0, 0, :, :length]
    attended = (weights > 0).sum(-1)
    assert torch.all(attended == 2 * 3 * 5)
    assert torch.allclose(weights.sum(-1), torch.ones(length))
    assert torch.equal(weights > 0, sliding_window_mask(grid, window))


def test_sdpa_backend_never_builds_the_dense_mask():
    """65k tokens: an (L, L) mask would take 4 GB; check sampled queries against explicit windows."""
    torch.manual_seed(0)
    grid, window = (1, 256, 256), (None, 9, 9)
    q, k, v = (torch.randn(1, 1, 256 * 256, 8) for _ in range(3))
    out = sliding_window_attention(q, k, v, grid, window, backend="sdpa")
    rows = torch.randint(0, 256 * 256, (40,)).tolist() + [0, 255, 256 * 256 - 1]
    for row in rows:
        h, w = divmod(row, 256)
        h0, w0 = (min(max(x - 4, 0), 256 - 9) for x in (h, w))
        keys = torch.tensor([(h0 + i) * 256 + w0 + j for i in range(9) for j in range(9)])
        probs = (q[0, 0, row] @ k[0, 0, keys].T * 8**-0.5).softmax(-1)
        assert (probs @ v[0, 0, keys] - out[0, 0, row]).abs().max() <= 1e-5


def test_tile_order_makes_flex_blocks_dense():
    grid, window = (4, 32, 48), (None, 9, 9)
    plan = sliding_module._flex_plan(grid, (4, 9, 9), 0, torch.device("cpu"))
    computed = int(plan.block_mask.kv_num_blocks.sum() + plan.block_mask.full_kv_num_blocks.sum())
    mask = sliding_window_mask(grid, window)
    blocks = -(-mask.shape[0] // 128)
    padded = torch.nn.functional.pad(mask, (0, blocks * 128 - mask.shape[0], 0, blocks * 128 - mask.shape[0]))
    raster = int(padded.view(blocks, 128, blocks, 128).any(3).any(1).sum())
    assert computed <= raster / 2


def test_masks_are_cached_per_grid_window_and_device():
    a = sliding_window_mask((2, 6, 8), (None, 3, 3))
    assert sliding_window_mask((2, 6, 8), (2, 3, 3), device=torch.device("cpu")) is a  # None == whole axis
    assert sliding_window_mask((2, 6, 8), (None, 3, 5)) is not a
    assert sliding_window_mask((2, 6, 9), (None, 3, 3)) is not a


@pytest.mark.slow  # runs FlexAttention once (compiles it on the CPU)
def test_backend_selection_follows_the_library(monkeypatch):
    calls = []
    for name in BACKENDS:
        original = sliding_module._IMPLEMENTATIONS[name]
        monkeypatch.setitem(sliding_module._IMPLEMENTATIONS, name,
                            lambda *a, _n=name, _f=original: calls.append(_n) or _f(*a))
    q = torch.randn(1, 1, 12, 4)
    sliding_window_attention(q, q, q, (3, 4), (1, 3))
    with attention_backend("math"):
        sliding_window_attention(q, q, q, (3, 4), (1, 3))
    monkeypatch.setenv("RESTOREGEN_ATTENTION", "flex")
    sliding_window_attention(q, q, q, (3, 4), (1, 3))
    assert calls == [auto_sliding_backend(q), "math", "flex"]
    assert auto_sliding_backend(q) == "sdpa"


def test_bad_arguments_are_reported():
    q = torch.randn(1, 1, 12, 4)
    with pytest.raises(ValueError, match="one extent per grid axis"):
        sliding_window_attention(q, q, q, (3, 4), (3,))
    with pytest.raises(ValueError, match="do not match"):
        sliding_window_attention(q, q, q, (3, 5), (3, 3))
    with pytest.raises(ValueError, match="positive"):
        sliding_window_attention(q, q, q, (3, 4), (0, 3))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("backend", ("sdpa", "flex"))
def test_cuda_bf16_matches_math(backend):
    torch.manual_seed(0)
    grid, window = (3, 24, 40), (None, 9, 17)
    q, k, v = (torch.randn(2, 4, 3 * 24 * 40 + 7, 64, device="cuda") for _ in range(3))
    ref = sliding_window_attention(q, k, v, grid, window, global_tokens=7, backend="math")
    out = sliding_window_attention(*(t.bfloat16() for t in (q, k, v)), grid, window, global_tokens=7, backend=backend)
    assert (out.float() - ref).abs().max() <= 3e-2
