"""FID / KID plumbing with a randomly initialised Inception (no weights needed)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from restoregen.metrics.fid import (
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


@pytest.fixture(scope="module")
def inception() -> FIDInceptionV3:
    torch.manual_seed(0)
    return FIDInceptionV3(resize=None).eval()  # random weights; 75 px inputs keep it quick


@pytest.fixture(scope="module")
def image_sets() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    noisy = torch.rand(6, 3, 75, 75, generator=gen)
    smooth = torch.nn.functional.interpolate(torch.rand(6, 3, 5, 5, generator=gen), size=75, mode="bilinear")
    return noisy, smooth


def test_fid_and_kid_through_inception(inception, image_sets):
    noisy, smooth = image_sets
    features_a = extract_features(inception, [noisy[:3], noisy[3:]])  # batches are concatenated
    features_b = extract_features(inception, [smooth])
    assert features_a.shape == (6, 2048) and features_a.dtype == torch.float64
    same, different = fid_from_features(features_a, features_a), fid_from_features(features_a, features_b)
    assert different > 0 and abs(same) <= 1e-9 * different
    kid_same, _ = kid_from_features(features_a, features_a, num_subsets=20)
    kid_different, _ = kid_from_features(features_a, features_b, num_subsets=20)
    assert kid_different > 0 and abs(kid_same) < 0.1 * kid_different


def test_frechet_distance_closed_form():
    # diagonal covariances: FID = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 4.0, 1.0])
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    expected = (mu1 - mu2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum()
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected.item(), abs=1e-9)
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]  # invariant under rotations
    rotated = frechet_distance(rotation @ mu1.double(), rotation @ torch.diag(a).double() @ rotation.T,
                               rotation @ mu2.double(), rotation @ torch.diag(b).double() @ rotation.T)
    assert rotated == pytest.approx(expected.item(), abs=1e-9)


@pytest.mark.parametrize("n1,n2", [(8, 9), (40, 30)])  # fewer samples than dims (nuclear norm) and more
def test_feature_paths_agree(n1, n2):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n1, 16, generator=gen, dtype=torch.float64)
    y = 1.3 * torch.randn(n2, 16, generator=gen, dtype=torch.float64) + 0.2
    assert fid_from_features(x, y) == pytest.approx(frechet_distance(*feature_statistics(x), *feature_statistics(y)),
                                                    rel=1e-8)
    with pytest.raises(ValueError, match="at least 2"):
        fid_from_features(x[:1], y)


def test_weights_and_statistics_round_trip(tmp_path, inception, image_sets):
    save_file(inception.net.state_dict(), tmp_path / "fid_inception.safetensors")
    loaded = load_inception(tmp_path / "fid_inception.safetensors", resize=None)
    assert loaded.layout == "fid"
    batch = image_sets[0][:2]
    torch.testing.assert_close(loaded(batch), inception(batch))
    mu, sigma = feature_statistics(torch.randn(5, 4, dtype=torch.float64))
    save_statistics(tmp_path / "stats.npz", mu, sigma)
    mu2, sigma2 = load_statistics(tmp_path / "stats.npz")
    assert torch.equal(mu, mu2) and torch.equal(sigma, sigma2)


def test_torchvision_layout_is_detected_with_a_warning(tmp_path):
    state = FIDInceptionV3(layout="torchvision").net.state_dict()
    state["AuxLogits.fc.weight"] = torch.zeros(1000, 768)  # torchvision files carry the aux head
    torch.save(state, tmp_path / "inception_v3_google.pth")
    with pytest.warns(UserWarning, match="not comparable"):
        model = load_inception(tmp_path / "inception_v3_google.pth")
    assert model.layout == "torchvision"


def test_folder_batches_and_quantize(tmp_path):
    from PIL import Image

    for i, size in enumerate((8, 8, 8, 6)):
        Image.new("RGB", (size, size), (i * 60, 0, 255)).save(tmp_path / f"{i}.png")
    batches = list(folder_batches(tmp_path, batch_size=2))
    assert [tuple(b.shape) for b in batches] == [(2, 3, 8, 8), (1, 3, 8, 8), (1, 3, 6, 6)]
    assert batches[0][1, 0, 0, 0].item() == pytest.approx(60 / 255)
    x = torch.tensor([-0.1, 0.4 / 255, 0.6 / 255, 1.2])
    assert torch.equal(quantize(x) * 255, torch.tensor([0.0, 0.0, 1.0, 255.0]))
