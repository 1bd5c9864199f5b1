"""`restoregen export` (ONNX checked in onnxruntime, self-describing safetensors), ONNX files through
`restoregen upscale`, `restoregen info --model`, code-carrying pickles on these paths, and
`import restoregen, basicsr`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from restoregen.archs import build
from restoregen.cli import main
from restoregen.inference.loading import default_model_path, load_model

onnxruntime = pytest.importorskip("onnxruntime")

TINY = {
    "HAT": dict(upscale=2, in_chans=3, img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4,
                compress_ratio=3, squeeze_factor=4, mlp_ratio=1, upsampler="pixelshuffle"),
    "DRCT": dict(upscale=2, in_chans=3, img_size=8, window_size=4, depths=[2], embed_dim=12, num_heads=[2], gc=4,
                 mlp_ratio=2, upsampler="pixelshuffle", resi_connection="1conv"),
    "DLGSANet": dict(upscale=2, in_chans=3, dim=12, groups=1, blocks=1, window_size=3, idynamic_num_heads=3,
                     restormer_num_heads=2, tlc_flag=True, tlc_kernel=8, upsampler="pixelshuffledirect"),
}


def _tiny_file(arch: str, folder: Path) -> Path:
    torch.manual_seed(0)
    model = build(arch, **TINY[arch])
    path = folder / f"tiny_{arch.lower()}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path


def _check_onnx_against_pytorch(model_file: Path | str, onnx_file: Path) -> dict[str, str]:
    model, info = load_model(model_file)
    graph, graph_info = load_model(onnx_file)
    assert graph_info.implementation == "onnxruntime" and info.implementation == "restoregen"
    assert (graph_info.arch, graph_info.scale) == (info.arch, info.scale)
    meta = graph_info.kwargs["onnx_metadata"]
    assert meta["opset"] == "18" and meta["format"] == "restoregen"
    multiple = info.size_multiple
    sizes = [(5 * multiple, 6 * multiple), (3 * multiple + 1, 4 * multiple + 3)]  # the second off the multiple
    if meta["fixed_size"] != "0":
        side = int(meta["fixed_size"])
        sizes = [(side, side), (side - 3, side - 1)]
    generator = torch.Generator().manual_seed(1)
    for height, width in sizes:
        x = torch.rand(1, 3, height, width, generator=generator)
        with torch.inference_mode():
            expected, got = model(x), graph(x)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= 1e-4, (height, width)
    return meta


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(TINY))
def test_onnx_export_matches_pytorch(arch: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model_file = _tiny_file(arch, tmp_path)
    assert main(["info", "--model", str(model_file)]) == 0
    assert "implementation restoregen (restoregen.archs." in capsys.readouterr().out  # still restoregen's own
    out = tmp_path / f"{arch}.onnx"
    assert main(["export", "--model", str(model_file), "--format", "onnx", str(out), "--tile", "32"]) == 0
    printed = capsys.readouterr().out
    assert "ONNX opset 18, float32" in printed
    meta = _check_onnx_against_pytorch(model_file, out)
    if meta["dynamic"] != "batch,height,width":
        assert f"takes {meta['fixed_size']}x{meta['fixed_size']} inputs only" in printed


@pytest.mark.slow
def test_bundled_model_exports_to_onnx(tmp_path: Path) -> None:
    bundled = default_model_path()
    if bundled is None:
        pytest.skip("this installation lacks the bundled model")
    out = tmp_path / "bundled.onnx"
    assert main(["export", "--model", str(bundled), str(out)]) == 0  # format from the extension
    meta = _check_onnx_against_pytorch(bundled, out)
    assert meta["dynamic"] == "batch,height,width"


@pytest.mark.slow
def test_onnx_file_upscales_a_folder_like_pytorch(tmp_path: Path) -> None:
    from restoregen.inference.io import ImageData, read_image, write_image

    model_file = _tiny_file("HAT", tmp_path)
    assert main(["export", "--model", str(model_file), str(tmp_path / "hat.onnx")]) == 0
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", ImageData(rng.random((45, 70, 3), dtype=np.float32), None, 8))
    for name, model in (("torch", model_file), ("onnx", tmp_path / "hat.onnx")):
        assert main(["upscale", str(tmp_path / "in"), str(tmp_path / name), "--model", str(model), "--device", "cpu",
                     "--tile", "32", "--tile-overlap", "16", "--quiet"]) == 0
    a, b = (read_image(tmp_path / name / "a.png").pixels for name in ("torch", "onnx"))
    assert a.shape == b.shape == (90, 140, 3)
    assert np.abs(np.round(a * 255) - np.round(b * 255)).max() <= 1


@pytest.mark.slow
def test_half_onnx_where_supported(tmp_path: Path) -> None:
    spandrel = pytest.importorskip("spandrel")
    from spandrel.architectures import DAT, ESRGAN

    torch.manual_seed(0)
    save_file(ESRGAN.ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2).state_dict(),
              tmp_path / "esrgan.safetensors")
    assert main(["export", "--model", str(tmp_path / "esrgan.safetensors"), "--half", str(tmp_path / "e.onnx")]) == 0
    graph, info = load_model(tmp_path / "e.onnx")
    assert "float16" in info.subtype and info.kwargs["onnx_metadata"]["implementation"] == "spandrel"
    model, _ = load_model(tmp_path / "esrgan.safetensors")
    x = torch.rand(1, 3, 20, 24)
    with torch.inference_mode():
        assert (graph(x) - model(x)).abs().max().item() < 2e-2
    dat = DAT.DAT(embed_dim=16, split_size=[2, 4], depth=[2], num_heads=[2], upscale=2, upsampler="pixelshuffledirect")
    save_file({k: v.contiguous() for k, v in dat.state_dict().items()}, tmp_path / "dat.safetensors")
    assert main(["export", "--model", str(tmp_path / "dat.safetensors"), "--half", str(tmp_path / "d.onnx")]) == 2
    assert spandrel is not None


def test_safetensors_export_is_self_describing(tmp_path: Path) -> None:
    from safetensors import safe_open

    from restoregen.train.export import load_exported

    model_file = _tiny_file("HAT", tmp_path)
    torch.save({"params_ema": {f"module.{k}": v for k, v in load_model(model_file)[0].state_dict().items()}},
               tmp_path / "wrapped.pth")
    out = tmp_path / "hat_export.safetensors"
    assert main(["export", "--model", str(tmp_path / "wrapped.pth"), "--model-arg", "img_range=255.", str(out)]) == 0
    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["format"] == "restoregen" and meta["arch"] == "HAT" and meta["scale"] == "2"
    assert json.loads(meta["kwargs"])["img_range"] == 255.0  # the override travels with the file
    net, _ = load_exported(out)
    _, info = load_model(out)  # read back from the metadata, not re-detected
    assert info.kwargs["img_range"] == 255.0 and type(net).__name__ == "HAT"


class _WritesMarker:
    """Unpickling this object creates a file: stands for arbitrary code in a downloaded checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_code_carrying_pickle_is_refused_on_spandrel_and_export_paths(tmp_path: Path, capsys) -> None:
    spandrel = pytest.importorskip("spandrel")
    from spandrel.architectures import Compact

    marker = tmp_path / "code_ran"
    state = Compact.Compact(num_feat=8, num_conv=2, upscale=2).state_dict()  # a spandrel-only architecture
    torch.save({"params_ema": state, "payload": _WritesMarker(marker)}, tmp_path / "evil.pth")
    (tmp_path / "in").mkdir()
    commands = [["info", "--model", str(tmp_path / "evil.pth")],
                ["export", "--model", str(tmp_path / "evil.pth"), str(tmp_path / "x.onnx")],
                ["export", "--model", str(tmp_path / "evil.pth"), str(tmp_path / "x.safetensors")],
                ["upscale", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(tmp_path / "evil.pth")]]
    for command in commands:
        assert main(command) == 2
        assert "refused: its pickle would call" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "x.onnx").exists() and spandrel is not None


@pytest.mark.slow
def test_import_restoregen_then_basicsr_works() -> None:
    code = ("import sys, restoregen; assert 'torch' not in sys.modules, 'import restoregen stays cheap'; "
            "import basicsr; from basicsr.data.degradations import rgb_to_grayscale; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_spandrel_model_round_trips_through_safetensors_export(tmp_path: Path) -> None:
    spandrel = pytest.importorskip("spandrel")
    from safetensors import safe_open
    from spandrel.architectures import ESRGAN

    torch.manual_seed(0)
    state = ESRGAN.ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2).state_dict()
    torch.save({f"model.{k}": v for k, v in state.items()}, tmp_path / "old_esrgan.pth")
    out = tmp_path / "esrgan.safetensors"
    assert main(["export", "--model", str(tmp_path / "old_esrgan.pth"), str(out)]) == 0
    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
    assert (meta["format"], meta["arch"], meta["implementation"], meta["scale"]) == ("restoregen", "ESRGAN",
                                                                                   "spandrel", "2")
    original, _ = load_model(tmp_path / "old_esrgan.pth")
    exported, info = load_model(out)
    assert info.implementation == "spandrel" and spandrel is not None
    x = torch.rand(1, 3, 12, 10)
    with torch.inference_mode():
        assert torch.equal(original(x), exported(x))
