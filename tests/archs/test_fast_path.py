"""The default (fast) path and the explicit ``math`` path agree on every SR fixture model."""

import pytest
import torch

from reference_data import case_dirs, load_case, params, sr_tolerance
from restoregen.archs import build
from restoregen.attention import attention_backend

SR_CASES = [p for family in ("hat", "drct", "dlgsanet") for p in case_dirs(family)]


@pytest.mark.parametrize("path", params(SR_CASES))
def test_fast_and_math_paths_agree(path):
    config, weights, io = load_case(path)
    model = build(config["arch"], **config["kwargs"]).eval()
    model.load_state_dict(weights, strict=True)
    outputs = {}
    for backend in ("auto", "math"):
        with attention_backend(backend), torch.inference_mode():
            outputs[backend] = model(io["input"])
    assert (outputs["auto"] - outputs["math"]).abs().max().item() <= sr_tolerance(io["output"])
