"""Super-resolution recipes on the engine.

* :class:`SRRecipe`: ``net_g`` (+EMA) trained with pixel and/or perceptual losses on LQ/GT pairs
  from the dataset (BasicSR's SRModel, HATModel, DRCTModel ...). With a ``Real*`` model type the
  LQ is synthesised on the device by Real-ESRGAN's second-order degradations, and a training-pair
  pool mixes them across batches (RealHATMSEModel, RealESRNetModel ...).
* :class:`SRGANRecipe`: adds ``net_d`` and the GAN loss (RealHATGANModel, RealESRGANModel ...),
  with the USM-sharpened GT as the pixel/perceptual/GAN target where ``l1_gt_usm``,
  ``percep_gt_usm``, ``gan_gt_usm`` say so.

Validation runs the EMA network (else ``net_g``) over each ``val*`` dataset, computes the metrics
of ``val.metrics`` and saves images when ``val.save_img`` is set.
"""

from __future__ import annotations

from torch import Tensor

from ...config import option_error
from ...losses import build_loss
from ..engine import Recipe
from ..evaluate import evaluate
from ..networks import build_network


class SRRecipe(Recipe):
    real = False  # synthesise LQ with the Real-ESRGAN degradations
    needs_content_loss = True  # a pixel or perceptual loss is required (a GAN recipe has its GAN loss)

    def setup(self) -> None:
        opt, train, engine = self.opt, self.opt["train"], self.engine
        self.net_g = engine.add_network("g", build_network(opt, "network_g"), ema_decay=train.get("ema_decay", 0.0))
        self.pixel_loss = self._loss("pixel_opt")
        self.perceptual_loss = self._loss("perceptual_opt")
        if self.pixel_loss is None and self.perceptual_loss is None and self.needs_content_loss:
            raise option_error(opt, "train.pixel_opt", "a pixel or a perceptual loss is needed")
        engine.add_optimizer("g", self.net_g.parameters(), train["optim_g"])
        self.multiple = int(opt["network_g"].get("window_size", 1))
        if self.real:
            from ...data.realesrgan import PairPool, SecondOrderDegradation

            missing = [k for k in ("resize_prob", "noise_range", "jpeg_range", "resize_prob2") if k not in opt]
            if missing:
                raise option_error(opt, missing[0], f"model type {opt['model_type']} needs the degradation options")
            if opt.get("clean_prob", 0) + opt.get("bicubic_degrade_prob", 0) > 1:
                raise option_error(opt, "bicubic_degrade_prob", "clean_prob + bicubic_degrade_prob must be at most 1")
            self.degrade = SecondOrderDegradation(opt).to(engine.device)
            self.pool = PairPool(opt.get("queue_size", 180))

    def _loss(self, key: str):
        section = self.opt["train"].get(key)
        if not section:
            return None
        try:
            return build_loss(section).to(self.engine.device)
        except (FileNotFoundError, ValueError) as error:
            raise option_error(self.opt, f"train.{key}", str(error)) from None

    # ---------------------------------------------------------------- inputs

    def synthesise(self, batch: dict, sharpen_source: bool) -> tuple[Tensor, Tensor]:
        """LQ and GT of a Real-ESRGAN batch: degrade the (sharpened) GT, crop, pool."""
        from ...data.realesrgan import random_crop_pair

        device = self.engine.device
        gt = batch["gt"].to(device)
        source = self.degrade.sharpen(gt) if sharpen_source else gt
        kernels = [batch[k].to(device) for k in ("kernel1", "kernel2", "sinc_kernel")]
        lq = self.degrade(source, *kernels)
        (gt,), lq = random_crop_pair([gt], lq, self.opt["gt_size"], int(self.opt["scale"]))
        lq, gt = self.pool(lq, gt)
        return lq.contiguous(), gt

    def inputs(self, batch: dict) -> tuple[Tensor, Tensor]:
        if self.real and self.opt.get("high_order_degradation", True):
            gt_usm = self.opt.get("gt_usm", True)
            lq, gt = self.synthesise(batch, sharpen_source=gt_usm)
            return lq, (self.degrade.sharpen(gt) if gt_usm else gt)
        return batch["lq"].to(self.engine.device), batch["gt"].to(self.engine.device)

    def content_losses(self, output: Tensor, pixel_target: Tensor, percep_target: Tensor) -> dict[str, Tensor]:
        losses = {}
        if self.pixel_loss is not None:
            losses["l_pix"] = self.pixel_loss(output, pixel_target)
        if self.perceptual_loss is not None:
            percep, style = self.perceptual_loss(output, percep_target)
            if percep is not None:
                losses["l_percep"] = percep
            if style is not None:
                losses["l_style"] = style
        return losses

    # ---------------------------------------------------------------- one iteration

    def train_step(self, batch: dict, iteration: int) -> dict[str, Tensor]:
        lq, gt = self.inputs(batch)
        losses = self.content_losses(self.net_g(lq), gt, gt)
        self.engine.backward(sum(losses.values()))
        self.engine.step("g")
        return {k: v.detach() for k, v in losses.items()}

    # ---------------------------------------------------------------- validation

    def validate(self, iteration: int) -> dict[str, dict[str, float]]:
        val = self.opt.get("val") or {}
        net = self.engine.eval_network("g")
        results = {}
        for name, loader in self.engine.val_loaders().items():
            save = None
            if val.get("save_img"):
                folder = self.engine.visualization

                def save(image_name: str, folder=folder) -> object:
                    return folder / image_name / f"{image_name}_{iteration}.png"

            results[name] = evaluate(net, loader, val.get("metrics"), device=self.engine.device,
                                     multiple=self.multiple, save_path=save, progress=val.get("pbar", False),
                                     desc=f"validate {name}")
        return results


class RealSRRecipe(SRRecipe):
    real = True


class SRGANRecipe(SRRecipe):
    """Generator and discriminator alternate each iteration (``net_d_iters``, ``net_d_init_iters``)."""

    real = True
    needs_content_loss = False

    def setup(self) -> None:
        super().setup()
        opt, train, engine = self.opt, self.opt["train"], self.engine
        if "network_d" not in opt:
            raise option_error(opt, "network_d", f"model type {opt['model_type']} needs a discriminator")
        if "optim_d" not in train:
            raise option_error(opt, "train.optim_d", f"model type {opt['model_type']} needs it")
        if not train.get("gan_opt"):
            raise option_error(opt, "train.gan_opt", f"model type {opt['model_type']} needs a GAN loss")
        self.net_d = engine.add_network("d", build_network(opt, "network_d"))
        engine.add_optimizer("d", self.net_d.parameters(), train["optim_d"])
        self.gan_loss = self._loss("gan_opt")
        self.d_iters = train.get("net_d_iters", 1)
        self.d_init_iters = train.get("net_d_init_iters", 0)

    def inputs(self, batch: dict) -> tuple[Tensor, Tensor]:
        if self.opt.get("high_order_degradation", True):
            return self.synthesise(batch, sharpen_source=True)
        return batch["lq"].to(self.engine.device), batch["gt"].to(self.engine.device)

    def train_step(self, batch: dict, iteration: int) -> dict[str, Tensor]:
        opt, engine = self.opt, self.engine
        lq, gt = self.inputs(batch)
        gt_usm = self.degrade.sharpen(gt)
        pick = {True: gt_usm, False: gt}
        pixel_gt, percep_gt = pick[opt.get("l1_gt_usm", True)], pick[opt.get("percep_gt_usm", True)]
        gan_gt = pick[opt.get("gan_gt_usm", False)]

        self.net_d.requires_grad_(False)
        output = self.net_g(lq)
        losses: dict[str, Tensor] = {}
        if iteration % self.d_iters == 0 and iteration > self.d_init_iters:
            losses = self.content_losses(output, pixel_gt, percep_gt)
            with engine.no_sync("d"):
                losses["l_g_gan"] = self.gan_loss(self.net_d(output), True, is_disc=False)
            engine.backward(sum(losses.values()))
            engine.step("g")

        self.net_d.requires_grad_(True)
        real_pred = self.net_d(gan_gt)
        losses["l_d_real"] = self.gan_loss(real_pred, True, is_disc=True)
        engine.backward(losses["l_d_real"])
        fake_pred = self.net_d(output.detach().clone())
        losses["l_d_fake"] = self.gan_loss(fake_pred, False, is_disc=True)
        engine.backward(losses["l_d_fake"])
        engine.step("d")
        losses["out_d_real"], losses["out_d_fake"] = real_pred.detach().mean(), fake_pred.detach().mean()
        return {k: v.detach() for k, v in losses.items()}
