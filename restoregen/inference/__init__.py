"""Inference: image I/O, tiling, the folder runner and the ``upscale`` / ``sample`` commands."""
