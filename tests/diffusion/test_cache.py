import pytest
import torch

from restoregen.diffusion import CrossAttentionCache


def test_steps_are_told_apart_by_timestep():
    cache = CrossAttentionCache(every=2)
    refreshes = []
    for t in (999.0, 750.0, 500.0, 250.0):  # two calls per step (cond, uncond)
        refreshes += [cache.begin_call(t, rows=1), cache.begin_call(t, rows=1)]
    assert refreshes == [True, True, False, False, True, True, False, False]
    assert cache.step == 3
    assert cache.begin_call(999.0, rows=1) and cache.step == 0  # a larger timestep starts a new run


def test_entries_are_per_call_and_layer_on_the_chosen_device():
    cache = CrossAttentionCache(every=3, device="cpu")
    cache.begin_call(900.0, rows=2)
    cache.store("blocks.0.attn2", torch.ones(2, 4, 8))
    cache.begin_call(900.0, rows=2)
    cache.store("blocks.0.attn2", torch.zeros(2, 4, 8))
    assert len(cache) == 2 and cache.nbytes == 2 * 2 * 4 * 8 * 4
    assert not cache.begin_call(800.0, rows=2)
    like = torch.empty(0, dtype=torch.float64)
    loaded = cache.load("blocks.0.attn2", like)
    assert loaded.dtype == torch.float64 and torch.equal(loaded, torch.ones(2, 4, 8, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="no cached cross-attention"):
        cache.load("blocks.1.attn2", like)


def test_a_new_batch_size_forces_a_refresh():
    cache = CrossAttentionCache(every=10)
    assert cache.begin_call(900.0, rows=1)
    assert not cache.begin_call(800.0, rows=1)
    assert cache.begin_call(700.0, rows=2)
    with pytest.raises(ValueError, match="at least 1"):
        CrossAttentionCache(every=0)
