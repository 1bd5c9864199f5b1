"""FreeSwim's official coarse-to-fine recipe on a local Wan diffusers model.

1. Generate at the training size with the stock text-to-video pipeline.
2. Resize every frame to the target size (bilinear, as the official ``cv2.INTER_LINEAR``).
3. Re-denoise video-to-video at the target size with FreeSwim patched in, the official strength
   0.7 and the scheduler's flow shift set to 9.0 (guidance 5.0 throughout).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .official import OFFICIAL, OFFLOAD
from .patching import patched


def load_wan(model_dir: str | os.PathLike, dtype: torch.dtype | None = None):
    """Load a local Wan text-to-video diffusers folder (VAE in float32, as the official script)."""
    from diffusers import AutoencoderKLWan, WanPipeline

    path = Path(model_dir)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"{path} is not a diffusers model folder (no model_index.json)")
    if dtype is None:
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    vae = AutoencoderKLWan.from_pretrained(path, subfolder="vae", torch_dtype=torch.float32)
    return WanPipeline.from_pretrained(path, vae=vae, torch_dtype=dtype)


def with_flow_shift(scheduler, shift: float):
    """A copy of a flow-matching scheduler with its flow shift set (UniPC ``flow_shift`` or Euler ``shift``)."""
    for key in ("flow_shift", "shift"):
        if key in scheduler.config:
            return type(scheduler).from_config(scheduler.config, **{key: shift})
    raise ValueError(f"{type(scheduler).__name__} has no flow shift to set")


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(F, H, W, C)`` float frames -> ``(F, height, width, C)``, bilinear with half-pixel centres."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    video = torch.nn.functional.interpolate(video, size=(height, width), mode="bilinear", align_corners=False)
    return video.permute(0, 2, 3, 1).clamp(0, 1).numpy()


def _place(pipe, device, offload: str, vae_tiling: bool) -> None:
    if offload not in OFFLOAD:
        raise ValueError(f"offload must be one of {', '.join(OFFLOAD)}, got {offload!r}")
    if offload == "none" or torch.device(device).type == "cpu":
        pipe.to(device)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)
    if vae_tiling:
        pipe.vae.enable_tiling()


def coarse_to_fine(model, prompt: str, negative_prompt: str | None = None, *,
                   height: int = OFFICIAL.target_size[0], width: int = OFFICIAL.target_size[1],
                   train_size: tuple[int, int] = OFFICIAL.train_size, num_frames: int = OFFICIAL.num_frames,
                   num_inference_steps: int = 50, guidance_scale: float = OFFICIAL.guidance_scale,
                   strength: float = OFFICIAL.strength, flow_shift: float = OFFICIAL.flow_shift,
                   seed: int | None = None, cache_every: int | None = None, cache_device=None,
                   device: str | torch.device | None = None, offload: str = "none", vae_tiling: bool = False,
                   return_base: bool = False):
    """Generate ``num_frames`` frames at ``height x width`` with the official FreeSwim recipe.

    Args:
        model: a local Wan diffusers folder, or a loaded ``WanPipeline``.
        train_size: the model's training size ``(height, width)``: the first pass runs there, and it
            sets FreeSwim's window and scale.
        cache_every / cache_device: FreeSwim's cache mode (see :func:`~.patching.patch`).
        offload: ``"none"``, ``"model"`` or ``"sequential"`` CPU offload of the pipelines (CUDA only).
        return_base: also return the first-pass video at the training size.

    Returns ``(F, height, width, 3)`` float frames in ``[0, 1]`` (and the base video).
    """
    from diffusers import WanVideoToVideoPipeline

    for name, size in (("target", (height, width)), ("training", tuple(train_size))):
        if any(s <= 0 or s % 16 for s in size):
            raise ValueError(f"the {name} size {size[0]}x{size[1]} must be positive multiples of 16")
    if num_frames < 1 or (num_frames - 1) % 4:
        raise ValueError(f"num_frames must be 4k + 1 (Wan's VAE packs 4 frames per latent), got {num_frames}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t2v = load_wan(model) if isinstance(model, (str, os.PathLike)) else model

    def generator():
        return None if seed is None else torch.Generator("cpu").manual_seed(seed)

    _place(t2v, device, offload, vae_tiling)
    # encoded once for both passes (the stock video-to-video pipeline's prompt cleaning needs ftfy)
    encoded = t2v.encode_prompt(prompt, negative_prompt, do_classifier_free_guidance=guidance_scale > 1.0,
                                device=t2v._execution_device)
    embeds = dict(zip(("prompt_embeds", "negative_prompt_embeds"), encoded, strict=True))
    base = t2v(height=train_size[0], width=train_size[1], num_frames=num_frames,
               num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, generator=generator(),
               output_type="np", **embeds).frames
    if offload != "none":
        t2v.remove_all_hooks()

    v2v = WanVideoToVideoPipeline.from_pipe(t2v)
    v2v.scheduler = with_flow_shift(t2v.scheduler, flow_shift)
    _place(v2v, device, offload, vae_tiling)
    with patched(v2v, train_size=tuple(train_size), cache_every=cache_every, cache_device=cache_device):
        video = v2v(video=resize_frames(base[0], height, width), height=height, width=width,
                    num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, strength=strength,
                    generator=generator(), output_type="np", **embeds).frames[0]
    if offload != "none":
        v2v.remove_all_hooks()
    return (video, base[0]) if return_base else video
