"""The GAN loss of BasicSR's option files (``gan_type`` vanilla, lsgan, wgan, wgan_softplus,
hinge; ``wgan_softplus`` is the logistic loss of StyleGAN2 and StyleSwin). ``loss_weight`` applies to
the generator's loss only. :func:`r1_penalty` is the lazy R1 regulariser of the GAN recipes."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

GAN_TYPES = ("vanilla", "lsgan", "wgan", "wgan_softplus", "hinge")


class GANLoss(nn.Module):
    def __init__(self, gan_type: str, real_label_val: float = 1.0, fake_label_val: float = 0.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if gan_type not in GAN_TYPES:
            raise ValueError(f"gan_type must be one of {GAN_TYPES}, got {gan_type!r}")
        self.gan_type, self.loss_weight = gan_type, loss_weight
        self.real_label_val, self.fake_label_val = real_label_val, fake_label_val

    def _loss(self, pred: Tensor, real: bool, is_disc: bool) -> Tensor:
        if self.gan_type == "wgan":
            return -pred.mean() if real else pred.mean()
        if self.gan_type == "wgan_softplus":
            return F.softplus(-pred).mean() if real else F.softplus(pred).mean()
        if self.gan_type == "hinge":
            if not is_disc:
                return -pred.mean()
            return F.relu(1 - pred).mean() if real else F.relu(1 + pred).mean()
        target = pred.new_full(pred.shape, self.real_label_val if real else self.fake_label_val)
        if self.gan_type == "vanilla":
            return F.binary_cross_entropy_with_logits(pred, target)
        return F.mse_loss(pred, target)  # lsgan

    def forward(self, pred: Tensor, target_is_real: bool, is_disc: bool = False) -> Tensor:
        loss = self._loss(pred, target_is_real, is_disc)
        return loss if is_disc else loss * self.loss_weight


def r1_penalty(pred: Tensor, images: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): the batch mean of ``|d pred / d image|^2``, the gradient of the
    discriminator's logits ``pred`` with respect to the real ``images`` (which must require
    grad). The graph is kept, so the penalty can be back-propagated into the discriminator."""
    (grad,) = torch.autograd.grad(pred.sum(), images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
