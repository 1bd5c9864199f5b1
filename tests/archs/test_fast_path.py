"""The default (fast) path and the explicit ``math`` path agree on every SR fixture model."""

import pytest
import torch

from restoregen.archs import build
from restoregen.attention import attention_backend, fuses_linear_epilogues
from tests.reference_data import case_dirs, image_to_image_families, load_case, params, sr_tolerance

SR_CASES = [p for family in image_to_image_families() for p in case_dirs(family)]


@pytest.mark.parametrize("path", params(SR_CASES))
def test_fast_and_math_paths_agree(path):
    config, weights, io = load_case(path)
    model = build(config["arch"], **config["kwargs"]).eval()
    model.load_state_dict(weights, strict=True)
    outputs = {}
    for backend in ("auto", "math"):
        with attention_backend(backend), torch.inference_mode():
            outputs[backend] = model(io["input"])
    assert (outputs["auto"] - outputs["math"]).abs().max().item() <= sr_tolerance(io["output"])


@pytest.mark.parametrize("channels", [(12, 3), (3, 12), (8, 8)])
def test_channels_last_conv3x3_matches_conv2d(channels):
    from restoregen.archs.blocks import conv3x3_channels_last

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(*channels, 3, 1, 1)
    x = torch.randn(2, 7, 9, channels[0])
    expected = conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    torch.testing.assert_close(conv3x3_channels_last(x, conv), expected, rtol=0, atol=1e-6)


def test_hybrid_block_fast_path_matches_official_with_gradients():
    """HAT's block on the fast path (channels-last CAB, gate and residual fused) against the official
    order, outputs and gradients, as training runs it."""
    from restoregen.archs.blocks import CAB, SwinBlock

    torch.manual_seed(0)
    block = SwinBlock(24, 3, 4, shift_size=2, mlp_ratio=2, conv_block=CAB(24, 3, 6), conv_scale=0.5)
    x = torch.randn(2, 8, 8, 24)
    results = {}
    for backend in ("auto", "math"):
        block.zero_grad()
        with attention_backend(backend):
            out = block(x)
        out.square().sum().backward()
        results[backend] = (out.detach(), [p.grad.clone() for p in block.parameters()])
    torch.testing.assert_close(results["auto"][0], results["math"][0], rtol=0, atol=1e-5)
    for fast, official in zip(results["auto"][1], results["math"][1], strict=True):
        torch.testing.assert_close(fast, official, rtol=1e-4, atol=1e-5)


def test_math_path_gathers_the_bias_in_every_call_and_the_fast_path_caches_it():
    """The official code gathers the relative-position bias in every block call; only the fast path
    keeps it from one forward to the next."""
    torch.manual_seed(0)
    model = build("HAT", upscale=2, img_size=16, window_size=4, compress_ratio=3, squeeze_factor=4, embed_dim=12,
                  depths=[2], num_heads=[2], mlp_ratio=2, upsampler="pixelshuffle").eval()
    attention_modules = [m for m in model.modules() if hasattr(m, "relative_position_bias_table")]
    x = torch.rand(1, 3, 16, 16)
    for backend, cached in (("math", False), ("auto", True)):
        for module in attention_modules:
            module.__dict__.pop("_bias_cache", None)
        with attention_backend(backend), torch.inference_mode():
            model(x)
        assert all(bool(m.__dict__.get("_bias_cache")) == cached for m in attention_modules), backend


def _official_projection(block, projection, x, scale, residual):
    return projection(block(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1) * scale + residual


def test_projection_folded_into_the_mlp_matches_the_block_then_the_convolution():
    """DRCT's adjust convolution folded into fc2 (inference, fast path) against block then conv;
    the folded weights follow a weight change."""
    from restoregen.archs.blocks import SwinBlock

    torch.manual_seed(0)
    block = SwinBlock(24, 3, 4, shift_size=2, mlp_ratio=2).eval()
    projection = torch.nn.Conv2d(24, 8, 1)
    x, residual = torch.randn(2, 8, 8, 24), torch.randn(2, 8, 8, 8)
    with torch.inference_mode():
        with attention_backend("math"):
            expected = _official_projection(block, projection, x, 0.2, residual)
        folded = block.forward_projected(x, projection, 0.2, residual)
        assert ("_projection_fold" in block.__dict__) == fuses_linear_epilogues(x)
        torch.testing.assert_close(folded, expected, rtol=0, atol=1e-5)
        block.mlp.fc2.weight.mul_(2)
        with attention_backend("math"):
            expected = _official_projection(block, projection, x, 0.2, residual)
        torch.testing.assert_close(block.forward_projected(x, projection, 0.2, residual), expected, rtol=0, atol=1e-5)


def test_drct_group_trains_with_checkpointing_as_without():
    from restoregen.archs.drct import RDG

    torch.manual_seed(0)
    kwargs = dict(dim=12, num_heads=2, window_size=4, shift_size=2, resolution=(8, 8), mlp_ratio=2, gc=4,
                  qkv_bias=True, qk_scale=None, drop=0.0, attn_drop=0.0, drop_path=0.0, norm_layer=torch.nn.LayerNorm)
    plain, checkpointed = RDG(**kwargs, use_checkpoint=False), RDG(**kwargs, use_checkpoint=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(1, 8, 8, 12)
    grads = []
    for group in (plain, checkpointed):
        group(x).square().sum().backward()
        grads.append([p.grad for p in group.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_fused_tail_gives_the_official_convolutions_and_shuffles(scale):
    """The pixel-shuffle tail as one convolution (inference on the fast path), edges included, against
    the official tail; the fused weights follow a weight change; ``math`` and autograd keep the official
    tail."""
    torch.manual_seed(scale)
    model = build("HAT", upscale=scale, img_size=16, window_size=4, compress_ratio=3, squeeze_factor=4, embed_dim=12,
                  depths=[1], num_heads=[2], mlp_ratio=2, upsampler="pixelshuffle").eval()
    for layer in (*model.upsample, model.conv_last):
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.normal_(layer.bias, std=0.3)  # the biases' response differs at the edges
    x = torch.randn(2, 64, 14, 17)
    for _ in range(2):
        with torch.inference_mode():
            expected = model.conv_last(model.upsample(x))
            torch.testing.assert_close(model._fused_upsample(x), expected, rtol=0, atol=1e-5)
        assert "_fused_tail" in model.__dict__
        with torch.no_grad():
            model.conv_last.weight.mul_(2)
            model.upsample[0].bias.add_(0.1)

    image = torch.rand(1, 3, 14, 17)
    for backend, grad, fused in (("math", False, False), ("auto", True, False), ("auto", False, True)):
        model.__dict__.pop("_fused_tail", None)
        with attention_backend(backend), torch.set_grad_enabled(grad):
            model(image)
        assert ("_fused_tail" in model.__dict__) == fused, (backend, grad)
