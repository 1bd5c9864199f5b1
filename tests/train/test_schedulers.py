"""Closed-form schedules give basicsr's learning rates, iteration by iteration."""

from __future__ import annotations

import pytest
import torch

from restoregen._compat import import_basicsr
from restoregen.train.schedulers import build_scheduler, set_learning_rate


@pytest.mark.filterwarnings("ignore:Detected call of")
@pytest.mark.parametrize("opt", [
    {"type": "MultiStepLR", "milestones": [3, 6, 6, 9], "gamma": 0.5},
    {"type": "MultiStepRestartLR", "milestones": [3, 8, 12], "gamma": 0.5, "restarts": [0, 10],
     "restart_weights": [1, 0.5]},
    {"type": "CosineAnnealingRestartLR", "periods": [5, 7], "restart_weights": [1, 0.5], "eta_min": 1e-7},
])
def test_rates_match_basicsr(opt):
    lr_scheduler = import_basicsr("models.lr_scheduler")
    ours_opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=2e-4)
    ref_opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=2e-4)
    kwargs = {k: v for k, v in opt.items() if k != "type"}
    ref_cls = lr_scheduler.CosineAnnealingRestartLR if "periods" in opt else lr_scheduler.MultiStepRestartLR
    reference = ref_cls(ref_opt, **kwargs)
    schedule = build_scheduler(opt)
    for iteration in range(1, 13):  # basicsr steps its schedulers before every iteration but the first
        if iteration > 1:
            reference.step()
        set_learning_rate(ours_opt, schedule, iteration)
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12), iteration


def test_linear_warmup():
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    schedule = build_scheduler({"type": "MultiStepLR", "milestones": [100], "gamma": 0.5})
    set_learning_rate(optimizer, schedule, 5, warmup_iter=10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    set_learning_rate(optimizer, schedule, 10, warmup_iter=10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_linear_decay_matches_styleswin_lr_decay():
    # train_styleswin.py: after iteration i (0-based) with i > start, lr -= lr0 / (iter - start)
    lr0, start, total = 5e-5, 6, 10
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr0)
    schedule = build_scheduler({"type": "LinearDecay", "start_iter": start}, total)
    official = lr0
    for i in range(total):
        set_learning_rate(optimizer, schedule, i + 1)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(official, rel=1e-9, abs=1e-18), i
        if i > start:
            official -= lr0 / (total - start)
    assert build_scheduler({"type": "LinearDecay", "start_iter": 20}, 10).lr(lr0, 9) == lr0  # never starts
