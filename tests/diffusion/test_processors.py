import json

import pytest
import torch
from safetensors.torch import load_file

from restoregen.diffusion import (
    CrossAttnOverrideProcessor,
    FreeSwimState,
    WanSelfAttnProcessor,
    log_scale,
    official_window,
)
from tests.reference_data import REFERENCE_DIR

REFERENCE = REFERENCE_DIR / "freeswim"
DUALPATH = sorted(p.name for p in REFERENCE.glob("dualpath_processors_*")) if REFERENCE.is_dir() else []


def wan_attention_pair(args, tensors):
    from diffusers.models.transformers.transformer_wan import WanAttention

    attn1 = WanAttention(args["dim"], args["heads"], args["head_dim"], eps=args["eps"])
    attn2 = WanAttention(args["dim"], args["heads"], args["head_dim"], eps=args["eps"],
                         cross_attention_dim_head=args["head_dim"])
    for prefix, module in (("attn1.", attn1), ("attn2.", attn2)):
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, strict=True)
    return attn1.eval(), attn2.eval()


@pytest.mark.skipif(not DUALPATH, reason="shared/reference/freeswim not found")
@pytest.mark.parametrize("case", DUALPATH)
def test_official_dual_path_processors(case):
    """Rows are [window, full]; the processors get grid, window and scale from their FreeSwimState."""
    args = json.loads((REFERENCE / case / "config.json").read_text())["args"]
    io = {k: v.clone() for k, v in load_file(REFERENCE / case / "io.safetensors").items()}
    attn1, attn2 = wan_attention_pair(args, io)
    state = FreeSwimState(window=(None, 2 * args["d_h"] + 1, 2 * args["d_w"] + 1), scale="log",
                          grid=(args["num_frames"], args["height"], args["width"]))
    assert state.softmax_scale(args["head_dim"]) == pytest.approx(args["self_attn_scale"], rel=1e-12)
    with torch.no_grad():
        out_self = WanSelfAttnProcessor(state)(attn1, io["hidden_states_self"],
                                               rotary_emb=(io["rotary_cos"], io["rotary_sin"]))
        out_cross = CrossAttnOverrideProcessor(state)(attn2, io["hidden_states_cross"], io["encoder_hidden_states"])
    assert (out_self - io["output_self"]).abs().max() <= 1e-5
    assert (out_cross - io["output_cross"]).abs().max() <= 1e-5


def test_official_defaults():
    assert official_window((30, 52)) == (None, 31, 53)  # Wan2.1-1.3B, 480 x 832
    assert official_window((45, 80)) == (None, 45, 81)  # 720 x 1280
    assert log_scale(128, 30 * 52) * 128**0.5 == pytest.approx(1.04608, abs=1e-5)
    state = FreeSwimState(window=(None, 3, 3), scale="default")
    assert state.softmax_scale(64) == 0.125 and FreeSwimState(window=(None, 3, 3), scale=0.5).softmax_scale(64) == 0.5
    with pytest.raises(ValueError, match="scale"):
        FreeSwimState(window=(None, 3, 3), scale="sqrt")


def test_processor_errors_name_the_problem():
    state = FreeSwimState(window=(None, 3, 3))
    q = torch.randn(3, 2, 18, 4)
    with pytest.raises(RuntimeError, match="token grid"):
        state.attend(q, q, q)
    state.grid = (2, 3, 3)
    with pytest.raises(RuntimeError, match="even batch"):
        state.attend(q, q, q)
