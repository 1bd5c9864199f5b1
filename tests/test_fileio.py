"""Writing files: one permission policy (the umask decides, as for open()) for every file restoregen
writes, atomic replacement, and removal of the partial files a killed run leaves."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from restoregen.fileio import atomic_write_bytes, check_writable_folder, part_name, remove_stale_parts

UMASK = 0o027  # differs from the usual 0o022, and from the 0o600 that tempfile.mkstemp gives


@pytest.fixture
def umask():
    old = os.umask(UMASK)
    try:
        yield UMASK
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _writers(tmp_path: Path) -> dict[str, Path]:
    """Every kind of file restoregen writes, written once; name -> path."""
    from restoregen.diffusion.command import write_video
    from restoregen.imageio import ImageData, write_image
    from restoregen.train.checkpoint import atomic_save
    from restoregen.train.evaluate import evaluate
    from restoregen.train.export import export_state

    pixels = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    write_image(tmp_path / "upscaled.png", ImageData(pixels))  # also samples and GAN snapshots
    atomic_save({"params": {"w": torch.ones(2)}}, tmp_path / "models" / "net_g_1.pth")
    export_state({"w": torch.ones(2)}, {"type": "HAT", "upscale": 2}, tmp_path / "net_g_latest.safetensors")
    batch = {"lq": torch.from_numpy(pixels).permute(2, 0, 1)[None], "lq_path": ["val.png"]}
    evaluate(torch.nn.Identity(), [batch], None, device=torch.device("cpu"),
             save_path=lambda name: tmp_path / f"{name}.png")
    frames = np.zeros((2, 16, 16, 3), np.float32)
    write_video(frames, tmp_path / "frames", fps=4)
    paths = {"upscale output": tmp_path / "upscaled.png", "training checkpoint": tmp_path / "models" / "net_g_1.pth",
             "exported safetensors": tmp_path / "net_g_latest.safetensors", "validation image": tmp_path / "val.png",
             "freeswim frame folder": tmp_path / "frames",
             "freeswim frame": tmp_path / "frames" / "frame_0000.png"}
    try:
        write_video(frames, tmp_path / "clip.mp4", fps=4)
        paths["freeswim mp4"] = tmp_path / "clip.mp4"
    except OSError:  # an OpenCV build without a video writer
        pass
    return paths


def test_every_written_file_follows_the_umask(tmp_path: Path, umask: int) -> None:
    for name, path in _writers(tmp_path).items():
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert _mode(path) == expected, f"{name}: {oct(_mode(path))}, expected {oct(expected)}"
    assert not [p for p in tmp_path.rglob(".*")], "temporary files left behind"


def test_stale_part_files_are_removed_but_not_one_being_written(tmp_path: Path) -> None:
    stale = part_name(tmp_path / "a.png")
    stale.write_bytes(b"killed mid-write")
    video = part_name(tmp_path / "clip.mp4", keep_suffix=True)
    video.write_bytes(b"")
    other = tmp_path / ".notes.part"  # not our naming: left alone
    other.write_bytes(b"")
    past = time.time() - 60
    for path in (stale, video, other):
        os.utime(path, (past, past))
    # a part file that another process is writing right now (it holds the lock)
    live = part_name(tmp_path / "b.png")
    writer = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(live)!r}, os.O_WRONLY | os.O_CREAT, 0o666)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        f"os.utime({str(live)!r}, ({past}, {past}))\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        removed = remove_stale_parts(tmp_path)
        assert sorted(removed) == sorted([stale, video])
        assert live.exists() and other.exists()
    finally:
        writer.communicate("")
    assert remove_stale_parts(tmp_path) == [live]  # its writer is gone now


def test_a_young_part_file_is_kept(tmp_path: Path) -> None:
    young = part_name(tmp_path / "a.png")
    young.write_bytes(b"")  # just created: its writer may not hold the lock yet
    assert remove_stale_parts(tmp_path) == [] and young.exists()


def test_atomic_write_replaces_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_writable_folder_checks(tmp_path: Path) -> None:
    assert check_writable_folder(tmp_path / "new" / "deeper") is None and (tmp_path / "new" / "deeper").is_dir()
    assert list((tmp_path / "new" / "deeper").iterdir()) == []  # the probe is gone
    (tmp_path / "file").write_text("x")
    assert check_writable_folder(tmp_path / "file") == "exists and is not a folder"
    assert check_writable_folder(tmp_path / "file" / "out") == f"cannot be created: {tmp_path / 'file'} is a file"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs a non-root POSIX user (root may write anywhere)")
def test_read_only_folder_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert check_writable_folder(folder) == "is not writable (no permission to write there)"
    finally:
        folder.chmod(0o755)
