"""Losses give basicsr's values (pixel, GAN, perceptual with the same local VGG weights)."""

from __future__ import annotations

import types

import pytest
import torch

from restoregen._compat import import_basicsr
from restoregen.losses import build_loss
from restoregen.losses.perceptual import find_vgg_weights, vgg_features, vgg_layer_names


@pytest.fixture(scope="module")
def basicsr_losses():
    basic, gan = import_basicsr("losses.basic_loss"), import_basicsr("losses.gan_loss")
    return types.SimpleNamespace(**vars(basic), GANLoss=gan.GANLoss)


@pytest.mark.parametrize("name", ["L1Loss", "MSELoss", "CharbonnierLoss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_pixel_losses_match_basicsr(basicsr_losses, name, reduction, weighted):
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    weight = torch.rand(2, 1, 8, 8) if weighted else None
    ours = build_loss({"type": name, "loss_weight": 0.5, "reduction": reduction})(pred, target, weight)
    theirs = getattr(basicsr_losses, name)(loss_weight=0.5, reduction=reduction)(pred, target, weight)
    assert torch.allclose(ours, theirs, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("gan_type", ["vanilla", "lsgan", "wgan", "wgan_softplus", "hinge"])
def test_gan_loss_matches_basicsr(basicsr_losses, gan_type):
    torch.manual_seed(0)
    pred = torch.randn(2, 1, 6, 6)
    ours = build_loss({"type": "GANLoss", "gan_type": gan_type, "real_label_val": 0.9, "loss_weight": 0.1})
    theirs = basicsr_losses.GANLoss(gan_type, real_label_val=0.9, loss_weight=0.1)
    for real in (True, False):
        for is_disc in (True, False):
            assert torch.allclose(ours(pred, real, is_disc), theirs(pred, real, is_disc), atol=1e-7)


def test_vgg_layer_names():
    assert vgg_layer_names("vgg19")[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert vgg_layer_names("vgg19").index("conv5_4") == 34 and len(vgg_layer_names("vgg16")) == 31


def test_perceptual_loss_matches_basicsr_with_the_same_local_weights(basicsr_losses, tmp_path, monkeypatch):
    torch.manual_seed(0)
    weights = tmp_path / "vgg19-random.pth"
    torch.save({f"features.{k}": v for k, v in vgg_features("vgg19").state_dict().items()}, weights)
    layers = {"conv1_2": 0.1, "conv3_4": 1.0, "conv5_4": 1.0}
    ours = build_loss({"type": "PerceptualLoss", "layer_weights": layers, "style_weight": 0.5,
                       "vgg_weights": str(weights)})
    vgg_arch = import_basicsr("archs.vgg_arch")
    monkeypatch.setattr(vgg_arch, "VGG_PRETRAIN_PATH", str(weights))  # basicsr's local-file path

    class FeaturesOnly(torch.nn.Module):  # torchvision's VGG without the 500 MB classifier
        def __init__(self, **_):
            super().__init__()
            self.features = vgg_features("vgg19")

    monkeypatch.setattr(vgg_arch, "vgg", types.SimpleNamespace(vgg19=FeaturesOnly))
    theirs = basicsr_losses.PerceptualLoss(layers, style_weight=0.5)
    x, gt = torch.rand(1, 3, 32, 32, requires_grad=True), torch.rand(1, 3, 32, 32)
    (percep, style), (percep_ref, style_ref) = ours(x, gt), theirs(x, gt)
    assert torch.allclose(percep, percep_ref, rtol=1e-5) and torch.allclose(style, style_ref, rtol=1e-5)
    percep.backward()
    assert x.grad is not None and not any(p.requires_grad for p in ours.vgg.parameters())


def test_missing_vgg_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="downloads nothing.*vgg19-dcbb9e9d.pth.*vgg_weights"):
        find_vgg_weights("vgg19")


def test_r1_penalty_closed_form():
    from restoregen.losses.gan import r1_penalty

    weight = torch.randn(3, 4, 4)
    images = torch.randn(5, 3, 4, 4, requires_grad=True)
    pred = (images * weight).flatten(1).sum(1, keepdim=True) + images.pow(2).flatten(1).sum(1, keepdim=True)
    penalty = r1_penalty(pred, images)  # d pred / d x = weight + 2 x
    expected = (weight + 2 * images.detach()).pow(2).flatten(1).sum(1).mean()
    torch.testing.assert_close(penalty, expected)
    penalty.backward()  # the graph is kept for the second derivative
    assert images.grad is not None
