"""BasicSR's learning-rate schedules in closed form (the rate is a function of the iteration, so
a resumed run needs no scheduler state) plus BasicSR's linear warm-up.

Iteration ``k`` (1-based) trains with the rate of scheduler step ``k - 1``, as BasicSR steps its
schedulers before every iteration but the first.
"""

from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING

from ..config.schema import COUNT, NON_NEGATIVE, NON_NEGATIVE_INT, NUMBERS, POSITIVE, ListOf, OptionType

if TYPE_CHECKING:
    import torch


class MultiStepRestartLR:
    """Multiply by ``gamma`` at each milestone; at a restart, go back to ``initial * weight``."""

    def __init__(self, milestones: list[int], gamma: float = 0.1, restarts: list[int] = (0,),
                 restart_weights: list[float] = (1,)) -> None:
        if len(restarts) != len(restart_weights):
            raise ValueError("restarts and restart_weights differ in length")
        self.milestones, self.gamma = sorted(milestones), gamma
        self.restarts, self.restart_weights = list(restarts), list(restart_weights)

    def lr(self, initial: float, step: int) -> float:
        started = [(r, w) for r, w in zip(self.restarts, self.restart_weights, strict=True) if r <= step]
        restart, weight = max(started) if started else (0, 1.0)
        decays = bisect.bisect_right(self.milestones, step) - bisect.bisect_right(self.milestones, restart)
        return initial * weight * self.gamma**decays


class CosineAnnealingRestartLR:
    """Cosine from ``initial * weight`` down to ``eta_min`` over each period in turn."""

    def __init__(self, periods: list[int], restart_weights: list[float] = (1,), eta_min: float = 0.0) -> None:
        if len(periods) != len(restart_weights):
            raise ValueError("periods and restart_weights differ in length")
        self.periods, self.restart_weights, self.eta_min = list(periods), list(restart_weights), eta_min
        self.ends = [sum(periods[: i + 1]) for i in range(len(periods))]

    def lr(self, initial: float, step: int) -> float:
        index = min(bisect.bisect_left(self.ends, step), len(self.ends) - 1)
        start = self.ends[index - 1] if index else 0
        progress = (step - start) / self.periods[index]
        weight = self.restart_weights[index]
        return self.eta_min + weight * 0.5 * (initial - self.eta_min) * (1 + math.cos(math.pi * progress))


class LinearDecay:
    """Constant, then linearly towards 0 at ``total_iter``: StyleSwin's ``--lr_decay``, which
    lowers the rate by ``initial / (total_iter - start_iter)`` after every 0-based iteration
    ``i > start_iter``. Scheduler step ``s`` (= 0-based ``i``) therefore trains with ``initial *
    (1 - (s - 1 - start_iter) / (total_iter - start_iter))`` once ``s > start_iter + 1``. A start
    at or after the end keeps the rate constant."""

    def __init__(self, start_iter: int, total_iter: int) -> None:
        self.start, self.total = start_iter, total_iter

    def lr(self, initial: float, step: int) -> float:
        done = step - 1 - self.start
        if done <= 0 or self.start >= self.total:
            return initial
        return initial * max(0.0, 1 - done / (self.total - self.start))


_MULTI_STEP = {"milestones": ListOf(NON_NEGATIVE_INT), "gamma": POSITIVE, "restarts": ListOf(NON_NEGATIVE_INT),
               "restart_weights": NUMBERS}

# option-file type -> schedule and the options of its section
SCHEDULERS: dict[str, OptionType] = {
    "MultiStepLR": OptionType(MultiStepRestartLR, _MULTI_STEP),
    "MultiStepRestartLR": OptionType(MultiStepRestartLR, _MULTI_STEP),
    "CosineAnnealingRestartLR": OptionType(
        CosineAnnealingRestartLR, {"periods": ListOf(COUNT), "restart_weights": NUMBERS, "eta_min": NON_NEGATIVE}),
    # restoregen: constant, then linearly down to 0 at total_iter (StyleSwin's --lr_decay)
    "LinearDecay": OptionType(LinearDecay, {"start_iter": NON_NEGATIVE_INT}),
}


def build_scheduler(opt: dict | None, total_iter: int | None = None):
    """The schedule of a ``train.scheduler`` section (None: a constant rate); ``total_iter`` goes
    to the schedules that end with the run (:class:`LinearDecay`)."""
    if not opt:
        return MultiStepRestartLR([], 1.0)
    kwargs = dict(opt)
    cls = SCHEDULERS[kwargs.pop("type")].target
    if cls is LinearDecay:
        kwargs["total_iter"] = total_iter
    return cls(**kwargs)


def set_learning_rate(optimizer: torch.optim.Optimizer, schedule, iteration: int, warmup_iter: int = -1) -> None:
    """Set the rates of every group of ``optimizer`` for (1-based) ``iteration``."""
    for group in optimizer.param_groups:
        initial = group.setdefault("initial_lr", group["lr"])
        lr = schedule.lr(initial, iteration - 1)
        if iteration < warmup_iter:
            lr = initial / warmup_iter * iteration
        group["lr"] = lr
