"""Pixel losses with BasicSR's arguments: ``loss_weight``, ``reduction`` and an optional
element-wise ``weight`` (mean over the weighted region)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

REDUCTIONS = ("none", "mean", "sum")


def reduce_loss(loss: Tensor, weight: Tensor | None, reduction: str) -> Tensor:
    """Apply an element-wise ``weight`` (broadcast over channels if it has one) and reduce."""
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum" or weight is None:
        return loss.sum() if reduction == "sum" else loss.mean()
    weight_total = weight.sum() if weight.size(1) > 1 else weight.sum() * loss.size(1)
    return loss.sum() / weight_total


class PixelLoss(nn.Module):
    """Base: ``loss_weight * reduce(elementwise(pred, target))``."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.loss_weight, self.reduction = loss_weight, reduction

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return self.loss_weight * reduce_loss(self.elementwise(pred, target), weight, self.reduction)


class L1Loss(PixelLoss):
    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(pred, target, reduction="none")


class MSELoss(PixelLoss):
    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(pred, target, reduction="none")


class CharbonnierLoss(PixelLoss):
    """``sqrt((pred - target)^2 + eps)``, a smooth L1 (LapSRN)."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean", eps: float = 1e-12) -> None:
        super().__init__(loss_weight, reduction)
        self.eps = eps

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps)
