"""Access to the golden fixtures of ``../shared/reference`` (see its README).

Set ``RESTOREGEN_REFERENCE`` to use another location. Without the folder the parity tests are
skipped (their parameter sets are empty).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from safetensors.torch import load_file

REFERENCE_DIR = Path(os.environ.get("RESTOREGEN_REFERENCE")
                     or Path(__file__).resolve().parents[1].parent / "shared" / "reference")


def case_dirs(family: str) -> list[Path]:
    """Fixture case folders of a family (those holding a config.json)."""
    return sorted(p.parent for p in (REFERENCE_DIR / family).glob("*/config.json"))


def image_to_image_families() -> list[str]:
    """Fixture folders of restoregen's own image-to-image networks, as their registrations name them."""
    from restoregen.archs import IMAGE_TO_IMAGE, networks

    return [network.fixtures for network in networks(IMAGE_TO_IMAGE) if network.fixtures]


def released_files(family: str) -> list[Path]:
    return sorted((REFERENCE_DIR / family / "released").glob("*.json"))


def params(paths: list[Path]):
    """pytest parameters named after the folders/files."""
    return [pytest.param(p, id=p.stem if p.suffix else p.name) for p in paths]


def load_case(path: Path) -> tuple[dict, dict, dict]:
    """(config, weights, io) of a case; io tensors are cloned (unaligned views differ in the last ulp)."""
    config = json.loads((path / "config.json").read_text())
    weights = load_file(path / "weights.safetensors")
    io = {name: tensor.clone() for name, tensor in load_file(path / "io.safetensors").items()}
    return config, weights, io


def sr_tolerance(reference) -> float:
    """Parity tolerance of the image-to-image networks: ``1e-5 * max(1, max|ref|)``."""
    return 1e-5 * max(1.0, reference.abs().max().item())
