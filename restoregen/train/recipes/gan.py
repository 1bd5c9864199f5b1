"""Unconditional GAN recipe: StyleSwin (``model_type: StyleSwinGANModel``) on the shared engine.

One iteration, as StyleSwin's ``train_styleswin.py``:

1. **Discriminator**: the logistic loss ``softplus(-D(x)) + softplus(D(G(z)))`` on a real batch and
   a batch of fakes (no gradient to G), plus, with ``bcr_opt``, balanced consistency
   regularisation ``real_weight * |D(aug(x)) - D(x)|^2 + fake_weight * |D(aug(G(z))) - D(G(z))|^2``
   (:data:`~restoregen.data.diffaug.BCR_POLICY`). D's gradient norm is clipped to
   ``d_grad_clip`` (official 5.0), then one Adam step.
2. **Lazy R1** on iterations 1, 1 + k, 1 + 2k ... (``r1_opt``: ``gamma``, interval ``k``): a
   second D step on ``gamma / 2 * |grad_x D(x)|^2 * k``. With ``lazy_regularization`` (default)
   D's Adam rate and betas are multiplied / raised by ``k / (k + 1)`` (StyleGAN2's correction).
3. **Generator**: the non-saturating loss ``softplus(-D(G(z)))`` on fresh latents (with
   probability ``style_mixing`` two latents mixed at a random layer), one Adam step. The engine
   then updates the EMA of G (``ema_decay``, official ``0.5 ** (32 / 10000)``).

``gan_opt`` may name another :class:`~restoregen.losses.gan.GANLoss` type; its ``loss_weight``
scales the discriminator's loss and R1 too, as the official ``--gan_weight`` does. ``diffaug_opt``
adds differentiable augmentation of every discriminator input (real and fake, in the D, R1 and G
passes) for small datasets: DiffAugment's ``policy`` with probability ``p``, and, with
``target``, ADA's adaptive ``p`` (every ``interval`` iterations ``p`` moves by
``sign(E[sign D(x)] - target) * images / (speed_kimg * 1000)``).

Snapshots: every ``logger.save_snapshot_freq`` iterations (default: with each checkpoint) the EMA
generator renders the same ``logger.snapshot_images`` latents (seeded by the run's seed) into
``experiments/<name>/visualization/snapshot_<iter>.png``. Validation computes FID (and KID) of
``val.fid.num_samples`` EMA samples against the training images (or ``val.fid.real_images``: a
folder, or a pytorch-fid ``.npz``), with the Inception weights of ``val.fid.inception_weights``
(see :mod:`restoregen.metrics.fid`); without weights FID is skipped with a message.

Differences from the official script, on purpose: one real batch per iteration (the official G
step loads a second one and does not use it); the linear learning-rate decay (``LinearDecay``)
scales the lazily corrected rate, whereas the official script drops D's ``k / (k + 1)`` factor once
the decay starts (a 6 % jump of D's rate); G's Adam is not corrected (the official ratio for G is
``1e7 / (1e7 + 1)``).
"""

from __future__ import annotations

import logging
import math
import time

import torch
from torch import Tensor
from torch.nn import functional as F

from ...config import option_error
from ...data.diffaug import BCR_POLICY, DIFFAUGMENT_POLICY, diff_augment, parse_policy
from ...losses.gan import GAN_TYPES, GANLoss, r1_penalty
from ..engine import Recipe
from ..networks import build_network

log = logging.getLogger("restoregen.train")

DEFAULT_GAN_LOSS = {"type": "GANLoss", "gan_type": "wgan_softplus", "loss_weight": 1.0}
ADAM_BETAS = (0.9, 0.999)


class StyleSwinGANRecipe(Recipe):
    lower_is_better = frozenset({"fid", "kid"})

    # ---------------------------------------------------------------- setup

    def setup(self) -> None:
        opt, train, engine = self.opt, self.opt["train"], self.engine
        self._check_options()
        self.net_g = engine.add_network("g", build_network(opt, "network_g"), ema_decay=train.get("ema_decay", 0.0),
                                        describe=opt["network_g"])
        self.net_d = engine.add_network("d", build_network(opt, "network_d"), describe=opt["network_d"])
        self.style_dim = int(engine.slots["g"].bare.style_dim)

        r1 = train.get("r1_opt") or {}
        self.r1_gamma = float(r1.get("gamma", 0.0))
        self.r1_interval = int(r1.get("interval", 16))
        if self.r1_interval < 1:
            raise option_error(opt, "train.r1_opt.interval", "must be at least 1")
        optim_d = dict(train["optim_d"])
        if train.get("lazy_regularization", True) and self.r1_gamma > 0:
            ratio = self.r1_interval / (self.r1_interval + 1)
            optim_d["lr"] = optim_d["lr"] * ratio
            optim_d["betas"] = [beta**ratio for beta in optim_d.get("betas", ADAM_BETAS)]
        engine.add_optimizer("g", self.net_g.parameters(), train["optim_g"])
        engine.add_optimizer("d", self.net_d.parameters(), optim_d)

        loss = dict(train.get("gan_opt") or DEFAULT_GAN_LOSS)
        if loss.get("type") != "GANLoss" or loss.get("gan_type") not in GAN_TYPES:
            raise option_error(opt, "train.gan_opt.type", "the GAN recipe takes a GANLoss (gan_type wgan_softplus "
                               "is the official logistic loss)")
        self.gan_weight = float(loss.pop("loss_weight", 1.0))
        loss.pop("type")
        self.gan_loss = GANLoss(**loss)
        self.bcr = train.get("bcr_opt")
        self.d_grad_clip = train.get("d_grad_clip")
        self.style_mixing = float(train.get("style_mixing", 0.0))

        diffaug = train.get("diffaug_opt")
        self.aug_policy: tuple[str, ...] = ()
        self.aug_p = 0.0
        if diffaug:
            try:
                self.aug_policy = parse_policy(diffaug.get("policy", DIFFAUGMENT_POLICY))
            except ValueError as error:
                raise option_error(opt, "train.diffaug_opt.policy", str(error)) from None
            self.aug_p = float(diffaug.get("p", 1.0 if diffaug.get("target") is None else 0.0))
        self.ada = diffaug if diffaug and diffaug.get("target") is not None else None
        self.ada_signs = torch.zeros(2, dtype=torch.float64)  # sum of sign(D(x)) means, count
        self.last_r1 = torch.zeros(())

        train_set = opt["datasets"]["train"]
        self.data_mean = torch.tensor(train_set.get("mean") or (0.485, 0.456, 0.406)).view(1, 3, 1, 1)
        self.data_std = torch.tensor(train_set.get("std") or (0.229, 0.224, 0.225)).view(1, 3, 1, 1)
        self.fid = FIDMonitor(self) if self._fid_wanted() and engine.is_main else None

    def _check_options(self) -> None:
        opt, train = self.opt, self.opt["train"]
        if "network_d" not in opt:
            raise option_error(opt, "network_d", f"model type {opt['model_type']} needs a discriminator")
        if "optim_d" not in train:
            raise option_error(opt, "train.optim_d", f"model type {opt['model_type']} needs it")
        if train.get("grad_accum_steps", 1) != 1:
            raise option_error(opt, "train.grad_accum_steps", "the GAN recipe steps D and G alternately; use 1")
        if train.get("grad_clip_norm"):
            raise option_error(opt, "train.grad_clip_norm", "the GAN recipe clips D's GAN step with "
                               "train.d_grad_clip; remove grad_clip_norm")
        if self.engine.accelerator.mixed_precision == "fp16":
            raise option_error(opt, "train.mixed_precision", "fp16 loss scaling does not cover the R1 gradient; "
                               "use bf16 or no")

    def _fid_wanted(self) -> bool:
        section = (self.opt.get("val") or {}).get("fid")
        if not (self.opt.get("val") or {}).get("val_freq"):
            return False
        if not section or not section.get("inception_weights"):
            log.info("FID skipped: val.fid.inception_weights is not set (a local %s, see restoregen.metrics.fid)",
                     "pt_inception-2015-12-05-6726825d.pth")
            return False
        return True

    # ---------------------------------------------------------------- one iteration

    def generate(self, n: int) -> Tensor:
        """A batch of ``n`` fakes from random latents (two latents mixed with ``style_mixing``)."""
        device = self.engine.device
        z = torch.randn(n, self.style_dim, device=device)
        if self.style_mixing > 0 and float(torch.rand(())) < self.style_mixing:
            return self.net_g([z, torch.randn(n, self.style_dim, device=device)])[0]
        return self.net_g(z)[0]

    def augment(self, images: Tensor) -> Tensor:
        return diff_augment(images, self.aug_policy, self.aug_p) if self.aug_policy else images

    def train_step(self, batch: dict, iteration: int) -> dict[str, Tensor]:
        engine = self.engine
        real = batch["img"].to(engine.device, non_blocking=True)
        n = real.shape[0]
        losses: dict[str, Tensor] = {}

        # discriminator
        self.net_g.requires_grad_(False)
        self.net_d.requires_grad_(True)
        with torch.no_grad():
            fake = self.generate(n)
        real_pred, fake_pred = self.net_d(self.augment(real)), self.net_d(self.augment(fake))
        d_loss = self.gan_loss(real_pred, True, is_disc=True) + self.gan_loss(fake_pred, False, is_disc=True)
        total = self.gan_weight * d_loss
        losses["l_d"] = d_loss
        if self.bcr:
            bcr = (self.bcr.get("real_weight", 10.0) * F.mse_loss(self.net_d(diff_augment(real, BCR_POLICY)), real_pred)
                   + self.bcr.get("fake_weight", 10.0) * F.mse_loss(self.net_d(diff_augment(fake, BCR_POLICY)),
                                                                   fake_pred))
            total = total + bcr
            losses["l_d_bcr"] = bcr
        engine.backward(total)
        if self.d_grad_clip:
            engine.accelerator.clip_grad_norm_(self.net_d.parameters(), self.d_grad_clip)
        engine.step("d")
        losses["real_score"], losses["fake_score"] = real_pred.detach().mean(), fake_pred.detach().mean()

        # lazy R1
        if self.r1_gamma > 0 and (iteration - 1) % self.r1_interval == 0:
            real_r1 = real.detach().requires_grad_(True)
            pred = self.net_d(self.augment(real_r1))
            penalty = r1_penalty(pred, real_r1)
            # 0 * pred keeps every D parameter in the graph (DistributedDataParallel needs them all)
            engine.backward(self.gan_weight * (self.r1_gamma / 2 * penalty * self.r1_interval + 0 * pred.sum()))
            engine.step("d")
            self.last_r1 = penalty.detach()
        losses["l_r1"] = self.last_r1  # the latest value, as the official logs

        # generator
        self.net_g.requires_grad_(True)
        self.net_d.requires_grad_(False)
        fake = self.generate(n)
        with engine.no_sync("d"):
            g_loss = self.gan_loss(self.net_d(self.augment(fake)), True, is_disc=False)
        engine.backward(self.gan_weight * g_loss)
        engine.step("g")
        losses["l_g"] = g_loss

        if self.ada is not None:
            self._adapt(real_pred.detach(), n, iteration)
            losses["aug_p"] = torch.tensor(self.aug_p)
        order = ("l_d", "l_g")  # the progress bar shows the first two
        return {k: losses[k].detach() for k in (*order, *(k for k in losses if k not in order))}

    def _adapt(self, real_pred: Tensor, n: int, iteration: int) -> None:
        """ADA: move ``p`` towards keeping ``E[sign(D(x))]`` (the overfitting signal) at ``target``."""
        self.ada_signs += torch.tensor([float(real_pred.sign().mean()), 1.0], dtype=torch.float64)
        interval = int(self.ada.get("interval", 4))
        if iteration % interval:
            return
        engine = self.engine
        signs = self.ada_signs.to(engine.device)
        if engine.world_size > 1:
            signs = engine.accelerator.reduce(signs, reduction="sum")
        r_t = float(signs[0] / signs[1].clamp(min=1))
        step = n * engine.world_size * interval / (float(self.ada.get("speed_kimg", 500.0)) * 1000)
        self.aug_p = min(1.0, max(0.0, self.aug_p + math.copysign(step, r_t - float(self.ada["target"]))))
        self.ada_signs.zero_()

    # ---------------------------------------------------------------- images, snapshots, FID

    def to_unit_range(self, images: Tensor) -> Tensor:
        """Generator output (the training data's normalisation) -> RGB in [0, 1]."""
        mean, std = self.data_mean.to(images.device), self.data_std.to(images.device)
        return (images.float() * std + mean).clamp(0, 1)

    @torch.no_grad()
    def render(self, z: Tensor, batch_size: int = 8) -> Tensor:
        """[0, 1] images of the EMA generator (else G) for latents ``z``, on the CPU."""
        net = self.engine.eval_network("g")
        was_training = net.training
        net.eval()
        try:
            return torch.cat([self.to_unit_range(net(part.to(self.engine.device))[0]).cpu()
                              for part in z.split(batch_size)])
        finally:
            net.train(was_training)

    def snapshot(self, iteration: int):
        """Write the image grid of the fixed latents for ``iteration``; returns its path."""
        from ...imageio import ImageData, image_grid, write_image

        count = int(self.opt["logger"].get("snapshot_images", 16))
        z = torch.randn(count, self.style_dim, generator=torch.Generator().manual_seed(self.engine.seed))
        pixels = (self.render(z) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        path = self.engine.visualization / f"snapshot_{iteration:08d}.png"
        write_image(path, ImageData.from_uint8(image_grid(pixels, math.ceil(math.sqrt(count)))))
        return path

    def on_iteration_end(self, iteration: int) -> None:
        logger = self.opt["logger"]
        every = logger.get("save_snapshot_freq") or logger.get("save_checkpoint_freq", 5000)
        if self.engine.is_main and (iteration % every == 0 or iteration == self.engine.total_iter):
            log.info("snapshot %s", self.snapshot(iteration))

    def validate(self, iteration: int) -> dict[str, dict[str, float]]:
        if self.fid is None:
            return {}
        return {self.opt["datasets"]["train"].get("name", "train"): self.fid.measure()}

    # ---------------------------------------------------------------- resume

    def state_dict(self) -> dict:
        return {"aug_p": self.aug_p, "ada_signs": self.ada_signs.clone(), "last_r1": self.last_r1.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.aug_p = float(state.get("aug_p", self.aug_p))
        self.ada_signs = state.get("ada_signs", self.ada_signs).clone()
        self.last_r1 = state.get("last_r1", self.last_r1).to(self.engine.device)


class FIDMonitor:
    """FID (and KID) of the recipe's EMA generator during training (main process only).

    The Inception network is loaded from ``val.fid.inception_weights`` and the real features are
    computed on first use and kept; the fakes come from the same seeded latents each time
    (``val.fid.seed``), rounded to 8 bits as if saved to PNG, as in the official evaluation.
    """

    def __init__(self, recipe: StyleSwinGANRecipe) -> None:
        from ...checkpoints import CheckpointError
        from ...metrics.fid import load_inception

        self.recipe = recipe
        self.opt = recipe.opt["val"]["fid"]
        self.num_samples = int(self.opt.get("num_samples", 5000))
        self.batch_size = int(self.opt.get("batch_size", 16))
        if self.num_samples < 2:
            raise option_error(recipe.opt, "val.fid.num_samples", "FID needs at least 2 samples")
        try:
            self.inception = load_inception(self.opt["inception_weights"]).to(recipe.engine.device)
        except CheckpointError as error:
            raise option_error(recipe.opt, "val.fid.inception_weights", str(error)) from None
        self.real: Tensor | tuple[Tensor, Tensor] | None = None
        self.kid = bool(self.opt.get("kid", True))
        if self.kid and str(self.opt.get("real_images") or "").endswith(".npz"):
            log.info("KID skipped: val.fid.real_images is a statistics file; KID needs the real features")
            self.kid = False

    def _real_batches(self):
        from ...data import build_dataset

        section = dict(self.recipe.opt["datasets"]["train"], phase="val", use_hflip=False)
        if self.opt.get("real_images"):
            section.update(type="ImageFolderDataset", dataroot=self.opt["real_images"], image_list=None)
        dataset = build_dataset(section)
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, shuffle=False,
                                             num_workers=section.get("num_worker_per_gpu", 0))
        for batch in loader:
            yield self.recipe.to_unit_range(batch["img"])

    def real_reference(self) -> Tensor | tuple[Tensor, Tensor]:
        """Real features ``(N, 2048)``, or (mu, sigma) from a pytorch-fid ``.npz``."""
        if self.real is None:
            from ...metrics.fid import extract_features, load_statistics

            source = self.opt.get("real_images")
            if source and str(source).endswith(".npz"):
                self.real = load_statistics(source)
            else:
                start = time.time()
                self.real = extract_features(self.inception, self._real_batches())
                log.info("FID: Inception features of %d real images in %.0f s", len(self.real), time.time() - start)
        return self.real

    def measure(self) -> dict[str, float]:
        from ...metrics.fid import (
            extract_features,
            feature_statistics,
            fid_from_features,
            frechet_distance,
            kid_from_features,
            quantize,
        )

        real = self.real_reference()
        z = torch.randn(self.num_samples, self.recipe.style_dim,
                        generator=torch.Generator().manual_seed(int(self.opt.get("seed", 0))))
        fake = extract_features(self.inception, (quantize(self.recipe.render(part, self.batch_size))
                                                 for part in z.split(self.batch_size)))
        if isinstance(real, tuple):
            return {"fid": frechet_distance(*feature_statistics(fake), *real)}
        results = {"fid": fid_from_features(fake, real)}
        if self.kid:
            results["kid"] = kid_from_features(fake, real)[0]
        return results
