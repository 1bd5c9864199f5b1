"""Data loading that resumes exactly and does not stall.

* Every item gets its own seed, derived from the run seed and the item's position in the sample
  stream; :class:`SeededItems` seeds Python's ``random``, numpy and torch with it around the
  dataset's ``__getitem__`` (and restores them after). An item is therefore the same whichever
  worker makes it, however many workers there are, and after a resume.
* :class:`SampleStream` is an endless sampler: epoch after epoch of a seeded permutation (times
  ``dataset_enlarge_ratio``), shared between processes by position; it starts at any position.
* :class:`TrainLoader` yields batches forever from a ``DataLoader`` over those two, counts what it
  consumed (the resume position) and, when a worker dies or a batch takes longer than
  ``worker_timeout`` seconds, shuts the workers down and starts new ones at the same position.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

log = logging.getLogger("restoregen.train")

WORKER_FAILURES = ("exited unexpectedly", "timed out", "killed by signal")


def item_seed(seed: int, position: int) -> int:
    """A 63-bit seed for the item at ``position`` of the stream of run seed ``seed``."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, position]).generate_state(2, np.uint32).view(np.uint64)[0]
               >> np.uint64(1))


@contextmanager
def seeded_rngs(seed: int):
    """Seed ``random``, numpy and torch (CPU) with ``seed``; restore their states afterwards."""
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])


class SeededItems(Dataset):
    """Wraps a dataset: ``self[(index, seed)]`` is ``dataset[index]`` made under ``seed``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        with seeded_rngs(seed):
            return self.dataset[index]


class SampleStream(Sampler):
    """Endless ``(index, seed)`` pairs for one process of ``world_size``, from per-process
    position ``start`` on."""

    def __init__(self, size: int, seed: int, *, shuffle: bool = True, enlarge_ratio: int = 1, rank: int = 0,
                 world_size: int = 1, start: int = 0) -> None:
        if size == 0:
            raise ValueError("the training dataset is empty")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch_length = size * max(1, enlarge_ratio)
        self.rank, self.world_size, self.start = rank, world_size, start
        self._order: tuple[int, torch.Tensor] | None = None

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if self._order is None or self._order[0] != epoch:
            if self.shuffle:
                generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
                order = torch.randperm(self.epoch_length, generator=generator)
            else:
                order = torch.arange(self.epoch_length)
            self._order = (epoch, order % self.size)
        return self._order[1]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start
        while True:
            global_position = position * self.world_size + self.rank
            epoch, offset = divmod(global_position, self.epoch_length)
            yield int(self._epoch_order(epoch)[offset]), item_seed(self.seed, global_position)
            position += 1

    def __len__(self) -> int:  # endless; DataLoader only needs a number
        return 2**62


class TrainLoader:
    """Endless training batches that resume at ``state_dict()['batches']`` and survive dead or
    stalled workers (up to ``max_restarts`` restarts in a row)."""

    def __init__(self, dataset: Dataset, *, batch_size: int, seed: int, num_workers: int = 0, shuffle: bool = True,
                 enlarge_ratio: int = 1, rank: int = 0, world_size: int = 1, pin_memory: bool = False,
                 timeout: float = 0.0, max_restarts: int = 3) -> None:
        self.dataset = SeededItems(dataset)
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.shuffle, self.enlarge_ratio = shuffle, enlarge_ratio
        self.rank, self.world_size = rank, world_size
        self.pin_memory, self.timeout, self.max_restarts = pin_memory, timeout, max_restarts
        self.batches = 0
        self.restarts = 0
        self._iterator: Iterator | None = None

    def epoch(self) -> int:
        """The epoch the next batch starts in (BasicSR's epoch counter, for logs)."""
        consumed = self.batches * self.batch_size * self.world_size
        return consumed // (len(self.dataset) * max(1, self.enlarge_ratio))

    def _start(self) -> Iterator:
        sampler = SampleStream(len(self.dataset), self.seed, shuffle=self.shuffle, enlarge_ratio=self.enlarge_ratio,
                               rank=self.rank, world_size=self.world_size, start=self.batches * self.batch_size)
        # an own generator: creating the iterator draws a base seed from it, not from the global
        # torch RNG that training steps use (which a resumed run must continue exactly)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, drop_last=True,
                            timeout=self.timeout if self.num_workers > 0 else 0,
                            persistent_workers=False, generator=torch.Generator().manual_seed(self.seed))
        return iter(loader)

    def close(self) -> None:
        iterator, self._iterator = self._iterator, None
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is None:
            return
        try:
            shutdown()
        except RuntimeError as error:
            # torch's SIGCHLD handler may report an already dead worker again while the others are joined;
            # the shutdown has told every worker to stop by then
            if not any(text in str(error) for text in WORKER_FAILURES):
                raise

    def __iter__(self) -> TrainLoader:
        return self

    def __next__(self) -> dict:
        while True:
            if self._iterator is None:
                self._iterator = self._start()
            try:
                batch = next(self._iterator)
            except (RuntimeError, EOFError, ConnectionError) as error:
                # a dead worker shows up as a RuntimeError, or as a broken pipe if caught mid-transfer
                worker_failure = isinstance(error, (EOFError, ConnectionError)) or any(
                    text in str(error) for text in WORKER_FAILURES)
                if self.num_workers == 0 or not worker_failure:
                    raise
                self.close()
                self.restarts += 1
                if self.restarts > self.max_restarts:
                    raise RuntimeError(f"data loading failed {self.restarts} times in a row; "
                                       f"last error: {error}") from None
                reason = (str(error).splitlines() or [type(error).__name__])[0]
                log.warning("data loader workers failed (%s); restarting them at batch %d (%d/%d)",
                            reason, self.batches, self.restarts, self.max_restarts)
                continue
            self.restarts = 0
            self.batches += 1
            return batch

    def state_dict(self) -> dict:
        return {"batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.batches = int(state["batches"])


def eval_loader(dataset: Dataset, num_workers: int = 0) -> DataLoader:
    """One pass over a validation/test dataset, one image per batch, in order."""
    return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=num_workers)
