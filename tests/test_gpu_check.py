"""``scripts/gpu_check.sh``: its CPU dry run end to end, and how it reads the GPU-only outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.scripts import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def _load_driver():
    return load_script("gpu_check")


gpu_check = _load_driver()


@pytest.mark.slow
def test_dry_run_writes_every_step_and_the_cpu_figures(tmp_path):
    out = tmp_path / "results"
    top_level = sorted(p.name for p in REPO.iterdir())
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", PYTHON=sys.executable)
    start = time.monotonic()
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--no-install", "--out", str(out)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=240)
    wall = time.monotonic() - start
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert wall < 120
    assert sorted(p.name for p in REPO.iterdir()) == top_level  # nothing written into the checkout
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.log", "gpu_check.txt",
                                                     "pytest_cuda.xml"]

    data = json.loads((out / "gpu_check.json").read_text())
    assert data["dry_run"] and data["device"] == "cpu" and data["finished"]
    assert data["step_order"] == gpu_check.DEFAULT_STEPS and "train_bundled" not in data["steps"]  # opt-in
    steps = data["steps"]
    statuses = {name: step["status"] for name, step in steps.items()}
    fixtures = "ok" if gpu_check.find_reference(None) else "skipped"
    assert statuses == {"install": "skipped", "environment": "ok", "bench": "skipped", "photo_x4": "ok",
                        "sdpa_kernels": "ok", "fixtures_bf16": fixtures, "pytest_cuda": "ok", "train_smoke": "ok",
                        "train_2gpu": "skipped"}, {n: s.get("error") for n, s in steps.items()}
    assert steps["install"]["reason"] == "--no-install"
    assert "CUDA" in steps["bench"]["reason"] and "two CUDA GPUs" in steps["train_2gpu"]["reason"]
    assert steps["environment"]["torch"] and steps["environment"]["devices"] == []
    assert all(step["seconds"] >= 0 for step in steps.values())

    # the photo: every model in every precision, PSNR figures and the fp16 check
    models = steps["photo_x4"]["models"]
    assert len(models) == 2
    for entry in models.values():
        assert set(entry["runs"]) == {"fp32", "bf16", "fp16"}
        for run in entry["runs"].values():
            assert run["finite"] and 0 < run["psnr_db"] < 100 and run["ms"] > 0
        assert isinstance(entry["psnr_bf16_minus_fp32_db"], float) and isinstance(entry["fp16_finite"], bool)
        assert entry["runs"]["bf16"]["max_abs_diff_vs_fp32"] > 0
    bundled = next(entry for label, entry in models.items() if label.startswith("bundled"))
    assert bundled["runs"]["fp32"]["psnr_db"] > 25  # trained weights on a real photo

    # SDPA kernels, from the profiler: math runs none, the sdpa backend some
    rows = {row["config"]: row for row in steps["sdpa_kernels"]["rows"]}
    hat = [row for row in rows.values() if row["network"].startswith("HAT") and row["dtype"] == "float32"]
    by_backend = {row["backend"]: row for row in hat}
    assert by_backend["math"]["kernels"] == [] and by_backend["sdpa"]["kernels"]
    assert "skipped" in by_backend["flex"]
    assert all(row["ms"] > 0 for row in rows.values() if "kernels" in row)

    if fixtures == "ok":
        cases = steps["fixtures_bf16"]["cases"]
        assert len(cases) >= 3 and all(0 <= case["relative_error"] < 0.1 for case in cases)
    assert steps["pytest_cuda"]["tests"] > 0 and steps["pytest_cuda"]["skipped"] == steps["pytest_cuda"]["tests"]
    assert steps["train_smoke"]["processes"] == 1 and "exit 0: yes" in steps["train_smoke"]["check"]

    summary = (out / "gpu_check.txt").read_text()
    for name, status in statuses.items():
        assert f"[{status}] {name}" in summary
    assert "PSNR bf16 - fp32" in summary and "SDPA flash" in summary
    assert "photo x4" in " ".join(data["figures"])


def test_bench_json_and_junit_are_read_into_the_figures(tmp_path):
    """What the GPU run's bench and pytest outputs become (the dry run cannot produce them)."""
    payload = {"device": "NVIDIA H200, torch 2.x", "matmul_gflops": 7e5, "results": [
        {"case": "HAT-S x4 256x256", "path": "math", "ms": 100.0, "peak_mb": 4000.0, "extra": {"sdpa_kernels": []}},
        {"case": "HAT-S x4 256x256", "path": "fast bf16", "ms": 16.0, "peak_mb": 1000.0,
         "extra": {"vs_math": 6.25, "sdpa_kernels": ["efficient"]}},
        {"case": "HAT-S x4 256x256", "path": "triton bf16", "ms": None, "peak_mb": None, "skipped": "no triton",
         "extra": {}}]}
    bench = {"status": "ok", **gpu_check.parse_bench(payload)}
    row = bench["rows"]["HAT-S x4 256x256 | fast bf16"]
    assert row["memory_vs_math"] == 0.25 and row["sdpa_kernels"] == ["efficient"]

    xml = tmp_path / "junit.xml"
    xml.write_text('<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1" time="2.5">'
                   '<testcase classname="tests.a" name="test_ok"/>'
                   '<testcase classname="tests.a" name="test_bad"><failure message="assert 0.02 &lt;= 0.01"/>'
                   '</testcase><testcase classname="tests.a" name="test_skip"><skipped/></testcase>'
                   '</testsuite></testsuites>')
    junit = gpu_check.parse_junit(xml)
    assert (junit["passed"], junit["failures"], junit["skipped"]) == (1, 1, 1)
    assert junit["failed_tests"] == [{"test": "tests.a::test_bad", "kind": "failure",
                                      "message": "assert 0.02 <= 0.01"}]

    data = {"dry_run": False, "started": "t0", "finished": None, "elapsed_s": 1.0, "budget_s": 480.0,
            "command": "scripts/gpu_check.py", "commit": "abc", "reference": None,
            "step_order": ["bench", "pytest_cuda"],
            "steps": {"bench": bench, "pytest_cuda": {"status": "failed", **junit}}}
    figures = gpu_check.figures(data["steps"])
    assert figures["HAT-S x4 256x256 fast bf16: speed-up vs math fp32"] == 6.25
    assert figures["HAT-S x4 256x256 fast bf16: peak memory vs math fp32"] == 0.25
    text = gpu_check.summary(data)
    assert "6.25x vs math fp32" in text and "memory 0.25x of math" in text and "goal >= 5x" in text and ": met)" in text
    assert "triton bf16: skipped: no triton" in text
    assert "1 passed, 1 failed, 0 errors, 1 skipped" in text and "tests.a::test_bad" in text


@pytest.mark.slow
def test_train_bundled_dry_run_continues_a_bundled_model_and_writes_its_weights(tmp_path):
    """The opt-in step end to end on the CPU (the skimage photos through a pack, two iterations)."""
    from restoregen.train.export import load_exported

    out = tmp_path / "results"
    top_level = sorted(p.name for p in REPO.iterdir())
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", PYTHON=sys.executable)
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--no-install", "--steps", "train_bundled",
                             "--models", "restoregen-x2", "--out", str(out)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert sorted(p.name for p in REPO.iterdir()) == top_level
    step = json.loads((out / "gpu_check.json").read_text())["steps"]["train_bundled"]
    entry = step["models"]["restoregen-x2"]
    assert step["status"] == "ok" and entry["train_exit"] == 0 and entry["iterations_done"] == 2
    assert entry["step_s"] > 0 and entry["data_s_per_batch"] > 0 and entry["iteration_s"] >= entry["step_s"]
    assert "restoregen-x2: 2 of 2 iterations" in (out / "gpu_check.txt").read_text()
    trained, meta = load_exported(out / "restoregen-x2.gpu.safetensors")
    bundled, _ = load_exported(REPO / "weights" / "restoregen_x2.safetensors")
    assert meta["scale"] == "2" and trained.state_dict().keys() == bundled.state_dict().keys()


def test_train_bundled_names_the_last_stage_of_every_bundled_model():
    from restoregen.inference.bundled import BUNDLED
    from restoregen.train.export import load_exported
    from restoregen.train.networks import build_network

    assert set(gpu_check.TRAIN_BUNDLED) == set(BUNDLED)
    for model, option_file in gpu_check.TRAIN_BUNDLED.items():
        opt = gpu_check.bundled_training_options(model, Path("corpus"), cpu=False, iterations=100)
        bundled, _ = load_exported(REPO / "weights" / BUNDLED[model].file)
        network = build_network(opt)
        network.load_state_dict(bundled.state_dict())  # strict: the option file's network is the bundled one
        train = opt["datasets"]["train"]
        assert train["gt_size"] == gpu_check.GPU_LQ_PATCH * opt["scale"] and train["batch_size_per_gpu"] == 32
        assert opt["train"]["total_iter"] == 100 and opt["train"]["mixed_precision"] == "bf16"
        assert opt["path"]["pretrain_network_g"].endswith(BUNDLED[model].file) and "val" not in opt, option_file
