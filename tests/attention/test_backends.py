import pytest
import torch

from restoregen.attention import (
    ENV_VAR,
    WindowAttention,
    attend,
    attention_backend,
    available_backends,
    requested_backend,
    shifted_window_mask,
    window_partition,
)

USABLE = available_backends()


def test_selection_precedence(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert requested_backend() == "auto"
    monkeypatch.setenv(ENV_VAR, "math")
    assert requested_backend() == "math"
    with attention_backend("sdpa"):
        assert requested_backend() == "sdpa"
        with attention_backend("auto"):
            assert requested_backend() == "auto"
        assert requested_backend() == "sdpa"
    assert requested_backend() == "math"


def test_bad_backend_names_are_explained(monkeypatch):
    with pytest.raises(ValueError, match="fast.*attention_backend"), attention_backend("fast"):
        pass
    monkeypatch.setenv(ENV_VAR, "cudnn")
    q = torch.randn(1, 1, 4, 8)
    with pytest.raises(ValueError, match=ENV_VAR):
        attend(q, q, q)


@pytest.mark.slow  # the first FlexAttention call compiles (about 30 s on the CPU with a cold cache)
def test_context_manager_routes_calls(monkeypatch):
    seen = []
    from restoregen.attention import backends

    for name, original in list(backends._IMPLEMENTATIONS.items()):
        monkeypatch.setitem(backends._IMPLEMENTATIONS, name,
                            lambda *a, _n=name, _f=original: seen.append(_n) or _f(*a))
    q = torch.randn(1, 2, 4, 8)
    for name in USABLE:
        with attention_backend(name):
            attend(q, q, q)
    assert seen == [{"triton": "sdpa"}.get(name, name) for name in USABLE]  # triton has no dense kernel


def _inputs(shape_q, shape_k, head_dim, requires_grad=True):
    q = torch.randn(*shape_q, head_dim, requires_grad=requires_grad)
    k = torch.randn(*shape_k, head_dim, requires_grad=requires_grad)
    v = torch.randn(*shape_k, head_dim, requires_grad=requires_grad)
    return q, k, v


def _forward_backward(backend, q, k, v, bias=None, mask=None, scale=None):
    tensors = [t for t in (q, k, v, bias) if t is not None]
    out = attend(q, k, v, bias=bias, mask=mask, scale=scale, backend=backend)
    grads = torch.autograd.grad(out, tensors, torch.ones_like(out) + out.detach())
    return out.detach(), grads


CASES = {
    # name: (q batch dims + Lq, k batch dims + Lk, bias shape, mask kind)
    "plain-4d": ((2, 3, 16), (2, 3, 24), None, None),
    "bias-4d": ((2, 3, 16), (2, 3, 24), (1, 3, 16, 24), None),
    "windows-bias-mask-5d": ((2, 4, 3, 16), (2, 4, 3, 16), (3, 16, 16), "additive"),
    "bool-mask-3d": ((4, 16), (4, 20), (1, 16, 20), "bool"),
}


@pytest.mark.parametrize("backend", [b for b in USABLE if b != "math"])
@pytest.mark.parametrize("head_dim", [16, 30])
@pytest.mark.parametrize("case", list(CASES))
def test_backend_matches_math_forward_and_backward(backend, head_dim, case):
    shape_q, shape_k, bias_shape, mask_kind = CASES[case]
    q, k, v = _inputs(shape_q, shape_k, head_dim)
    bias = torch.randn(*bias_shape, requires_grad=True) if bias_shape else None
    mask = None
    if mask_kind == "additive":
        mask = shifted_window_mask(8, 8, 4, 2).unsqueeze(1)  # (nW=4, 1, 16, 16)
    elif mask_kind == "bool":
        mask = torch.rand(shape_q[-1], shape_k[-1]) > 0.3
        mask[:, 0] = True  # no fully masked row
    ref, ref_grads = _forward_backward("math", q, k, v, bias, mask, scale=0.3)
    out, grads = _forward_backward(backend, q, k, v, bias, mask, scale=0.3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", [b for b in USABLE if b != "math"])
@pytest.mark.parametrize("dim,heads", [(60, 2), (48, 3)])  # head sizes 30 and 16
@pytest.mark.parametrize("shift", [0, 4])
def test_window_attention_module_matches_math(backend, dim, heads, shift):
    window, size = 8, 16
    module = WindowAttention(dim, window, heads)
    with torch.no_grad():
        module.relative_position_bias_table.normal_()
    x = torch.randn(2, size, size, dim)
    if shift:
        x = torch.roll(x, (-shift, -shift), (1, 2))
    windows = window_partition(x, window)
    mask = shifted_window_mask(size, size, window, shift) if shift else None

    def run(name):
        module.zero_grad()
        with attention_backend(name):
            out = module(windows, mask)
        out.square().mean().backward()
        return out.detach(), [p.grad.clone() for p in module.parameters()]

    ref, ref_grads = run("math")
    out, grads = run(backend)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_auto_is_a_usable_backend():
    from restoregen.attention import auto_backend

    assert auto_backend(torch.randn(1, 1, 4, 30)) in USABLE


@pytest.mark.skipif("flex" not in USABLE, reason="no FlexAttention in this torch")
def test_flex_on_the_cpu_is_exact_call_after_call():
    """Compiled CPU FlexAttention (torch 2.14, AMD EPYC) went wrong from the second call of a shape on."""
    torch.manual_seed(0)
    for _ in range(4):
        q, k, v = _inputs((2, 3, 16), (2, 3, 24), 16, requires_grad=False)
        torch.testing.assert_close(attend(q, k, v, scale=0.3, backend="flex"),
                                   attend(q, k, v, scale=0.3, backend="math"), rtol=1e-5, atol=1e-5)
