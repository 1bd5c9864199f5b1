"""Linear layers with a fused epilogue (bias, activation or residual add in the matrix product)."""

import pytest
import torch
from torch import nn

from restoregen.archs.blocks import Mlp, SwinBlock
from restoregen.attention import attention_backend, fuses_linear_epilogues, linear_epilogue, onednn_linear_available

needs_onednn = pytest.mark.skipif(not onednn_linear_available(), reason="this torch has no oneDNN fused linear")


@needs_onednn
@pytest.mark.parametrize("activation", [None, nn.GELU(), nn.GELU(approximate="tanh"), nn.LeakyReLU(0.2), nn.ReLU()],
                         ids=["none", "gelu", "gelu-tanh", "leaky-relu", "relu"])
def test_fused_activation_matches_the_plain_ops(activation):
    torch.manual_seed(0)
    layer = nn.Linear(12, 20)
    x = torch.randn(2, 3, 5, 12)
    expected = layer(x) if activation is None else activation(layer(x))
    with torch.inference_mode():
        assert fuses_linear_epilogues(x)
        out = linear_epilogue(x, layer, activation)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


@needs_onednn
def test_fused_residual_matches_the_plain_ops_on_strided_inputs():
    torch.manual_seed(0)
    layer = nn.Linear(12, 8)
    x = torch.randn(5, 4, 12).transpose(0, 1)  # not contiguous
    residual = torch.randn(5, 4, 8).transpose(0, 1)
    with torch.inference_mode():
        out = linear_epilogue(x, layer, residual=residual)
    torch.testing.assert_close(out, residual + layer(x).detach(), rtol=0, atol=1e-5)


def test_fusion_only_in_float32_cpu_inference_off_the_math_backend():
    x = torch.randn(4, 8)
    assert not fuses_linear_epilogues(x)  # autograd on: oneDNN's linear has no backward
    with torch.inference_mode():
        assert fuses_linear_epilogues(x) == onednn_linear_available()
        assert not fuses_linear_epilogues(x.double())
        with attention_backend("math"):  # the official operator order
            assert not fuses_linear_epilogues(x)


def test_unfusable_activation_and_mismatched_residual_run_the_plain_ops():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    x = torch.randn(3, 6)
    with torch.inference_mode():
        torch.testing.assert_close(linear_epilogue(x, layer, nn.SiLU()), nn.functional.silu(layer(x)))
        residual = torch.randn(1, 4)  # broadcast: not the output's shape
        torch.testing.assert_close(linear_epilogue(x, layer, residual=residual), residual + layer(x))
    with pytest.raises(ValueError, match="not both"):
        linear_epilogue(x, layer, nn.GELU(), residual=x)


def test_mlp_adds_the_residual_and_keeps_dropout_in_training():
    torch.manual_seed(0)
    mlp = Mlp(8, 16, drop=0.5)
    x, residual = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    with torch.inference_mode():
        expected = residual + mlp.fc2(mlp.act(mlp.fc1(x)))
        torch.testing.assert_close(mlp.eval()(x, residual), expected, rtol=0, atol=1e-5)
    mlp.train()
    torch.manual_seed(1)
    first = mlp(x, residual)
    torch.manual_seed(1)
    assert torch.equal(first, mlp(x, residual))
    assert not torch.allclose(first, expected, atol=1e-3)  # dropout acted


def test_swin_block_with_stochastic_depth_trains_as_the_official_order():
    """With drop_path active the residual is not handed into the branches; both paths draw the same
    per-sample masks from the same seed."""
    torch.manual_seed(0)
    block = SwinBlock(16, 2, 4, shift_size=2, mlp_ratio=2, drop_path=0.5).train()
    x = torch.randn(4, 8, 8, 16)
    outputs = {}
    for backend in ("auto", "math"):
        torch.manual_seed(3)
        with attention_backend(backend):
            outputs[backend] = block(x)
    torch.testing.assert_close(outputs["auto"], outputs["math"], rtol=0, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(outputs["math"], block.eval()(x), atol=1e-3)  # stochastic depth acted
