"""StyleSwin generator / discriminator: parity with the official fixtures, released layouts,
truncation and style mixing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from restoregen.archs import build
from restoregen.archs.styleswin import (
    StyleBasicLayer,
    StyleSwinGenerator,
    infer_generator_kwargs,
    official_generator_channels,
    official_training_kwargs,
)
from restoregen.attention import attention_backend, available_backends

ATOL = 1e-6  # reference README, StyleSwin


def _find_reference_dir() -> Path | None:
    # replaceable by the lead's ``reference_dir`` fixture: the repo's ../shared/reference
    # (../../shared/reference from a worktree under wt/), or $RESTOREGEN_REFERENCE
    root = Path(__file__).resolve().parents[2]
    candidates = [os.environ.get("RESTOREGEN_REFERENCE"), root / ".." / "shared" / "reference",
                  root / ".." / ".." / "shared" / "reference"]
    return next((Path(c) for c in candidates if c and (Path(c) / "styleswin").is_dir()), None)


@pytest.fixture(scope="module")
def styleswin_dir() -> Path:
    reference = _find_reference_dir()
    if reference is None:
        pytest.skip("reference fixtures (../shared/reference) not found")
    return reference / "styleswin"


def _case(root: Path, name: str):
    config = json.loads((root / name / "config.json").read_text())
    weights = {k: v.clone() for k, v in load_file(root / name / "weights.safetensors").items()}
    io = {k: v.clone() for k, v in load_file(root / name / "io.safetensors").items()}
    return config, weights, io


def _generator_from(config: dict) -> StyleSwinGenerator:
    return build("StyleSwinGenerator", **config["kwargs"], channels=config["overrides"]["in_channels"])


def _discriminator_from(config: dict):
    return build("StyleSwinDiscriminator", **config["kwargs"], channels=config["overrides"]["channels"])


def _assert_close(got: torch.Tensor, ref: torch.Tensor, name: str) -> None:
    assert got.shape == ref.shape, name
    err = (got - ref).abs().max().item()
    assert err <= ATOL, f"{name}: max abs error {err:.3g} > {ATOL}"


def _record(module: torch.nn.Module, store: dict, key: str) -> None:
    module.register_forward_hook(lambda _m, _args, out: store.__setitem__(key, out))


BACKENDS = [b for b in ("math", "sdpa") if b in available_backends()]


# --------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("backend", BACKENDS)
def test_generator_matches_official(styleswin_dir, backend):
    config, weights, io = _case(styleswin_dir, "g32_mini_fullres8")
    g = _generator_from(config).eval()
    g.load_state_dict(weights, strict=True)
    assert g.n_latent == config["n_latent"]
    seen: dict = {}
    _record(g.style, seen, "inter_styles_w")
    for i, (layer, to_rgb) in enumerate(zip(g.layers, g.to_rgbs, strict=True)):
        _record(layer, seen, f"inter_stage{i}_layer_out")
        _record(to_rgb, seen, f"inter_stage{i}_rgb_skip")
    with torch.no_grad(), attention_backend(backend):
        image, latent = g(io["in_z"], return_latents=True)
    _assert_close(image, io["out_image"], "out_image")
    _assert_close(latent, io["out_latent"], "out_latent")
    inter = [k for k in io if k.startswith("inter_")]
    assert len(inter) == 8
    for key in inter:
        _assert_close(seen[key], io[key], key)


def test_discriminator_matches_official(styleswin_dir):
    config, weights, io = _case(styleswin_dir, "d32_mini_nosn")
    d = _discriminator_from(config).eval()
    d.load_state_dict(weights, strict=True)
    assert sum(p.numel() for p in d.parameters()) == config["num_params"]
    with torch.no_grad():
        _assert_close(d(io["in_fake_images"]), io["out_logits_fake"], "fake")
        for batch in (2, 8):  # batch 8: minibatch-stddev groups of 4, strided
            _assert_close(d(io[f"in_random_images_b{batch}"]), io[f"out_logits_random_b{batch}"], f"b{batch}")
        _assert_close(d.dwt(io["in_random_images_b2"]), io["inter_dwt_random_images_b2"], "dwt")


@pytest.mark.parametrize("backend", BACKENDS + (["flex"] if "flex" in available_backends() else []))
def test_basic_layer_matches_official(styleswin_dir, backend):
    config, weights, io = _case(styleswin_dir, "basiclayer_r16_w8_shift4_up")
    layer = StyleBasicLayer(**config["kwargs"]).eval()
    layer.load_state_dict(weights, strict=True)
    assert (layer.blocks[0].window_size, layer.blocks[0].shift_size) == (8, 4)
    seen: dict = {}
    for i, block in enumerate(layer.blocks):
        _record(block, seen, f"inter_block{i}_out")
    with torch.no_grad(), attention_backend(backend):
        out = layer(io["in_x"], io["in_latent1"], io["in_latent2"])
    _assert_close(out, io["out_x"], "out_x")
    for key in ("inter_block0_out", "inter_block1_out"):  # blocks work on (B, H, W, C) maps
        _assert_close(seen[key].flatten(1, 2), io[key], key)


def test_fresh_buffers_equal_official(styleswin_dir):
    """A real (non-meta) build creates the official buffer values: relative-position indices,
    shifted-window masks, FIR and Haar kernels."""
    for name, make in (("g32_mini_fullres8", _generator_from), ("d32_mini_nosn", _discriminator_from)):
        config, weights, _ = _case(styleswin_dir, name)
        buffers = dict(make(config).named_buffers())
        reference = {k: v for k, v in weights.items() if k in buffers}
        assert reference, name
        assert set(reference) == set(buffers), name
        for key, value in reference.items():
            assert buffers[key].dtype == value.dtype, key
            assert torch.equal(buffers[key], value), key
        assert any("attn_mask2" in k for k in reference) or name.startswith("d")


# --------------------------------------------------------------------------------------------- released layouts


def _released(root: Path) -> list[Path]:
    return sorted((root / "released").glob("*.json"))


def test_every_released_layout_matches(styleswin_dir):
    files = _released(styleswin_dir)
    assert len(files) == 10
    for file in files:
        ref = json.loads(file.read_text())
        name = {"Generator": "StyleSwinGenerator", "Discriminator": "StyleSwinDiscriminator"}[ref["arch"]]
        with torch.device("meta"):
            model = build(name, **ref["kwargs"])
        state = model.state_dict()
        assert [[k, list(v.shape)] for k, v in state.items()] == ref["state_dict"], file.name
        assert len(state) == ref["num_state_dict_keys"], file.name
        assert sum(p.numel() for p in model.parameters()) == ref["num_params"], file.name
        assert sum(v.numel() for v in state.values()) == ref["state_dict_numel_total"], file.name
        assert {k: str(v.dtype) for k, v in state.items() if v.dtype != torch.float32} == ref["non_float32_keys"]
        if name == "StyleSwinGenerator":
            assert model.n_latent == ref["n_latent"], file.name
            expected = {k: ref["kwargs"][k] for k in ("size", "style_dim", "n_mlp", "channel_multiplier",
                                                      "enable_full_resolution")}
            assert infer_generator_kwargs(state) == {**expected, "mlp_ratio": 4, "qkv_bias": True}, file.name
        else:
            with torch.device("meta"):
                plain = build(name, **{**ref["kwargs"], "sn": False})
            assert sum(p.numel() for p in plain.parameters()) == ref["sn_false_variant"]["num_params"]
            assert len(plain.state_dict()) == ref["sn_false_variant"]["num_state_dict_keys"]


def test_official_training_args_give_the_released_kwargs(styleswin_dir):
    """The argparse fields of an official checkpoint map to the constructor kwargs it was built with."""
    for stem, cm in (("FFHQ_256", 2), ("FFHQ_1024", 1)):
        g_ref = json.loads((styleswin_dir / "released" / f"{stem}_G.json").read_text())["kwargs"]
        d_ref = json.loads((styleswin_dir / "released" / f"{stem}_D.json").read_text())["kwargs"]
        args = dict(size=g_ref["size"], style_dim=512, n_mlp=8, G_channel_multiplier=cm, D_channel_multiplier=2,
                    lr_mlp=0.01, enable_full_resolution=8, use_checkpoint=False, D_sn=True, bcr=True, r1=10.0)
        assert official_training_kwargs(args) == (g_ref, d_ref)


def test_infer_kwargs_of_a_custom_table(styleswin_dir):
    config, weights, _ = _case(styleswin_dir, "g32_mini_fullres8")
    kwargs = infer_generator_kwargs(weights)
    assert kwargs["channels"] == config["overrides"]["in_channels"][:4]
    assert (kwargs["size"], kwargs["style_dim"], kwargs["n_mlp"]) == (32, 16, 2)
    StyleSwinGenerator(**kwargs).load_state_dict(weights, strict=True)


# --------------------------------------------------------------------------------------------- latents


@pytest.fixture(scope="module")
def tiny_generator() -> StyleSwinGenerator:
    torch.manual_seed(0)
    g = StyleSwinGenerator(size=16, style_dim=16, n_mlp=2, channels=[32, 32, 16]).eval()
    with torch.no_grad():  # make the styles matter: the official init leaves them nearly inactive
        for p in g.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return g


def test_truncation(tiny_generator):
    g = tiny_generator
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain, w = g(z, return_latents=True)
        same, _ = g(z, truncation=1.0)
        assert torch.equal(plain, same)
        centre = g.mean_latent()
        assert centre.shape == (1, 16) and torch.equal(centre, g.mean_latent())  # fixed seed
        half, w_half = g(z, return_latents=True, truncation=0.5)  # crashes in the official forward
        torch.testing.assert_close(w_half, centre + 0.5 * (w - centre))
        assert not torch.allclose(half, plain)
        zero, _ = g(z, truncation=0.0, truncation_latent=centre)
        mean_image, _ = g(centre, input_is_latent=True)
        torch.testing.assert_close(zero, mean_image.expand_as(zero))
        # an explicit truncation latent is used as given
        other = torch.randn(1, 16)
        _, w_other = g(z, return_latents=True, truncation=0.0, truncation_latent=other)
        torch.testing.assert_close(w_other, other.expand(3, g.n_latent, 16))


def test_style_mixing_and_wplus(tiny_generator):
    g = tiny_generator
    gen = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(2, 16, generator=gen), torch.randn(2, 16, generator=gen)
    with torch.no_grad():
        w1, w2 = g.style(z1), g.style(z2)
        mixed, latent = g([z1, z2], inject_index=3, return_latents=True)
        assert latent.shape == (2, g.n_latent, 16)
        torch.testing.assert_close(latent[:, :3], w1[:, None].expand(2, 3, 16))
        torch.testing.assert_close(latent[:, 3:], w2[:, None].expand(2, g.n_latent - 3, 16))
        torch.testing.assert_close(g(latent, input_is_latent=True)[0], mixed)  # W+ input
        torch.testing.assert_close(g.synthesis(latent), mixed)
        single, _ = g(z1)
        assert not torch.allclose(mixed, single)
        torch.testing.assert_close(g(w1, input_is_latent=True)[0], single)  # W input
        _, random_mix = g([z1, z2], return_latents=True)  # random crossover in [1, n_latent)
        first_w2 = [i for i in range(g.n_latent) if torch.allclose(random_mix[0, i], w2[0])]
        assert first_w2 and 1 <= first_w2[0] < g.n_latent
        with pytest.raises(ValueError, match="W\\+ latents"):
            g(torch.randn(2, g.n_latent + 1, 16), input_is_latent=True)


def test_gradients_for_training():
    """G backward, D backward with spectral norm, and the double backward of the R1 penalty."""
    torch.manual_seed(0)
    g = build("StyleSwinGenerator", size=16, style_dim=16, n_mlp=1, channels=[32, 32, 16])
    d = build("StyleSwinDiscriminator", size=16, channels={4: 32, 8: 32, 16: 16}, sn=True)
    fake, _ = g(torch.randn(4, 16))
    d(fake).sum().backward()
    assert all(p.grad is not None for p in g.parameters() if p.requires_grad)
    real = torch.randn(4, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(d(real).sum(), real, create_graph=True)
    d.zero_grad()
    grad.pow(2).sum().backward()
    assert d.final_linear[0].weight_orig.grad.abs().sum() > 0


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="channels needs 4 entries"):
        StyleSwinGenerator(size=32, style_dim=16, n_mlp=1, channels=[32, 32])
    with pytest.raises(ValueError, match="power of two"):
        StyleSwinGenerator(size=48, style_dim=16, n_mlp=1)
    with pytest.raises(TypeError, match="StyleSwinGenerator"):
        build("StyleSwinGenerator", size=16, style_dim=16, n_mlp=1, no_such_option=1)
    d = build("StyleSwinDiscriminator", size=16, channels={4: 16, 8: 16, 16: 16})
    with pytest.raises(ValueError, match="not divisible"):
        d(torch.randn(6, 3, 16, 16))
    assert official_generator_channels(1)[-1] == 16


def test_option_files_build_the_released_networks(styleswin_dir):
    """options/train/StyleSwin/*.yml reproduce the official recipes' networks."""
    import yaml

    folder = Path(__file__).resolve().parents[2] / "options" / "train" / "StyleSwin"
    files = sorted(f for f in folder.glob("train_*.yml") if f.stem != "train_StyleSwin_demo_32")  # the demo is ours
    assert len(files) == 5
    for file in files:
        options = yaml.safe_load(file.read_text())
        stem = file.stem.removeprefix("train_StyleSwin_")
        for section, suffix in (("network_g", "G"), ("network_d", "D")):
            ref = json.loads((styleswin_dir / "released" / f"{stem}_{suffix}.json").read_text())
            kwargs = dict(options[section])
            with torch.device("meta"):
                model = build(kwargs.pop("type"), **kwargs)
            assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == ref["state_dict"], file.name


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", available_backends())
def test_fixtures_on_cuda(styleswin_dir, backend, monkeypatch):
    """The pure-PyTorch ops and every attention backend on the GPU (fp32 without TF32: 1e-5; bf16: finite)."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    g_config, g_weights, g_io = _case(styleswin_dir, "g32_mini_fullres8")
    d_config, d_weights, d_io = _case(styleswin_dir, "d32_mini_nosn")
    g, d = _generator_from(g_config).cuda().eval(), _discriminator_from(d_config).cuda().eval()
    g.load_state_dict(g_weights)
    d.load_state_dict(d_weights)
    with torch.no_grad(), attention_backend(backend):
        image, _ = g(g_io["in_z"].cuda())
        torch.testing.assert_close(image.cpu(), g_io["out_image"], atol=1e-5, rtol=0)
        logits = d(d_io["in_random_images_b8"].cuda())
        torch.testing.assert_close(logits.cpu(), d_io["out_logits_random_b8"], atol=1e-5, rtol=0)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            image, _ = g(g_io["in_z"].cuda())
        assert torch.isfinite(image).all()
