import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_diffusers_is_not_imported_until_needed():
    code = ("import sys, restoregen, restoregen.attention, restoregen.diffusion, restoregen.diffusion.command\n"
            "from restoregen.diffusion import official_window, CrossAttentionCache\n"
            "print(sorted(m for m in ('diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "", "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.stdout.strip() == "[]"
