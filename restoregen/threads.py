"""How many CPU threads torch uses, decided in one place for ``train``, ``test`` and ``upscale``.

The choice: ``--threads N`` if given, else ``OMP_NUM_THREADS`` if set, else the CPUs this process
may use (affinity and cgroup quota) divided among the processes of this machine
(``LOCAL_WORLD_SIZE`` under ``accelerate launch``/``torchrun``). It depends on the machine and the
flags, never on the moment's load; when the machine is already busy, the line printed says so,
because then fewer threads can be several times faster (OpenMP threads wait for each other).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["available_cpus", "configure_threads"]


def _cgroup_cpus() -> float | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max``), or None when unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask, capped by a cgroup quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_cpus()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(cpus, 1)


def _env_threads() -> int | None:
    try:
        value = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def configure_threads(requested: int | None = None) -> str:
    """Set torch's intra-op thread count (see the module docstring); return a line saying what was
    chosen and why, for the command to print."""
    import torch

    cpus = available_cpus()
    local = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
    if requested is not None:
        threads, why = requested, "--threads"
    elif _env_threads() is not None:
        threads, why = _env_threads(), "OMP_NUM_THREADS"
    else:
        threads = max(cpus // local, 1)
        why = f"{cpus} CPUs" + (f" shared by {local} processes" if local > 1 else "")
    torch.set_num_threads(threads)
    line = f"torch threads: {threads} ({why}; --threads N or OMP_NUM_THREADS=N to change)"
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return line
    if threads > 1 and load + threads * local > cpus + 0.5:
        line += (f"; the CPU is busy (load average {load:.1f} on {cpus} CPUs): if this runs slowly, "
                 "fewer threads (e.g. OMP_NUM_THREADS=1) can be several times faster")
    return line
