"""Checkpoint files: atomic writes, BasicSR layout, and resume from the newest complete one."""

from __future__ import annotations

import pytest
import torch

from restoregen.train.checkpoint import atomic_save, find_latest, model_path, network_state, state_path
from restoregen.train.ema import EMA


def write_checkpoint(root, iteration: int, with_model: bool = True) -> None:
    if with_model:
        atomic_save({"params": {"w": torch.full((2,), float(iteration))}}, model_path(root, "g", iteration))
    atomic_save({"iter": iteration}, state_path(root, iteration))


def test_newest_complete_checkpoint_wins(tmp_path):
    for iteration in (10, 20, 30, 40):
        write_checkpoint(tmp_path, iteration, with_model=iteration != 40)  # 40: killed before its models
    state_path(tmp_path, 30).write_bytes(b"half a file")  # 30: damaged
    (tmp_path / "training_states" / ".50.state.abcd.tmp").write_bytes(b"x")  # an interrupted write
    iteration, state = find_latest(tmp_path, ["g"])
    assert iteration == 20 and state["iter"] == 20


def test_nothing_to_resume(tmp_path):
    assert find_latest(tmp_path, ["g"]) is None


def test_atomic_save_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "models" / "net_g_1.pth"
    atomic_save({"params": {"w": torch.ones(1)}}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save({"params": Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["params"]["w"].item() == 1.0
    assert [p.name for p in path.parent.iterdir()] == ["net_g_1.pth"]


def test_network_state_follows_basicsr_keys(tmp_path):
    path = tmp_path / "net.pth"
    torch.save({"params": {"module.w": torch.ones(1)}}, path)
    state, key = network_state(path, "params_ema")  # falls back to params, strips DDP's prefix
    assert key == "params" and list(state) == ["w"]
    torch.save({"w": torch.zeros(1)}, path)  # a bare state dict
    assert network_state(path, "params")[1] is None


def test_ema_update_is_basicsr_formula():
    net = torch.nn.Linear(2, 2)
    ema = EMA(net, 0.9)
    before = ema.module.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    assert torch.allclose(ema.module.weight, 0.9 * before + 0.1 * net.weight)
    assert not ema.module.weight.requires_grad and not ema.module.training
