import pytest
import torch

from restoregen.archs import build
from restoregen.archs.dlgsanet import DynamicDWConv
from restoregen.attention import available_backends
from tests.archs.sr_checks import (
    assert_backend_matches_math,
    assert_fixture_parity,
    assert_released_layout,
    case_fixture,
)
from tests.reference_data import params, released_files, sr_tolerance

DLGSANET_RELEASED = released_files("dlgsanet")
dlgsanet_case = case_fixture("dlgsanet", "DLGSANet")


@pytest.mark.parametrize("backend", available_backends())
def test_fixture_parity(dlgsanet_case, backend):
    assert_fixture_parity(dlgsanet_case, backend)


def test_unfold_dynamic_convolution_gives_the_same_output(dlgsanet_case):
    def use_unfold(model):
        for module in model.modules():
            if isinstance(module, DynamicDWConv):
                module.method = "unfold"

    assert_fixture_parity(dlgsanet_case, "math", prepare=use_unfold)


@pytest.mark.parametrize("path", params(DLGSANET_RELEASED))
def test_released_state_dict_layout(path):
    assert_released_layout("DLGSANet", path)


def _tiny_dlgsanet(**overrides):
    kwargs = dict(upscale=2, in_chans=3, dim=12, groups=1, blocks=1, buildblock_type="sparseedge", window_size=3,
                  idynamic_num_heads=3, restormer_num_heads=2, tlc_flag=True, tlc_kernel=8, activation="relu",
                  upsampler="pixelshuffledirect")
    kwargs.update(overrides)
    model = build("DLGSANet", **kwargs)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.05 * torch.randn_like(p))
            if name.endswith("temperature"):
                p.mul_(4)
    return model


def test_tlc_on_a_batch_equals_single_image_runs():
    model = _tiny_dlgsanet().eval()
    x = torch.rand(3, 3, 13, 18)  # TLC crops of 8: 2 x 3 overlapping crops
    with torch.no_grad():
        batched = model(x)
        singles = torch.cat([model(x[i:i + 1]) for i in range(3)])
    assert batched.shape == (3, 3, 26, 36)
    assert (batched - singles).abs().max().item() <= sr_tolerance(singles)


def test_tlc_runs_only_in_eval_mode():
    model = _tiny_dlgsanet()
    without_tlc = _tiny_dlgsanet(tlc_flag=False)
    without_tlc.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 13, 18)
    with torch.no_grad():
        train_out = model.train()(x)
        eval_out = model.eval()(x)
        global_out = without_tlc.eval()(x)
    torch.testing.assert_close(train_out, global_out)
    assert (eval_out - global_out).abs().max() > 1e-4


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "math"])
def test_softmax_blocks_agree_across_backends_forward_and_backward(backend):
    model = _tiny_dlgsanet(buildblock_type="edge").train()  # MDTA (softmax channel attention) runs through attend
    assert_backend_matches_math(model, torch.rand(2, 3, 9, 10), backend)


def test_restormer_blocks_use_the_official_tlc_kernel_48():
    model = _tiny_dlgsanet(buildblock_type="edge", tlc_kernel=8)
    kernels = [m.restormer_attn.tlc_kernel for m in model.modules() if hasattr(m, "restormer_attn")]
    assert kernels == [48]


@pytest.mark.parametrize("overrides, keys", [
    (dict(buildblock_type="idynamic", idynamic=False, idynamic_ffn_type="BaseFFN"),
     {"deep_feature_extraction.0.body.0.IDynamicDWConv.conv.weight",
      "deep_feature_extraction.0.body.0.IDynamic_ffn.body.2.bias"}),
    (dict(buildblock_type="restormer", body_norm=True, upsampler="pixelshuffle"),
     {"deep_feature_extraction.0.body.weight", "deep_feature_extraction.1.body.0.restormer_attn.temperature",
      "deep_feature_extraction.2.body.bias", "conv_before_upsample.0.weight", "upsample.0.weight", "conv_last.bias"}),
    (dict(upsampler=""), {"conv_last.weight"}),
])
def test_variants_build_and_run(overrides, keys):
    model = _tiny_dlgsanet(**overrides).eval()
    assert keys <= set(model.state_dict())
    scale = 2 if overrides.get("upsampler", "x") else 1
    with torch.no_grad():
        out = model(torch.rand(2, 3, 5, 7))
    assert out.shape == (2, 3, 5 * scale, 7 * scale)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("overrides, match", [
    (dict(buildblock_type="sparse"), "buildblock_type 'sparse'"),
    (dict(window_size=4), "window_size 4 must be odd"),
    (dict(idynamic_num_heads=5), "dim 12 is not a multiple of idynamic_num_heads 5"),
    (dict(restormer_num_heads=5), "dim 12 is not a multiple of restormer_num_heads 5"),
    (dict(activation="tanh"), "activation 'tanh'"),
    (dict(idynamic_ffn_type="MLP"), "feed-forward type 'MLP'"),
    (dict(upsampler="nearest"), "upsampler 'nearest'"),
])
def test_bad_arguments_name_the_problem(overrides, match):
    with pytest.raises(ValueError, match=f"DLGSANet: {match}"):
        _tiny_dlgsanet(**overrides)


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match=r"DLGSANet expects \(B, 3, H, W\) input, got \(1, 1, 8, 8\)"):
        _tiny_dlgsanet()(torch.rand(1, 1, 8, 8))
