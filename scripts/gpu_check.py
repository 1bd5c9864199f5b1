#!/usr/bin/env python3
"""Every CUDA figure of restoregen in one run, written down after each step.

    bash scripts/gpu_check.sh [--out DIR] [--no-install] [--dry-run] [--budget S] [--steps a,b] [--reference DIR]
    python scripts/gpu_check.py ...   (the same; the shell script only picks the Python)

Made for a GPU that is lent for a few minutes: one command, on a clean checkout, that does it all
within ``--budget`` seconds (480 by default: 8 minutes on an H100/H200). The steps, in this order
(the figures the README's GPU rows need come first):

``install``        ``pip install -e ".[test]"`` (``--no-install`` skips it). Where every dependency
                   is already importable it installs restoregen alone (``--no-deps``, offline);
                   where the full install fails (no network), restoregen alone, and the steps run
                   from the checkout in any case (``PYTHONPATH``). ``--wheels DIR`` installs the
                   wheels of a folder first (offline).
``environment``    python, torch, CUDA, the devices, Triton, the attention backends, missing modules.
``bench``          ``restoregen bench --device cuda --only "HAT-S x4"``: HAT-S x4 at 256x256,
                   bf16 ``auto`` and ``triton`` against ``math`` fp32 eager (the official
                   computation order), time, peak memory and SDPA kernels; its JSON is kept.
``photo_x4``       scikit-image's astronaut, downscaled x4 (bicubic, antialiased), upscaled x4 in
                   fp32, bf16 and fp16 through ``Upscaler`` by a HAT-S-sized network with seeded
                   random weights (the goals: bf16 - fp32 PSNR difference < 0.01 dB, fp16 finite
                   without the fp32 fallback) and, for information, by the bundled default model.
``sdpa_kernels``   for each network x backend x dtype: the SDPA kernels the forward really ran
                   (``restoregen.attention.sdpa_kernels``, profiler based), time and peak memory.
``fixtures_bf16``  the golden fixture models (HAT, DRCT, DLGSANet) in bf16 through every backend:
                   relative error against the fixture (goal <= 1e-2).
``pytest_cuda``    ``pytest -m cuda`` (every backend against ``math``, forward and backward, ...).
``train_smoke``    ``accelerate launch`` of ``restoregen train`` on one device: a tiny HAT, bf16.
``train_2gpu``     the same on two GPUs (``--multi_gpu``), skipped with the reason below two.
``train_bundled``  only when ``--steps`` names it: continues the training of the bundled models
                   (``--models``, default all) from their weights on the corpus, bf16, batch 32 of 48x48
                   LR crops, each for its share of the step's time (iterations from a measured step and
                   data time; cosine schedule), and writes each one's EMA weights to
                   ``OUT/<model>.gpu.safetensors`` (evaluate here with ``scripts/eval_default.py --weights``).
                   A lent machine has neither the corpus nor basicsr, lmdb and kornia: stage them here with
                   ``--prepare-training PACKAGES`` (below).

Each step runs in its own process under its own timeout; a failure or a timeout is recorded and the
next step runs. After every step (and within the longer steps, after every measurement) the results
are rewritten to ``DIR/gpu_check.json`` and ``DIR/gpu_check.txt`` (a summary), so whatever a
timeout cuts off, the figures measured so far are on disk. The default steps' output folder holds at
most five files: those two, ``gpu_check.log`` (every step's output), ``bench.json`` and ``pytest_cuda.xml``;
``train_bundled`` adds one weights file per model.
``--steps a,b`` runs only those steps and keeps the other steps' records of the last run in the
same folder (marked ``kept_from_run``).

``--dry-run`` runs the same steps on the CPU with tiny sizes in under two minutes; the steps that
need CUDA (``bench``, ``train_2gpu``) are recorded as skipped with the reason, and ``pytest -m cuda``
runs (every test skips). ``tests/test_gpu_check.py`` runs it.

The golden fixtures are looked up in ``--reference``, ``$RESTOREGEN_REFERENCE``,
``.gpu_check/reference``, ``../shared/reference`` and ``shared/reference``, in that order.
``--prepare`` copies ``../shared/reference`` to ``.gpu_check/reference`` (git-ignored), for a
machine that receives only the checkout. On such a machine (a remote run with a 600 s limit):

    bash scripts/gpu_check.sh --prepare                  # here, once
    bash scripts/gpu_check.sh --out "$OUT"               # there, with .gpu_check carried along

For ``train_bundled`` on such a machine (one remote run, about 10 minutes with the start):

    bash scripts/gpu_check.sh --prepare-training /path/to/packages     # here, once (writes .gpu_check/)
    bash scripts/gpu_check.sh --steps install,train_bundled --budget 560 --out "$OUT"   # there, carrying
                                                                       # .gpu_check/corpus and .gpu_check/wheels

Exit status: 0 when no step failed or timed out, 1 otherwise.
"""

from __future__ import annotations

# Only the standard library at the top: this file runs before the install.
import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JSON_NAME, SUMMARY_NAME, LOG_NAME = "gpu_check.json", "gpu_check.txt", "gpu_check.log"
BENCH_CASE = "HAT-S x4"  # matches "HAT-S x4, 256x256" (the GPU table's HAT-S row), not "HAT x4"
BF16_TOLERANCE = 1e-2  # relative error of the fixture models in bf16
PSNR_GOAL_DB = 0.01  # |PSNR(bf16) - PSNR(fp32)|
SPEEDUP_GOAL, MEMORY_GOAL = 5.0, 0.5  # HAT-S x4 256x256 bf16 against math fp32 eager

# import name -> distribution, for the dependencies of pyproject.toml (test extra included)
MODULES = {"torch": "torch", "torchvision": "torchvision", "basicsr": "basicsr", "kornia": "kornia",
           "lpips": "lpips", "accelerate": "accelerate", "diffusers": "diffusers", "cv2": "opencv-python",
           "PIL": "pillow", "numpy": "numpy", "safetensors": "safetensors", "yaml": "pyyaml", "tqdm": "tqdm",
           "pytest": "pytest", "skimage": "scikit-image", "transformers": "transformers"}


class Step:
    def __init__(self, name: str, timeout: float, dry_timeout: float, cuda_only: str | None = None):
        self.name, self.timeout, self.dry_timeout, self.cuda_only = name, timeout, dry_timeout, cuda_only


# name, timeout on the GPU, timeout in the dry run, why it is skipped without CUDA (None: runs on the CPU)
STEPS = [
    Step("install", 150, 90),
    Step("environment", 60, 30),
    Step("bench", 200, 30, "restoregen bench --device cuda needs a CUDA GPU"),
    Step("photo_x4", 100, 40),
    Step("sdpa_kernels", 120, 40),
    Step("fixtures_bf16", 90, 40),
    Step("pytest_cuda", 240, 60),
    Step("train_smoke", 120, 60),
    Step("train_2gpu", 150, 30, "needs two CUDA GPUs"),
    Step("train_bundled", 560, 150),
]
STEP_NAMES = [step.name for step in STEPS]
OPT_IN_STEPS = ("train_bundled",)  # run only when --steps names them
DEFAULT_STEPS = [name for name in STEP_NAMES if name not in OPT_IN_STEPS]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _tail(text: str, chars: int = 2000) -> str:
    return text if len(text) <= chars else "..." + text[-chars:]


# ----------------------------------------------------------------------------- the driver


class Report:
    """The JSON and the summary, rewritten whenever something is added."""

    def __init__(self, out: Path, meta: dict):
        self.out = out
        self.data = {**meta, "started": _now(), "updated": None, "finished": None, "elapsed_s": 0.0,
                     "step_order": [], "steps": {}, "figures": {}}
        self.start = time.monotonic()

    def step(self, name: str, record: dict) -> None:
        self.data["steps"][name] = record
        self.data["step_order"] = [n for n in STEP_NAMES if n in self.data["steps"]]
        self.write()

    def keep_previous(self, rerun: list[str]) -> None:
        """With ``--steps``: the other steps' records of the last run in this folder stay (marked)."""
        path = self.out / JSON_NAME
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        for name, record in previous.get("steps", {}).items():
            if name in STEP_NAMES and name not in rerun:
                self.data["steps"][name] = {**record, "kept_from_run": previous.get("started")}
        self.data["step_order"] = [n for n in STEP_NAMES if n in self.data["steps"]]

    def write(self, finished: bool = False) -> None:
        self.data["updated"] = _now()
        self.data["elapsed_s"] = round(time.monotonic() - self.start, 1)
        if finished:
            self.data["finished"] = self.data["updated"]
        self.data["figures"] = figures(self.data["steps"])
        _atomic_write(self.out / JSON_NAME, json.dumps(self.data, indent=1, default=str))
        _atomic_write(self.out / SUMMARY_NAME, summary(self.data))


def find_reference(explicit: str | None) -> Path | None:
    candidates = [explicit, os.environ.get("RESTOREGEN_REFERENCE"), REPO / ".gpu_check" / "reference",
                  REPO.parent / "shared" / "reference", REPO / "shared" / "reference"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "hat").is_dir():
            return Path(candidate).resolve()
    return None


def child_env(args, reference: Path | None) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)
    if reference is not None:
        env["RESTOREGEN_REFERENCE"] = str(reference)
    if args.dry_run:
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_process(command: list[str], timeout: float, log, env: dict, cwd: Path = REPO) -> tuple[int | None, str]:
    """Runs ``command`` in its own process group; (exit status or None on timeout, output)."""
    log.write(f"$ {shlex.join(command)}\n")
    log.flush()
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, text=True)
        try:
            rc = process.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the step and everything it started
            process.wait()
            rc = None
        output.seek(0)
        text = output.read()
    log.write(text + ("" if text.endswith("\n") else "\n") + (f"[timed out after {timeout:.0f} s]\n" if rc is None
                                                              else f"[exit status {rc}]\n"))
    log.flush()
    return rc, text


def missing_modules() -> list[str]:
    importlib.invalidate_caches()  # packages installed since this process started
    missing = []
    for name in MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def _package_index() -> str | None:
    """The package index's host where it answers within seconds, else None (no network)."""
    import threading
    from urllib.parse import urlparse

    url = os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple"
    host = urlparse(url).hostname or "pypi.org"
    answered: list[str] = []

    def probe() -> None:  # in a thread: a name lookup without network can hang beyond any socket timeout
        try:
            with socket.create_connection((host, urlparse(url).port or 443), timeout=3):
                answered.append(host)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(5)
    return answered[0] if answered else None


def step_install(args, log, env, timeout: float) -> dict:
    if args.no_install:
        return {"status": "skipped", "reason": "--no-install"}
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    record: dict = {"commands": []}
    deadline = time.monotonic() + timeout

    def pip_run(extra: list[str]) -> int | None:
        command = pip + extra
        record["commands"].append(shlex.join(command))
        rc, text = run_process(command, deadline - time.monotonic(), log, env)
        record["output_tail"] = _tail(text, 1500)
        return rc

    if args.wheels:
        wheels = sorted(str(p) for p in Path(args.wheels).glob("*.whl"))
        if wheels:
            record["wheels"] = [Path(w).name for w in wheels]
            record["wheels_rc"] = pip_run(["--no-index", "--no-deps", *wheels])
    missing = missing_modules()
    record["missing_before"] = missing
    if not missing:  # everything is there: restoregen alone, offline
        rc = pip_run(["--no-deps", "--no-build-isolation", "-e", "."])
        record["mode"] = "restoregen alone (dependencies present)"
        return {"status": "ok" if rc == 0 else "failed", **record}
    index = _package_index()
    if index is None:
        rc = "not run (no package index reachable)"
        record["mode"] = "restoregen alone (no network)"
    else:
        rc = pip_run(["--retries", "1", "--timeout", "15", "-e", ".[test]"])
        record["mode"] = 'pip install -e ".[test]"'
    if rc == 0:
        record["missing_after"] = missing_modules()
        return {"status": "ok", **record}
    rc_alone = pip_run(["--no-deps", "--no-build-isolation", "-e", "."])
    record["missing_after"] = missing_modules()
    reason = (f'pip install -e ".[test]": {rc}; restoregen alone (--no-deps): exit {rc_alone}; '
              f"missing: {', '.join(record['missing_after']) or 'nothing'} (steps that need them fail)")
    return {"status": "failed", "error": reason, **record}


def run_worker_step(step: Step, args, log, env, timeout: float, workdir: Path) -> dict:
    """A step in a fresh Python process (``--worker``); it writes its results to a file as it goes."""
    result_file = workdir / f"{step.name}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", step.name, "--result", str(result_file),
               "--out", str(args.out), "--models", args.models, "--timeout", str(round(timeout))]
    command += ["--dry-run"] if args.dry_run else []
    rc, text = run_process(command, timeout, log, env)
    data = json.loads(result_file.read_text()) if result_file.exists() else {}
    done = data.pop("_done", False)
    if rc is None:
        data.update(status="timeout", error=f"timed out after {timeout:.0f} s (what it measured before is kept)")
    elif not done:
        data.update(status="failed", error=f"the worker exited with status {rc}")
    if data.get("status") in ("failed", "timeout"):
        data["output_tail"] = _tail(text)
    return data


def step_pytest(args, log, env, timeout: float) -> dict:
    xml = args.out / "pytest_cuda.xml"
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-v", "-rfE", "-p", "no:cacheprovider",
               "--continue-on-collection-errors", "--durations=15", f"--junitxml={xml}", "tests"]
    xml.unlink(missing_ok=True)
    rc, text = run_process(command, timeout, log, env)
    record: dict = {"command": shlex.join(command[1:]), "exit_status": rc, "junit": xml.name,
                    "output_tail": _tail(text, 3000)}
    if xml.exists():
        record.update(parse_junit(xml))
    if rc is None:  # no junit file: count the verbose lines printed so far
        outcomes: dict = {}
        for line in text.splitlines():
            match = re.match(r"^(tests/\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b", line)
            if match:
                outcomes[match.group(1)] = match.group(2)
        record["done_before_timeout"] = {k: sum(v == k for v in outcomes.values()) for k in set(outcomes.values())}
        record["failed_tests"] = [{"test": t, "kind": o.lower(), "message": ""} for t, o in outcomes.items()
                                  if o in ("FAILED", "ERROR")]
        return {"status": "timeout", "error": f"timed out after {timeout:.0f} s", **record}
    if rc == 5 or (rc == 0 and record.get("passed", 0) == 0 and record.get("skipped", 0) > 0):
        reason = "no CUDA device: every test marked cuda skipped" if args.dry_run else "no test ran"
        return {"status": "ok" if args.dry_run else "failed", "note": reason, **record}
    return {"status": "ok" if rc == 0 else "failed", **record}


def parse_junit(path: Path) -> dict:
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    failed = []
    for case in root.iter("testcase"):
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is not None:
                failed.append({"test": f"{case.get('classname')}::{case.get('name')}", "kind": tag,
                               "message": (node.get("message") or "")[:400]})
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["seconds"] = round(sum(float(s.get("time", 0)) for s in suites), 1)
    return {**counts, "failed_tests": failed[:40]}


def step_bench(args, log, env, timeout: float) -> dict:
    path = args.out / "bench.json"
    command = [sys.executable, "-m", "restoregen", "bench", "--device", "cuda", "--only", BENCH_CASE,
               "--repeats", "10", "--json", str(path)]
    rc, text = run_process(command, timeout, log, env)
    record: dict = {"command": "restoregen " + shlex.join(command[3:]), "json": path.name, "table": _tail(text, 3000)}
    if path.exists():
        record.update(parse_bench(json.loads(path.read_text())))
    if rc is None:
        return {"status": "timeout", "error": f"timed out after {timeout:.0f} s", **record}
    if rc == 0 and record.get("rows"):
        return {"status": "ok", **record}
    last = next((line for line in reversed(text.splitlines()) if line.strip()), "no output")
    return {"status": "failed", "error": f"exit status {rc}: {last}", **record}


def parse_bench(payload: dict) -> dict:
    rows = {}
    for result in payload.get("results", []):
        extra = result.get("extra") or {}
        rows[f"{result['case']} | {result['path']}"] = {
            "case": result["case"], "path": result["path"], "ms": result.get("ms"), "peak_mb": result.get("peak_mb"),
            "vs_math": extra.get("vs_math"), "sdpa_kernels": extra.get("sdpa_kernels"),
            "skipped": result.get("skipped"), "device_name": extra.get("device_name")}
    for row in rows.values():
        math = rows.get(f"{row['case']} | math")
        if math and math["peak_mb"] and row["peak_mb"] is not None and row["path"] != "math":
            row["memory_vs_math"] = row["peak_mb"] / math["peak_mb"]
    return {"device": payload.get("device"), "matmul_gflops": payload.get("matmul_gflops"), "rows": rows}


def step_skipped_for_cuda(step: Step, args) -> str | None:
    if step.cuda_only is None:
        return None
    if args.dry_run:
        return f"dry run on the CPU: {step.cuda_only}"
    return None


def prepare(args) -> int:
    source = REPO.parent / "shared" / "reference"
    target = REPO / ".gpu_check" / "reference"
    if not (source / "hat").is_dir():
        print(f"gpu_check --prepare: no fixtures at {source}", file=sys.stderr)
        return 2
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("freeswim", "styleswin"))
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) / 2**20
    print(f"copied the HAT/DRCT/DLGSANet fixtures to {target} ({size:.1f} MiB); name .gpu_check in the "
          "remote run's carry list")
    return 0


TRAINING_WHEELS = ("lmdb", "addict", "kornia", "kornia_rs")  # besides basicsr; absent from the lent machines' image
TRAVEL_LIMIT_MIB = 64  # what a remote run may carry: the working tree and the carried paths


def prepare_training(packages: Path) -> int:
    """``.gpu_check/corpus`` (the training photos, scripts/prepare_default_data.py --pack) and
    ``.gpu_check/wheels`` (basicsr and the modules the lent machines lack, for Python 3.12)."""
    staging = REPO / ".gpu_check"
    corpus, wheels = staging / "corpus", staging / "wheels"
    with tempfile.TemporaryDirectory() as scratch:
        rc = subprocess.call([sys.executable, str(REPO / "scripts" / "prepare_default_data.py"), "--packages",
                              str(packages), "--out", scratch, "--pack", str(corpus)])
    if rc != 0:
        return rc
    shutil.rmtree(wheels, ignore_errors=True)
    pip = [sys.executable, "-m", "pip"]
    platforms = [arg for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
                 for arg in ("--platform", tag)]
    rc = subprocess.call([*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                          "--implementation", "cp", *platforms, "-d", str(wheels), *_installed(TRAINING_WHEELS)])
    rc = rc or subprocess.call([*pip, "wheel", "-q", "--no-deps", "-w", str(wheels), *_installed(("basicsr",))])
    if rc != 0:
        return rc
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout  # what a remote run sends
    files = [REPO / name for name in tracked.decode().split("\0") if name]
    tree = sum(path.stat().st_size for path in files if path.is_file())
    staged = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file() and "reference" not in p.parts)
    total = (tree + staged) / 2**20
    print(f"staged the corpus ({corpus}) and {len(list(wheels.glob('*.whl')))} wheels ({wheels}): with the "
          f"tracked files {total:.1f} MiB of the {TRAVEL_LIMIT_MIB} MiB a remote run carries; carry "
          "[\".gpu_check/corpus\", \".gpu_check/wheels\"] (not .gpu_check/reference) and run "
          "bash scripts/gpu_check.sh --steps install,train_bundled --budget 560 --out \"$OUT\"")
    if total > TRAVEL_LIMIT_MIB:
        print(f"gpu_check --prepare-training: {total:.1f} MiB is over the limit", file=sys.stderr)
        return 1
    return 0


def _installed(names: tuple[str, ...]) -> list[str]:
    """``name==version`` of the installed distributions, so the wheels match what the tests ran with."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "gpu_check_results"),
                        help="output folder (default: gpu_check_results/ in the checkout)")
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU, tiny sizes, < 2 minutes")
    parser.add_argument("--no-install", action="store_true", help="skip the pip install")
    parser.add_argument("--wheels", default=None, help="a folder of wheels to install first, offline "
                                                       "(default .gpu_check/wheels where it exists)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole run (default 480; 110 with --dry-run)")
    parser.add_argument("--steps", default="", help=f"comma-separated subset of: {', '.join(STEP_NAMES)} "
                                                     f"(default: all but {', '.join(OPT_IN_STEPS)})")
    parser.add_argument("--models", default=",".join(TRAIN_BUNDLED),
                        help="train_bundled: the bundled models to train, in this order (default: all)")
    parser.add_argument("--prepare-training", type=Path, default=None, metavar="PACKAGES",
                        help="stage what train_bundled needs for a machine without network (the corpus of the "
                             "Debian packages extracted in PACKAGES, and wheels) in .gpu_check/, then exit")
    parser.add_argument("--reference", default=None, help="folder of the golden fixtures")
    parser.add_argument("--prepare", action="store_true",
                        help="copy ../shared/reference to .gpu_check/reference and exit")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out = Path(args.out).resolve()
    if args.worker:
        return worker_main(args)
    if args.prepare:
        return prepare(args)
    if args.prepare_training is not None:
        return prepare_training(args.prepare_training)
    if args.wheels is None and (REPO / ".gpu_check" / "wheels").is_dir():
        args.wheels = str(REPO / ".gpu_check" / "wheels")
    selected = [s.strip() for s in args.steps.split(",") if s.strip()] or DEFAULT_STEPS
    unknown = set(selected) - set(STEP_NAMES)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; choose from {STEP_NAMES}")
    budget = args.budget if args.budget is not None else (110.0 if args.dry_run else 480.0)
    args.out.mkdir(parents=True, exist_ok=True)
    reference = find_reference(args.reference)
    env = child_env(args, reference)
    meta = {"tool": "scripts/gpu_check.py", "command": " ".join(["scripts/gpu_check.py", *(argv or sys.argv[1:])]),
            "dry_run": args.dry_run, "device": "cpu" if args.dry_run else "cuda", "budget_s": budget,
            "host": platform.node(), "python": sys.version.split()[0], "repo": str(REPO),
            "commit": _git_commit(), "reference": str(reference) if reference else None}
    report = Report(args.out, meta)
    if args.steps:
        report.keep_previous(selected)
    report.write()
    deadline = time.monotonic() + budget
    workdir = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    failed = False
    try:
        with open(args.out / LOG_NAME, "a" if args.steps else "w") as log:
            for step in STEPS:
                if step.name not in selected:
                    continue
                print(f"gpu_check: {step.name} ...", flush=True)
                log.write(f"\n===== {step.name} ({_now()}) =====\n")
                start = time.monotonic()
                remaining = deadline - start
                limit = min(step.dry_timeout if args.dry_run else step.timeout, remaining)
                reason = step_skipped_for_cuda(step, args)
                if reason:
                    record = {"status": "skipped", "reason": reason}
                elif remaining < 5:
                    record = {"status": "skipped", "reason": f"time budget of {budget:.0f} s spent"}
                else:
                    report.step(step.name, {"status": "running", "timeout_s": round(limit)})
                    try:
                        if step.name == "install":
                            record = step_install(args, log, env, limit)
                        elif step.name == "pytest_cuda":
                            record = step_pytest(args, log, env, limit)
                        elif step.name == "bench":
                            record = step_bench(args, log, env, limit)
                        else:
                            record = run_worker_step(step, args, log, env, limit, workdir)
                    except Exception:  # noqa: BLE001 - recorded, and the next step runs
                        record = {"status": "failed", "error": _tail(traceback.format_exc())}
                    record["timeout_s"] = round(limit)
                record["seconds"] = round(time.monotonic() - start, 1)
                failed |= record.get("status") in ("failed", "timeout")
                report.step(step.name, record)
                why = _headline(record.get("reason") or record.get("error")) if record["status"] != "ok" else ""
                print(f"gpu_check: {step.name}: {record['status']} ({record['seconds']} s)"
                      + (f" - {why}" if why else ""), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        report.write(finished=True)
    print(f"\n{(args.out / SUMMARY_NAME).read_text()}")
    return 1 if failed else 0


def _git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() + (" (modified)" if dirty.stdout.strip() else "")


# ----------------------------------------------------------------------------- figures and summary


def figures(steps: dict) -> dict:
    """The headline numbers, for the README's GPU rows."""
    found: dict = {}
    env = steps.get("environment", {})
    if env.get("devices"):
        found["device"] = env["devices"][0]["name"]
    for key in ("torch", "cuda"):
        if env.get(key):
            found[key] = env[key]
    rows = steps.get("bench", {}).get("rows") or {}
    for row in rows.values():
        if row["path"] == "math" or row.get("skipped"):
            continue
        tag = f"{row['case']} {row['path']}"
        found[f"{tag}: speed-up vs math fp32"] = row.get("vs_math")
        found[f"{tag}: peak memory vs math fp32"] = row.get("memory_vs_math")
    photo = steps.get("photo_x4", {}).get("models") or {}
    for model, entry in photo.items():
        if entry.get("psnr_bf16_minus_fp32_db") is not None:
            found[f"photo x4 {model}: PSNR bf16 - fp32 (dB)"] = entry["psnr_bf16_minus_fp32_db"]
        if entry.get("fp16_finite") is not None:
            found[f"photo x4 {model}: fp16 finite, no fallback"] = entry["fp16_finite"]
    fixtures = steps.get("fixtures_bf16", {})
    if fixtures.get("worst_relative_error") is not None:
        found["fixtures bf16: worst relative error"] = fixtures["worst_relative_error"]
    kernels = steps.get("sdpa_kernels", {}).get("rows") or []
    found["sdpa kernels"] = {row["config"]: row.get("kernels") for row in kernels if "kernels" in row}
    if not found["sdpa kernels"]:
        del found["sdpa kernels"]
    return found


def _headline(text: str | None) -> str:
    """One line of a message; of a traceback, its last line (what happened)."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    return (lines[-1] if lines[0].startswith("Traceback") else lines[0])[:300]


def _fmt(value, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def summary(data: dict) -> str:
    lines = [f"restoregen gpu_check ({'dry run on the CPU' if data['dry_run'] else 'CUDA'}), "
             f"started {data['started']}, {'finished ' + data['finished'] if data['finished'] else 'running'}, "
             f"{data['elapsed_s']} s of a {data['budget_s']:.0f} s budget",
             f"command: {data['command']}", f"commit: {data['commit']}; fixtures: {data['reference']}"]
    steps = data["steps"]
    env = steps.get("environment", {})
    if env.get("torch"):
        devices = ", ".join(d["name"] for d in env.get("devices", [])) or "no CUDA device"
        lines.append(f"torch {env['torch']} (CUDA {env.get('cuda')}), {devices}, Triton {env.get('triton')}, "
                     f"backends {', '.join(env.get('backends', []))}")
    for name in data["step_order"]:
        step = steps[name]
        status = step.get("status")
        head = f"[{status}] {name}" + (f" ({step['seconds']} s)" if "seconds" in step else "")
        extra = _headline(step.get("reason") or step.get("error") or step.get("note"))
        kept = f" [kept from the run of {step['kept_from_run']}]" if step.get("kept_from_run") else ""
        lines.append(head + (f": {extra}" if extra else "") + kept)
        lines.extend("    " + line for line in _step_lines(name, step))
    return "\n".join(lines) + "\n"


def _step_lines(name: str, step: dict) -> list[str]:
    out: list[str] = []
    if name == "install" and step.get("missing_after") is not None:
        out.append(f"missing after the install: {', '.join(step['missing_after']) or 'nothing'}")
    if name == "train_bundled":
        for model, entry in (step.get("models") or {}).items():
            out.append(f"{model}: {entry.get('iterations_done', 0)} of {entry['iterations_planned']} iterations "
                       f"(batch {entry['batch']}, GT {entry['gt_size']}px) in {_fmt(entry.get('train_s'), '.0f')} s, "
                       f"{_fmt(entry.get('s_per_iteration'))} s/it (data {_fmt(entry.get('data_s_per_iteration'))}), "
                       f"l_pix {_fmt(entry.get('l_pix'))}: {entry.get('weights') or entry.get('error', 'no weights')}")
    if name == "environment" and step.get("missing_modules"):
        out.append(f"missing modules: {', '.join(step['missing_modules'])}")
    if name == "bench":
        for row in (step.get("rows") or {}).values():
            if row.get("skipped"):
                out.append(f"{row['case']} {row['path']}: skipped: {row['skipped']}")
                continue
            goal = ""
            if row["path"] != "math" and row.get("vs_math") is not None and row.get("memory_vs_math") is not None:
                met = row["vs_math"] >= SPEEDUP_GOAL and row["memory_vs_math"] <= MEMORY_GOAL
                goal = f" (goal >= {SPEEDUP_GOAL:g}x, <= {MEMORY_GOAL:g}x memory: {'met' if met else 'not met'})"
            out.append(f"{row['case']} {row['path']}: {_fmt(row['ms'], '.1f')} ms, "
                       f"peak {_fmt(row['peak_mb'], '.0f')} MB"
                       + (f", {row['vs_math']:.2f}x vs math fp32" if row.get("vs_math") else "")
                       + (f", memory {row['memory_vs_math']:.2f}x of math" if row.get("memory_vs_math") else "")
                       + f", SDPA {', '.join(row.get('sdpa_kernels') or []) or 'none'}{goal}")
    if name == "photo_x4":
        for model, entry in (step.get("models") or {}).items():
            for precision, run in (entry.get("runs") or {}).items():
                if "error" in run:
                    out.append(f"{model} {precision}: error: {run['error'][:200]}")
                    continue
                out.append(f"{model} {precision}: PSNR {_fmt(run.get('psnr_db'), '.4f')} dB, "
                           f"ran in {run.get('dtype')}, "
                           f"finite {run.get('finite')}, {_fmt(run.get('ms'), '.1f')} ms"
                           + (f", max |diff| vs fp32 {run['max_abs_diff_vs_fp32']:.2e}"
                              if run.get("max_abs_diff_vs_fp32") is not None else ""))
            if entry.get("psnr_bf16_minus_fp32_db") is not None:
                goal = f"goal |x| < {PSNR_GOAL_DB} dB: {'met' if entry.get('psnr_goal_met') else 'not met'}"
                out.append(f"{model}: PSNR bf16 - fp32 = {entry['psnr_bf16_minus_fp32_db']:+.5f} dB "
                           f"({goal if entry.get('goals_apply', True) else 'no goal'}); "
                           f"fp16 finite without fallback: {entry.get('fp16_finite')}")
    if name == "sdpa_kernels":
        for row in step.get("rows") or []:
            if "skipped" in row:
                out.append(f"{row['config']}: skipped: {row['skipped']}")
            elif "error" in row:
                out.append(f"{row['config']}: error: {row['error'][:200]}")
            else:
                out.append(f"{row['config']}: SDPA {', '.join(row['kernels']) or 'none'}; "
                           f"{_fmt(row.get('ms'), '.2f')} ms"
                           + (f", peak {row['peak_mb']:.0f} MB" if row.get("peak_mb") is not None else "")
                           + ("" if row.get("finite", True) else ", NON-FINITE output"))
    if name == "fixtures_bf16" and step.get("cases"):
        out.append(f"{len(step['cases'])} runs, worst relative error {_fmt(step.get('worst_relative_error'))} "
                   f"({step.get('worst')}), tolerance {BF16_TOLERANCE:g}")
        out.extend(f"over tolerance or failed: {c['case']} {c['backend']}: {c.get('relative_error', c.get('error'))}"
                   for c in step["cases"] if not c.get("ok"))
    if name == "pytest_cuda" and "tests" in step:
        out.append(f"{step['passed']} passed, {step['failures']} failed, {step['errors']} errors, "
                   f"{step['skipped']} skipped in {step['seconds']} s")
        out.extend(f"{f['kind']}: {f['test']}: {f['message'][:200]}" for f in step.get("failed_tests", []))
    if name.startswith("train") and step.get("command"):
        out.append(f"{step.get('processes')} process(es) on {step.get('device')}, {step.get('iterations')} iterations, "
                   f"launch to exit {_fmt(step.get('wall_s'), '.1f')} s; {step.get('check', '')}")
    return out


# ----------------------------------------------------------------------------- the workers (one process each)


class Emitter:
    """A worker's results, rewritten to its result file after every measurement."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict = {}

    def emit(self, **fields) -> None:
        self.data.update(fields)
        _atomic_write(self.path, json.dumps(self.data, default=str))


def worker_main(args) -> int:
    emitter = Emitter(Path(args.result))
    function = WORKERS[args.worker]
    try:
        result = function(args, emitter)
    except Exception:  # noqa: BLE001 - the driver records it
        emitter.emit(status="failed", error=_tail(traceback.format_exc()), _done=True)
        return 1
    emitter.emit(**result, _done=True)
    return 0


def _device(args) -> str:
    return "cpu" if args.dry_run else "cuda"


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def worker_environment(args, emitter: Emitter) -> dict:
    import torch

    info: dict = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
                  "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                  "missing_modules": missing_modules(), "cpu_count": os.cpu_count()}
    info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    info["devices"] = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            info["devices"].append({"name": props.name, "capability": f"{props.major}.{props.minor}",
                                    "memory_gib": round(props.total_memory / 2**30, 1),
                                    "multiprocessors": props.multi_processor_count})
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    triton = importlib.util.find_spec("triton")
    info["triton"] = None
    if triton is not None:
        import triton as triton_module

        info["triton"] = triton_module.__version__
    import restoregen
    from restoregen.attention import available_backends

    info["restoregen"] = getattr(restoregen, "__version__", None)
    info["restoregen_path"] = str(Path(restoregen.__file__).resolve().parent)
    info["backends"] = list(available_backends())
    if shutil.which("nvidia-smi"):
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        except (OSError, subprocess.SubprocessError) as error:
            info["nvidia_smi"] = f"{type(error).__name__}: {error}"
    if not args.dry_run and not torch.cuda.is_available():
        return {"status": "failed", "error": "torch sees no CUDA device (run with --dry-run on a CPU)", **info}
    return {"status": "ok", **info}


# Tiny stand-ins for the dry run (same code paths, CPU-sized).
TINY_HAT_X4 = dict(upscale=4, in_chans=3, img_size=32, window_size=8, compress_ratio=3, squeeze_factor=4,
                   conv_scale=0.01, overlap_ratio=0.5, img_range=1.0, depths=[1, 1], embed_dim=60, num_heads=[2, 2],
                   mlp_ratio=2, upsampler="pixelshuffle", resi_connection="1conv")  # heads of 30, as HAT's
TINY_DRCT_X4 = dict(upscale=4, in_chans=3, img_size=32, window_size=8, compress_ratio=3, squeeze_factor=4,
                    conv_scale=0.01, overlap_ratio=0.5, img_range=1.0, depths=[2], embed_dim=60, num_heads=[2],
                    mlp_ratio=2, upsampler="pixelshuffle", resi_connection="1conv", gc=16)


def _tiny_dlgsanet() -> dict:
    from restoregen.bench import DLGSANET_LIGHT_X4

    return {**DLGSANET_LIGHT_X4, "dim": 12, "groups": 1, "blocks": 1, "idynamic_num_heads": 2,
            "restormer_num_heads": 2, "tlc_kernel": 16}


def _psnr(a, b) -> float:
    import math

    import torch

    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def worker_photo(args, emitter: Emitter) -> dict:
    """scikit-image's astronaut, x4 in fp32, bf16 and fp16 through the Upscaler (the CLI's path)."""
    import torch
    from skimage import data

    import restoregen
    from restoregen.archs import build
    from restoregen.bench import HAT_S_X4
    from restoregen.inference.loading import network_info
    from restoregen.inference.tiling import Upscaler

    device = _device(args)
    side = 128 if args.dry_run else 512  # the photo is 512x512; its x1/4 downscale is the input
    hr = torch.from_numpy(data.astronaut()[:side, :side].copy()).permute(2, 0, 1)[None].float() / 255
    lr = torch.nn.functional.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
    emitter.emit(photo=f"skimage.data.astronaut(), {side}x{side} crop; input its bicubic (antialiased) x1/4 "
                       f"downscale, {lr.shape[-1]}x{lr.shape[-2]}; PSNR on RGB in [0, 1], 4-pixel border cropped",
                 device=device, models={})

    def random_hat():
        kwargs = TINY_HAT_X4 if args.dry_run else HAT_S_X4
        torch.manual_seed(0)
        model = build("HAT", **kwargs).eval()
        return model, network_info("HAT", model, kwargs, dtypes=(torch.float32,), source="seeded random weights")

    def bundled():
        path = REPO / "weights" / "restoregen_default_x4.safetensors"
        return restoregen.load_model(str(path))

    # the goals apply to the HAT-S-sized network (the issue's check, as in tests/archs/test_cuda_precision.py);
    # the bundled model's figures (real weights, a good PSNR) are recorded beside them
    makers = {("HAT (tiny, seeded random weights)" if args.dry_run else "HAT-S (seeded random weights)"):
              (random_hat, True), "bundled default x4 (informational)": (bundled, False)}
    models: dict = {}
    ok = True
    for label, (make, goals) in makers.items():
        entry: dict = {"runs": {}, "goals_apply": goals}
        models[label] = entry
        outputs = {}
        for precision in ("fp32", "bf16", "fp16"):
            run: dict = {}
            entry["runs"][precision] = run
            try:
                model, info = make()
                entry.setdefault("params", sum(p.numel() for p in model.parameters()))
                messages: list[str] = []
                upscaler = Upscaler(model, info, device=device, precision=precision, tile=0, log=messages.append)
                out = upscaler(lr)  # first call: warm-up (kernels compile, cuDNN picks algorithms)
                _sync(device)
                start = time.perf_counter()
                out = upscaler(lr)
                _sync(device)
                run["ms"] = (time.perf_counter() - start) * 1e3
                run["dtype"] = str(upscaler.dtype).replace("torch.", "")
                run["fallback_messages"] = messages
                run["finite"] = bool(torch.isfinite(out).all())
                crop = (slice(None), slice(None), slice(4, -4), slice(4, -4))
                run["psnr_db"] = _psnr(out.clamp(0, 1)[crop], hr[crop])
                outputs[precision] = out
                if precision != "fp32" and "fp32" in outputs:
                    run["max_abs_diff_vs_fp32"] = (out - outputs["fp32"]).abs().max().item()
                    run["psnr_vs_fp32_output_db"] = _psnr(out, outputs["fp32"])
            except Exception as error:  # noqa: BLE001 - recorded per run
                run["error"] = f"{type(error).__name__}: {error}"
                ok = False
            emitter.emit(models=models)
        runs = entry["runs"]
        if "psnr_db" in runs["bf16"] and "psnr_db" in runs["fp32"]:
            entry["psnr_bf16_minus_fp32_db"] = runs["bf16"]["psnr_db"] - runs["fp32"]["psnr_db"]
            entry["psnr_goal_met"] = abs(entry["psnr_bf16_minus_fp32_db"]) < PSNR_GOAL_DB
            ok &= entry["psnr_goal_met"] or not goals or args.dry_run
        if "finite" in runs["fp16"]:
            entry["fp16_finite"] = runs["fp16"]["finite"] and runs["fp16"]["dtype"] == "float16"
            ok &= entry["fp16_finite"] or not goals or args.dry_run
        emitter.emit(models=models)
    note = "dry run: the goals are recorded, not enforced (bf16 on the CPU is not what they are for)" \
        if args.dry_run else None
    return {"status": "ok" if ok else "failed", "models": models, **({"note": note} if note else {}),
            **({} if ok else {"error": "a goal was missed or a run failed (see models)"})}


def _kernel_configs(dry_run: bool) -> list[dict]:
    """(label, workload, backends, dtypes): the networks whose attention path the step profiles."""
    from restoregen.bench import DRCT_X4, HAT_S_X4, HAT_X4

    if dry_run:
        return [
            dict(label="HAT (tiny, heads of 30) 32x32", arch="HAT", kwargs=TINY_HAT_X4, size=32,
                 backends=["auto", "sdpa", "triton", "flex", "math"], dtypes=["float32", "bfloat16"]),
            dict(label="DRCT (tiny) 32x32", arch="DRCT", kwargs=TINY_DRCT_X4, size=32, backends=["auto"],
                 dtypes=["float32"]),
            dict(label="DLGSANet (tiny) 32x32", arch="DLGSANet", kwargs=_tiny_dlgsanet(), size=32, backends=["auto"],
                 dtypes=["float32"]),
            dict(label="FreeSwim 2x8x12 win 2x5x7 d16", arch="freeswim",
                 kwargs=dict(grid=(2, 8, 12), window=(2, 5, 7), heads=2, head_dim=16), size=0,
                 backends=["auto", "sdpa"], dtypes=["float32"]),
        ]
    from restoregen.bench import DLGSANET_LIGHT_X4

    return [
        dict(label="HAT-S x4 128x128 (heads of 24)", arch="HAT", kwargs=HAT_S_X4, size=128,
             backends=["auto", "sdpa", "triton", "math", "flex"], dtypes=["bfloat16", "float32", "float16"]),
        dict(label="HAT x4 128x128 (heads of 30)", arch="HAT", kwargs=HAT_X4, size=128,
             backends=["auto", "sdpa", "triton"], dtypes=["bfloat16", "float32"]),
        dict(label="DRCT x4 128x128", arch="DRCT", kwargs=DRCT_X4, size=128, backends=["auto", "triton"],
             dtypes=["bfloat16", "float32"]),
        dict(label="DLGSANet-light x4 128x128", arch="DLGSANet", kwargs=DLGSANET_LIGHT_X4, size=128,
             backends=["auto", "triton"], dtypes=["bfloat16"]),
        dict(label="FreeSwim 5x32x56 win 5x17x29 d128", arch="freeswim",
             kwargs=dict(grid=(5, 32, 56), window=(5, 17, 29), heads=2, head_dim=128), size=0,
             backends=["auto", "sdpa", "flex"], dtypes=["bfloat16"]),
    ]


def worker_kernels(args, emitter: Emitter) -> dict:
    """The SDPA kernels each configuration really runs (profiler), with its time and peak memory."""
    import statistics

    import torch

    from restoregen.archs import build
    from restoregen.attention import attention_backend, available_backends, sdpa_kernels, sliding_window_attention

    device = _device(args)
    available = set(available_backends()) | {"auto"}
    rows: list[dict] = []
    emitter.emit(device=device, rows=rows, note="kernels from restoregen.attention.sdpa_kernels (torch profiler); "
                                                "'none' = no SDPA call (math, flex or Triton)")
    failures = 0
    for config in _kernel_configs(args.dry_run):
        for dtype_name in config["dtypes"]:
            dtype = getattr(torch, dtype_name)
            try:
                torch.manual_seed(0)
                if config["arch"] == "freeswim":
                    k = config["kwargs"]
                    frames, height, width = k["grid"]
                    q, key, v = (torch.randn(1, k["heads"], frames * height * width, k["head_dim"], device=device,
                                             dtype=dtype) for _ in range(3))

                    def forward(q=q, key=key, v=v, k=k):
                        return sliding_window_attention(q, key, v, k["grid"], k["window"])
                else:
                    model = build(config["arch"], **config["kwargs"]).eval().requires_grad_(False).to(device, dtype)
                    x = torch.rand(1, 3, config["size"], config["size"], device=device, dtype=dtype)

                    def forward(model=model, x=x):
                        return model(x)
            except Exception as error:  # noqa: BLE001
                rows.append({"config": f"{config['label']} {dtype_name}", "network": config["label"], "backend": "-",
                             "dtype": dtype_name, "error": f"{type(error).__name__}: {error}"[:1000]})
                failures += 1
                emitter.emit(rows=rows)
                continue
            for backend in config["backends"]:
                row: dict = {"config": f"{config['label']} {backend} {dtype_name}", "network": config["label"],
                             "backend": backend, "dtype": dtype_name}
                rows.append(row)
                if backend not in available:
                    row["skipped"] = f"backend {backend} is not available here"
                elif args.dry_run and backend == "flex":
                    row["skipped"] = "dry run: FlexAttention compiles per shape (minutes on this CPU)"
                elif backend == "flex" and dtype_name != "bfloat16":
                    row["skipped"] = "flex in bfloat16 only (each dtype compiles again)"
                if "skipped" in row:
                    emitter.emit(rows=rows)
                    continue
                try:
                    with attention_backend(backend), torch.inference_mode():
                        _sync(device)
                        start = time.perf_counter()
                        out = forward()  # compiles where it must
                        _sync(device)
                        row["first_call_s"] = time.perf_counter() - start
                        row["finite"] = bool(torch.isfinite(out).all())
                        row["kernels"] = list(sdpa_kernels(forward))
                        if device == "cuda":
                            torch.cuda.reset_peak_memory_stats()
                            base = torch.cuda.memory_allocated()
                        times = []
                        for _ in range(1 if args.dry_run else 5):
                            _sync(device)
                            start = time.perf_counter()
                            forward()
                            _sync(device)
                            times.append(time.perf_counter() - start)
                        row["ms"] = statistics.median(times) * 1e3
                        if device == "cuda":
                            row["peak_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
                except Exception as error:  # noqa: BLE001 - recorded per row
                    row["error"] = f"{type(error).__name__}: {error}"[:1000]
                    failures += 1
                emitter.emit(rows=rows)
            del forward
            if device == "cuda":
                torch.cuda.empty_cache()
    status = "ok" if failures == 0 else "failed"
    return {"status": status, "rows": rows, **({"error": f"{failures} configuration(s) failed"} if failures else {})}


def worker_fixtures(args, emitter: Emitter) -> dict:
    """The golden fixture models in bf16, every backend: relative error against the fixture."""
    reference = os.environ.get("RESTOREGEN_REFERENCE")
    if not reference or not Path(reference).is_dir():
        return {"status": "skipped", "reason": "no golden fixtures found (see --reference; --prepare copies them)"}
    sys.path.insert(0, str(REPO / "tests"))
    import torch
    from reference_data import case_dirs, load_case  # the parity tests' own loader

    from restoregen.archs import build
    from restoregen.attention import attention_backend, available_backends

    device = _device(args)
    # flex compiles once per fixture shape (minutes for all): pytest_cuda's test_fixture_models_in_bf16 runs it
    backends = ["auto"] if args.dry_run else ["auto", *(b for b in available_backends() if b != "flex")]
    cases: list[dict] = []
    emitter.emit(device=device, dtype="bfloat16", tolerance=BF16_TOLERANCE, backends=backends, cases=cases,
                 measure="max|out - ref| / max|ref|")
    for path in [p for family in ("hat", "drct", "dlgsanet") for p in case_dirs(family)]:
        config, weights, io = load_case(path)
        try:
            model = build(config["arch"], **config["kwargs"]).eval()
            model.load_state_dict(weights, strict=True)
            model = model.to(device, torch.bfloat16)
        except Exception as error:  # noqa: BLE001 - recorded per case
            cases.append({"case": path.name, "arch": config["arch"], "backend": "-", "ok": False,
                          "error": f"{type(error).__name__}: {error}"[:500]})
            emitter.emit(cases=cases)
            continue
        for backend in backends:
            entry: dict = {"case": path.name, "arch": config["arch"], "backend": backend}
            try:
                with attention_backend(backend), torch.inference_mode():
                    out = model(io["input"].to(device, torch.bfloat16))
                ref = io["output"].float()
                entry["relative_error"] = ((out.float().cpu() - ref).abs().max() / ref.abs().max()).item()
                entry["ok"] = entry["relative_error"] <= BF16_TOLERANCE
            except Exception as error:  # noqa: BLE001 - recorded per case
                entry["error"], entry["ok"] = f"{type(error).__name__}: {error}"[:500], False
            cases.append(entry)
            emitter.emit(cases=cases)
    errors = [c for c in cases if "relative_error" in c]
    worst = max(errors, key=lambda c: c["relative_error"]) if errors else None
    result = {"cases": cases, "worst_relative_error": worst["relative_error"] if worst else None,
              "worst": f"{worst['case']} {worst['backend']}" if worst else None}
    bad = [c for c in cases if not c["ok"] and (not args.dry_run or "error" in c)]
    if args.dry_run:
        result["note"] = "dry run: the tolerance is recorded, not enforced (bf16 on the CPU is not what it is for)"
    if not cases:
        return {"status": "skipped", "reason": f"no HAT/DRCT/DLGSANet fixtures under {reference}", **result}
    return {"status": "ok" if not bad else "failed", **result,
            **({"error": f"{len(bad)} of {len(cases)} over {BF16_TOLERANCE:g} or failed"} if bad else {})}


def _write_photos(folder: Path, size: tuple[int, int]) -> None:
    import cv2
    import numpy as np
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        image = np.ascontiguousarray(getattr(skimage.data, name)()[..., ::-1])
        cv2.imwrite(str(folder / f"{name}.png"), cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_options(folder: Path, cpu: bool, iterations: int, network: dict, precision: str) -> dict:
    """The option file of the training smoke runs (BasicSR schema; bicubic pairs of ``folder/gt``)."""
    return {"name": "gpu_check", "model_type": "HATModel", "scale": 2, "num_gpu": 0 if cpu else "auto",
            "manual_seed": 0,
            "datasets": {"train": {"name": "photos", "type": "BicubicPairedDataset",
                                   "dataroot_gt": str(folder / "gt"), "io_backend": {"type": "disk"},
                                   "gt_size": 32 if cpu else 64, "use_hflip": True, "use_rot": True,
                                   "use_shuffle": True, "num_worker_per_gpu": 0,
                                   "batch_size_per_gpu": 2 if cpu else 4}},
            "network_g": network, "path": {"pretrain_network_g": None},
            "train": {"ema_decay": 0.9, "optim_g": {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.99]},
                      "scheduler": {"type": "MultiStepLR", "milestones": [iterations], "gamma": 0.5},
                      "total_iter": iterations, "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0},
                      **({} if cpu else {"mixed_precision": precision})},
            "logger": {"print_freq": max(iterations // 4, 1), "save_checkpoint_freq": iterations,
                       "use_tb_logger": False}}


def _train(args, emitter: Emitter, processes: int) -> dict:
    """``accelerate launch -m restoregen train`` on a tiny HAT x2 (bicubic pairs of four sample photos)."""
    import yaml

    cpu = args.dry_run
    if not cpu:
        import torch

        count = torch.cuda.device_count()
        if count < processes:
            return {"status": "skipped", "reason": f"{count} CUDA device(s) here; this run needs {processes}"}
    iterations = 2 if cpu else 40
    folder = Path(tempfile.mkdtemp(prefix="gpu_check_train_"))
    try:
        _write_photos(folder / "gt", (96, 80) if cpu else (256, 256))
        network = {"type": "HAT", "upscale": 2, "in_chans": 3, "img_size": 16, "window_size": 8, "compress_ratio": 3,
                   "squeeze_factor": 4, "conv_scale": 0.01, "overlap_ratio": 0.5, "img_range": 1.0,
                   "depths": [1] if cpu else [2, 2], "embed_dim": 12 if cpu else 60,
                   "num_heads": [2] if cpu else [2, 2], "mlp_ratio": 2, "upsampler": "pixelshuffle",
                   "resi_connection": "1conv"}
        precision = "no" if cpu else "bf16"
        opt = train_options(folder, cpu, iterations, network, precision)
        (folder / "tiny.yml").write_text(yaml.safe_dump(opt, sort_keys=False))
        command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
                   "--num_machines", "1", "--mixed_precision", precision, "--dynamo_backend", "no"]
        command += ["--cpu"] if cpu else []
        command += ["--multi_gpu", "--main_process_port", str(_free_port())] if processes > 1 else []
        command += ["-m", "restoregen", "train", "-opt", "tiny.yml"]
        emitter.emit(command=" ".join(command[2:]), processes=processes, device="cpu" if cpu else "cuda",
                     iterations=iterations, mixed_precision=precision)
        start = time.perf_counter()
        timeout = (50 if cpu else 110) if processes == 1 else 130
        # its own process group: on a timeout the launcher and every training process it started end
        process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                   start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            return {"status": "timeout", "error": f"training did not end within {timeout} s",
                    "output_tail": _tail(stdout + stderr)}
        result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
        wall = time.perf_counter() - start
        models = folder / "experiments" / "gpu_check" / "models"
        checks = {"exit 0": result.returncode == 0, "net_g_latest.pth written": (models / "net_g_latest.pth").is_file(),
                  f"{processes} process(es) logged": f"{processes} process(es)" in result.stderr}
        if processes > 1:
            checks[f"weights identical on all {processes} processes"] = \
                f"weights identical on all {processes} processes" in result.stderr
        ok = all(checks.values())
        lines = [line for line in result.stderr.splitlines() if "iter" in line or "process" in line][-6:]
        return {"status": "ok" if ok else "failed", "wall_s": wall,
                "check": ", ".join(f"{name}: {'yes' if value else 'NO'}" for name, value in checks.items()),
                "log_lines": lines, **({} if ok else {"error": "a check failed", "output_tail": _tail(result.stderr)})}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def worker_train_smoke(args, emitter: Emitter) -> dict:
    return _train(args, emitter, 1)


def worker_train_2gpu(args, emitter: Emitter) -> dict:
    return _train(args, emitter, 2)


# bundled model -> the option file of its last stage; train_bundled continues it from the bundled weights
TRAIN_BUNDLED = {"restoregen-x4": "train_restoregen_x4_large_stage2.yml",
                 "restoregen-real-x4": "train_restoregen_real_x4_large.yml",
                 "restoregen-x3": "train_restoregen_x3_stage3.yml",
                 "restoregen-x2": "train_restoregen_x2_stage3.yml"}
GPU_BATCH, GPU_LQ_PATCH = 32, 48  # per iteration on the GPU: 32 crops of 48x48 LR pixels
TRAIN_OVERHEAD_S = 25  # per model: process start, data workers, the export
ITERATION_RE = re.compile(r"iter (\d+), lr [^\]]*\] \[eta [^,]*, time \(data\) ([\d.]+) \(([\d.]+)\)\] l_pix: (\S+)")


def bundled_training_options(model: str, corpus: Path, cpu: bool, iterations: int) -> dict:
    """The last stage's options, continued from the bundled weights with GPU-sized batches."""
    import yaml

    from restoregen.inference.bundled import BUNDLED

    opt = yaml.safe_load((REPO / "options" / "train" / "default" / TRAIN_BUNDLED[model]).read_text())
    scale = int(opt["scale"])
    gt_size = (16 if cpu else GPU_LQ_PATCH) * scale
    train = opt["datasets"]["train"]
    train.update(dataroot_gt=str(corpus / "train.lmdb"), gt_size=gt_size, batch_size_per_gpu=2 if cpu else GPU_BATCH,
                 num_worker_per_gpu=0 if cpu else max(1, (os.cpu_count() or 2) - 2), pin_memory=not cpu)
    if "gt_size" in opt:  # the Real-* recipes crop the degraded pairs to it
        opt["gt_size"] = gt_size
    opt["datasets"] = {"train": train}
    opt.pop("val", None)
    opt.update(name=f"gpu_{model}", num_gpu=0 if cpu else "auto")
    opt["path"] = {"pretrain_network_g": str(REPO / "weights" / BUNDLED[model].file), "strict_load_g": True}
    schedule = opt["train"]
    schedule["scheduler"] = {"type": "CosineAnnealingRestartLR", "periods": [iterations], "restart_weights": [1],
                             "eta_min": 1e-6}
    schedule["total_iter"] = iterations
    schedule.update({} if cpu else {"mixed_precision": "bf16"})
    opt["logger"] = {"print_freq": max(iterations // 20, 1), "save_checkpoint_freq": max(iterations // 5, 1),
                     "keep_checkpoints": 1, "use_tb_logger": False}
    return opt


def _seconds_per_iteration(opt: dict, device: str, corpus: Path) -> dict:
    """The network's training step on random crops and the data loader's share, measured."""
    import torch

    from restoregen.data import build_dataset
    from restoregen.train.networks import build_network

    train = opt["datasets"]["train"]
    scale, batch = int(opt["scale"]), train["batch_size_per_gpu"]
    net = build_network(opt).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-5)
    lq = torch.rand(batch, 3, train["gt_size"] // scale, train["gt_size"] // scale, device=device)
    gt = torch.rand(batch, 3, train["gt_size"], train["gt_size"], device=device)
    precision = torch.bfloat16 if device == "cuda" else torch.float32

    def step() -> None:
        with torch.autocast(device, dtype=precision, enabled=device == "cuda"):
            loss = (net(lq) - gt).abs().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2 if device == "cpu" else 5):
        step()
    _sync(device)
    repeats = 2 if device == "cpu" else 10
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    _sync(device)
    step_s = (time.perf_counter() - start) / repeats
    dataset = build_dataset({**train, "phase": "train", "scale": scale})
    first = dataset[0]  # opens the store
    items = 4 if device == "cpu" else 24
    start = time.perf_counter()
    for index in range(1, items + 1):
        dataset[index % len(dataset)]
    item_s = (time.perf_counter() - start) / items
    data_s = item_s * batch / max(train["num_worker_per_gpu"], 1)
    degrade_s = 0.0
    if "kernel1" in first:  # the Real-* recipes degrade each batch in the training process
        from restoregen.data.realesrgan import SecondOrderDegradation

        degrade = SecondOrderDegradation(opt).to(device)
        inputs = [torch.stack([first[key]] * batch).to(device) for key in ("gt", "kernel1", "kernel2", "sinc_kernel")]
        degrade(*inputs)
        _sync(device)
        start = time.perf_counter()
        for _ in range(3):
            degrade(*inputs)
        _sync(device)
        degrade_s = (time.perf_counter() - start) / 3
    return {"step_s": step_s, "degrade_s": degrade_s, "data_s_per_batch": data_s,
            "iteration_s": max(step_s + degrade_s, data_s)}


def worker_train_bundled(args, emitter: Emitter) -> dict:
    """Continue the bundled models' training on the corpus (--prepare-training's pack), within the step's time;
    each model's EMA weights go to ``OUT/<model>.gpu.safetensors``. Dry run: two CPU iterations per model."""
    import yaml

    deadline = time.monotonic() + (args.timeout or 560) - 10
    cpu = args.dry_run
    device = _device(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in TRAIN_BUNDLED]
    if unknown:
        return {"status": "failed", "error": f"--models: unknown {unknown}; choose from {list(TRAIN_BUNDLED)}"}
    work = Path(tempfile.mkdtemp(prefix="gpu_check_bundled_"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    record: dict = {"device": device, "models": {}}
    try:
        pack = REPO / ".gpu_check" / "corpus"
        prepare = [sys.executable, str(REPO / "scripts" / "prepare_default_data.py"), "--out", str(work / "corpus")]
        if not (pack / "photos.json").is_file():
            if not cpu:
                return {"status": "failed", "error": f"no corpus in {pack}: run --prepare-training PACKAGES first"}
            prepare += ["--pack", str(work / "pack")]  # dry run: the skimage photos alone, through a pack
        start = time.perf_counter()
        built = subprocess.run(prepare + (["--from-pack", str(pack)] if pack.is_dir() and not cpu else []),
                               capture_output=True, text=True, env=env, timeout=max(deadline - time.monotonic(), 1))
        if built.returncode != 0:
            return {"status": "failed", "error": f"the corpus: {_tail(built.stderr)}"}
        record["corpus"] = {"seconds": time.perf_counter() - start, "summary": built.stdout.strip().splitlines()[-4:]}
        emitter.emit(**record)
        for position, model in enumerate(models):
            share = (deadline - time.monotonic()) / (len(models) - position) - TRAIN_OVERHEAD_S
            opt = bundled_training_options(model, work / "corpus", cpu, 2)
            timing = _seconds_per_iteration(opt, device, work / "corpus")
            iterations = 2 if cpu else max(int(share * 0.85 / timing["iteration_s"]), 10)
            opt = bundled_training_options(model, work / "corpus", cpu, iterations)
            entry = {"option_file": TRAIN_BUNDLED[model], "iterations_planned": iterations, **timing,
                     "batch": opt["datasets"]["train"]["batch_size_per_gpu"],
                     "gt_size": opt["datasets"]["train"]["gt_size"]}
            record["models"][model] = entry
            emitter.emit(**record)
            option_file = work / f"gpu_{model}.yml"
            option_file.write_text(yaml.safe_dump(opt, sort_keys=False))
            start = time.perf_counter()
            limit = max(min(share + TRAIN_OVERHEAD_S, deadline - time.monotonic()), 1)
            rc, text = run_process([sys.executable, "-m", "restoregen", "train", "-opt", str(option_file)]
                                   + (["--threads", "1"] if cpu else []), limit, sys.stdout, env, cwd=work)
            text = text.replace("\r", "\n")
            done = ITERATION_RE.findall(text)
            entry.update(train_exit=rc, train_s=time.perf_counter() - start)
            if done:
                iteration, seconds, data, loss = done[-1]
                entry.update(iterations_done=int(iteration), s_per_iteration=float(seconds),
                             data_s_per_iteration=float(data), l_pix=float(loss))
            checkpoints = sorted((work / "experiments" / opt["name"] / "models").glob("net_g_*.pth"),
                                 key=lambda p: p.stat().st_mtime)
            if not checkpoints:
                entry["error"] = f"no checkpoint written (exit {rc}): {_tail(text, 800)}"
                emitter.emit(**record)
                continue
            out = args.out / f"{model}.gpu.safetensors"
            exported = subprocess.run([sys.executable, str(REPO / "scripts" / "export_weights.py"), "-opt",
                                       str(option_file), "--checkpoint", str(checkpoints[-1]), "--out", str(out)],
                                      capture_output=True, text=True, env=env, timeout=120)
            entry.update(checkpoint=checkpoints[-1].name, weights=out.name if exported.returncode == 0 else None)
            if exported.returncode != 0:
                entry["error"] = f"export: {_tail(exported.stderr, 800)}"
            emitter.emit(**record)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    failed = [m for m, e in record["models"].items() if not e.get("weights")]
    return {**record, "status": "failed" if failed or not record["models"] else "ok",
            **({"error": f"no weights for {', '.join(failed)}"} if failed else {})}


WORKERS = {"environment": worker_environment, "photo_x4": worker_photo, "sdpa_kernels": worker_kernels,
           "fixtures_bf16": worker_fixtures, "train_smoke": worker_train_smoke, "train_2gpu": worker_train_2gpu,
           "train_bundled": worker_train_bundled}

if __name__ == "__main__":
    raise SystemExit(main())
