"""One dispatch point for softmax attention with an additive bias.

``attend(q, k, v, bias, mask, scale)`` computes ``softmax(q k^T * scale + bias + mask) v`` over the
last two dimensions with one of these backends:

- ``math``: the explicit computation in the official order (scale q, matmul, add bias, add mask,
  softmax, matmul). Every other backend is tested against it.
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` with bias and mask combined into
  one ``attn_mask``.
- ``flex``: FlexAttention, the combined bias read in a ``score_mod``; compiled once per shape.
  Window attention (:mod:`.modules`, :func:`.fused.overlapping_window_attention`) instead gathers
  the relative-position bias from its table inside the ``score_mod`` and covers shifted and
  overlapping windows with a ``block_mask`` (:mod:`.fused`): no dense bias or mask is built.
- ``triton``: restoregen's fused Triton kernels where the computation is windowed (window
  attention: partition + bias + mask + softmax + PV in one kernel; DLGSANet's dynamic
  convolution); elsewhere another backend runs in its place (:data:`OPERATIONS`). Needs a CUDA GPU
  (or ``TRITON_INTERPRET=1``, which runs the kernels in Triton's interpreter on the CPU, for testing).

On CUDA, ``sdpa`` zero-pads head sizes that are not a multiple of 8 (HAT, DRCT and SwinIR use 30)
and passes the scale explicitly, so that the memory-efficient and cuDNN kernels, which take an
additive bias, accept the call instead of the unfused math kernel.

The backend is chosen per call (``backend=``), by the :func:`attention_backend` context manager,
or by the ``RESTOREGEN_ATTENTION`` environment variable; ``auto`` (the default) picks the fastest
backend that is valid for the tensors. One resolver decides for every operation (dense, window,
overlapping, sliding, dynamic convolution): :data:`OPERATIONS` holds each operation's backends with
their constraints and capabilities, and :func:`resolve` returns the :class:`Backend` that runs.
Callers ask its flags (``reference``, ``caches_bias``, ``fuses_epilogues``, ...); only this module
and each backend's own implementation know backend names.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

BACKENDS = ("math", "sdpa", "flex", "triton")
ENV_VAR = "RESTOREGEN_ATTENTION"

# The memory-efficient and cuDNN SDPA kernels need head sizes in multiples of 8 (FlashAttention
# rejects any bias); on CUDA, ``sdpa`` pads q, k and v with zeros up to this multiple.
SDPA_HEAD_MULTIPLE = 8

_selected: contextvars.ContextVar[str | None] = contextvars.ContextVar("restoregen_attention", default=None)


def _validate(name: str, source: str) -> str:
    name = name.strip().lower()
    if name != "auto" and name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r} (from {source}); choose auto, {', '.join(BACKENDS)}")
    if name in _REQUIREMENTS and not _REQUIREMENTS[name][0]():
        raise ValueError(f"attention backend {name!r} (from {source}) {_REQUIREMENTS[name][1]}")
    return name


@contextlib.contextmanager
def attention_backend(name: str) -> Iterator[None]:
    """Use backend ``name`` (``auto`` or one of :data:`BACKENDS`) for attention inside the block."""
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


def triton_interpreted() -> bool:
    """Whether Triton kernels run in Triton's interpreter (``TRITON_INTERPRET=1``; CPU tensors, testing)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@functools.cache
def _triton_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("triton") is not None


def triton_available() -> bool:
    """Whether the ``triton`` backend can run: triton installed, and a CUDA GPU or the interpreter."""
    return _triton_importable() and (triton_interpreted() or torch.cuda.is_available())


def triton_runs_on(x: Tensor) -> bool:
    """Whether restoregen's Triton kernels run on ``x``'s device (CUDA, or the CPU in the interpreter)."""
    if not _triton_importable():
        return False
    return x.is_cuda if not triton_interpreted() else x.device.type == "cpu"


# backend -> (whether this torch build and machine can run it, what it needs otherwise)
_REQUIREMENTS: dict[str, tuple[Callable[[], bool], str]] = {
    "flex": (flex_available, f"needs torch.nn.attention.flex_attention, which torch {torch.__version__} does not have"),
    "triton": (triton_available, "needs the triton package and a CUDA GPU (or TRITON_INTERPRET=1 to run the kernels "
                                 "in Triton's interpreter, for testing)"),
}
# backend -> whether it runs on a tensor's device (the others run on every device)
_DEVICE_CHECKS: dict[str, Callable[[Tensor], bool]] = {"triton": triton_runs_on}
_DEVICE_NOTES = {"triton": "CUDA (or TRITON_INTERPRET=1)"}


def available_backends() -> tuple[str, ...]:
    """Backends this torch build and machine can run."""
    return tuple(name for name in BACKENDS if name not in _REQUIREMENTS or _REQUIREMENTS[name][0]())


# ---------------------------------------------------------------------------------------------
# The resolver: one table per operation, one function that reads it


@dataclass(frozen=True)
class Backend:
    """How one backend runs one operation, as :func:`resolve` returns it.

    Callers branch on the flags, never on ``name``: only this module and each backend's own
    implementation know backend names.
    """

    name: str
    runs: str  # what runs, in one line (``restoregen info``)
    reference: bool = False  # the official computation order and data movement; the others are tested against it
    caches_bias: bool = True  # inference may reuse a gathered relative-position bias (the reference regathers it)
    fuses_epilogues: bool = True  # the projections around it may fuse bias, activation and residual (linear_epilogue)
    splits_shift_regions: bool = False  # shifted windows attend region by region instead of under a mask
    block_sparse: bool = False  # all windows as one FlexAttention problem: a block mask, the bias read from its table
    fused_kernel: bool = False  # one of restoregen's Triton kernels does the whole operation, reading the maps itself
    dropout: bool = True  # takes attention dropout
    recomputed_backward: str = ""  # where the backward is not autograd's: what it recomputes (and where)
    instead: str | None = None  # no implementation of its own here: this backend (or ``auto``) runs in its place
    fallback: str | None = None  # runs where this one cannot: another device, or attention dropout


@dataclass(frozen=True, eq=False)
class Operation:
    """One attention operation: its backends and what ``auto`` picks (the first available name)."""

    name: str
    what: str
    backends: dict[str, Backend]
    auto_cuda: tuple[str, ...]
    auto_elsewhere: tuple[str, ...]
    takes_dropout: bool = False

    def auto(self, x: Tensor) -> Backend:
        for name in self.auto_cuda if x.is_cuda else self.auto_elsewhere:
            if name not in _REQUIREMENTS or _REQUIREMENTS[name][0]():
                return self.backends[name]
        raise RuntimeError(f"no backend of {self.name!r} is available for auto")


_REFERENCE = dict(reference=True, caches_bias=False, fuses_epilogues=False)
_FLEX_WINDOWS = dict(block_sparse=True, dropout=False, fallback="sdpa", recomputed_backward="dense sdpa, on the CPU")
_TRITON_WINDOWS = dict(fused_kernel=True, dropout=False, fallback="sdpa", recomputed_backward="gathered sdpa")


def _operation(name: str, what: str, auto_cuda: tuple[str, ...], auto_elsewhere: tuple[str, ...], *backends: Backend,
               takes_dropout: bool = False) -> Operation:
    if tuple(b.name for b in backends) != BACKENDS:
        raise ValueError(f"operation {name!r}: give one entry per backend, in the order of {BACKENDS}")
    return Operation(name, what, {b.name: b for b in backends}, auto_cuda, auto_elsewhere, takes_dropout)


# ``auto`` is what measured fastest: SDPA on the CPU (2-2.5x the explicit computation with a bias;
# compiled FlexAttention was slower and has no CPU backward), FlexAttention's block-sparse kernel
# for sliding windows on CUDA. The windowed operations stay on sdpa on CUDA until a GPU run of
# ``restoregen bench`` measures a win for the Triton kernels (README, "GPU"); then change auto_cuda.
# Every backend takes every floating dtype and head size (sdpa pads head sizes on CUDA itself): the
# constraints are availability (_REQUIREMENTS), the device (_DEVICE_CHECKS) and attention dropout.
OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    _operation(
        "dense", "attend(): softmax attention with an additive bias", ("sdpa",), ("sdpa",),
        Backend("math", "scale q, matmul, add bias and mask, softmax, matmul", **_REFERENCE),
        Backend("sdpa", "scaled_dot_product_attention, bias and mask in one attn_mask; on CUDA head sizes padded "
                        f"to a multiple of {SDPA_HEAD_MULTIPLE}"),
        Backend("flex", "compiled FlexAttention, the bias read in a score_mod", dropout=False,
                recomputed_backward="math, on the CPU"),
        Backend("triton", "sdpa (no kernel of its own)", instead="sdpa"),
        takes_dropout=True),
    _operation(
        "window", "(shifted) window attention with a relative-position bias", ("sdpa",), ("sdpa",),
        Backend("math", "official roll, partition, (nW, N, N) mask, merge", **_REFERENCE),
        Backend("sdpa", "windows gathered as rows, sdpa per group of windows, shift regions apart",
                splits_shift_regions=True),
        Backend("flex", "windows gathered as rows, one FlexAttention call with a block mask", **_FLEX_WINDOWS),
        Backend("triton", "one kernel on the projected map: gather, bias, shift mask, softmax, output",
                **_TRITON_WINDOWS),
        takes_dropout=True),
    _operation(
        "overlapping", "HAT's overlapping cross-attention", ("sdpa",), ("sdpa",),
        Backend("math", "official unfold, dense bias, explicit softmax", **_REFERENCE),
        Backend("sdpa", "official unfold, dense bias, sdpa"),
        Backend("flex", "one FlexAttention call with a block mask, the bias read from its table", **_FLEX_WINDOWS),
        Backend("triton", "one kernel on the maps: gather, bias, zero keys, softmax, output", **_TRITON_WINDOWS)),
    _operation(
        "sliding", "sliding (inward) window attention on token grids", ("flex", "sdpa"), ("sdpa",),
        Backend("math", "dense attention under the (L, L) mask", **_REFERENCE),
        Backend("sdpa", "query tiles gather their box of keys, sdpa chunk by chunk"),
        Backend("flex", "FlexAttention on tile-ordered tokens with a block mask",
                recomputed_backward="sdpa tiles, on the CPU"),
        Backend("triton", "the auto choice (no kernel of its own)", instead="auto")),
    _operation(
        "dynamic_conv", "DLGSANet's per-pixel depthwise convolution", ("sdpa",), ("sdpa",),
        Backend("math", "explicit unfold (im2col), the official kernel's computation", **_REFERENCE),
        Backend("sdpa", "sum of shifted views, float32 accumulation"),
        Backend("flex", "sdpa's shifted sum (no kernel of its own)", instead="sdpa"),
        Backend("triton", "one kernel, each tap loaded once per block of pixels", fused_kernel=True, fallback="sdpa",
                recomputed_backward="shifted sum")),
)}

# What ``auto`` runs on CUDA for the windowed operations (read from OPERATIONS; change it there).
CUDA_AUTO = {op: OPERATIONS[op].auto_cuda[0] for op in ("window", "dynamic_conv")}


def resolve(op: str, x: Tensor, backend: str | None = None, *, dropout: bool = False) -> Backend:
    """The backend that runs operation ``op`` (a key of :data:`OPERATIONS`) on ``x``.

    ``backend`` (validated) or else the selected one (:func:`attention_backend`, then
    ``$RESTOREGEN_ATTENTION``); ``auto`` is the operation's first available choice for ``x``'s
    device. A backend with no implementation of its own for ``op`` hands over to the one it names;
    one that cannot run on ``x``'s device, or with attention ``dropout``, to its fallback (without
    a fallback it is returned, and raises if asked for dropout).
    """
    operation = OPERATIONS[op]
    name = _validate(backend, "backend=") if backend is not None else requested_backend()
    entry = operation.auto(x) if name == "auto" else operation.backends[name]
    while True:
        if entry.instead is not None:
            entry = operation.auto(x) if entry.instead == "auto" else operation.backends[entry.instead]
        elif entry.fallback is not None and not (_runs_on(entry, x) and (entry.dropout or not dropout)):
            entry = operation.backends[entry.fallback]
        else:
            return entry


def _runs_on(entry: Backend, x: Tensor) -> bool:
    check = _DEVICE_CHECKS.get(entry.name)
    return check is None or check(x)


def auto_backend(q: Tensor) -> str:
    """What ``auto`` runs for :func:`attend` on ``q``'s device, dtype and head size (:data:`OPERATIONS`):
    SDPA everywhere, on CUDA with head sizes padded to a multiple of 8 so that the memory-efficient
    or cuDNN kernel takes the bias."""
    return resolve("dense", q, "auto").name


def window_backend(x: Tensor, kind: str = "window") -> str:
    """The name of the backend that runs operation ``kind`` on ``x`` (see :func:`resolve`)."""
    return resolve(kind, x).name


def backend_table(devices: tuple[str, ...] | None = None) -> list[str]:
    """Printable lines for ``restoregen info``: the backends usable here and the selected one, what
    it runs for every operation on each device (cpu, and cuda where present), and the table."""
    if devices is None:
        devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    requested = requested_backend()
    lines = [f"usable: {', '.join(available_backends())}; selected: {requested} (set ${ENV_VAR} to change)"]
    for device in devices:
        probe = torch.empty(0, device=device)
        chosen = ", ".join(f"{op} -> {resolve(op, probe).name}" for op in OPERATIONS)
        lines.append(f"{requested} on {device}: {chosen}")
    width = max(len(name) for name in BACKENDS)
    for operation in OPERATIONS.values():
        lines.append(f"{operation.name}: {operation.what}")
        for entry in operation.backends.values():
            constraints = _constraints(operation, entry)
            lines.append(f"  {entry.name:<{width}}  {entry.runs}" + (f" [{constraints}]" if constraints else ""))
    return lines


def _constraints(operation: Operation, entry: Backend) -> str:
    """Availability, device, dropout, fallback and backward of ``entry``, in words."""
    notes = []
    if entry.name in _REQUIREMENTS and not _REQUIREMENTS[entry.name][0]():
        notes.append("unavailable here")
    if entry.instead is not None:
        return "; ".join(notes)
    if entry.reference:
        notes.append("reference")
    if entry.name in _DEVICE_NOTES:
        notes.append(_DEVICE_NOTES[entry.name])
    if operation.takes_dropout and not entry.dropout:
        notes.append("no dropout")
    if entry.fallback is not None and (entry.name in _DEVICE_NOTES or operation.takes_dropout and not entry.dropout):
        notes.append(f"else {entry.fallback}")
    if entry.recomputed_backward:
        notes.append(f"grad recomputed: {entry.recomputed_backward}")
    return "; ".join(notes)


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
    implementation = _IMPLEMENTATIONS[resolve("dense", q, backend, dropout=dropout_p > 0).name]
    return implementation(q, k, v, bias, mask, scale, dropout_p)


def resolve_backend(q: Tensor, backend: str | None = None) -> str:
    """The backend an :func:`attend` call with query ``q`` runs: ``backend`` or the selected one, resolved."""
    return resolve("dense", q, backend).name


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(..., N, heads*d)`` -> ``(..., heads, N, d)`` (a view)."""
    *lead, n, c = x.shape
    return x.view(*lead, n, num_heads, c // num_heads).transpose(-3, -2)


def merge_heads(x: Tensor) -> Tensor:
    """``(..., heads, N, d)`` -> ``(..., N, heads*d)``."""
    *lead, h, n, d = x.shape
    return x.transpose(-3, -2).reshape(*lead, n, h * d)


def qkv_heads(qkv: Tensor, num_heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """Split a fused ``(..., N, 3*C)`` projection into q, k, v of shape ``(..., heads, N, C/heads)``."""
    return tuple(split_heads(t, num_heads) for t in qkv.chunk(3, dim=-1))


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
    if len(lead) <= 2:  # the bias goes 4-D too: with a 3-D one, SDPA on the CPU falls back to its math kernel
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


def pad_head_dim(q: Tensor, k: Tensor, v: Tensor, multiple: int) -> tuple[Tensor, Tensor, Tensor]:
    """Zero-pad the head dimension (last) of ``q``, ``k`` and ``v`` up to a multiple of ``multiple``.

    Zeros change neither ``q k^T`` nor the first ``Dv`` channels of the output, so attention on the
    padded tensors, with the scale of the original head size passed explicitly and the output cut
    back to ``Dv`` channels, is the same attention (and autograd cuts the padding from the gradients).
    """
    def pad(t: Tensor) -> Tensor:
        extra = -t.shape[-1] % multiple
        return F.pad(t, (0, extra)) if extra else t

    return pad(q), pad(k), pad(v)


def _sdpa(q, k, v, bias, mask, scale, dropout_p):
    attn_bias = _combined_bias(bias, mask, q.dtype)
    q4, k4, v4, b4 = _fold(q, k, v, attn_bias)
    dv = v4.shape[-1]
    if _pads_heads(q4):
        q4, k4, v4 = pad_head_dim(q4, k4, v4, SDPA_HEAD_MULTIPLE)
    out = F.scaled_dot_product_attention(q4, k4, v4, attn_mask=b4, dropout_p=dropout_p, scale=scale)
    if out.shape[-1] != dv:
        out = out[..., :dv]
    return out.reshape(*q.shape[:-1], dv)


def _pads_heads(q: Tensor) -> bool:
    """Whether ``sdpa`` pads the head size (on CUDA, where the fused kernels need multiples of 8)."""
    return q.is_cuda and (q.shape[-1] % SDPA_HEAD_MULTIPLE != 0)


class RecomputedBackward(torch.autograd.Function):
    """``forward_fn(*inputs)`` without autograd; the backward differentiates ``grad_fn(*inputs)``,
    recomputed like activation checkpointing. For kernels without a backward of their own (Triton
    kernels, FlexAttention on the CPU): ``grad_fn`` is an equivalent differentiable computation.

    ``inputs`` are tensors or None; everything else goes into the two callables.
    """

    @staticmethod
    def forward(ctx, forward_fn, grad_fn, *inputs):
        ctx.grad_fn = grad_fn
        ctx.save_for_backward(*inputs)
        return forward_fn(*(None if t is None else t.detach() for t in inputs))

    @staticmethod
    def backward(ctx, grad_out):
        with torch.enable_grad():
            leaves = [None if t is None else t.detach().requires_grad_(need)
                      for t, need in zip(ctx.saved_tensors, ctx.needs_input_grad[2:], strict=False)]
            wanted = [t for t in leaves if t is not None and t.requires_grad]
            grads = iter(torch.autograd.grad(ctx.grad_fn(*leaves), wanted, grad_out) if wanted else ())
        return None, None, *(next(grads) if t is not None and t.requires_grad else None for t in leaves)


# ---------------------------------------------------------------------------------------------
# FlexAttention


_FLEX_SHAPES_LIMIT = 64


@functools.cache
def _compiled_flex() -> Callable:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def run_flex(q: Tensor, k: Tensor, v: Tensor, scale: float, score_mod: Callable | None = None,
             block_mask=None) -> Tensor:
    """Compiled FlexAttention (one kernel per shape and ``score_mod``/``mask_mod`` code), or unfused
    FlexAttention with a warning where compiling fails (no C++ compiler, unsupported shape).

    CPU tensors always take the unfused path: torch 2.14's compiled CPU FlexAttention returned wrong
    values and NaNs, differing run to run on the same inputs, on an AMD EPYC without AVX-512
    (``tests/attention/test_backends.py``); the unfused one is exact (and never picked by ``auto``).
    """
    if q.device.type == "cpu":
        return _eager_flex(q, k, v, scale, score_mod, block_mask)
    try:
        # one compiled kernel per shape (window attention sees a handful); dynamo's default limit is 8
        with torch._dynamo.config.patch(cache_size_limit=_FLEX_SHAPES_LIMIT):
            return _compiled_flex()(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)
    except Exception as error:
        warnings.warn(f"compiled FlexAttention failed ({type(error).__name__}: {error}); running it eagerly",
                      RuntimeWarning, stacklevel=3)
        return _eager_flex(q, k, v, scale, score_mod, block_mask)


def _eager_flex(q: Tensor, k: Tensor, v: Tensor, scale: float, score_mod: Callable | None, block_mask) -> Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        return flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)


def _flex_forward(q4: Tensor, k4: Tensor, v4: Tensor, b4: Tensor | None, scale: float) -> Tensor:
    score_mod = None
    if b4 is not None:
        if b4.dtype == torch.bool:
            b4 = torch.zeros(b4.shape, dtype=q4.dtype, device=q4.device).masked_fill_(~b4, -math.inf)
        b4 = b4.expand(q4.shape[0], q4.shape[1], q4.shape[2], k4.shape[2])

        def score_mod(score, b, h, q_idx, kv_idx):
            return score + b4[b, h, q_idx, kv_idx]

    return run_flex(q4, k4, v4, scale, score_mod)


def _flex(q, k, v, bias, mask, scale, dropout_p):
    if dropout_p > 0:
        raise NotImplementedError("the flex attention backend has no attention dropout; use sdpa or math")
    attn_bias = _combined_bias(bias, mask, q.dtype)
    q4, k4, v4, b4 = _fold(q, k, v, attn_bias)
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q4, k4, v4, b4))
    if needs_grad and q4.device.type == "cpu":  # torch has no FlexAttention backward on the CPU
        if b4 is not None and b4.dtype == torch.bool:
            b4 = torch.zeros(b4.shape, dtype=q4.dtype, device=q4.device).masked_fill_(~b4, -math.inf)
        out = RecomputedBackward.apply(lambda *t: _flex_forward(*t, scale), lambda *t: _math(*t, None, scale, 0.0),
                                       q4, k4, v4, b4)
    else:
        out = _flex_forward(q4, k4, v4, b4, scale)
    return out.reshape(*q.shape[:-1], v.shape[-1])


# the dense implementations (``triton`` has none of its own: it runs ``sdpa``, see OPERATIONS)
_IMPLEMENTATIONS = {"math": _math, "sdpa": _sdpa, "flex": _flex}
