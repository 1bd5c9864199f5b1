"""README's quick start, run verbatim in a fresh clone's layout: ``pip install .`` into a new virtual
environment, then the upscale command on the sample photos the repository ships.

Offline: the new environment sees this environment's packages (torch & co.) through a ``.pth``
file, and pip is told by environment variables not to use an index or build isolation, so the
command line itself stays exactly as README writes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def quick_start_command() -> str:
    """The first line of the first code block under README's "Install and run"."""
    section = (REPO / "README.md").read_text().split("## Install and run", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return block.strip().splitlines()[0]


def _clone_files() -> list[str]:
    """What a clone of this working tree holds: tracked files and new ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return [name for name in listed if name and ((REPO / name).is_file() or (REPO / name).is_symlink())]


def _can_build_offline() -> str | None:
    """Why ``pip install .`` cannot build here without an index (None if it can)."""
    import importlib.metadata
    import importlib.util

    if shutil.which("git") is None or not (REPO / ".git").exists():
        return "not a git checkout"
    try:
        setuptools = tuple(int(p) for p in importlib.metadata.version("setuptools").split(".")[:2])
    except importlib.metadata.PackageNotFoundError:
        return "setuptools is not installed (pip would download it)"
    if setuptools < (70, 1) and importlib.util.find_spec("wheel") is None:
        return "neither wheel nor setuptools >= 70.1 is installed (pip would download them)"
    return None


def test_readme_quick_start_command() -> None:
    assert quick_start_command() == "pip install . && restoregen upscale photos/ photos_x4/"
    photos = sorted(p.name for p in (REPO / "photos").iterdir())
    assert photos == ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"]  # nothing else: the summary stays clean


@pytest.mark.slow
def test_readme_quick_start_runs_verbatim_in_a_fresh_clone(tmp_path: Path) -> None:
    import cv2

    reason = _can_build_offline()
    if reason:
        pytest.skip(reason)
    clone = tmp_path / "restoregen"
    for name in _clone_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, clone / name, follow_symlinks=False)
    assert not (clone / "photos_x4").exists()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    parents = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_parent_environment.pth").write_text("\n".join(parents) + "\n")  # torch & co., pip, setuptools
    pip = bin_dir / "pip"
    pip.write_text(f"#!{python}\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n")
    pip.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=os.pathsep.join([str(bin_dir), env.get("PATH", "")]), VIRTUAL_ENV=str(venv),
               PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONNOUSERSITE="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))

    result = subprocess.run(["bash", "-c", quick_start_command()], cwd=clone, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "done 3, skipped 0 (already there), failed 0, not read 0" in result.stdout
    installed = subprocess.run([str(python), "-c", "import restoregen; print(restoregen.__file__)"], cwd=tmp_path,
                               env=env, capture_output=True, text=True, check=True).stdout
    assert Path(installed.strip()).is_relative_to(venv), installed  # the clone's copy, not this checkout
    for photo in sorted((clone / "photos").iterdir()):
        source = cv2.imread(str(photo))
        result_image = cv2.imread(str(clone / "photos_x4" / f"{photo.stem}.png"))
        assert result_image is not None, photo.name
        assert result_image.shape == (source.shape[0] * 4, source.shape[1] * 4, 3)
        small = cv2.resize(result_image, source.shape[1::-1], interpolation=cv2.INTER_AREA)
        assert cv2.PSNR(small, source) > 30, photo.name  # an upscaled photo, not noise
