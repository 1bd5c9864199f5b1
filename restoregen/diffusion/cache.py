"""FreeSwim's cache mode: the full branch's cross-attention outputs, reused between refreshes.

Denoising steps are told apart by the timestep the model is called with, so no cooperation from
the pipeline is needed (``cache_context`` or not): a smaller timestep starts a new step, an equal
one is another call of the same step (classifier-free guidance calls the model twice per step), a
larger one starts a new run and empties the cache. Entries are keyed by the call's index within
its step and the attention layer.
"""

from __future__ import annotations

import torch
from torch import Tensor


class CrossAttentionCache:
    """Cross-attention outputs of the full branch, refreshed every ``every`` steps.

    Args:
        every: refresh period in denoising steps (1 = refresh every step, the same as no cache).
        device: where the cached tensors live (e.g. ``"cpu"`` to offload them); ``None`` keeps
            them where they were computed.
    """

    def __init__(self, every: int, device: torch.device | str | None = None) -> None:
        if int(every) < 1:
            raise ValueError(f"the cache refresh period must be at least 1 step, got {every}")
        self.every = int(every)
        self.device = None if device is None else torch.device(device)
        self.step = -1
        self._call = 0
        self._last_timestep: float | None = None
        self._entries: dict[tuple[int, str], Tensor] = {}
        self._rows: dict[int, int] = {}  # call index -> batch rows its entries were computed for

    def begin_call(self, timestep: float, rows: int) -> bool:
        """Register a model call; True if it must run the full branch and refresh its entries."""
        if self._last_timestep is None or timestep > self._last_timestep:
            self.clear()
            self.step, self._call = 0, 0
        elif timestep < self._last_timestep:
            self.step, self._call = self.step + 1, 0
        else:
            self._call += 1
        self._last_timestep = timestep
        refresh = self.step % self.every == 0 or self._rows.get(self._call) != rows
        if refresh:
            self._rows[self._call] = rows
        return refresh

    def store(self, layer: str, value: Tensor) -> None:
        self._entries[(self._call, layer)] = value.detach().to(self.device or value.device)

    def load(self, layer: str, like: Tensor) -> Tensor:
        """The entry of ``layer`` for the current call, on ``like``'s device and dtype."""
        try:
            value = self._entries[(self._call, layer)]
        except KeyError:
            raise RuntimeError(f"no cached cross-attention for layer {layer!r} (call {self._call} of step "
                               f"{self.step}); the full branch did not run for it") from None
        return value.to(device=like.device, dtype=like.dtype)

    def clear(self) -> None:
        self._entries.clear()
        self._rows.clear()
        self._last_timestep = None
        self.step, self._call = -1, 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._entries.values())
