"""Option files: every shipped file validates; user errors give one clear message naming the file,
the line and the key, without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from restoregen import archs
from restoregen.cli import main
from restoregen.config import OptionError, check_network, check_paths, load_options

REPO = Path(__file__).resolve().parents[1]
OPTION_FILES = sorted((REPO / "options").rglob("*.yml"))

GOOD = """\
name: tiny
model_type: HATModel
scale: 2
num_gpu: 0
datasets:
  train:
    name: photos
    type: BicubicPairedDataset
    dataroot_gt: {root}
    io_backend:
      type: disk
    gt_size: 32
    use_hflip: true
    use_rot: true
    batch_size_per_gpu: 2
network_g:
  type: HAT
  upscale: 2
  embed_dim: 12
  depths: [1]
  num_heads: [2]
  window_size: 8
  upsampler: pixelshuffle
train:
  optim_g:
    type: Adam
    lr: 2e-4
  total_iter: !!float 1e3
  pixel_opt:
    type: L1Loss
logger:
  save_checkpoint_freq: !!float 5e3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "options.yml"
    path.write_text(text.format(root=tmp_path))
    return path


def test_shipped_option_files_exist():
    names = {p.parent.name for p in OPTION_FILES}
    assert {"HAT", "DRCT", "DLGSANet", "StyleSwin", "default"} <= names
    assert len(OPTION_FILES) > 70


@pytest.mark.parametrize("path", OPTION_FILES, ids=lambda p: str(p.relative_to(REPO / "options")))
def test_every_option_file_validates(path):
    from restoregen.train.networks import network_class

    opt = load_options(path, is_train=path.relative_to(REPO / "options").parts[0] == "train")
    assert opt["network_g"]["type"] in ("HAT", "DRCT", "DLGSANet", "StyleSwinGenerator")
    if opt["network_g"]["type"] in archs.list_archs():
        check_network(opt, "network_g", resolve=network_class)
    if "network_d" in opt:
        check_network(opt, "network_d", resolve=network_class)


def test_normalises_values(tmp_path):
    opt = load_options(write(tmp_path, GOOD))
    assert opt["train"]["total_iter"] == 1000 and isinstance(opt["train"]["total_iter"], int)
    assert opt["train"]["optim_g"]["lr"] == 2e-4  # YAML 1.1 reads '2e-4' as text
    assert opt["logger"]["save_checkpoint_freq"] == 5000
    assert opt["datasets"]["train"]["phase"] == "train" and opt["datasets"]["train"]["scale"] == 2


@pytest.mark.parametrize("old, new, key, line, words", [
    ("use_rot: true", "use_rott: true", "datasets.train.use_rott", 14, "did you mean 'use_rot'"),
    ("    lr: 2e-4", "    lr: fast", "train.optim_g.lr", 27, "expected a number, got 'fast'"),
    ("  total_iter: !!float 1e3", "  total_iter: 1.5", "train.total_iter", 28, "expected an integer"),
    ("    type: L1Loss", "    type: L1loss", "train.pixel_opt.type", 30, "did you mean 'L1Loss'"),
    ("  depths: [1]", "  depths: 1", None, None, None),
    ("    gt_size: 32\n", "", "datasets.train.gt_size", 6, "required option is missing"),
    ("  total_iter: !!float 1e3", "  total_iters: !!float 1e3", "train.total_iters", 28, "did you mean 'total_iter'"),
])
def test_errors_name_file_line_and_key(tmp_path, old, new, key, line, words):
    path = write(tmp_path, GOOD.replace(old, new))
    if key is None:  # a network argument of the wrong kind is the network's to report
        load_options(path)
        return
    with pytest.raises(OptionError) as raised:
        load_options(path)
    error = raised.value
    assert error.key == key and error.line == line and words in str(error)
    assert str(error).startswith(f"{path}:{line}: {key}: ")


def test_type_names_and_their_options_come_from_the_registries(tmp_path, monkeypatch):
    from restoregen.config.schema import BOOL, OptionType
    from restoregen.losses import LOSSES

    path = write(tmp_path, GOOD.replace("    type: L1Loss", "    type: TinyLoss\n    sharp: true"))
    with pytest.raises(OptionError, match=f"unknown loss 'TinyLoss'.*; known: {', '.join(sorted(LOSSES))}$"):
        load_options(path)
    monkeypatch.setitem(LOSSES, "TinyLoss", OptionType("pixel:L1Loss", {"sharp": BOOL}))
    assert load_options(path)["train"]["pixel_opt"] == {"type": "TinyLoss", "sharp": True}
    with pytest.raises(OptionError, match="train.pixel_opt.sharp: expected true or false, got 'yes please'"):
        load_options(write(tmp_path, GOOD.replace("    type: L1Loss", "    type: TinyLoss\n    sharp: yes please")))


def test_missing_dataset_folder(tmp_path):
    opt = load_options(write(tmp_path, GOOD.replace("dataroot_gt: {root}", "dataroot_gt: {root}/nowhere")))
    message = r"options.yml:9: datasets.train.dataroot_gt: folder '.*nowhere' does not exist"
    with pytest.raises(OptionError, match=message):
        check_paths(opt)


def test_unknown_network_argument(tmp_path):
    opt = load_options(write(tmp_path, GOOD.replace("  embed_dim: 12", "  embed_dims: 12")))
    message = "network_g.embed_dims: HAT has no argument 'embed_dims'; did you mean 'embed_dim'"
    with pytest.raises(OptionError, match=message):
        check_network(opt, "network_g")


def test_not_yaml(tmp_path):
    with pytest.raises(OptionError, match=r"options.yml:3: not valid YAML: mapping values are not allowed"):
        load_options(write(tmp_path, "name: x\nscale: 2\n  model_type: y\n"))


@pytest.mark.parametrize("command", ["train", "test"])
@pytest.mark.parametrize("old, new, words", [
    ("use_rot: true", "use_rott: true", "datasets.train.use_rott: unknown option; did you mean 'use_rot'?"),
    ("    lr: 2e-4", "    lr: fast", "train.optim_g.lr: expected a number, got 'fast'"),
    ("dataroot_gt: {root}", "dataroot_gt: {root}/nowhere", "datasets.train.dataroot_gt: folder"),
])
def test_cli_reports_user_errors_in_one_line(tmp_path, capsys, command, old, new, words):
    path = write(tmp_path, GOOD.replace(old, new))
    if command == "test":  # a test file names its test set and weights instead
        text = path.read_text().replace("  train:\n", "  test_1:\n")
        path.write_text(text + f"path:\n  pretrain_network_g: {path}\n")
    assert main([command, "-opt", str(path)]) == 2
    err = capsys.readouterr().err
    if command == "test" and "train.optim_g" in words:  # a test run does not read the optimizer
        words = "network_g"
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"restoregen {command}: error: {path}:")
    if command == "train" or "datasets" in words:
        assert words.replace("datasets.train", f"datasets.{'train' if command == 'train' else 'test_1'}") in err


def test_cli_missing_option_file(capsys, tmp_path):
    assert main(["train", "-opt", str(tmp_path / "none.yml")]) == 2
    assert "option file not found" in capsys.readouterr().err


@pytest.mark.parametrize("old, new, key, line, words", [
    ("  total_iter: !!float 1e3", "  total_iter: 0", "train.total_iter", 28, "must be at least 1, got 0"),
    ("  total_iter: !!float 1e3", "  total_iter: -5", "train.total_iter", 28, "must be at least 1, got -5"),
    ("    lr: 2e-4", "    lr: 0", "train.optim_g.lr", 27, "must be above 0, got 0"),
    ("    lr: 2e-4", "    lr: -1e-4", "train.optim_g.lr", 27, "must be above 0, got -0.0001"),
    ("    batch_size_per_gpu: 2", "    batch_size_per_gpu: 0", "datasets.train.batch_size_per_gpu", 15,
     "must be at least 1, got 0"),
    ("    gt_size: 32", "    gt_size: -32", "datasets.train.gt_size", 12, "must be at least 1, got -32"),
    ("scale: 2", "scale: 5", "scale", 3, "must be one of 1, 2, 3, 4, 8, got 5"),
    ("  upscale: 2", "  upscale: 4", "network_g.upscale", 18, "is 4, but the top-level scale is 2"),
    ("  save_checkpoint_freq: !!float 5e3", "  save_checkpoint_freq: 0", "logger.save_checkpoint_freq", 32,
     "must be at least 1, got 0"),
])
def test_numbers_out_of_range_name_file_line_and_key(tmp_path, old, new, key, line, words):
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(OptionError) as raised:
        load_options(path)
    assert str(raised.value) == f"{path}:{line}: {key}: {words}"


def test_total_iter_zero_stops_before_any_folder_is_made(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, GOOD.replace("  total_iter: !!float 1e3", "  total_iter: 0"))
    assert main(["train", "-opt", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"restoregen train: error: {path}:28: train.total_iter: must be at least 1, got 0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["options.yml"]
