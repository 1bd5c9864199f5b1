import pytest
import torch

from restoregen.archs import build
from restoregen.attention import available_backends
from tests.archs.sr_checks import (
    assert_backend_matches_math,
    assert_checkpointing_keeps_gradients,
    assert_fixture_parity,
    assert_released_layout,
    case_fixture,
    tiny_model,
)
from tests.reference_data import params, released_files

HAT_RELEASED = released_files("hat")
hat_case = case_fixture("hat", "HAT")


def test_fresh_buffers_equal_the_official_ones(hat_case):
    config, weights, _ = hat_case
    model = build("HAT", **config["kwargs"])
    for name in ("relative_position_index_SA", "relative_position_index_OCA"):
        assert torch.equal(model.state_dict()[name], weights[name]), name


@pytest.mark.parametrize("backend", available_backends())
def test_fixture_parity(hat_case, backend):
    assert_fixture_parity(hat_case, backend)


@pytest.mark.parametrize("path", params(HAT_RELEASED))
def test_released_state_dict_layout(path):
    assert_released_layout("HAT", path)


TINY_HAT = dict(upscale=2, in_chans=3, img_size=16, window_size=4, compress_ratio=3, squeeze_factor=4, conv_scale=0.01,
                overlap_ratio=0.5, img_range=1.0, depths=[2], embed_dim=60, num_heads=[2], mlp_ratio=2,
                upsampler="pixelshuffle", resi_connection="1conv", drop_path_rate=0.0)


def _tiny_hat(**overrides):
    return tiny_model("HAT", TINY_HAT, **overrides)


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "math"])
def test_backends_agree_on_padded_input_forward_and_backward(backend):
    model = _tiny_hat()  # head size 30, shifted and unshifted blocks, OCAB
    out = assert_backend_matches_math(model, torch.rand(1, 3, 9, 11), backend)
    assert out.shape == (1, 3, 18, 22)


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (4, 4), (5, 13)])
def test_any_input_size(size):
    model = _tiny_hat(embed_dim=12, num_heads=[2], upscale=3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, size[0] * 3, size[1] * 3)
    assert torch.isfinite(out).all()


def test_padding_matches_official_pad_then_crop():
    model = _tiny_hat(embed_dim=12).eval()
    x = torch.rand(1, 3, 6, 7)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 2), mode="reflect")
    with torch.no_grad():
        assert torch.equal(model(x), model(padded)[..., :12, :14])


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="upsampler"):
        _tiny_hat(upsampler="pixelshuffledirect")
    with pytest.raises(ValueError, match="depths"):
        _tiny_hat(depths=[2, 2])
    with pytest.raises(ValueError, match="upscale 5"):
        _tiny_hat(upscale=5)
    with pytest.raises(TypeError, match="HAT.*windowsize"):
        build("HAT", windowsize=8)
    with pytest.raises(KeyError, match="unknown architecture 'HATT'"):
        build("HATT")


def test_gradient_checkpointing_gives_the_same_gradients():
    assert_checkpointing_keeps_gradients(_tiny_hat(embed_dim=12), _tiny_hat(embed_dim=12, use_checkpoint=True),
                                         torch.rand(1, 3, 8, 8))


def test_registered_in_basicsr():
    from restoregen._compat import import_basicsr
    from restoregen.archs.hat import HAT

    registry = import_basicsr("utils.registry").ARCH_REGISTRY
    assert registry.get("HAT") is HAT
