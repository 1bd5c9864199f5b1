import json

import pytest
import torch

from reference_data import case_dirs, load_case, params, released_files, sr_tolerance
from restoregen.archs import build
from restoregen.attention import attention_backend, available_backends

HAT_CASES = case_dirs("hat")
HAT_RELEASED = released_files("hat")


@pytest.fixture(scope="module", params=params(HAT_CASES))
def hat_case(request):
    config, weights, io = load_case(request.param)
    assert config["arch"] == "HAT"
    return config, weights, io


def test_fresh_buffers_equal_the_official_ones(hat_case):
    config, weights, _ = hat_case
    model = build("HAT", **config["kwargs"])
    for name in ("relative_position_index_SA", "relative_position_index_OCA"):
        assert torch.equal(model.state_dict()[name], weights[name]), name


@pytest.mark.parametrize("backend", available_backends())
def test_fixture_parity(hat_case, backend):
    config, weights, io = hat_case
    model = build("HAT", **config["kwargs"]).eval()
    model.load_state_dict(weights, strict=True)
    assert sum(p.numel() for p in model.parameters()) == config["num_params"]
    x = io["input"]
    if config["procedure"] == "forward":
        assert x.shape[-1] % config["kwargs"]["window_size"] == 0
    else:
        assert config["procedure"] == "pad_wrapper"  # our forward pads and crops by itself
    with attention_backend(backend), torch.no_grad():
        out = model(x)
    assert out.shape == io["output"].shape
    assert (out - io["output"]).abs().max().item() <= sr_tolerance(io["output"])


@pytest.mark.parametrize("path", params(HAT_RELEASED))
def test_released_state_dict_layout(path):
    spec = json.loads(path.read_text())
    with torch.device("meta"):
        model = build("HAT", **spec["kwargs"])
    state = model.state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(k, s) for k, s in spec["state_dict"]]
    buffers = {k: str(v.dtype).removeprefix("torch.") for k, v in state.items() if "relative_position_index" in k}
    assert buffers == {name: dtype for name, _, dtype in spec["buffers_in_state_dict"]}
    assert all(v.dtype == torch.float32 for k, v in state.items() if k not in buffers)
    assert sum(p.numel() for p in model.parameters()) == spec["num_params"]


def _tiny_hat(**overrides):
    kwargs = dict(upscale=2, in_chans=3, img_size=16, window_size=4, compress_ratio=3, squeeze_factor=4,
                  conv_scale=0.01, overlap_ratio=0.5, img_range=1.0, depths=[2], embed_dim=60, num_heads=[2],
                  mlp_ratio=2, upsampler="pixelshuffle", resi_connection="1conv", drop_path_rate=0.0)
    kwargs.update(overrides)
    model = build("HAT", **kwargs)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "relative_position_bias_table" in name:
                p.normal_()
    return model


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "math"])
def test_backends_agree_on_padded_input_forward_and_backward(backend):
    model = _tiny_hat()  # head size 30, shifted and unshifted blocks, OCAB
    x = torch.rand(1, 3, 9, 11)

    def run(name):
        model.zero_grad()
        with attention_backend(name):
            out = model(x)
        out.square().mean().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    ref, ref_grads = run("math")
    out, grads = run(backend)
    assert out.shape == (1, 3, 18, 22)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)


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
    torch.manual_seed(0)
    plain = _tiny_hat(embed_dim=12)
    checkpointed = _tiny_hat(embed_dim=12, use_checkpoint=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 8, 8)
    for model in (plain, checkpointed):
        model(x).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_registered_in_basicsr():
    from restoregen._compat import import_basicsr
    from restoregen.archs.hat import HAT

    registry = import_basicsr("utils.registry").ARCH_REGISTRY
    assert registry.get("HAT") is HAT
