import pytest
import torch

from restoregen.archs import build
from restoregen.archs.blocks import SwinBlock
from restoregen.attention import attention_backend, available_backends
from tests.archs.sr_checks import (
    assert_backend_matches_math,
    assert_checkpointing_keeps_gradients,
    assert_fixture_parity,
    assert_released_layout,
    case_fixture,
    tiny_model,
)
from tests.reference_data import params, released_files

drct_case = case_fixture("drct", "DRCT")
DRCT_RELEASED = released_files("drct")


@pytest.mark.parametrize("backend", available_backends())
def test_fixture_parity(drct_case, backend):
    assert_fixture_parity(drct_case, backend)


def test_fresh_buffers_equal_the_official_ones(drct_case):
    config, weights, _ = drct_case
    model = build("DRCT", **config["kwargs"])
    buffers = dict(model.named_buffers())
    stored = [name for name in weights if name.endswith(("relative_position_index", "attn_mask"))]
    assert any(name.endswith("attn_mask") for name in stored)
    assert set(stored) == {name for name in buffers if name != "mean"}
    for name in stored:
        assert buffers[name].dtype == weights[name].dtype, name
        assert torch.equal(buffers[name], weights[name]), name


@pytest.mark.parametrize("path", params(DRCT_RELEASED))
def test_released_state_dict_layout(path):
    assert_released_layout("DRCT", path)


def test_official_head_counts_and_mlp_ratios():
    with torch.device("meta"):
        model = build("DRCT", upscale=4, img_size=64, window_size=16, depths=[6], embed_dim=180, num_heads=[6],
                      mlp_ratio=2, upsampler="pixelshuffle")
    blocks = [getattr(model.layers[0], f"swin{i}") for i in range(1, 6)]
    assert [b.attn.num_heads for b in blocks] == [6, 4, 2, 6, 4]
    assert [b.mlp.fc1.out_features // b.dim for b in blocks] == [2, 2, 2, 1, 1]
    assert [b.shift_size for b in blocks] == [0, 8, 0, 8, 0]


TINY_DRCT = dict(upscale=2, in_chans=3, img_size=8, window_size=4, img_range=1.0, depths=[2], embed_dim=12,
                 num_heads=[2], gc=4, mlp_ratio=2, upsampler="pixelshuffle", resi_connection="1conv",
                 drop_path_rate=0.0)


def _tiny_drct(**overrides):
    return tiny_model("DRCT", TINY_DRCT, **overrides)


def test_stored_mask_is_used_only_at_img_size():
    """Official rule: at img_size a shifted block uses its attn_mask buffer, at other sizes a fresh mask."""
    block = SwinBlock(8, 2, window_size=4, shift_size=2, store_index=True, mask_resolution=8).eval()
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()
        block.attn.qkv.weight.mul_(4)
    x_own, x_other = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 12, 8)
    with torch.no_grad():
        fast = block(x_own)  # the fast path derives the masks from the geometry: the same values
        with attention_backend("math"):  # the official data movement, with the stored buffer
            before = block(x_own), block(x_other)
            block.attn_mask.zero_()  # as if a checkpoint had stored no mask
            after = block(x_own), block(x_other)
    torch.testing.assert_close(fast, before[0], rtol=1e-5, atol=1e-6)
    assert (before[0] - after[0]).abs().max() > 1e-2
    assert torch.equal(before[1], after[1])


def test_small_img_size_shrinks_the_window_like_the_official_blocks():
    model = _tiny_drct(img_size=3, window_size=4)
    block = model.layers[0].swin2
    assert (block.window_size, block.shift_size) == (3, 0)
    assert not any(name.endswith("attn_mask") for name, _ in model.named_buffers())
    assert model.layers[0].swin1.attn.relative_position_bias_table.shape == (25, 2)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 5, 7)).shape == (1, 3, 10, 14)


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "math"])
def test_backends_agree_on_padded_input_forward_and_backward(backend):
    model = _tiny_drct()  # shifted blocks with a fresh mask (input size != img_size), several head counts
    out = assert_backend_matches_math(model, torch.rand(1, 3, 7, 10), backend)
    assert out.shape == (1, 3, 14, 20)


def test_padding_matches_official_pad_then_crop():
    model = _tiny_drct().eval()
    x = torch.rand(2, 3, 6, 7)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 2), mode="reflect")
    with torch.no_grad():
        assert torch.equal(model(x), model(padded)[..., :12, :14])


def test_gradient_checkpointing_gives_the_same_gradients():
    assert_checkpointing_keeps_gradients(_tiny_drct(), _tiny_drct(use_checkpoint=True), torch.rand(1, 3, 8, 8))


def test_absolute_position_embedding_fixes_the_input_size():
    model = _tiny_drct(ape=True).eval()
    assert model.absolute_pos_embed.shape == (1, 64, 12)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="ape=True needs inputs of 64 pixels"):
        model(torch.rand(1, 3, 4, 8))


@pytest.mark.parametrize("overrides, match", [
    (dict(upsampler="pixelshuffledirect"), "DRCT: upsampler 'pixelshuffledirect'"),
    (dict(depths=[2, 2]), "DRCT: depths"),
    (dict(embed_dim=24, num_heads=[6], gc=2), "swin2 has 26 channels"),
    (dict(resi_connection="3conv"), "DRCT: resi_connection '3conv'"),
])
def test_bad_arguments_name_the_problem(overrides, match):
    with pytest.raises(ValueError, match=match):
        _tiny_drct(**overrides)


def test_unknown_arguments_are_refused():
    with pytest.raises(TypeError, match="DRCT.*growth"):
        build("DRCT", growth=32)


def test_registered_in_basicsr():
    from restoregen._compat import import_basicsr
    from restoregen.archs.dlgsanet import DLGSANet
    from restoregen.archs.drct import DRCT

    registry = import_basicsr("utils.registry").ARCH_REGISTRY
    assert registry.get("DRCT") is DRCT
    assert registry.get("DLGSANet") is DLGSANet
