"""Recipes by the option file's ``model_type``: ``recipe_class(model_type)``.

A recipe says what one iteration does and how to validate; the loop itself is
:class:`restoregen.train.engine.Engine`. Register new ones in :data:`RECIPES`.
"""

from __future__ import annotations

from ..._lazy import load_entry

RECIPES: dict[str, str] = {
    # paired or bicubic data, pixel/perceptual losses
    "SRModel": "sr:SRRecipe",
    "HATModel": "sr:SRRecipe",
    "DRCTModel": "sr:SRRecipe",
    "SwinIRModel": "sr:SRRecipe",
    "DLGSANetModel": "sr:SRRecipe",
    # Real-ESRGAN degradations, no GAN
    "RealHATMSEModel": "sr:RealSRRecipe",
    "RealDRCTMSEModel": "sr:RealSRRecipe",
    "RealESRNetModel": "sr:RealSRRecipe",
    # Real-ESRGAN degradations and a discriminator
    "RealHATGANModel": "sr:SRGANRecipe",
    "RealDRCTGANModel": "sr:SRGANRecipe",
    "RealESRGANModel": "sr:SRGANRecipe",
    # unconditional GANs: logistic loss, lazy R1, bCR / DiffAugment / ADA, FID
    "StyleSwinGANModel": "gan:StyleSwinGANRecipe",
}


def recipe_class(model_type: str):
    return load_entry(__name__, RECIPES, model_type, "model_type")


__all__ = ["RECIPES", "recipe_class"]
