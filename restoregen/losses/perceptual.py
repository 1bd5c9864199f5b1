"""VGG perceptual (and style) loss with BasicSR's arguments. The VGG weights come from a local
file only - nothing is downloaded:

1. ``vgg_weights`` in the loss options (restoregen's addition), else
2. BasicSR's place, ``experiments/pretrained_models/<torchvision file name>``, else
3. torch hub's cache, ``$TORCH_HOME/hub/checkpoints/<torchvision file name>``.

The file is a torchvision VGG state dict (``features.<i>.weight`` ...), e.g. ``vgg19-dcbb9e9d.pth``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

# convolutions per block, and the torchvision weight file of each VGG
VGG_BLOCKS = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
VGG_CONFIGS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}  # torchvision's names
VGG_FILES = {"vgg11": "vgg11-8a719046.pth", "vgg13": "vgg13-19584684.pth", "vgg16": "vgg16-397923af.pth",
             "vgg19": "vgg19-dcbb9e9d.pth"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_layer_names(vgg_type: str) -> list[str]:
    """Names of the layers of torchvision's ``vgg.features``: conv1_1, relu1_1, ..., pool5."""
    names = []
    for block, convs in enumerate(VGG_BLOCKS[vgg_type], start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def vgg_features(vgg_type: str) -> nn.Sequential:
    """torchvision's ``vgg.features`` layout, randomly initialised (the classifier is not built)."""
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs[VGG_CONFIGS[vgg_type]])


def find_vgg_weights(vgg_type: str, path: str | None = None) -> Path:
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"VGG weights {path!r} do not exist")
        return Path(path)
    name = VGG_FILES[vgg_type]
    candidates = [Path("experiments/pretrained_models") / name, Path(torch.hub.get_dir()) / "checkpoints" / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"the perceptual loss needs torchvision's {vgg_type} weights ({name}); restoregen downloads nothing: put the "
        f"file at {candidates[0]} or {candidates[1]}, or set 'vgg_weights: <path>' in perceptual_opt")


class VGGFeatures(nn.Module):
    """Frozen torchvision VGG features up to the last requested layer; returns {name: feature}."""

    def __init__(self, layers: list[str], vgg_type: str = "vgg19", use_input_norm: bool = True,
                 range_norm: bool = False, weights: str | None = None) -> None:
        super().__init__()
        names = vgg_layer_names(vgg_type)
        unknown = [layer for layer in layers if layer not in names]
        if unknown:
            raise ValueError(f"{vgg_type} has no layer {unknown[0]!r}; layers: {', '.join(names)}")
        last = max(names.index(layer) for layer in layers)
        features = vgg_features(vgg_type)[: last + 1]
        state = torch.load(find_vgg_weights(vgg_type, weights), map_location="cpu", weights_only=True)
        state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
        features.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) <= last})
        self.features = features.eval().requires_grad_(False)
        self.names = names[: last + 1]
        self.layers = set(layers)
        self.use_input_norm, self.range_norm = use_input_norm, range_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGFeatures:  # always frozen
        return super().train(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out = {}
        for name, layer in zip(self.names, self.features, strict=True):
            x = layer(x)
            if name in self.layers:
                out[name] = x.clone()
        return out


def gram_matrix(x: Tensor) -> Tensor:
    n, c, h, w = x.shape
    features = x.reshape(n, c, h * w)
    return features @ features.transpose(1, 2) / (c * h * w)


class PerceptualLoss(nn.Module):
    """Weighted distance of VGG features (``perceptual_weight``) and of their Gram matrices
    (``style_weight``); returns ``(perceptual, style)``, each None when its weight is 0."""

    def __init__(self, layer_weights: dict[str, float], vgg_type: str = "vgg19", use_input_norm: bool = True,
                 range_norm: bool = False, perceptual_weight: float = 1.0, style_weight: float = 0.0,
                 criterion: str = "l1", vgg_weights: str | None = None) -> None:
        super().__init__()
        if criterion not in ("l1", "l2", "fro"):
            raise ValueError(f"criterion must be 'l1', 'l2' or 'fro', got {criterion!r}")
        self.layer_weights = dict(layer_weights)
        self.perceptual_weight, self.style_weight, self.criterion = perceptual_weight, style_weight, criterion
        self.vgg = VGGFeatures(list(layer_weights), vgg_type, use_input_norm, range_norm, vgg_weights)

    def _distance(self, a: Tensor, b: Tensor) -> Tensor:
        if self.criterion == "fro":
            return torch.linalg.vector_norm(a - b)
        return nn.functional.l1_loss(a, b) if self.criterion == "l1" else nn.functional.mse_loss(a, b)

    def forward(self, x: Tensor, gt: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x_features, gt_features = self.vgg(x), self.vgg(gt.detach())
        percep = style = None
        if self.perceptual_weight > 0:
            percep = sum(self._distance(x_features[k], gt_features[k]) * w for k, w in self.layer_weights.items())
            percep = percep * self.perceptual_weight
        if self.style_weight > 0:
            style = sum(self._distance(gram_matrix(x_features[k]), gram_matrix(gt_features[k])) * w
                        for k, w in self.layer_weights.items())
            style = style * self.style_weight
        return percep, style

