"""The benchmark's timing protocol (no timings are asserted)."""

from restoregen.bench import Case, time_paths

TINY_HAT = dict(upscale=2, in_chans=3, img_size=16, window_size=4, compress_ratio=3, squeeze_factor=4,
                embed_dim=12, depths=[2], num_heads=[2], mlp_ratio=2, upsampler="pixelshuffle")


def test_time_paths_times_every_path_in_one_network():
    times = time_paths(Case("tiny", "HAT", TINY_HAT, 16), ["fast", "math"], threads=1, repeats=2, warmup=1)
    assert set(times) == {"fast", "math"}
    assert all(ms > 0 for ms in times.values())
