"""The torch thread count: flag, then OMP_NUM_THREADS, then this process's share of the CPUs."""

from __future__ import annotations

import os

import pytest
import torch

from restoregen import threads


@pytest.fixture(autouse=True)
def _keep_torch_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    yield
    torch.set_num_threads(before)


def test_the_flag_wins_then_the_environment_then_the_cpus(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.configure_threads(2).startswith("torch threads: 2 (--threads;") and torch.get_num_threads() == 2
    assert threads.configure_threads().startswith("torch threads: 3 (OMP_NUM_THREADS;")
    assert torch.get_num_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.configure_threads().startswith("torch threads: 8 (8 CPUs;") and torch.get_num_threads() == 8


def test_processes_of_one_machine_share_the_cpus(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert threads.configure_threads().startswith("torch threads: 2 (8 CPUs shared by 4 processes;")


def test_a_busy_cpu_is_mentioned(monkeypatch):
    assert "busy" not in threads.configure_threads()
    monkeypatch.setattr(os, "getloadavg", lambda: (7.5, 7.0, 6.0))
    line = threads.configure_threads()
    assert "the CPU is busy (load average 7.5 on 8 CPUs)" in line and "OMP_NUM_THREADS=1" in line
    assert "busy" not in threads.configure_threads(1)  # one thread cannot oversubscribe


def test_cgroup_quota_caps_the_cpus(monkeypatch):
    monkeypatch.undo()  # the real available_cpus
    monkeypatch.setattr(threads, "_cgroup_cpus", lambda: 1.5)
    assert threads.available_cpus() == min(2, len(os.sched_getaffinity(0)))
