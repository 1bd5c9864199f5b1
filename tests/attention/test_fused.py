"""The fused window-attention paths: plans, the FlexAttention block mask and table-gather
``score_mod``, head padding for SDPA, and which SDPA kernel runs (CUDA)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from restoregen.attention import (
    SDPA_HEAD_MULTIPLE,
    WindowAttention,
    attend,
    attention_backend,
    backends,
    fused,
    overlap_relative_position_index,
    overlapping_window_attention,
    overlapping_window_tokens,
    overlapping_windows,
    pad_head_dim,
    sdpa_kernels,
    shifted_window_mask,
    window_layout,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def eager_flex(monkeypatch):
    """FlexAttention unfused (the same score_mod/mask_mod semantics without a CPU compile)."""
    from torch.nn.attention.flex_attention import flex_attention

    monkeypatch.setattr(backends, "_compiled_flex", lambda: flex_attention)
    monkeypatch.setattr(fused, "run_flex", lambda q, k, v, scale, score_mod=None, block_mask=None: flex_attention(
        q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale))


# ---------------------------------------------------------------------------------------------
# plans


@pytest.mark.parametrize("size,window,shift", [((8, 12), 4, 2), ((16, 16), 8, 4), ((14, 21), 7, 3)])
def test_shift_labels_give_the_official_mask(size, window, shift):
    layout = window_layout(*size, (window, window), (shift, shift))
    labels = layout.labels.view(-1, window * window)
    mask = shifted_window_mask(*size, window, shift)
    # window w of the layout is official window order[w * N] // ...: compare through the token order
    official_window = (layout.order.view(-1, window * window)[:, :1])  # any token identifies its window
    rows, cols = official_window // size[1], official_window % size[1]
    shifted_rows, shifted_cols = (rows - shift) % size[0], (cols - shift) % size[1]
    index = (shifted_rows // window) * (size[1] // window) + shifted_cols // window
    expected = mask[index.view(-1)]
    different = labels[:, :, None] != labels[:, None, :]
    assert torch.equal(expected == -100, different)


def test_overlap_tokens_are_what_overlapping_windows_gathers():
    x = torch.randn(2, 8, 12, 5)
    tokens = overlapping_window_tokens(8, 12, 4, 6)
    padded = torch.cat([x.reshape(2, 96, 5), torch.zeros(2, 1, 5)], dim=1)  # token -1 -> the zero row
    assert torch.equal(padded[:, tokens], overlapping_windows(x, 4, 6).reshape(2, -1, 5))
    assert (tokens == -1).any() and tokens.max() == 95


@pytest.mark.parametrize("plan_kind", ["shifted", "unshifted", "overlap", "small-windows"])
def test_block_mask_covers_exactly_each_window(plan_kind):
    if plan_kind == "overlap":
        plan = fused.overlapping_window_plan(32, 48, 16, 24, torch.device("cpu"))
    elif plan_kind == "small-windows":  # 49-token windows: blocks straddle windows
        plan = fused.shifted_window_plan(28, 35, (7, 7), (3, 3), torch.device("cpu"))
    else:
        shift = 8 if plan_kind == "shifted" else 0
        plan = fused.shifted_window_plan(32, 48, (16, 16), (shift, shift), torch.device("cpu"))
    lq, lk = plan.windows * plan.queries, plan.windows * plan.keys
    q_idx, kv_idx = torch.arange(lq)[:, None], torch.arange(lk)[None, :]
    allowed = q_idx // plan.queries == kv_idx // plan.keys
    if plan.q_labels is not None:
        allowed &= plan.q_labels[:, None] == plan.k_labels[None, :]
    dense = plan.block_mask.to_dense()[0, 0].bool()  # computed blocks (full or partial)
    block = fused.FLEX_BLOCK
    computed = dense.repeat_interleave(block, 0).repeat_interleave(block, 1)[:lq, :lk]
    assert not (allowed & ~computed).any()  # every allowed pair lies in a computed block
    mask_mod = plan.block_mask.mask_mod
    assert torch.equal(mask_mod(0, 0, q_idx, kv_idx), allowed)
    assert dense.sum() < dense.numel() / 2  # blocks outside each query's window are skipped


# ---------------------------------------------------------------------------------------------
# FlexAttention: the bias gathered from the table, shifted and overlapping windows


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref.float()).abs().max() / ref.float().abs().max()).item()


def _module_run(module, x, backend, shift):
    module.zero_grad()
    x = x.detach().requires_grad_()
    with attention_backend(backend):
        out = module.forward_map(x, shift)
    out.backward(torch.randn_like(out, generator=torch.Generator().manual_seed(1)) if x.device.type == "cpu"
                 else torch.ones_like(out))
    return out.detach(), [x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("shift", [0, 4])
@pytest.mark.parametrize("dim,heads", [(60, 2), (24, 3)])  # head sizes 30 and 8
def test_flex_window_attention_matches_math(eager_flex, shift, dim, heads):
    module = WindowAttention(dim, 8, heads)
    with torch.no_grad():
        module.relative_position_bias_table.normal_()
    x = torch.randn(2, 16, 24, dim)
    ref, ref_grads = _module_run(module, x, "math", shift)
    out, grads = _module_run(module, x, "flex", shift)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def _ocab_inputs(device="cpu", dtype=torch.float32, heads=2, head_dim=30, size=(8, 12)):
    q, k, v = (torch.randn(2, *size, heads * head_dim, device=device, dtype=dtype) for _ in range(3))
    table = torch.randn((4 + 6 - 1) ** 2, heads, device=device, dtype=dtype)
    return q, k, v, table, overlap_relative_position_index(4, 6, device)


def _ocab(backend, q, k, v, table, index, heads=2):
    leaves = [t.detach().requires_grad_() for t in (q, k, v, table)]
    with attention_backend(backend):
        out = overlapping_window_attention(*leaves, index, 4, 6, heads, 0.3)
    out.backward(torch.ones_like(out))
    return out.detach(), [t.grad for t in leaves]


def test_flex_overlapping_windows_match_math(eager_flex):
    inputs = _ocab_inputs()
    assert (inputs[-1] < 0).any()  # HAT's index wraps around the table: the score_mod must wrap it too
    ref, ref_grads = _ocab("math", *inputs)
    out, grads = _ocab("flex", *inputs)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # compiles FlexAttention on the CPU (tens of seconds cold); fast on CUDA
@pytest.mark.parametrize("device", DEVICES)
def test_flex_compiles_once_per_shape(device):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    modules = [WindowAttention(60, 8, 2).to(device).eval() for _ in range(3)]
    x = torch.randn(1, 16, 16, 60, device=device)
    with attention_backend("flex"), torch.no_grad():
        for module, shift in zip(modules, (0, 4, 4), strict=True):  # other tables, shifted or not: the same kernel
            module.forward_map(x, shift)
        graphs = counters["stats"]["unique_graphs"]
        modules[0].forward_map(torch.randn(1, 16, 24, 60, device=device), 4)  # a new shape: one more
    assert graphs == 1
    assert counters["stats"]["unique_graphs"] == 2


# ---------------------------------------------------------------------------------------------
# SDPA: head sizes padded to a multiple of 8, and the kernel that actually runs


def test_padded_sdpa_equals_unpadded_math_forward_and_backward():
    q, k, v = (torch.randn(3, 2, 16, 30, dtype=torch.float64, requires_grad=True) for _ in range(3))
    bias = torch.randn(2, 16, 16, dtype=torch.float64, requires_grad=True)
    scale = 30**-0.5

    def padded(q, k, v, bias):
        qp, kp, vp = pad_head_dim(q, k, v, SDPA_HEAD_MULTIPLE)
        assert qp.shape[-1] == 32 and kp.shape[-1] == 32 and vp.shape[-1] == 32
        return F.scaled_dot_product_attention(qp, kp, vp, attn_mask=bias, scale=scale)[..., :30]

    def reference(q, k, v, bias):
        return attend(q, k, v, bias=bias, scale=scale, backend="math")

    grad = torch.randn(3, 2, 16, 30, dtype=torch.float64)
    outs = []
    for fn in (padded, reference):
        out = fn(q, k, v, bias)
        outs.append((out, torch.autograd.grad(out, (q, k, v, bias), grad)))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    for got, want in zip(outs[0][1], outs[1][1], strict=True):
        torch.testing.assert_close(got, want)


def test_sdpa_backend_pads_where_it_should(monkeypatch):
    """The wiring: with padding forced on (it is on for CUDA only), ``sdpa`` still matches ``math``."""
    q = torch.randn(2, 4, 2, 16, 30, requires_grad=True)
    bias = torch.randn(2, 16, 16)
    mask = shifted_window_mask(8, 8, 4, 2).unsqueeze(1)
    ref = attend(q, q, q, bias=bias, mask=mask, scale=0.2, backend="math")
    assert not backends._pads_heads(q)  # the CPU path is unchanged
    seen = []
    original = F.scaled_dot_product_attention
    monkeypatch.setattr(backends, "_pads_heads", lambda t: True)
    monkeypatch.setattr(backends.F, "scaled_dot_product_attention",
                        lambda q4, *a, **kw: seen.append(q4.shape[-1]) or original(q4, *a, **kw))
    out = attend(q, q, q, bias=bias, mask=mask, scale=0.2, backend="sdpa")
    assert seen == [32] and out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    (grad,) = torch.autograd.grad(out.sum(), q)
    (ref_grad,) = torch.autograd.grad(ref.sum(), q)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5)


def test_sdpa_kernels_are_read_from_the_profiler():
    q = torch.randn(1, 2, 16, 30)
    bias = torch.randn(2, 16, 16)
    assert sdpa_kernels(lambda: attend(q, q, q, bias=bias, backend="sdpa")) == ("flash (cpu)",)
    assert sdpa_kernels(lambda: attend(q, q, q, bias=bias, backend="math")) == ()


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("kernel", ["EFFICIENT_ATTENTION", "CUDNN_ATTENTION"])
def test_cuda_head_30_with_bias_takes_the_fused_kernels(dtype, kernel):
    """Head size 30 + bias: unpadded, only the math kernel accepts it; padded, the efficient or cuDNN one."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if kernel == "CUDNN_ATTENTION" and dtype == torch.float32:
        pytest.skip("cuDNN attention has no float32 kernel")
    q, k, v = (torch.randn(64, 6, 256, 30, device="cuda", dtype=dtype) for _ in range(3))
    bias = torch.randn(1, 6, 256, 256, device="cuda", dtype=dtype)
    with sdpa_kernel([getattr(SDPBackend, kernel)]):
        with pytest.raises(RuntimeError):
            F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = attend(q, k, v, bias=bias, backend="sdpa")  # padded to 32: accepted
    ref = attend(q.float(), k.float(), v.float(), bias=bias.float(), backend="math")
    assert _relative_error(out, ref) <= (1e-2 if dtype != torch.float32 else 1e-3)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_cuda_default_sdpa_kernel_for_window_attention(dtype, capsys):
    """Which SDPA kernel HAT's window attention ends up using (checked, not assumed): not ``math``."""
    module = WindowAttention(180, 16, 6).cuda().to(dtype).eval()
    x = torch.randn(1, 64, 64, 180, device="cuda", dtype=dtype)
    with torch.inference_mode(), attention_backend("sdpa"):
        kernels = sdpa_kernels(lambda: module.forward_map(x, 8))
    with capsys.disabled():
        print(f"\nSDPA kernel, window attention 64x64 ws16 d180 h6 {dtype}: {kernels}")
    assert kernels and "math" not in kernels


@pytest.mark.cuda
@pytest.mark.parametrize("shift", [0, 8])
def test_cuda_flex_gathers_the_bias_and_skips_blocks(shift):
    module = WindowAttention(180, 16, 6).cuda()
    with torch.no_grad():
        module.relative_position_bias_table.normal_()
    x = torch.randn(1, 64, 64, 180, device="cuda")
    ref, ref_grads = _module_run(module, x, "math", shift)
    out, grads = _module_run(module, x, "flex", shift)
    assert _relative_error(out, ref) <= 1e-3
    for got, want in zip(grads, ref_grads, strict=True):
        assert _relative_error(got, want) <= 1e-3
