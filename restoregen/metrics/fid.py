"""Fréchet Inception Distance (FID) and Kernel Inception Distance (KID).

Both compare the 2048-d pool features of an Inception-v3 network on two image sets: FID the
Gaussians fitted to them, KID the unbiased squared MMD with the cubic polynomial kernel
``k(x, y) = (x.y / d + 1) ** 3`` averaged over random subsets.

Which weights give comparable numbers
-------------------------------------
Published GAN FIDs (StyleGAN2, StyleSwin, ...) use the TensorFlow Inception of TTUR
(``inception-2015-12-05``). In PyTorch that network is pytorch-fid's "FID Inception": the
torchvision Inception-v3 graph with 1008 classes and TF's pooling quirks (average pools that do
not count padding; max pool in the last block), with the weights file
``pt_inception-2015-12-05-6726825d.pth`` released by pytorch-fid
(github.com/mseitzer/pytorch-fid/releases/tag/fid_weights). StyleSwin's own evaluation
(``utils/fid_score.py``) uses exactly this network. :class:`FIDInceptionV3` has that layout and
loads that file (or a safetensors copy of it) from a local path; nothing is downloaded.

To reproduce StyleSwin's numbers, also match its protocol: 50,000 generated images, each rounded
to 8 bits (they were saved as PNG; :func:`quantize` does that in memory), against the features of
the real training images, resized bilinearly to 299x299 inside the network (pytorch-fid's
resize, not clean-fid's), batch statistics in float64.

torchvision's ImageNet weights (``inception_v3_google-*.pth``) also load (the layout is detected
from the classifier size), but they are a different network: FIDs computed with them are NOT
comparable to published ones. A randomly initialised network (no weights) is only good for tests.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FEATURE_DIM = 2048


# ---------------------------------------------------------------------------------------------
# The network


def _fid_blocks() -> dict[str, type[nn.Module]]:
    """torchvision's Inception blocks with the pooling of TensorFlow's FID Inception."""
    from torchvision.models import inception as tv

    def avg_pool_without_padding(x: Tensor) -> Tensor:
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)

    def max_pool(x: Tensor) -> Tensor:
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)

    def patched(base: type[nn.Module], pool) -> type[nn.Module]:
        def _forward(self, x: Tensor) -> list[Tensor]:
            branches = base._forward(self, x)
            branches[-1] = self.branch_pool(pool(x))  # the pooling branch is the last one
            return branches

        return type(f"FID{base.__name__}", (base,), {"_forward": _forward})

    return {"A": patched(tv.InceptionA, avg_pool_without_padding),
            "C": patched(tv.InceptionC, avg_pool_without_padding),
            "E": patched(tv.InceptionE, avg_pool_without_padding),
            "E_max": patched(tv.InceptionE, max_pool)}


class FIDInceptionV3(nn.Module):
    """Inception-v3 pool features for FID/KID: images in [0, 1] ``(B, 3, H, W)`` -> ``(B, 2048)``.

    ``layout="fid"`` builds pytorch-fid's FID Inception (1008 classes, TF pooling; state-dict keys
    of ``pt_inception-2015-12-05-6726825d.pth``); ``layout="torchvision"`` the plain torchvision
    network. Weights are random until :meth:`load_weights` (see :func:`load_inception`). Inputs are
    resized bilinearly to ``resize`` (299, as pytorch-fid; ``None`` keeps the size, at least 75)
    and scaled to [-1, 1].
    """

    def __init__(self, layout: str = "fid", resize: int | None = 299) -> None:
        super().__init__()
        from torchvision.models import inception as tv

        if layout not in ("fid", "torchvision"):
            raise ValueError(f"unknown Inception layout {layout!r}; use 'fid' or 'torchvision'")
        self.layout = layout
        self.resize = resize
        if layout == "fid":
            blocks = _fid_blocks()
            net = tv.Inception3(num_classes=1008, aux_logits=False, init_weights=False, inception_blocks=[
                tv.BasicConv2d, blocks["A"], tv.InceptionB, blocks["C"], tv.InceptionD, blocks["E"], tv.InceptionAux])
            net.Mixed_7c = blocks["E_max"](2048)
        else:
            net = tv.Inception3(num_classes=1000, aux_logits=False, init_weights=False)
        self.net = net.eval().requires_grad_(False)

    def load_weights(self, state_dict: dict[str, Tensor]) -> None:
        """Load an Inception state dict (the torchvision ``AuxLogits`` head is dropped)."""
        state = {k: v for k, v in state_dict.items() if not k.startswith("AuxLogits.")}
        self.net.load_state_dict(state, strict=True)

    def forward(self, images: Tensor) -> Tensor:
        x = images
        if self.resize is not None and x.shape[-2:] != (self.resize, self.resize):
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        net = self.net
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                     "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"):
            x = getattr(net, name)(x)
        return x.flatten(1)


def load_inception(path: str | Path, resize: int | None = 299) -> FIDInceptionV3:
    """:class:`FIDInceptionV3` with the weights of a LOCAL file (``.pth`` read with
    ``weights_only``, or ``.safetensors``). The layout follows the file: 1008 classes -> FID
    Inception (comparable to published FIDs), 1000 -> torchvision (warns: not comparable)."""
    from ..checkpoints import CheckpointError, read_checkpoint

    checkpoint = read_checkpoint(path)
    state = checkpoint.data
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise CheckpointError(f"{path}: not an Inception-v3 state dict (no 'fc.weight')")
    classes = state["fc.weight"].shape[0]
    layout = "fid" if classes == 1008 else "torchvision"
    if layout == "torchvision":
        warnings.warn(f"{path}: torchvision ImageNet Inception weights ({classes} classes); FID/KID computed with "
                      f"them are not comparable to published numbers (use {FID_WEIGHTS_FILE})", stacklevel=2)
    model = FIDInceptionV3(layout, resize=resize)
    try:
        model.load_weights(state)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: does not fit the {layout} Inception-v3 layout: {error}") from None
    return model


# ---------------------------------------------------------------------------------------------
# Features and statistics


def quantize(images: Tensor) -> Tensor:
    """Round [0, 1] images to 8 bits and back, as saving them to PNG does (torchvision's
    ``save_image`` rounds half up)."""
    return torch.floor(images.clamp(0, 1) * 255 + 0.5) / 255


@torch.no_grad()
def extract_features(model: nn.Module, batches: Iterable[Tensor], device: torch.device | str | None = None,
                     progress: bool = False) -> Tensor:
    """Features ``(N, 2048)`` in float64 of image batches in [0, 1] ``(B, 3, H, W)``."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    iterator = batches
    if progress:
        from tqdm import tqdm

        iterator = tqdm(batches, unit="batch", desc="inception")
    features = [model(batch.to(device, torch.float32)).double().cpu() for batch in iterator]
    if not features:
        raise ValueError("no images to compute Inception features of")
    return torch.cat(features)


def feature_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and covariance (unbiased, float64) of ``(N, D)`` features, N >= 2."""
    features = features.double()
    if features.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {features.shape[0]}")
    return features.mean(0), torch.cov(features.T)


def _psd_sqrt(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``; the trace of the matrix square root is
    computed as ``tr((S1^(1/2) S2 S1^(1/2))^(1/2))`` from symmetric eigenvalues (float64)."""
    mu1, mu2, sigma1, sigma2 = (torch.as_tensor(t, dtype=torch.float64) for t in (mu1, mu2, sigma1, sigma2))
    root1 = _psd_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt)


def fid_from_features(features1: Tensor, features2: Tensor) -> float:
    """FID between two feature sets ``(N1, D)`` and ``(N2, D)``.

    With fewer samples than dimensions the covariances have low rank and the trace term is taken
    exactly from the centred features: ``tr (S1 S2)^(1/2) = ||A B^T||_* / sqrt((N1-1)(N2-1))``
    (nuclear norm); otherwise from the statistics (:func:`frechet_distance`).
    """
    if min(features1.shape[0], features2.shape[0]) > features1.shape[1]:
        return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))
    if min(features1.shape[0], features2.shape[0]) < 2:
        raise ValueError("FID needs at least 2 images per set")
    a, b = features1.double(), features2.double()
    mu1, mu2 = a.mean(0), b.mean(0)
    a, b = a - mu1, b - mu2
    n1, n2 = a.shape[0] - 1, b.shape[0] - 1
    trace_sqrt = torch.linalg.svdvals(a @ b.T).sum() / (n1 * n2) ** 0.5
    diff = mu1 - mu2
    return float(diff @ diff + (a * a).sum() / n1 + (b * b).sum() / n2 - 2 * trace_sqrt)


def kid_from_features(features1: Tensor, features2: Tensor, num_subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over ``num_subsets`` random subsets of ``min(subset_size, N1, N2)`` each)."""
    x, y = features1.double(), features2.double()
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 images per set")
    d = x.shape[1]
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(num_subsets):
        a = x[torch.randperm(x.shape[0], generator=generator)[:m]]
        b = y[torch.randperm(y.shape[0], generator=generator)[:m]]
        k_aa, k_bb, k_ab = ((p @ q.T / d + 1) ** 3 for p, q in ((a, a), (b, b), (a, b)))
        within = (k_aa.sum() - k_aa.diagonal().sum() + k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))
        estimates.append(within - 2 * k_ab.mean())
    values = torch.stack(estimates)
    return float(values.mean()), float(values.std(unbiased=False))


def save_statistics(path: str | Path, mu: Tensor, sigma: Tensor) -> None:
    """Save ``mu``/``sigma`` as an ``.npz`` in pytorch-fid's format."""
    np.savez(path, mu=np.asarray(mu, dtype=np.float64), sigma=np.asarray(sigma, dtype=np.float64))


def load_statistics(path: str | Path) -> tuple[Tensor, Tensor]:
    """``mu``, ``sigma`` from a pytorch-fid ``.npz`` (read without pickle)."""
    with np.load(path, allow_pickle=False) as data:
        return torch.from_numpy(data["mu"]), torch.from_numpy(data["sigma"])


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def folder_batches(folder: str | Path, batch_size: int = 50, max_pixels: int = 8192 * 8192) -> Iterator[Tensor]:
    """Images of ``folder`` (sorted, RGB, [0, 1]) in batches; a batch ends early where the image
    size changes (the network resizes every image to 299x299 anyway)."""
    from PIL import Image

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    batch: list[Tensor] = []
    for file in files:
        with Image.open(file) as image:
            if image.width * image.height > max_pixels:
                raise ValueError(f"{file}: {image.width}x{image.height} is larger than {max_pixels} pixels")
            array = np.array(image.convert("RGB"), dtype=np.uint8)
        tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255
        if batch and (len(batch) == batch_size or batch[0].shape != tensor.shape):
            yield torch.stack(batch)
            batch = []
        batch.append(tensor)
    yield torch.stack(batch)


__all__ = [
    "FEATURE_DIM", "FID_WEIGHTS_FILE", "FIDInceptionV3", "extract_features", "feature_statistics", "fid_from_features",
    "folder_batches", "frechet_distance", "kid_from_features", "load_inception", "load_statistics", "quantize",
    "save_statistics",
]
