"""The benchmark's measuring protocol (no timings are asserted)."""

import pytest

from restoregen.bench import Case, Result, measure_cpu, speedup

TINY_HAT = dict(upscale=2, in_chans=3, img_size=16, window_size=4, compress_ratio=3, squeeze_factor=4,
                embed_dim=12, depths=[2], num_heads=[2], mlp_ratio=2, upsampler="pixelshuffle")


@pytest.mark.slow  # a process per path (about 7 s)
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


def _readme_rows() -> list[str]:
    """The first column of README's CPU benchmark table."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = text.split("| network, input |", 1)[1].split("\n\n", 1)[0]
    return [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("|")]


def test_only_takes_readme_row_names():
    from restoregen.bench import MEMORY_CASES, cases, select_cases

    rows = _readme_rows()
    assert len(rows) == 10
    for row in rows:
        assert [c.name for c in select_cases(cases() + MEMORY_CASES, row, quick=True)] == [row]
    assert [c.name for c in select_cases(cases(), "drct X4 64", quick=True)] == ["DRCT x4, 64x64"]


def test_only_that_matches_nothing_is_an_error(capsys):
    from restoregen.bench import main

    assert main(["--only", "HAT-L x4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("restoregen bench: error: --only 'HAT-L x4' matches no row; the rows are: HAT-S x4, 64x64;")
    assert main(["--only", "untiled", "--quick"]) == 2
    assert "matches only rows that --quick leaves out: HAT-S x4, 256x256 untiled" in capsys.readouterr().err
