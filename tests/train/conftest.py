"""Fixtures for the training tests; their helpers are in ``tests.train.helpers``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.train.helpers import write_photos

# Tiny networks gain nothing from threads, and OpenMP spinning on a shared CPU costs a lot
# (the environment variable is what restoregen.threads reads when a command starts in-process).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    return write_photos(tmp_path_factory.mktemp("photos") / "gt")


@pytest.fixture(scope="session")
def random_vgg19(tmp_path_factory) -> Path:
    """torchvision-format VGG19 feature weights, random (nothing is downloaded)."""
    from restoregen.losses.perceptual import vgg_features

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch.save({f"features.{k}": v for k, v in vgg_features("vgg19").state_dict().items()}, path)
    return path


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Each in-process run builds its own Accelerator."""
    yield
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()
