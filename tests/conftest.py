import os
import sys
from pathlib import Path

import pytest
import torch

# Tests are tiny: one thread avoids oversubscribing the CPU (which slows small ops many times over)
# and makes reductions deterministic, so the tight fixture tolerances do not depend on the machine.
torch.set_num_threads(1)

# No test writes into the source tree: no bytecode from this process or from the Python processes
# tests start (they inherit the variable); outputs go to tmp_path. pytest_sessionfinish checks it.
sys.dont_write_bytecode = True
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"

REPO = Path(__file__).resolve().parents[1]
_TREE = pytest.StashKey[set]()


def _tree_files(config) -> set[str]:
    """The files under the repository, minus .git and what pytest itself was asked to write there."""
    cache = config.rootpath / config.getini("cache_dir") if config.pluginmanager.has_plugin("cacheprovider") else None
    own = [Path(p).resolve() for p in (cache, config.option.basetemp, getattr(config.option, "xmlpath", None)) if p]
    files = set()
    for folder, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d != ".git" and Path(folder, d) not in own]
        files.update(os.path.relpath(os.path.join(folder, name), REPO) for name in names
                     if Path(folder, name) not in own)
    return files


def pytest_sessionstart(session):
    session.config.stash[_TREE] = _tree_files(session.config)


def pytest_sessionfinish(session):
    before = session.config.stash.get(_TREE, None)
    new = sorted(_tree_files(session.config) - before) if before is not None else []
    if new:  # a test wrote into the checkout (or something else did while the tests ran)
        listed = "\n  ".join(new[:20] + ([f"... {len(new) - 20} more"] if len(new) > 20 else []))
        session.config.get_terminal_writer().line(f"\nnew files in the source tree {REPO}:\n  {listed}", red=True)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(tryfirst=True)  # before -m selects
def pytest_collection_modifyitems(config, items):
    for item in items:
        # FlexAttention compiles with inductor on the CPU: 5-35 s a test with a cold cache
        if getattr(item, "callspec", None) and item.callspec.params.get("backend") == "flex":
            item.add_marker(pytest.mark.slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
