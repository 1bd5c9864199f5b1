"""FreeSwim on a tiny random Wan pipeline (2 blocks, 2 heads of 12, 16-channel VAE).

The training grid is taken as 2 x 2 tokens (32 x 32 pixels), so the official window is all
frames x 3 x 3 tokens; 5 frames give 2 latent frames.
"""

import pytest
import torch
from torch import nn

from restoregen.diffusion import freeswim_state, is_patched, patch, patched, unpatch
from restoregen.diffusion import state as state_module

PROMPT, NEGATIVE = "a cat walks on the beach", "blurry bad"


def generate(pipe, size: int = 32, prompt=PROMPT, steps: int = 2, **kwargs) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    negative = NEGATIVE if isinstance(prompt, str) else [NEGATIVE] * len(prompt)
    with torch.no_grad():
        return pipe(prompt, negative_prompt=negative, height=size, width=size, num_frames=5,
                    num_inference_steps=steps, guidance_scale=5.0, generator=generator,
                    output_type="latent", **kwargs).frames


def hooks_and_processors(model: nn.Module):
    hooks = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())
    processors = {name: m.processor for name, m in model.named_modules() if hasattr(m, "set_processor")}
    return hooks, processors


def test_window_covering_the_grid_with_default_scale_is_the_stock_pipeline(wan_pipe):
    reference = generate(wan_pipe)
    with patched(wan_pipe, train_grid=(2, 2), window=(None, None, None), scale="default"):
        out = generate(wan_pipe)
    assert (out - reference).abs().max() <= 1e-5


def test_twice_the_training_grid_attends_exactly_the_window(wan_pipe, monkeypatch):
    seen = []
    original = state_module.sliding_window_attention

    def spy(q, k, v, grid, window, scale, **kwargs):
        seen.append((grid, window, q.shape[0]))
        return original(q, k, v, grid, window, scale, **kwargs)

    monkeypatch.setattr(state_module, "sliding_window_attention", spy)
    reference = generate(wan_pipe, size=64)
    with patched(wan_pipe, train_grid=(2, 2)):
        out = generate(wan_pipe, size=64)
    assert out.shape == reference.shape == (1, 16, 2, 8, 8)
    assert torch.isfinite(out).all() and (out - reference).abs().max() > 1e-3
    # 2 layers x 2 steps x (cond, uncond), each on the window half of a doubled batch of 1
    assert {s[:2] for s in seen} == {((2, 4, 4), (None, 3, 3))} and len(seen) == 8
    assert all(rows == 1 for *_, rows in seen)
    # probe the attention itself: uniform scores over one-hot values count the keys of every query
    tokens = 2 * 4 * 4
    q = torch.zeros(1, 1, tokens, 128)
    weights = original(q, q, torch.eye(tokens, 128)[None, None], (2, 4, 4), (None, 3, 3), 1.0)[0, 0, :, :tokens]
    assert torch.all((weights > 0).sum(-1) == 2 * 3 * 3)


def test_unpatch_restores_the_pipeline_exactly(wan_pipe):
    hooks, processors = hooks_and_processors(wan_pipe.transformer)
    reference = generate(wan_pipe, size=64)
    patch(wan_pipe, train_grid=(2, 2))
    assert is_patched(wan_pipe)
    patched_processors = hooks_and_processors(wan_pipe.transformer)[1]
    assert all(type(p).__module__.startswith("restoregen") for p in patched_processors.values())
    generate(wan_pipe, size=64)
    unpatch(wan_pipe)
    assert not is_patched(wan_pipe) and not hasattr(wan_pipe.transformer, "_restoregen_freeswim")
    after_hooks, after_processors = hooks_and_processors(wan_pipe.transformer)
    assert after_hooks == hooks == 0
    assert after_processors.keys() == processors.keys()
    assert all(after_processors[name] is processors[name] for name in processors)
    assert torch.equal(generate(wan_pipe, size=64), reference)


def test_cache_refreshed_every_step_equals_no_cache(wan_pipe):
    with patched(wan_pipe, train_grid=(2, 2)):
        no_cache = generate(wan_pipe, size=64, steps=3)
    with patched(wan_pipe, train_grid=(2, 2), cache_every=1, cache_device="cpu"):
        every_step = generate(wan_pipe, size=64, steps=3)
        assert len(freeswim_state(wan_pipe.transformer).cache) == 2 * 2  # (cond, uncond) x 2 cross-attn layers
    assert torch.equal(every_step, no_cache)


def test_cache_mode_runs_the_full_branch_only_on_refresh_steps(wan_pipe, monkeypatch):
    doubled = []
    with patched(wan_pipe, train_grid=(2, 2), cache_every=2):
        state = freeswim_state(wan_pipe.transformer)
        hook = wan_pipe.transformer.register_forward_hook(lambda m, a, o: doubled.append(state.dual))
        try:
            cached = generate(wan_pipe, size=64, steps=5)
        finally:
            hook.remove()
        assert state.cache.step == 4
    # steps 0, 2, 4 refresh (cond and uncond); steps 1, 3 reuse the cached cross-attention
    assert doubled == [True, True, False, False, True, True, False, False, True, True]
    with patched(wan_pipe, train_grid=(2, 2)):
        no_cache = generate(wan_pipe, size=64, steps=5)
    assert torch.isfinite(cached).all() and not torch.equal(cached, no_cache)


def test_batch_of_two_prompts_with_cfg_matches_single_prompts(wan_pipe):
    prompts = [PROMPT, "a dog runs on the snow"]
    latents = torch.randn(2, 16, 2, 8, 8, generator=torch.Generator().manual_seed(3))
    with patched(wan_pipe, train_grid=(2, 2)):
        both = generate(wan_pipe, size=64, prompt=prompts, latents=latents)
        singles = [generate(wan_pipe, size=64, prompt=p, latents=latents[i:i + 1]) for i, p in enumerate(prompts)]
    assert both.shape == (2, 16, 2, 8, 8)
    assert (both - torch.cat(singles)).abs().max() <= 1e-5
    assert (both[0] - both[1]).abs().max() > 1e-3


def test_patch_errors_are_clear(wan_pipe):
    with pytest.raises(ValueError, match="unknown patch method"):
        patch(wan_pipe, method="nope")
    with pytest.raises(ValueError, match="no model FreeSwim can patch"):
        patch(object())
    with patched(wan_pipe), pytest.raises(ValueError, match="patched already"):
        patch(wan_pipe)
    with pytest.raises(ValueError, match="multiple of"):
        patch(wan_pipe, train_size=(30, 40))
    with pytest.raises(ValueError, match="frames, height, width"):
        patch(wan_pipe, window=(3, 3))
    assert not is_patched(wan_pipe)


def test_video_to_video_pipeline_without_cache_context(wan_pipe):
    """WanVideoToVideoPipeline never calls cache_context: steps are found from the timesteps."""
    from diffusers import WanVideoToVideoPipeline

    v2v = WanVideoToVideoPipeline.from_pipe(wan_pipe)
    encoded = wan_pipe.encode_prompt(PROMPT, NEGATIVE)
    embeds = dict(zip(("prompt_embeds", "negative_prompt_embeds"), encoded, strict=True))
    video = torch.rand(5, 64, 64, 3, generator=torch.Generator().manual_seed(0)).numpy()

    def run(**options):
        doubled = []
        with patched(v2v, train_grid=(2, 2), **options):
            state = freeswim_state(v2v.transformer)
            hook = v2v.transformer.register_forward_hook(lambda m, a, o: doubled.append(state.dual))
            try:
                with torch.no_grad():
                    out = v2v(video=video, height=64, width=64, num_inference_steps=3, strength=1.0,
                              guidance_scale=5.0, generator=torch.Generator().manual_seed(0),
                              output_type="latent", **embeds).frames
            finally:
                hook.remove()
        return out, doubled

    no_cache, _ = run()
    every_step, _ = run(cache_every=1)
    cached, doubled = run(cache_every=2)
    assert torch.equal(every_step, no_cache)
    assert doubled == [True, True, False, False, True, True]
    assert cached.shape == (1, 16, 2, 8, 8) and not torch.equal(cached, no_cache)
