"""End to end: ``restoregen upscale`` on a folder of good and bad files, then again."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from restoregen.cli import main

RNG = np.random.default_rng(0)
GOOD = {  # output file -> (height, width, channels or None for 2-D gray, dtype) of the x2 result
    "astronaut.png": (48, 64, 3, np.uint8),
    "UPPER.png": (40, 36, 3, np.uint8),
    "logo.png": (32, 40, 4, np.uint8),
    "gray.png": (24, 28, None, np.uint8),
    "deep.png": (20, 24, 3, np.uint16),
    "rotated.png": (60, 36, 3, np.uint8),  # stored 18 high x 30 wide; EXIF orientation 6 turns it upright
    "été à la plage.png": (26, 30, 3, np.uint8),
    "sub/inner.png": (22, 22, 3, np.uint8),
}
BAD = {
    "corrupt.jpg": "corrupt or truncated image data",
    "empty.png": "empty file",
    "notes.png": "not an image",
    "huge.png": "declares 30000x30000 = 900,000,000 pixels, over the limit",
}


def _photo(height: int, width: int) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:100 + height, 200:200 + width, ::-1])  # BGR for OpenCV


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "astronaut.jpg"), _photo(24, 32))
    cv2.imwrite(str(folder / "UPPER.JPG"), _photo(20, 18))
    rgba = np.dstack([_photo(16, 20), np.tile(np.linspace(0, 255, 20, dtype=np.uint8), (16, 1))])
    cv2.imwrite(str(folder / "logo.png"), rgba)
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(_photo(12, 14), cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "deep.png"), _photo(10, 12).astype(np.uint16) * 257)
    rotated = Image.fromarray(_photo(18, 30)[:, :, ::-1])  # stored 30 wide x 18 high
    exif = rotated.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: 18 wide x 30 high
    rotated.save(folder / "rotated.jpg", quality=95, exif=exif)
    cv2.imencode(".png", _photo(13, 15))[1].tofile(str(folder / "été à la plage.png"))
    cv2.imwrite(str(folder / "sub" / "inner.png"), _photo(11, 11))
    jpeg = cv2.imencode(".jpg", _photo(96, 96))[1].tobytes()
    (folder / "corrupt.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("this is not a picture\n")
    (folder / "huge.png").write_bytes(_png_declaring(30000, 30000))
    (folder / "readme.txt").write_text("ignored: not an image extension\n")
    return folder


def _all_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_folder_run_then_rerun(inputs: Path, tiny_model_file: Path, capsys: pytest.CaptureFixture) -> None:
    out = inputs.parent / "out"
    argv = ["upscale", str(inputs), str(out), "--model", str(tiny_model_file), "--recursive", "--device", "cpu",
            "--tile", "16", "--tile-overlap", "4"]
    assert main(argv) == 1  # some files failed
    stdout, stderr = capsys.readouterr()
    assert f"done {len(GOOD)}, skipped 0 (already there), failed {len(BAD)}" in stdout
    for name, reason in BAD.items():
        assert f"failed: {name}: {reason}" in stdout
    assert "img/s" in stderr or "s/img" in stderr  # the progress bar
    assert "HAT x2" in stderr

    assert _all_files(out) == set(GOOD)  # nothing for bad files, no temporary files
    for name, (height, width, channels, dtype) in GOOD.items():
        written = cv2.imdecode(np.fromfile(str(out / name), np.uint8), cv2.IMREAD_UNCHANGED)
        shape = (height, width) if channels is None else (height, width, channels)
        assert (written.shape, written.dtype) == (shape, dtype), name
    alpha = cv2.imread(str(out / "logo.png"), cv2.IMREAD_UNCHANGED)[:, :, 3].astype(np.float32)
    expected = cv2.resize(np.tile(np.linspace(0, 255, 20, dtype=np.uint8), (16, 1)).astype(np.float32) / 255,
                          (40, 32), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255
    assert np.abs(alpha - expected).max() <= 1.0  # alpha: bicubic

    stamps = {name: (out / name).stat().st_mtime_ns for name in GOOD}
    assert main(argv) == 1
    stdout, _ = capsys.readouterr()
    assert f"done 0, skipped {len(GOOD)} (already there), failed {len(BAD)}" in stdout
    assert stamps == {name: (out / name).stat().st_mtime_ns for name in GOOD}


def test_single_file_and_usage_errors(inputs: Path, tiny_model_file: Path, capsys: pytest.CaptureFixture) -> None:
    target = inputs.parent / "single.tif"
    assert main(["upscale", str(inputs / "deep.png"), str(target), "--model", str(tiny_model_file), "--quiet"]) == 0
    assert cv2.imread(str(target), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    capsys.readouterr()
    assert main(["upscale", str(inputs), str(inputs.parent / "o"), "--model", str(inputs / "notes.png")]) == 2
    assert "notes.png: not a torch.save checkpoint" in capsys.readouterr().err
    assert main(["upscale", str(inputs / "nothing"), "o", "--model", str(tiny_model_file)]) == 2
    assert "nothing: no such file or folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["upscale", "a", "b", "--tile", "huge"])
    assert "expected a number of pixels or 'auto'" in capsys.readouterr().err


def test_help_documents_every_option(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    text = capsys.readouterr().out
    for option in ("--model", "--model-arg", "--tile", "--tile-overlap", "--device", "--precision", "--ext",
                   "--suffix", "--recursive", "--overwrite", "--max-pixels", "--quiet", "--scale", "--threads", "INPUT",
                   "OUTPUT"):
        assert option in text


def test_default_model_without_model_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cv2.imwrite(str(tmp_path / "photo.png"), _photo(24, 32))
    assert main(["upscale", str(tmp_path / "photo.png"), str(tmp_path / "out"), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert "HAT x4" in said and "restoregen_default_x4.safetensors" in said
    assert cv2.imread(str(tmp_path / "out" / "photo.png")).shape == (96, 128, 3)


def test_missing_default_model_is_a_clear_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    from restoregen.inference import bundled

    monkeypatch.setattr(bundled, "_weights_folder", lambda: tmp_path / "no_weights")
    assert main(["upscale", str(tmp_path), str(tmp_path / "o")]) == 2
    assert "--model restoregen-x4: this installation lacks its weights" in capsys.readouterr().err
