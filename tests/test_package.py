import subprocess
import sys

from restoregen import __version__
from restoregen.cli import main

HEAVY = ("diffusers", "lpips", "basicsr", "torchvision", "cv2", "accelerate", "kornia")


def test_import_stays_light():
    code = ("import sys, restoregen, restoregen.attention, restoregen.archs; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_top_level_import_does_not_load_torch():
    code = "import sys, restoregen; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"restoregen {__version__}" in out
    assert "math, sdpa" in out and "HAT" in out


def test_python_dash_m():
    result = subprocess.run([sys.executable, "-m", "restoregen", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout
