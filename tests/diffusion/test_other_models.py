"""FreeSwim on tiny random LTX-Video and Flux transformers, called directly."""

import pytest
import torch

from restoregen.attention import sliding_window_mask
from restoregen.diffusion import freeswim_state, patched
from tests.diffusion.tiny import TEXT_DIM, flux_transformer, ltx_transformer


def ltx_inputs(frames: int, height: int, width: int, batch: int = 2):
    g = torch.Generator().manual_seed(1)
    return dict(hidden_states=torch.randn(batch, frames * height * width, 8, generator=g),
                encoder_hidden_states=torch.randn(batch, 6, TEXT_DIM, generator=g),
                timestep=torch.full((batch,), 500.0), encoder_attention_mask=torch.ones(batch, 6),
                num_frames=frames, height=height, width=width, return_dict=False)


def test_ltx_window_covering_the_grid_is_the_stock_model():
    model = ltx_transformer()
    inputs = ltx_inputs(2, 4, 6)
    with torch.no_grad():
        reference = model(**inputs)[0]
        with patched(model, train_grid=(4, 6), window=(None, None, None), scale="default"):
            out = model(**inputs)[0]
    assert (out - reference).abs().max() <= 1e-5


def test_ltx_dual_path_windows_and_overrides():
    model = ltx_transformer()
    inputs = ltx_inputs(2, 8, 12)  # twice the 4 x 6 training grid
    cross = []
    hooks = [block.attn2.register_forward_hook(lambda m, a, o: cross.append(o)) for block in model.transformer_blocks]
    with torch.no_grad():
        reference = model(**inputs)[0]
        with patched(model, train_grid=(4, 6)) as patched_model:
            out = patched_model(**inputs)[0]
            state = freeswim_state(model)
            assert state.grid == (2, 8, 12) and state.window == (None, 5, 7)
            as_output = patched_model(**{**inputs, "return_dict": True}).sample
            assert torch.equal(as_output, out)
        after = model(**inputs)[0]
    for hook in hooks:
        hook.remove()
    assert out.shape == reference.shape and torch.isfinite(out).all()
    assert (out - reference).abs().max() > 1e-4
    assert torch.equal(after, reference)
    override = cross[len(model.transformer_blocks):2 * len(model.transformer_blocks)]
    for output in override:  # doubled batch: window rows carry the full rows' cross-attention
        assert output.shape[0] == 4 and torch.equal(output[:2], output[2:])


def flux_inputs(height: int, width: int, text: int = 5):
    g = torch.Generator().manual_seed(2)
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    img_ids = torch.stack([torch.zeros(height * width), rows.flatten(), cols.flatten()], -1)
    return dict(hidden_states=torch.randn(1, height * width, 4, generator=g),
                encoder_hidden_states=torch.randn(1, text, TEXT_DIM, generator=g),
                pooled_projections=torch.randn(1, TEXT_DIM, generator=g), timestep=torch.tensor([0.5]),
                img_ids=img_ids, txt_ids=torch.zeros(text, 3), return_dict=False)


def test_flux_window_covering_the_grid_is_the_stock_model():
    model = flux_transformer()
    inputs = flux_inputs(6, 8)
    with torch.no_grad():
        reference = model(**inputs)[0]
        with patched(model, train_grid=(6, 8), window=(None, None, None), scale="default"):
            out = model(**inputs)[0]
    assert (out - reference).abs().max() <= 1e-5


def test_flux_text_tokens_stay_global():
    """Patched Flux equals the stock model given the window mask with global text rows and columns."""
    model = flux_transformer()
    inputs = flux_inputs(8, 10, text=5)
    mask = sliding_window_mask((1, 8, 10), (None, 3, 5), global_tokens=5)
    processors = {name: m.processor for name, m in model.named_modules() if hasattr(m, "set_processor")}

    def masked(processor):
        def call(attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
            return processor(attn, hidden_states, encoder_hidden_states, mask, image_rotary_emb)

        return call

    with torch.no_grad():
        with patched(model, window=(None, 3, 5), scale="default"):
            out = model(**inputs)[0]
            assert not freeswim_state(model).dual  # joint attention: no branch to override
        for name, module in model.named_modules():
            if name in processors:
                module.set_processor(masked(processors[name]))
        reference = model(**inputs)[0]
        for name, module in model.named_modules():
            if name in processors:
                module.set_processor(processors[name])
        stock = model(**inputs)[0]
    assert (out - reference).abs().max() <= 1e-5
    assert (out - stock).abs().max() > 1e-4


def test_flux_refuses_cache_mode():
    with pytest.raises(ValueError, match="no cross-attention to cache"), patched(flux_transformer(), cache_every=2):
        pass
