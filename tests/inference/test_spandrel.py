"""Architectures restoregen does not implement, built by spandrel after restoregen's safe reader:
12 tiny models in four containers each go through `restoregen upscale` and match spandrel's own
whole-image call within 1/255, tile seams included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

spandrel = pytest.importorskip("spandrel")

from spandrel.architectures import DAT, ESRGAN, PLKSR, SPAN, Compact, NAFNet, OmniSR, SCUNet, Swin2SR, SwinIR  # noqa: E402

from restoregen.archs import family_names  # noqa: E402
from restoregen.checkpoints import CheckpointError  # noqa: E402
from restoregen.cli import main  # noqa: E402
from restoregen.inference.io import read_image, write_image  # noqa: E402
from restoregen.inference.loading import load_model  # noqa: E402


def _rrdbnet_new_layout() -> torch.nn.Module:
    """Real-ESRGAN's RRDBNet (conv_first/body/conv_body keys; x2 with pixel-unshuffle), basicsr's class."""
    from restoregen._compat import import_basicsr

    rrdb = import_basicsr("archs.rrdbnet_arch")
    return rrdb.RRDBNet(num_in_ch=3, num_out_ch=3, scale=2, num_feat=8, num_block=1, num_grow_ch=32)


# name -> (builder, expected spandrel architecture name, scale)
MODELS = {
    "esrgan_old": (lambda: ESRGAN.ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4), "ESRGAN", 4),
    "rrdbnet_new_x2": (_rrdbnet_new_layout, "ESRGAN", 2),
    "compact": (lambda: Compact.Compact(num_feat=8, num_conv=2, upscale=2), "RealESRGAN Compact", 2),
    "swinir": (lambda: SwinIR.SwinIR(embed_dim=12, depths=[2], num_heads=[2], window_size=4, mlp_ratio=2.0,
                                     upscale=2, upsampler="pixelshuffledirect"), "SwinIR", 2),
    "swin2sr": (lambda: Swin2SR.Swin2SR(embed_dim=12, depths=[2], num_heads=[2], window_size=4, mlp_ratio=2.0,
                                        upscale=2, upsampler="pixelshuffledirect"), "Swin2SR", 2),
    "dat": (lambda: DAT.DAT(embed_dim=16, split_size=[2, 4], depth=[2], num_heads=[2], expansion_factor=2.0,
                            upscale=2, upsampler="pixelshuffledirect"), "DAT", 2),
    "span": (lambda: SPAN.SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2), "SPAN", 2),
    "omnisr": (lambda: OmniSR.OmniSR(num_feat=8, block_num=1, window_size=4, res_num=1, up_scale=2), "OmniSR", 2),
    "realplksr": (lambda: PLKSR.RealPLKSR(dim=8, n_blocks=2, upscaling_factor=2, kernel_size=7, norm_groups=2),
                  "PLKSR", 2),
    "scunet": (lambda: SCUNet.SCUNet(config=[2, 2, 2, 2, 2, 2, 2], dim=64), "SCUNet", 1),
    "nafnet": (lambda: NAFNet.NAFNet(width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]),
               "NAFNet", 1),
    "esrgan_x1": (lambda: ESRGAN.ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=1), "ESRGAN", 1),
}
CONTAINERS = ("plain", "params_ema", "model_prefix", "safetensors")
# Receptive fields that span the whole input: OmniSR's grid attention mixes pixels a fraction of the
# image apart, SCUNet attends in 8-pixel windows at 1/8 resolution. No tiling reproduces their
# whole-image output, so they are compared untiled; every other network with seams.
WHOLE_IMAGE = {"omnisr", "scunet"}


def _random_model(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(sum(map(ord, name)))
    model = MODELS[name][0]().eval()
    with torch.no_grad():  # constant initial values (zero gates, unit norms) get noise: every path carries signal
        for parameter in model.parameters():
            if parameter.numel() > 1 and bool((parameter == parameter.flatten()[0]).all()):
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return model, {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _save(state_dict: dict[str, torch.Tensor], container: str, folder: Path) -> Path:
    if container == "safetensors":
        path = folder / "model.safetensors"
        save_file(state_dict, path)
        return path
    data = {"plain": state_dict, "params_ema": {"params_ema": state_dict, "iter": 3},
            "model_prefix": {f"model.{k}": v for k, v in state_dict.items()}}[container]
    path = folder / f"model_{container}.pth"
    torch.save(data, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_spandrel_architecture_upscales_like_spandrel(name: str, tmp_path: Path) -> None:
    _, state_dict = _random_model(name)
    reference = spandrel.ModelLoader().load_from_state_dict(state_dict).eval()
    _, arch, scale = MODELS[name]
    assert (reference.architecture.name, reference.scale) == (arch, scale)

    paths = [_save(state_dict, container, tmp_path) for container in CONTAINERS]
    for path in paths:  # every container: the same network, built by spandrel from restoregen's reader
        model, info = load_model(path)
        assert (info.arch, info.scale, info.implementation) == (arch, scale, "spandrel")
        assert info.subtype == ", ".join(reference.tags)
        loaded = model.net.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in reference.model.state_dict().items())

    multiple = max(reference.size_requirements.multiple_of, 1)
    tile = max(32, 2 * multiple)
    height, width = tile + tile // 2 + 3, 2 * tile + 5  # several tiles, sides off the multiple
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8).astype(np.float32) / 255
    (tmp_path / "in").mkdir()
    from restoregen.inference.io import ImageData

    write_image(tmp_path / "in" / "noise.png", ImageData(pixels, None, 8))
    with torch.inference_mode():
        expected = reference(torch.from_numpy(pixels).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert expected.std() > 0.02  # not saturated: the comparison means something

    path = paths[list(MODELS).index(name) % len(paths)]  # each container goes through the command 3 times
    code = main(["upscale", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(path), "--device", "cpu",
                 "--tile", str(0 if name in WHOLE_IMAGE else tile), "--tile-overlap", str(max(16, multiple)),
                 "--quiet"])
    assert code == 0
    out = read_image(tmp_path / "out" / "noise.png").pixels
    assert out.shape == (height * scale, width * scale, 3)
    difference = np.abs(np.round(out * 255) - np.round(expected * 255)).max()
    assert difference <= 1, f"{name}: {difference}/255 from spandrel's whole-image output"


def test_old_esrgan_keys_reach_spandrel_as_stored(tmp_path: Path) -> None:
    """`model.0.weight` is the key old ESRGAN files use; the `model.` is not stripped before spandrel."""
    _, state_dict = _random_model("esrgan_old")
    assert "model.0.weight" in state_dict
    torch.save(state_dict, tmp_path / "old.pth")
    _, info = load_model(tmp_path / "old.pth")
    assert (info.arch, info.implementation, info.subtype) == ("ESRGAN", "spandrel", "8nf, 1nb")


def test_unknown_file_names_keys_as_stored(tmp_path: Path) -> None:
    torch.save({"params_ema": {"model.mystery.weight": torch.zeros(4, 3), "model.other.bias": torch.zeros(2)}},
               tmp_path / "odd.pth")
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "odd.pth")
    message = str(error.value)
    assert f"odd.pth: not an architecture that restoregen ({family_names()}) or spandrel" in message
    assert "2 tensors, 14 values; keys as stored: model.mystery.weight [4, 3], model.other.bias [2]" in message


def test_spandrel_switched_off_says_what_it_would_be(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, state_dict = _random_model("compact")
    save_file(state_dict, tmp_path / "compact.safetensors")
    with pytest.raises(CheckpointError, match="spandrel .* recognises this as RealESRGAN Compact, but building "
                       "networks through spandrel is switched off"):
        load_model(tmp_path / "compact.safetensors", allow_spandrel=False)
    monkeypatch.setenv("RESTOREGEN_SPANDREL", "0")
    with pytest.raises(CheckpointError, match="switched off"):
        load_model(tmp_path / "compact.safetensors")


def test_spandrel_missing_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import restoregen.inference.foreign as foreign

    _, state_dict = _random_model("compact")
    save_file(state_dict, tmp_path / "compact.safetensors")
    monkeypatch.setattr(foreign, "spandrel_version", lambda: None)
    with pytest.raises(CheckpointError, match=r"load through spandrel, which is not installed \(pip install spandrel\)"
                       r"; the file holds \d+ tensors"):
        load_model(tmp_path / "compact.safetensors")


def test_precision_policy_follows_the_descriptor(tmp_path: Path) -> None:
    from restoregen.inference.tiling import Upscaler

    _, state_dict = _random_model("dat")  # spandrel: DAT does not support float16
    save_file(state_dict, tmp_path / "dat.safetensors")
    model, info = load_model(tmp_path / "dat.safetensors")
    assert torch.float16 in info.refused and torch.float16 not in info.dtypes
    with pytest.raises(ValueError, match="does not support float16"):
        Upscaler(model, info, precision="fp16")
    assert Upscaler(model, info, precision="auto").dtype == torch.float32  # on the CPU
    code = main(["upscale", str(tmp_path), str(tmp_path / "out"), "--model", str(tmp_path / "dat.safetensors"),
                 "--precision", "fp16", "--device", "cpu", "--quiet"])
    assert code == 2


def test_overrides_are_refused_for_spandrel_models(tmp_path: Path) -> None:
    _, state_dict = _random_model("span")
    save_file(state_dict, tmp_path / "span.safetensors")
    with pytest.raises(CheckpointError, match="built by spandrel from the weights alone"):
        load_model(tmp_path / "span.safetensors", img_range=255.0)


def test_alpha_16_bit_and_gray_through_a_spandrel_model(tmp_path: Path) -> None:
    from restoregen.inference.io import ImageData

    _, state_dict = _random_model("compact")
    save_file(state_dict, tmp_path / "compact.safetensors")
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "rgba16.png",
                ImageData(rng.random((20, 24, 3), dtype=np.float32), rng.random((20, 24), dtype=np.float32), 16))
    write_image(tmp_path / "in" / "gray.png", ImageData(rng.random((18, 22, 1), dtype=np.float32), None, 8))
    assert main(["upscale", str(tmp_path / "in"), str(tmp_path / "out"), "--model",
                 str(tmp_path / "compact.safetensors"), "--device", "cpu", "--quiet"]) == 0
    rgba, gray = read_image(tmp_path / "out" / "rgba16.png"), read_image(tmp_path / "out" / "gray.png")
    assert rgba.pixels.shape == (40, 48, 3) and rgba.alpha.shape == (40, 48) and rgba.bit_depth == 16
    assert gray.pixels.shape == (36, 44, 1) and gray.alpha is None
