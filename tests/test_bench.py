"""The benchmark's measuring protocol (no timings are asserted)."""

from restoregen.bench import Case, Result, measure_cpu, speedup

TINY_HAT = dict(upscale=2, in_chans=3, img_size=16, window_size=4, compress_ratio=3, squeeze_factor=4,
                embed_dim=12, depths=[2], num_heads=[2], mlp_ratio=2, upsampler="pixelshuffle")


def test_paths_run_in_their_own_processes_and_are_timed_in_turn():
    results = measure_cpu(Case("tiny", "HAT", TINY_HAT, 16), ["math", "fast"], threads=1, repeats=2, warmup=1,
                          flop_paths={"math"})
    assert set(results) == {"math", "fast"}
    for result in results.values():
        assert result.skipped is None and result.ms > 0 and result.peak_mb is not None
    assert results["math"].gflop > 0 and results["fast"].gflop is None
    assert all(len(result.extra["round_ms"]) == 2 for result in results.values())


def test_speedup_is_the_median_of_the_ratios_within_rounds():
    # the machine slowed down in round 2: the ratio of the two medians (30 / 10) would say 3x
    math = Result("case", "math", ms=30.0, extra={"round_ms": [10.0, 40.0, 30.0]})
    fast = Result("case", "fast", ms=10.0, extra={"round_ms": [5.0, 10.0, 30.0]})
    assert speedup(fast, math) == 2.0
    assert speedup(Result("case", "fast", ms=10.0), math) == 3.0  # no rounds recorded: the ratio of the times
    assert speedup(fast, None) is None


def test_a_case_that_cannot_be_built_is_skipped():
    results = measure_cpu(Case("missing", "NoSuchNet", {}, 16), ["fast"], threads=1, repeats=1, warmup=0,
                          flop_paths=set())
    assert "NoSuchNet" in results["fast"].skipped
