"""Writing files: atomically, with the permissions ``open()`` would give, leaving nothing behind.

Every file restoregen writes (images, checkpoints, exported weights, samples, videos) goes through
:func:`atomic_write` or :func:`atomic_path`: the data goes to a hidden ``.NAME.<hex>.part`` file in
the target folder, is synced, and is renamed onto ``NAME``. The part file is created with mode
0o666 (folders 0o777), so the umask decides the permissions, as for ``open()``
(``tempfile.mkstemp`` would give 0o600). While it is written, the part file holds an exclusive
``flock``: :func:`remove_stale_parts` deletes part files no live writer holds (left by a killed
run) and never one still being written, even by another process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no flock; staleness falls back to age
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_folder", "atomic_path", "atomic_write", "atomic_write_bytes", "check_writable_folder",
           "part_name", "remove_stale_parts"]

FILE_MODE = 0o666  # less the umask, as open() does
FOLDER_MODE = 0o777
_PART = re.compile(r"^\..+\.[0-9a-f]{8}\.part(\.\w+)?$")
# A part file is created before its lock is taken; one this young may belong to a writer in between.
_MIN_STALE_AGE_S = 2.0
_UNLOCKED_STALE_AGE_S = 3600.0  # without flock: an hour without a write means its writer is gone


def part_name(path: str | os.PathLike, keep_suffix: bool = False) -> Path:
    """A fresh hidden temporary name next to ``path``: ``.NAME.<8 hex>.part`` (``keep_suffix``:
    ``.NAME.<8 hex>.part.mp4`` for writers that pick the format from the name)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.part{path.suffix if keep_suffix else ''}")


def _lock(fd: int) -> None:
    if fcntl is not None:
        with contextlib.suppress(OSError):  # a file system without locks: the cleaner then never removes it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a part-file name for a writer that needs a path (video writers; ``keep_suffix`` for
    those that pick the format from the name); on success it is synced and renamed onto ``path``;
    on any error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = part_name(path, keep_suffix)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), FILE_MODE)
    try:
        _lock(fd)  # held until renamed: the file is not stale while this process lives
        yield temp
        with open(temp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(binary_file)`` on a part file next to ``path``, sync it, rename it onto ``path``."""
    with atomic_path(path) as temp, open(temp, "wb") as file:
        write(file)
        file.flush()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda file: file.write(data))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temporary folder next to ``path`` to fill; on success it replaces ``path``
    (an existing folder there is removed first); on any error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = part_name(path)
    os.mkdir(temp, FOLDER_MODE)
    try:
        yield temp
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(temp, path)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _is_stale(path: Path) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    if age < _MIN_STALE_AGE_S:
        return False
    if fcntl is None:
        return age > _UNLOCKED_STALE_AGE_S
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live writer holds it
    finally:
        os.close(fd)
    return True


def remove_stale_parts(folder: str | os.PathLike) -> list[Path]:
    """Delete the part files in ``folder`` that no running writer holds; return what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if _PART.match(entry.name) and entry.is_file(follow_symlinks=False) and _is_stale(Path(entry.path)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def check_writable_folder(folder: str | os.PathLike) -> str | None:
    """Create ``folder`` if needed and write (then delete) a probe file in it: None if that worked,
    else why not, in a few words (e.g. ``read-only file system``)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "exists and is not a folder"
    except OSError as error:
        blocker = next((p for p in folder.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            return f"cannot be created: {blocker} is a file"
        return f"cannot be created ({error.strerror or error})"
    probe = part_name(folder / "write-test")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError as error:
        reason = {errno.EROFS: "read-only file system", errno.EACCES: "no permission to write there",
                  errno.EPERM: "no permission to write there", errno.ENOSPC: "no space left"}.get(error.errno)
        return f"is not writable ({reason or error.strerror or error})"
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()
    return None
