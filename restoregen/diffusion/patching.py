"""Install FreeSwim on a stock diffusers pipeline, and take it off again.

``patch(pipe)`` finds the pipeline's denoising models (``transformer``, ``transformer_2``) and,
on each, installs:

- FreeSwim's attention processors (see :mod:`.processors`), the originals kept aside;
- a forward pre-hook on the model's rotary-embedding module, which records the token grid;
- forward hooks on the model that double its batch into ``[window rows; full rows]`` and return
  only the window rows, so the pipeline (classifier-free guidance, batches of prompts, schedulers,
  callbacks) runs unchanged. In cache mode the hook decides per call whether the full branch runs.

``unpatch(pipe)`` removes the hooks and puts the original processor objects back; nothing else of
the pipeline is changed. Supported models: ``WanTransformer3DModel`` (Wan 2.1/2.2 text- and
video-to-video), ``LTXVideoTransformer3DModel`` and ``FluxTransformer2DModel`` (joint attention:
text tokens global, window branch only).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .cache import CrossAttentionCache
from .official import OFFICIAL_TRAIN_GRID, official_window
from .processors import CrossAttnOverrideProcessor, FluxJointAttnProcessor, LTXSelfAttnProcessor, WanSelfAttnProcessor
from .state import FreeSwimState

_ATTRIBUTE = "_restoregen_freeswim"
METHODS = ("freeswim",)


# ---------------------------------------------------------------------------------------------
# model families


def _wan_grid(rope: nn.Module, args: inspect.BoundArguments) -> tuple[int, int, int]:
    frames, height, width = args.arguments["hidden_states"].shape[2:]
    pt, ph, pw = rope.patch_size
    return frames // pt, height // ph, width // pw


def _ltx_grid(rope: nn.Module, args: inspect.BoundArguments) -> tuple[int, int, int]:
    grid = tuple(args.arguments.get(name) for name in ("num_frames", "height", "width"))
    if any(n is None for n in grid):
        raise NotImplementedError("FreeSwim needs LTX's num_frames/height/width; video_coords alone are not supported")
    return tuple(int(n) for n in grid)


def _flux_grid(rope: nn.Module, args: inspect.BoundArguments) -> tuple[int, int, int]:
    ids = args.arguments["ids"]
    ids = ids[0] if ids.dim() == 3 else ids
    height, width = int(ids[:, 1].max()) + 1, int(ids[:, 2].max()) + 1
    image = ids[-height * width:, 1:].to(torch.long)
    rows, cols = torch.meshgrid(torch.arange(height, device=ids.device), torch.arange(width, device=ids.device),
                                indexing="ij")
    if ids.shape[0] < height * width or not torch.equal(image, torch.stack((rows.flatten(), cols.flatten()), -1)):
        raise NotImplementedError("FreeSwim's Flux patch needs the image tokens last, on one raster-ordered grid")
    return 1, height, width


def _by_suffix(table: dict[str, str]) -> Callable[[str], str | None]:
    return lambda name: next((kind for suffix, kind in table.items() if name.endswith(suffix)), None)


@dataclass(frozen=True)
class _Family:
    """How FreeSwim maps onto one diffusers model class."""

    rope: str  # attribute holding the rotary-embedding module
    grid: Callable[[nn.Module, inspect.BoundArguments], tuple[int, int, int]]
    kind_of: Callable[[str], str | None]  # attention module name -> "self" | "cross" | "joint" | None
    self_processor: type | None
    batched: tuple[str, ...]  # forward arguments carrying the batch (doubled for the dual path)
    timestep: str
    train_grid: tuple[int, int]  # default training-size token grid (h, w)
    pixels_per_token: Callable[[object, nn.Module], tuple[int, int]]
    dual: bool = True


_FAMILIES: dict[str, _Family] = {
    "WanTransformer3DModel": _Family(
        "rope", _wan_grid, _by_suffix({".attn1": "self", ".attn2": "cross"}), WanSelfAttnProcessor,
        ("hidden_states", "timestep", "encoder_hidden_states", "encoder_hidden_states_image"), "timestep",
        OFFICIAL_TRAIN_GRID,  # 480 x 832 (Wan2.1-T2V-1.3B)
        lambda pipe, model: tuple(pipe.vae_scale_factor_spatial * p for p in model.config.patch_size[1:])),
    "LTXVideoTransformer3DModel": _Family(
        "rope", _ltx_grid, _by_suffix({".attn1": "self", ".attn2": "cross"}), LTXSelfAttnProcessor,
        ("hidden_states", "encoder_hidden_states", "timestep", "encoder_attention_mask", "video_coords"), "timestep",
        (15, 22),  # 480 x 704, LTX-Video's recommended size (32x VAE, 1x1 patches)
        lambda pipe, model: (pipe.vae_spatial_compression_ratio * model.config.patch_size,) * 2),
    "FluxTransformer2DModel": _Family(
        "pos_embed", _flux_grid, _by_suffix({".attn": "joint"}), None, (), "timestep",
        (64, 64),  # 1024 x 1024 (8x VAE, 2x2 packing)
        lambda pipe, model: (pipe.vae_scale_factor * 2,) * 2, dual=False),
}


def _family(model: nn.Module) -> _Family | None:
    return next((_FAMILIES[c.__name__] for c in type(model).__mro__ if c.__name__ in _FAMILIES), None)


# ---------------------------------------------------------------------------------------------
# hooks


def _bind(module: nn.Module, args: tuple, kwargs: dict) -> inspect.BoundArguments:
    return inspect.signature(module.forward).bind(*args, **kwargs)


def _double(x, rows: int):
    """``[x; x]`` for per-row tensors; anything else (scalars, shared tensors) unchanged."""
    return torch.cat([x, x], dim=0) if isinstance(x, Tensor) and x.dim() > 0 and x.shape[0] == rows else x


def _window_rows(output, rows: int):
    """The window-branch rows of a model output (tensor, tuple or diffusers output)."""
    if isinstance(output, Tensor):
        return output[:rows]
    if isinstance(output, tuple):
        return (output[0][:rows], *output[1:])
    output.sample = output.sample[:rows]
    return output


@dataclass
class _Patch:
    """What ``patch`` installed on one model, to take it off again."""

    state: FreeSwimState
    processors: dict[str, object]  # attention module name -> original processor
    handles: list = field(default_factory=list)


def _install_hooks(model: nn.Module, family: _Family, state: FreeSwimState) -> list:
    rope = getattr(model, family.rope)

    def record_grid(module, args, kwargs):
        state.grid = family.grid(module, _bind(module, args, kwargs))

    def split_branches(module, args, kwargs):
        bound = _bind(module, args, kwargs)
        hidden = bound.arguments["hidden_states"]
        state.call_batch = hidden.shape[0]
        refresh = True
        if state.cache is not None:
            timestep = bound.arguments[family.timestep]
            refresh = state.cache.begin_call(float(torch.as_tensor(timestep).max()), hidden.shape[0])
        state.dual = family.dual and refresh
        if state.dual:
            for name in family.batched:
                if name in bound.arguments:
                    bound.arguments[name] = _double(bound.arguments[name], state.call_batch)
        return bound.args, bound.kwargs

    def merge_branches(module, args, kwargs, output):
        return _window_rows(output, state.call_batch) if state.dual else output

    return [rope.register_forward_pre_hook(record_grid, with_kwargs=True),
            model.register_forward_pre_hook(split_branches, with_kwargs=True),
            model.register_forward_hook(merge_branches, with_kwargs=True)]


# ---------------------------------------------------------------------------------------------
# public API


def _models(pipe) -> list[nn.Module]:
    if isinstance(pipe, nn.Module):
        candidates = [pipe]
    else:
        candidates = [c for c in getattr(pipe, "components", {}).values() if isinstance(c, nn.Module)]
    return [m for m in candidates if _family(m) is not None]


def _train_grid(pipe, model: nn.Module, family: _Family, train_size) -> tuple[int, int]:
    if train_size is None:
        return family.train_grid
    if isinstance(pipe, nn.Module):
        raise ValueError("train_size (pixels) needs the pipeline to convert it to tokens; pass train_grid instead")
    per_token = family.pixels_per_token(pipe, model)
    size = (int(train_size), int(train_size)) if isinstance(train_size, int) else tuple(int(s) for s in train_size)
    if any(s % p for s, p in zip(size, per_token, strict=True)):
        raise ValueError(f"train_size {size} must be a multiple of {per_token} pixels (one token)")
    return tuple(s // p for s, p in zip(size, per_token, strict=True))


def patch(pipe, method: str = "freeswim", *, train_size: int | tuple[int, int] | None = None,
          train_grid: tuple[int, int] | None = None, window: tuple[int | None, ...] | None = None,
          scale: float | str = "log", cache_every: int | None = None,
          cache_device: torch.device | str | None = None):
    """Install FreeSwim on every supported denoising model of ``pipe`` (or on a model itself).

    Args:
        pipe: a diffusers pipeline (Wan, Wan video-to-video, LTX-Video, Flux ...) or one of its models.
        method: only ``"freeswim"``.
        train_size: the model's training size ``(height, width)`` in pixels; or ``train_grid`` in
            tokens. Defaults: Wan 480 x 832, LTX-Video 480 x 704, Flux 1024 x 1024.
        window: ``(frames, height, width)`` window in tokens, ``None`` = whole axis; default
            :func:`~.state.official_window` of the training grid (all frames, training grid + 1, odd).
        scale: ``"log"`` (FreeSwim's ``sqrt(log_N(2N) / d)``, N = training tokens per frame),
            ``"default"`` (``1/sqrt(d)``) or a number.
        cache_every: cache mode: run the full branch every this many steps and reuse its
            cross-attention outputs in between (None: run it at every step).
        cache_device: where cache mode keeps its tensors (e.g. ``"cpu"``); default: where computed.

    Returns ``pipe``. Raises ``ValueError`` if nothing in it is supported or it is patched already.
    """
    if method not in METHODS:
        raise ValueError(f"unknown patch method {method!r}; choose {', '.join(METHODS)}")
    models = _models(pipe)
    if not models:
        supported = ", ".join(_FAMILIES)
        raise ValueError(f"{type(pipe).__name__} has no model FreeSwim can patch (supported: {supported})")
    if any(hasattr(m, _ATTRIBUTE) for m in models):
        raise ValueError(f"{type(pipe).__name__} is patched already; unpatch it first")
    if window is not None and len(window) != 3:
        raise ValueError(f"window {window} must be (frames, height, width) in tokens, None = whole axis")
    states = []  # validate everything before changing anything
    for model in models:
        family = _family(model)
        if cache_every and not family.dual:
            raise ValueError(f"{type(model).__name__} has no cross-attention to cache (joint attention); "
                             "drop cache_every")
        grid = tuple(train_grid) if train_grid is not None else _train_grid(pipe, model, family, train_size)
        states.append(FreeSwimState(window=tuple(window) if window is not None else official_window(grid),
                                    scale=scale, train_grid=grid, dual=family.dual,
                                    cache=CrossAttentionCache(cache_every, cache_device) if cache_every else None))
    for model, state in zip(models, states, strict=True):
        family = _family(model)
        record = _Patch(state, {})
        for name, module in model.named_modules():
            kind = family.kind_of(name) if hasattr(module, "set_processor") else None
            if kind is None:
                continue
            record.processors[name] = module.processor
            if kind == "self":
                module.set_processor(family.self_processor(state))
            elif kind == "cross":
                module.set_processor(CrossAttnOverrideProcessor(state, module.processor, name))
            else:
                module.set_processor(FluxJointAttnProcessor(state))
        record.handles = _install_hooks(model, family, state)
        setattr(model, _ATTRIBUTE, record)
    return pipe


def unpatch(pipe):
    """Remove FreeSwim from ``pipe``: original processors back, hooks and state gone. Returns ``pipe``."""
    for model in _models(pipe):
        record = model.__dict__.pop(_ATTRIBUTE, None)
        if record is None:
            continue
        for handle in record.handles:
            handle.remove()
        modules = dict(model.named_modules())
        for name, processor in record.processors.items():
            modules[name].set_processor(processor)
        if record.state.cache is not None:
            record.state.cache.clear()
    return pipe


def is_patched(pipe) -> bool:
    return any(hasattr(m, _ATTRIBUTE) for m in _models(pipe))


def freeswim_state(model: nn.Module) -> FreeSwimState:
    """The FreeSwim state of a patched model (its cache, window, last grid ...)."""
    record = getattr(model, _ATTRIBUTE, None)
    if record is None:
        raise ValueError(f"{type(model).__name__} is not patched")
    return record.state


@contextlib.contextmanager
def patched(pipe, method: str = "freeswim", **options) -> Iterator:
    """``with patched(pipe, cache_every=5): pipe(...)`` patches for the block and unpatches after."""
    patch(pipe, method, **options)
    try:
        yield pipe
    finally:
        unpatch(pipe)
