"""The training stream: deterministic per item whatever the workers, resumable at any batch, and
it survives a worker that dies or stalls."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from restoregen.data.loader import SampleStream, TrainLoader


class Noise(Dataset):
    """Random tensors drawn from torch's global RNG (seeded per item by the loader); optionally
    kills or stalls its worker once, when it makes item ``trap``."""

    def __init__(self, flag: Path | None = None, trap: int = -1, action: str = "kill") -> None:
        self.flag, self.trap, self.action = flag, trap, action

    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> dict:
        if index == self.trap and self.flag is not None and not self.flag.exists():
            self.flag.touch()
            if self.action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)
        return {"x": torch.rand(3), "index": index}


def take(loader: TrainLoader, n: int) -> list[dict]:
    return [next(loader) for _ in range(n)]


def same(a: list[dict], b: list[dict]) -> bool:
    return all(torch.equal(x["x"], y["x"]) and torch.equal(x["index"], y["index"]) for x, y in zip(a, b, strict=True))


def test_stream_covers_each_epoch_once_per_process_pair():
    streams = [iter(SampleStream(5, seed=3, rank=r, world_size=2)) for r in range(2)]
    first_epoch = [next(streams[i % 2])[0] for i in range(10)]
    assert sorted(first_epoch[:5]) == [0, 1, 2, 3, 4] and sorted(first_epoch[5:]) == [0, 1, 2, 3, 4]


def test_batches_do_not_depend_on_workers_and_resume_exactly():
    reference = take(TrainLoader(Noise(), batch_size=2, seed=0), 6)
    with_workers = TrainLoader(Noise(), batch_size=2, seed=0, num_workers=2)
    try:
        assert same(take(with_workers, 6), reference)
    finally:
        with_workers.close()
    resumed = TrainLoader(Noise(), batch_size=2, seed=0)
    resumed.load_state_dict({"batches": 4})
    assert same(take(resumed, 2), reference[4:])
    assert not same(take(TrainLoader(Noise(), batch_size=2, seed=1), 6), reference)


def test_dead_worker_is_replaced(tmp_path):
    reference = take(TrainLoader(Noise(), batch_size=2, seed=0), 5)
    loader = TrainLoader(Noise(tmp_path / "killed", trap=2), batch_size=2, seed=0, num_workers=1, timeout=30)
    try:
        assert same(take(loader, 5), reference)
    finally:
        loader.close()
    assert (tmp_path / "killed").exists()


@pytest.mark.slow  # waits out the 2 s worker timeout and starts workers again (about 7 s)
def test_stalled_worker_is_replaced(tmp_path):
    reference = take(TrainLoader(Noise(), batch_size=2, seed=0), 4)
    loader = TrainLoader(Noise(tmp_path / "stalled", trap=1, action="stall"), batch_size=2, seed=0, num_workers=1,
                         timeout=2)
    try:
        started = time.time()
        assert same(take(loader, 4), reference)
        assert time.time() - started < 50
    finally:
        loader.close()
