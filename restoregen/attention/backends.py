"""One dispatch point for softmax attention with an additive bias.

``attend(q, k, v, bias, mask, scale)`` computes ``softmax(q k^T * scale + bias + mask) v`` over the
last two dimensions with one of these backends:

- ``math``: the explicit computation in the official order (scale q, matmul, add bias, add mask,
  softmax, matmul). Every other backend is tested against it.
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` with bias and mask combined into
  one ``attn_mask``.
- ``flex``: FlexAttention, the combined bias read in a ``score_mod``; compiled once per shape.

The backend is chosen per call (``backend=``), by the :func:`attention_backend` context manager,
or by the ``RESTOREGEN_ATTENTION`` environment variable; ``auto`` (the default) picks the fastest
backend that is valid for the tensors (see :func:`auto_backend`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import os
import warnings
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

BACKENDS = ("math", "sdpa", "flex")
ENV_VAR = "RESTOREGEN_ATTENTION"

_selected: contextvars.ContextVar[str | None] = contextvars.ContextVar("restoregen_attention", default=None)


def _validate(name: str, source: str) -> str:
    name = name.strip().lower()
    if name != "auto" and name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r} (from {source}); choose auto, {', '.join(BACKENDS)}")
    if name == "flex" and not flex_available():
        raise ValueError(f"attention backend 'flex' (from {source}) needs torch.nn.attention.flex_attention, "
                         f"which torch {torch.__version__} does not have")
    return name


@contextlib.contextmanager
def attention_backend(name: str) -> Iterator[None]:
    """Use backend ``name`` (``auto``, ``math``, ``sdpa`` or ``flex``) for attention inside the block."""
    token = _selected.set(_validate(name, "attention_backend()"))
    try:
        yield
    finally:
        _selected.reset(token)


def requested_backend() -> str:
    """The backend asked for by the innermost context manager, else the environment, else ``auto``."""
    name = _selected.get()
    if name is not None:
        return name
    return _validate(os.environ.get(ENV_VAR, "auto") or "auto", f"${ENV_VAR}")


@functools.cache
def flex_available() -> bool:
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends() -> tuple[str, ...]:
    """Backends this torch build can run."""
    return tuple(name for name in BACKENDS if name != "flex" or flex_available())


def auto_backend(q: Tensor) -> str:
    """The fastest valid backend for ``q``'s device, dtype and head size.

    SDPA is valid for every device, dtype and head size (it falls back to its own math kernel where
    a fused one does not apply) and is the fastest measured here: on CPU 2-2.5x faster than the
    explicit computation with a bias, while compiled FlexAttention was slower and has no CPU
    backward (``scripts/bench_attention.py`` measures all three).
    """
    return "sdpa"


def attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None, mask: Tensor | None = None,
           scale: float | None = None, *, dropout_p: float = 0.0, backend: str | None = None) -> Tensor:
    """Softmax attention over the last two dimensions.

    Args:
        q: ``(*batch, Lq, D)``; k: ``(*batch, Lk, D)``; v: ``(*batch, Lk, Dv)``.
        bias: additive, broadcastable to ``(*batch, Lq, Lk)`` (e.g. a relative-position bias).
        mask: additive (0 / large negative) or boolean (True = attend), broadcastable likewise.
        scale: multiplies ``q k^T``; defaults to ``D ** -0.5``.
        dropout_p: dropout on the attention probabilities (pass 0 in eval mode).
        backend: overrides the selected backend for this call.
    """
    if scale is None:
        scale = q.shape[-1] ** -0.5
    return _IMPLEMENTATIONS[resolve_backend(q, backend)](q, k, v, bias, mask, scale, dropout_p)


def resolve_backend(q: Tensor, backend: str | None = None) -> str:
    """The concrete backend a call with query ``q`` runs: ``backend`` or the selected one, ``auto`` resolved."""
    name = _validate(backend, "backend=") if backend is not None else requested_backend()
    return auto_backend(q) if name == "auto" else name


def _math(q, k, v, bias, mask, scale, dropout_p):
    scores = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask
    probs = scores.softmax(dim=-1)
    if dropout_p > 0:
        probs = F.dropout(probs, dropout_p)
    return probs @ v


def _combined_bias(bias: Tensor | None, mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Bias and mask as one additive tensor (or one boolean mask when there is no bias)."""
    if mask is not None and mask.dtype == torch.bool:
        if bias is None:
            return mask
        return torch.where(mask, bias.to(dtype), torch.tensor(-math.inf, dtype=dtype, device=bias.device))
    if bias is None and mask is None:
        return None
    if bias is None or mask is None:
        return (bias if mask is None else mask).to(dtype)
    return (bias + mask).to(dtype)


def _fold(q: Tensor, k: Tensor, v: Tensor, attn_bias: Tensor | None):
    """View ``(*batch, L, D)`` tensors as the 4-D ``(B, H, L, D)`` that SDPA and FlexAttention take.

    The batch dimensions are split as (all but the last, last) when the bias is shared across the
    outer ones or materialised over all of them (windows x heads), else as (first, the rest). The
    first choice needs no copy for the usual layouts (q/k/v views of a fused projection, a
    ``(heads, N, N)`` bias); the bias is only ever expanded over dimensions it already spans.
    """
    lead = tuple(q.shape[:-2])
    if len(lead) == 2:
        return q, k, v, attn_bias
    if len(lead) < 2:
        shape = (1,) * (2 - len(lead)) + lead
        return (*(t.reshape(*shape, *t.shape[-2:]) for t in (q, k, v)),
                None if attn_bias is None else attn_bias.reshape((1,) * (4 - attn_bias.dim()) + tuple(attn_bias.shape)))
    bias_lead: tuple[int, ...] = ()
    if attn_bias is not None:
        attn_bias = attn_bias.reshape((1,) * (len(lead) + 2 - attn_bias.dim()) + tuple(attn_bias.shape))
        bias_lead = tuple(attn_bias.shape[:-2])
    shared_outer = not bias_lead or all(b == 1 for b in bias_lead[:-1]) or bias_lead[:-1] == lead[:-1]
    split = len(lead) - 1 if shared_outer else 1
    shape = (math.prod(lead[:split]), math.prod(lead[split:]))
    q4, k4, v4 = (t.reshape(*shape, *t.shape[-2:]) for t in (q, k, v))
    if attn_bias is not None:
        outer = (1,) * split if all(b == 1 for b in bias_lead[:split]) else lead[:split]
        attn_bias = attn_bias.expand(*outer, *lead[split:], *attn_bias.shape[-2:])
        attn_bias = attn_bias.reshape(math.prod(outer), shape[1], *attn_bias.shape[-2:])
    return q4, k4, v4, attn_bias


def _sdpa(q, k, v, bias, mask, scale, dropout_p):
    attn_bias = _combined_bias(bias, mask, q.dtype)
    q4, k4, v4, b4 = _fold(q, k, v, attn_bias)
    out = F.scaled_dot_product_attention(q4, k4, v4, attn_mask=b4, dropout_p=dropout_p, scale=scale)
    return out.reshape(*q.shape[:-1], v.shape[-1])


# ---------------------------------------------------------------------------------------------
# FlexAttention


_FLEX_SHAPES_LIMIT = 64


@functools.cache
def _compiled_flex() -> Callable:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def _flex_forward(q4: Tensor, k4: Tensor, v4: Tensor, b4: Tensor | None, scale: float) -> Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    score_mod = None
    if b4 is not None:
        if b4.dtype == torch.bool:
            b4 = torch.zeros(b4.shape, dtype=q4.dtype, device=q4.device).masked_fill_(~b4, -math.inf)
        b4 = b4.expand(q4.shape[0], q4.shape[1], q4.shape[2], k4.shape[2])

        def score_mod(score, b, h, q_idx, kv_idx):
            return score + b4[b, h, q_idx, kv_idx]

    try:
        # one compiled kernel per shape (window attention sees a handful); dynamo's default limit is 8
        with torch._dynamo.config.patch(cache_size_limit=_FLEX_SHAPES_LIMIT):
            return _compiled_flex()(q4, k4, v4, score_mod=score_mod, scale=scale)
    except Exception as error:  # no C++ compiler / unsupported shape: run FlexAttention unfused
        warnings.warn(f"compiled FlexAttention failed ({type(error).__name__}: {error}); running it eagerly",
                      RuntimeWarning, stacklevel=3)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
            return flex_attention(q4, k4, v4, score_mod=score_mod, scale=scale)


class _FlexMathBackward(torch.autograd.Function):
    """FlexAttention forward with the gradient of the explicit computation.

    torch has no FlexAttention backward on the CPU; the backward recomputes ``math`` (like
    activation checkpointing), so the ``flex`` backend can also train there.
    """

    @staticmethod
    def forward(ctx, q4, k4, v4, b4, scale):
        ctx.scale = scale
        ctx.save_for_backward(q4, k4, v4, b4)
        return _flex_forward(q4.detach(), k4.detach(), v4.detach(), None if b4 is None else b4.detach(), scale)

    @staticmethod
    def backward(ctx, grad_out):
        flags = ctx.needs_input_grad[:4]
        with torch.enable_grad():
            leaves = [None if t is None else t.detach().requires_grad_(flag)
                      for t, flag in zip(ctx.saved_tensors, flags)]
            wanted = [t for t in leaves if t is not None and t.requires_grad]
            out = _math(*leaves[:3], leaves[3], None, ctx.scale, 0.0)
            grads = iter(torch.autograd.grad(out, wanted, grad_out) if wanted else ())
        return (*(next(grads) if t is not None and t.requires_grad else None for t in leaves), None)


def _flex(q, k, v, bias, mask, scale, dropout_p):
    if dropout_p > 0:
        raise NotImplementedError("the flex attention backend has no attention dropout; use sdpa or math")
    attn_bias = _combined_bias(bias, mask, q.dtype)
    q4, k4, v4, b4 = _fold(q, k, v, attn_bias)
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q4, k4, v4, b4))
    if needs_grad and q4.device.type == "cpu":
        if b4 is not None and b4.dtype == torch.bool:
            b4 = torch.zeros(b4.shape, dtype=q4.dtype, device=q4.device).masked_fill_(~b4, -math.inf)
        out = _FlexMathBackward.apply(q4, k4, v4, b4, scale)
    else:
        out = _flex_forward(q4, k4, v4, b4, scale)
    return out.reshape(*q.shape[:-1], v.shape[-1])


_IMPLEMENTATIONS = {"math": _math, "sdpa": _sdpa, "flex": _flex}
