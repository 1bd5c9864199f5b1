"""``restoregen upscale`` as a new user meets it: checks before any compute, reruns that write
nothing new, the same pixels every run, progress inside large images, and a summary that names
everything it did not read."""

from __future__ import annotations

import errno
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from restoregen.cli import main
from restoregen.fileio import part_name
from restoregen.inference import tiling


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    from skimage import data

    y, x = 60 + 7 * seed, 180 + 11 * seed
    return np.ascontiguousarray(data.astronaut()[y:y + height, x:x + width, ::-1])  # BGR for OpenCV


def _files(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (hidden ones too) with its modification time."""
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def no_forward(monkeypatch: pytest.MonkeyPatch) -> list:
    """Records every tile the network would run."""
    calls: list = []
    monkeypatch.setattr(tiling.Upscaler, "_run", lambda self, patch: calls.append(patch.shape) or 1 / 0)
    return calls


def test_read_only_output_exits_2_before_any_forward(tmp_path: Path, tiny_model_file: Path, no_forward: list,
                                                     monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), _photo(16, 16))
    out = tmp_path / "out"
    out.mkdir()
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # what a read-only mount answers, even to root
        if Path(path).parent == out and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert main(["upscale", str(tmp_path / "a.png"), str(out), "--model", str(tiny_model_file)]) == 2
    err = capsys.readouterr().err
    assert err == f"restoregen upscale: error: output folder {out}: is not writable (read-only file system)\n"
    assert no_forward == []


def test_uncreatable_output_exits_2_before_any_forward(tmp_path: Path, tiny_model_file: Path, no_forward: list,
                                                       capsys) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), _photo(16, 16))
    (tmp_path / "file").write_text("not a folder")
    assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "file" / "out"), "--model",
                 str(tiny_model_file)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"restoregen upscale: error: output folder {tmp_path / 'file' / 'out'}: "
                           f"cannot be created: {tmp_path / 'file'} is a file")
    assert no_forward == []


@pytest.mark.parametrize("suffix", ["_x2", ""])
def test_output_into_the_input_folder_reruns_write_nothing_new(tmp_path: Path, tiny_model_file: Path, capsys,
                                                               suffix: str) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), _photo(16, 20))
    cv2.imwrite(str(photos / "b.jpg"), _photo(12, 12, seed=1))
    argv = ["upscale", str(photos), str(photos), "--model", str(tiny_model_file), "--quiet"]
    argv += ["--suffix", suffix] if suffix else []
    assert main(argv) == 0
    first = _files(photos)
    assert set(first) == {"a.jpg", "b.jpg", f"a{suffix}.png", f"b{suffix}.png"}
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert _files(photos) == first  # nothing new, nothing rewritten
    assert "done 0, skipped 2 (already there), failed 0, not read 2" in out
    assert f"not read: a{suffix}.png: the output of a.jpg (results are not read as inputs)" in out


def test_partial_files_of_a_killed_run_are_removed(tmp_path: Path, tiny_model_file: Path, capsys) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), _photo(16, 16))
    out = tmp_path / "out"
    out.mkdir()
    leftover = part_name(out / "a.png")  # what kill -9 during a write leaves
    leftover.write_bytes(b"\x89PNG half of an image")
    past = time.time() - 600
    os.utime(leftover, (past, past))
    assert main(["upscale", str(tmp_path / "a.png"), str(out), "--model", str(tiny_model_file), "--quiet"]) == 0
    assert set(_files(out)) == {"a.png"}
    assert f"removed 1 partial file(s) left by an interrupted run ({leftover.name})" in capsys.readouterr().err


def test_same_pixels_whatever_the_free_memory(tmp_path: Path, tiny_model_file: Path,
                                              monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), _photo(72, 88))
    real_sysconf = os.sysconf
    outputs, logs = [], []
    for free_pages in (256, 2**24):  # 1 MiB and 64 GiB free at the moment of the run
        monkeypatch.setattr(os, "sysconf", lambda name, free=free_pages: free if name == "SC_AVPHYS_PAGES"
                            else real_sysconf(name))
        out = tmp_path / f"out{free_pages}"
        assert main(["upscale", str(tmp_path / "a.png"), str(out), "--model", str(tiny_model_file), "--quiet",
                     "--device", "cpu"]) == 0
        outputs.append((out / "a.png").read_bytes())
        logs.append([line for line in capsys.readouterr().err.splitlines() if line.startswith("tile size")])
    assert outputs[0] == outputs[1]
    assert logs[0] == logs[1] and "smaller images are not tiled" in logs[0][0]


def test_tile_bar_and_megapixel_rate(tmp_path: Path, tiny_model_file: Path, capsys) -> None:
    cv2.imwrite(str(tmp_path / "big.png"), _photo(64, 96))
    assert main(["upscale", str(tmp_path / "big.png"), str(tmp_path / "out"), "--model", str(tiny_model_file),
                 "--tile", "32", "--tile-overlap", "8"]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"tiles: 100%\|[^|]*\| 12/12 \[", err), err  # 3 rows x 4 columns of 32 px, stride 24
    found = re.search(r"done 1, .* in ([0-9.]+) s \(0\.00614 MP in, ([0-9.e-]+) MP/s\)", out)
    assert found, out
    seconds, rate = float(found[1]), float(found[2])
    assert rate == pytest.approx(64 * 96 / 1e6 / seconds, rel=0.2) if seconds >= 0.5 else rate > 0


def test_every_file_not_read_is_named(tmp_path: Path, tiny_model_file: Path, capsys) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), _photo(12, 12))
    cv2.imwrite(str(folder / "sub" / "b.png"), _photo(12, 12))
    from PIL import Image

    Image.fromarray(_photo(12, 12)[:, :, ::-1].copy()).save(folder / "anim.gif")
    (folder / "notes.txt").write_text("x")
    (folder / ".hidden.png").write_bytes(b"")  # hidden files are passed over silently
    argv = ["upscale", str(folder), str(tmp_path / "out"), "--model", str(tiny_model_file), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "done 1, skipped 0 (already there), failed 0, not read 3" in out
    assert "not read: sub/: a sub-folder (add --recursive to process sub-folders)" in out
    assert "not read: anim.gif: GIF is not a format restoregen reads (PNG, JPEG, BMP, TIFF, WebP)" in out
    assert "not read: notes.txt: TXT is not a format restoregen reads" in out
    assert main([*argv, "--recursive"]) == 0
    assert "done 1, skipped 1 (already there), failed 0, not read 2" in capsys.readouterr().out


def test_float_tiff_upscales_to_float_tiff(tmp_path: Path, tiny_model_file: Path) -> None:
    cv2.imwrite(str(tmp_path / "scan.tif"), _photo(12, 16).astype(np.float32) / 255)
    assert main(["upscale", str(tmp_path / "scan.tif"), str(tmp_path / "out"), "--model", str(tiny_model_file),
                 "--ext", "tif", "--quiet"]) == 0
    assert main(["upscale", str(tmp_path / "scan.tif"), str(tmp_path / "out"), "--model", str(tiny_model_file),
                 "--quiet"]) == 0
    as_tiff = cv2.imread(str(tmp_path / "out" / "scan.tif"), cv2.IMREAD_UNCHANGED)
    as_png = cv2.imread(str(tmp_path / "out" / "scan.png"), cv2.IMREAD_UNCHANGED)
    assert (as_tiff.dtype, as_tiff.shape) == (np.float32, (24, 32, 3))
    assert (as_png.dtype, as_png.shape) == (np.uint16, (24, 32, 3))
    assert np.abs(np.clip(as_tiff, 0, 1) * 65535 - as_png).max() <= 0.5 + 1e-3


def test_threads_are_chosen_and_printed(tmp_path: Path, tiny_model_file: Path, capsys) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), _photo(12, 12))
    assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "out"), "--model", str(tiny_model_file),
                 "--quiet", "--threads", "1"]) == 0
    assert "torch threads: 1 (--threads;" in capsys.readouterr().err
