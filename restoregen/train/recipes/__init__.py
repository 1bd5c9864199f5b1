"""Recipes by the option file's ``model_type``: ``recipe_class(model_type)``.

A recipe says what one iteration does and how to validate; the loop itself is
:class:`restoregen.train.engine.Engine`. restoregen's own networks declare their ``model_type``
names where they are registered (``recipes=`` in :func:`restoregen.archs.register`);
:data:`RECIPES` holds those of networks restoregen does not implement.
"""

from __future__ import annotations

from ..._lazy import load_entry

RECIPES: dict[str, str] = {
    # paired or bicubic data, pixel/perceptual losses
    "SRModel": "sr:SRRecipe",
    "SwinIRModel": "sr:SRRecipe",
    # Real-ESRGAN degradations, no GAN
    "RealESRNetModel": "sr:RealSRRecipe",
    # Real-ESRGAN degradations and a discriminator
    "RealESRGANModel": "sr:SRGANRecipe",
}


def recipe_table() -> dict[str, str]:
    """Every known ``model_type`` -> ``"module:Recipe"``: :data:`RECIPES` and the networks' own."""
    from ...archs.registry import recipes

    return {**RECIPES, **recipes()}


def recipe_class(model_type: str):
    return load_entry(__name__, recipe_table(), model_type, "model_type")


__all__ = ["RECIPES", "recipe_class", "recipe_table"]
