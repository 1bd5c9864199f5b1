"""The official coarse-to-fine recipe and ``restoregen freeswim`` on a tiny Wan folder."""

import cv2
import numpy as np
import pytest
import torch

from restoregen.cli import main
from restoregen.diffusion import coarse_to_fine, is_patched
from restoregen.diffusion.recipe import resize_frames

SIZES = ["--height", "64", "--width", "64", "--train-size", "32", "32", "--frames", "5", "--steps", "2"]


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory, wan_pipe):
    path = tmp_path_factory.mktemp("tiny-wan")
    wan_pipe.save_pretrained(path)
    return path


def test_coarse_to_fine_runs_the_official_second_pass(wan_dir, monkeypatch):
    from diffusers import WanVideoToVideoPipeline

    seen = {}
    original = WanVideoToVideoPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.update(kwargs, patched=is_patched(self), flow_shift=self.scheduler.config.flow_shift,
                    video_shape=kwargs["video"].shape)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WanVideoToVideoPipeline, "__call__", spy)
    video, base = coarse_to_fine(wan_dir, "a cat walks on the beach", "blurry", height=64, width=64,
                                 train_size=(32, 32), num_frames=5, num_inference_steps=2, seed=0, return_base=True)
    assert base.shape == (5, 32, 32, 3) and video.shape == (5, 64, 64, 3)
    assert video.min() >= 0 and video.max() <= 1
    assert seen["patched"] and seen["strength"] == 0.7 and seen["flow_shift"] == 9.0
    assert seen["guidance_scale"] == 5.0 and seen["video_shape"] == (5, 64, 64, 3)


def test_resize_is_bilinear_with_half_pixel_centres():
    frames = torch.rand(2, 6, 10, 3).numpy()
    resized = resize_frames(frames, 12, 20)
    expected = [cv2.resize(f, (20, 12), interpolation=cv2.INTER_LINEAR) for f in frames]
    assert abs(resized - np.stack(expected)).max() < 1e-5


def test_cli_writes_the_video_and_the_base(wan_dir, tmp_path, capsys):
    out, base = tmp_path / "out.mp4", tmp_path / "base"
    code = main(["freeswim", str(wan_dir), str(out), "--prompt", "a dog runs", "--seed", "1", "--cache-every", "2",
                 "--cache-device", "cpu", "--save-base", str(base), *SIZES])
    assert code == 0 and "wrote" in capsys.readouterr().out
    capture = cv2.VideoCapture(str(out))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 5 and capture.get(cv2.CAP_PROP_FRAME_WIDTH) == 64
    assert sorted(p.name for p in base.iterdir()) == [f"frame_{i:04d}.png" for i in range(5)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("args,message", [
    (["--height", "60"], "--height 60 must be a positive multiple of 16"),
    (["--frames", "6"], "--frames 6 must be 4k + 1"),
    (["--cache-every", "0"], "--cache-every 0 must be at least 1"),
])
def test_cli_reports_bad_options(wan_dir, tmp_path, capsys, args, message):
    assert main(["freeswim", str(wan_dir), str(tmp_path / "o.mp4"), "--prompt", "a", *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_reports_a_missing_model(tmp_path, capsys):
    assert main(["freeswim", str(tmp_path / "nowhere"), str(tmp_path / "o.mp4"), "--prompt", "a"]) == 2
    assert "not a diffusers model folder" in capsys.readouterr().err
    assert main(["freeswim", str(tmp_path), str(tmp_path / "o.gif"), "--prompt", "a"]) == 2
