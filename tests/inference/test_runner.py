"""The folder runner: which files, which output names, which process takes which file."""

from __future__ import annotations

from pathlib import Path

import pytest

from restoregen.inference.runner import UsageError, collect_jobs, existing_output, process_share


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")


def test_collect_jobs_mirrors_names(tmp_path: Path) -> None:
    source = tmp_path / "in"
    _touch(source, "b.JPG", "a.png", "notes.txt", ".hidden.png", "sub/c.webp", ".cache/d.png", "out/old.png")
    jobs = collect_jobs(source, source / "out", ext="png", suffix="_x4", recursive=True)
    assert [(j.name, j.target.relative_to(source / "out").as_posix()) for j in jobs] == [
        ("a.png", "a_x4.png"), ("b.JPG", "b_x4.png"), ("sub/c.webp", "sub/c_x4.png")]  # out/ inside in/ is skipped
    assert [j.name for j in collect_jobs(source, tmp_path / "o", ext="jpg")] == ["a.png", "b.JPG"]


def test_collisions_and_self_overwrite(tmp_path: Path) -> None:
    _touch(tmp_path, "in/photo.jpg", "in/photo.png")
    jobs = collect_jobs(tmp_path / "in", tmp_path / "out")
    assert jobs[0].problem is None
    assert jobs[1].problem == "same output file as photo.jpg (photo.png); rename one"
    _touch(tmp_path, "alone/photo.png")
    with pytest.raises(UsageError, match="would overwrite the input"):
        collect_jobs(tmp_path / "alone", tmp_path / "alone", ext="png")


def test_single_file_input(tmp_path: Path) -> None:
    _touch(tmp_path, "in/scan.tif")
    (job,) = collect_jobs(tmp_path / "in" / "scan.tif", tmp_path / "big.tif")
    assert job.target == tmp_path / "big.tif"
    (job,) = collect_jobs(tmp_path / "in" / "scan.tif", tmp_path / "results", suffix="-sr", ext="webp")
    assert job.target == tmp_path / "results" / "scan-sr.webp"


def test_existing_output_includes_png_fallback(tmp_path: Path) -> None:
    _touch(tmp_path, "in/logo.png")
    (job,) = collect_jobs(tmp_path / "in", tmp_path / "out", ext="jpg")
    assert existing_output(job) is None
    _touch(tmp_path, "out/logo.png")  # an alpha image asked for as .jpg is written as .png
    assert existing_output(job) == tmp_path / "out" / "logo.png"


def test_processes_share_the_files(monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = list(range(7))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert process_share(jobs) == [1, 4]
    assert sorted(sum((process_share(jobs, r, 3) for r in range(3)), [])) == jobs
    assert process_share(jobs, 0, 1) == jobs
