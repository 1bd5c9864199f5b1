"""diffusers attention processors for FreeSwim.

They follow diffusers' processor convention, ``processor(attn, hidden_states,
encoder_hidden_states=None, attention_mask=None, rotary_emb=None)``, and take the token grid,
window, softmax scale and branch layout from a shared :class:`~.state.FreeSwimState`.

- :class:`WanSelfAttnProcessor` / :class:`LTXSelfAttnProcessor`: self-attention of a video DiT.
  With ``state.dual`` the batch is ``[window rows; full rows]``: window rows get inward
  sliding-window attention, full rows full attention, both with the state's scale.
- :class:`CrossAttnOverrideProcessor`: cross-attention computed by the model's own processor for
  the full rows only and copied onto the window rows (FreeSwim's override); in cache mode the
  result is stored, and reused on the steps where the full branch does not run.
- :class:`FluxJointAttnProcessor`: joint text-image attention of Flux; the text tokens stay global
  (they see every token and every token sees them), image tokens see a window of image tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .state import FreeSwimState, split_rows


def rotate_interleaved(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Wan's rotary embedding on interleaved pairs ``(x[2i], x[2i+1])``; ``x`` is ``(B, L, heads, D)``."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2).type_as(x)


def _output(attn, out: Tensor, dtype: torch.dtype) -> Tensor:
    """``(B, heads, L, D)`` attention output -> ``to_out`` of ``(B, L, heads*D)``."""
    out = out.transpose(1, 2).flatten(2).to(dtype)
    return attn.to_out[1](attn.to_out[0](out))


class _SelfAttnProcessor:
    """Self-attention with the FreeSwim state; subclasses project q, k, v the model's way."""

    def __init__(self, state: FreeSwimState) -> None:
        self.state = state

    def project(self, attn, hidden_states: Tensor, rotary_emb) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, rotary_emb=None, **kwargs) -> Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError(f"{type(self).__name__} is a self-attention processor: it takes no "
                             "encoder_hidden_states and no attention_mask")
        q, k, v = (t.transpose(1, 2) for t in self.project(attn, hidden_states, rotary_emb))
        return _output(attn, self.state.attend(q, k, v), q.dtype)


class WanSelfAttnProcessor(_SelfAttnProcessor):
    """Self-attention (``attn1``) of diffusers' ``WanAttention``."""

    def project(self, attn, hidden_states, rotary_emb):
        from diffusers.models.transformers.transformer_wan import _get_qkv_projections

        q, k, v = _get_qkv_projections(attn, hidden_states, None)
        q, k = attn.norm_q(q), attn.norm_k(k)
        q, k, v = (t.unflatten(2, (attn.heads, -1)) for t in (q, k, v))
        if rotary_emb is not None:
            q, k = rotate_interleaved(q, *rotary_emb), rotate_interleaved(k, *rotary_emb)
        return q, k, v


class LTXSelfAttnProcessor(_SelfAttnProcessor):
    """Self-attention (``attn1``) of diffusers' ``LTXAttention``."""

    def project(self, attn, hidden_states, rotary_emb):
        from diffusers.models.transformers.transformer_ltx import apply_rotary_emb

        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        q, k = attn.norm_q(q), attn.norm_k(k)
        if rotary_emb is not None:
            q, k = apply_rotary_emb(q, rotary_emb), apply_rotary_emb(k, rotary_emb)
        return tuple(t.unflatten(2, (attn.heads, -1)) for t in (q, k, v))


def _full_rows(x: Tensor | None, rows: int, half: int) -> Tensor | None:
    """The full-branch rows of a per-row input (inputs with ``half`` rows already are)."""
    if x is None or x.shape[0] != rows:
        return x
    return x[half:]


class CrossAttnOverrideProcessor:
    """Cross-attention of the full branch, copied onto the window branch.

    Args:
        state: the shared FreeSwim state.
        inner: the model's own processor, which computes the cross-attention; None: the attention
            module's default processor.
        layer: the attention module's name (the cache key).
    """

    def __init__(self, state: FreeSwimState, inner: Callable | None = None, layer: str = "") -> None:
        self.state, self.inner, self.layer = state, inner, layer

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, *args, **kwargs) -> Tensor:
        cache = self.state.cache
        if not self.state.dual:  # cache mode between refreshes: every row is a window row
            return cache.load(self.layer, hidden_states)
        if self.inner is None:
            self.inner = attn._default_processor_cls()
        rows = hidden_states.shape[0]
        half = split_rows(rows)
        full = self.inner(attn, hidden_states[half:], _full_rows(encoder_hidden_states, rows, half),
                          _full_rows(attention_mask, rows, half), *args, **kwargs)
        if cache is not None:
            cache.store(self.layer, full)
        return torch.cat([full, full], dim=0)


class FluxJointAttnProcessor:
    """Joint attention of Flux's double- and single-stream blocks with windowed image tokens.

    The sequence is ``[text tokens; image tokens]``; the text tokens are the global tokens of
    :func:`~restoregen.attention.sliding_window_attention`. There is no separate cross-attention
    to override, so Flux runs the window branch only.
    """

    def __init__(self, state: FreeSwimState) -> None:
        self.state = state

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, image_rotary_emb=None, **kwargs):
        from diffusers.models.embeddings import apply_rotary_emb
        from diffusers.models.transformers.transformer_flux import _get_qkv_projections

        if attention_mask is not None:
            raise NotImplementedError("FreeSwim's Flux processor does not take an attention_mask")
        q, k, v, eq, ek, ev = _get_qkv_projections(attn, hidden_states, encoder_hidden_states)
        q, k, v = (t.unflatten(-1, (-1, attn.head_dim)) for t in (q, k, v))
        q, k = attn.norm_q(q), attn.norm_k(k)
        if attn.added_kv_proj_dim is not None:
            eq, ek, ev = (t.unflatten(-1, (-1, attn.head_dim)) for t in (eq, ek, ev))
            eq, ek = attn.norm_added_q(eq), attn.norm_added_k(ek)
            q, k, v = torch.cat([eq, q], dim=1), torch.cat([ek, k], dim=1), torch.cat([ev, v], dim=1)
        if image_rotary_emb is not None:
            q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
            k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        text_tokens = q.shape[2] - math.prod(self.state.current_grid())
        out = self.state.attend(q, k, v, global_tokens=text_tokens, dual=False)
        out = out.transpose(1, 2).flatten(2, 3).to(q.dtype)
        if encoder_hidden_states is None:
            return out
        text, image = out.split_with_sizes([encoder_hidden_states.shape[1], hidden_states.shape[1]], dim=1)
        image = attn.to_out[1](attn.to_out[0](image.contiguous()))
        return image, attn.to_add_out(text.contiguous())
