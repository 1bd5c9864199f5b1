"""Image-quality and generative metrics: FID and KID (``fid``)."""

from .fid import (
    FIDInceptionV3,
    extract_features,
    feature_statistics,
    fid_from_features,
    folder_batches,
    frechet_distance,
    kid_from_features,
    load_inception,
    load_statistics,
    quantize,
    save_statistics,
)

__all__ = [
    "FIDInceptionV3", "extract_features", "feature_statistics", "fid_from_features", "folder_batches",
    "frechet_distance", "kid_from_features", "load_inception", "load_statistics", "quantize", "save_statistics",
]
