"""detect(): family and constructor kwargs from a state dict, for every reference config and released checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from restoregen.archs import UnknownArchitecture, build, detect, family_names, list_archs, network
from tests.reference_data import case_dirs, image_to_image_families, params, released_files

FAMILIES = image_to_image_families()
FIXTURES = [case for family in FAMILIES for case in case_dirs(family)]
RELEASED = [path for family in FAMILIES for path in released_files(family)]


def _meta_state_dict(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def _fixture_shapes(case: Path) -> dict[str, list[int]]:
    with safe_open(case / "weights.safetensors", "pt") as file:
        return {key: file.get_slice(key).get_shape() for key in file.keys()}  # noqa: SIM118 (safe_open is not iterable)


def _require_registered(arch: str) -> None:
    if arch not in list_archs():
        pytest.skip(f"{arch} is not registered yet (restoregen.archs.list_archs() = {list_archs()})")


def _assert_builds_same_state_dict(arch: str, kwargs: dict, shapes: dict[str, list[int]]) -> None:
    """The network built from the detected kwargs has exactly the checkpoint's keys and shapes."""
    _require_registered(arch)
    with torch.device("meta"):
        model = build(arch, **kwargs)
    built = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert built.keys() == shapes.keys()
    assert {k: v for k, v in built.items() if list(shapes[k]) != v} == {}


def _detect_fixture(case: Path) -> tuple[dict, dict[str, list[int]], str, dict]:
    config = json.loads((case / "config.json").read_text())
    shapes = _fixture_shapes(case)
    return config, shapes, *detect(_meta_state_dict(shapes))


@pytest.mark.parametrize("case", params(FIXTURES))
def test_fixture_config_detected(case: Path) -> None:
    config, _, arch, kwargs = _detect_fixture(case)
    assert arch == config["arch"]
    listed, unrecoverable = config["kwargs"], network(arch).unrecoverable
    assert set(listed) - set(kwargs) <= set(unrecoverable), "a listed kwarg is neither detected nor documented"
    recovered = {k: kwargs[k] for k in listed if k not in unrecoverable}
    assert recovered == {k: listed[k] for k in recovered}
    if arch == "DRCT":  # only the number of RDGs exists in the weights
        assert len(kwargs["depths"]) == len(listed["depths"])


@pytest.mark.parametrize("case", params(FIXTURES))
def test_fixture_config_builds(case: Path) -> None:
    config, shapes, arch, kwargs = _detect_fixture(case)
    overrides = {k: v for k, v in config["kwargs"].items() if k in network(arch).unrecoverable}
    _assert_builds_same_state_dict(arch, {**kwargs, **overrides}, shapes)


def _detect_released(path: Path) -> tuple[dict, dict[str, list[int]], str, dict]:
    listed = json.loads(path.read_text())
    shapes = {key: shape for key, shape in listed["state_dict"]}
    return listed, shapes, *detect(_meta_state_dict(shapes))


@pytest.mark.parametrize("path", params(RELEASED))
def test_released_checkpoint_detected(path: Path) -> None:
    """Every listed kwarg is recovered (the documented defaults are the released values)."""
    listed, _, arch, kwargs = _detect_released(path)
    assert arch == listed["arch"]
    assert {k: kwargs[k] for k in listed["kwargs"]} == listed["kwargs"]


def _one_per_architecture(paths: list[Path]) -> list[Path]:
    """Released checkpoints with distinct (arch, kwargs): re-training does not change the network."""
    seen: dict[str, Path] = {}
    for path in paths:
        listed = json.loads(path.read_text())
        seen.setdefault(json.dumps([listed["arch"], listed["kwargs"]], sort_keys=True), path)
    return list(seen.values())


@pytest.mark.parametrize("path", params(_one_per_architecture(RELEASED)))
def test_released_checkpoint_builds(path: Path) -> None:
    _, shapes, arch, kwargs = _detect_released(path)
    _assert_builds_same_state_dict(arch, kwargs, shapes)


HAT_VARIANTS = {  # non-default settings that change the weights
    "no_qkv_bias_identity": dict(qkv_bias=False, resi_connection="identity", patch_norm=False),
    "ape_x8": dict(ape=True, img_size=32, upscale=8),
    "odd_ratios": dict(embed_dim=30, mlp_ratio=1.5, compress_ratio=5, squeeze_factor=6, overlap_ratio=0.25,
                       window_size=8, num_heads=[3, 5], depths=[1, 3]),
    "gray": dict(in_chans=1, upscale=3),
}


@pytest.mark.parametrize("variant", HAT_VARIANTS, ids=str)
def test_hat_variants_round_trip(variant: str) -> None:
    kwargs = dict(embed_dim=24, depths=[2, 1], num_heads=[2, 3], window_size=4, upsampler="pixelshuffle", mlp_ratio=2,
                  squeeze_factor=8)
    kwargs.update(HAT_VARIANTS[variant])
    with torch.device("meta"):
        state_dict = build("HAT", **kwargs).state_dict()
    arch, detected = detect(state_dict)
    assert arch == "HAT"
    assert {k: detected[k] for k in kwargs} == kwargs
    _assert_builds_same_state_dict(arch, detected, {k: list(v.shape) for k, v in state_dict.items()})


def test_unknown_state_dict_is_refused() -> None:
    with pytest.raises(UnknownArchitecture, match=f"not a {family_names(None, ' or ')} state dict.*body.0.weight"):
        detect({"body.0.weight": torch.zeros(4, 3, 3, 3)})
    broken = {"layers.0.residual_group.overlap_attn.qkv.weight": torch.zeros(36, 12)}
    with pytest.raises(UnknownArchitecture, match="looks like HAT, but expected the key 'conv_first.weight'"):
        detect(broken)


def test_styleswin_generator_is_detected() -> None:
    kwargs = dict(size=16, style_dim=16, n_mlp=2, channels=[32, 32, 16])
    with torch.device("meta"):
        state_dict = build("StyleSwinGenerator", **kwargs).state_dict()
    arch, detected = detect(state_dict)
    assert arch == "StyleSwinGenerator"
    assert {k: detected[k] for k in kwargs} == kwargs
    _assert_builds_same_state_dict(arch, detected, {k: list(v.shape) for k, v in state_dict.items()})
