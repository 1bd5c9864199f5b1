"""``restoregen test -opt FILE``: run a trained network over the test datasets of an option file
(``test_*``/``val_*``), print PSNR/SSIM/... per dataset and save the images (``val.save_img``) to
``results/<name>/visualization/<dataset>/``."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-opt", "--opt", required=True, metavar="FILE", help="BasicSR-style YAML option file")
    parser.set_defaults(func=run)


def _test(opt: dict) -> None:
    import time
    from pathlib import Path

    import torch

    from ..checkpoints import CheckpointError
    from ..config import check_network, check_paths, option_error
    from ..data import build_dataset
    from ..data.loader import eval_loader
    from ..threads import configure_threads
    from .evaluate import evaluate
    from .logs import setup_logging
    from .networks import build_network, load_pretrained, network_class

    check_network(opt, "network_g", resolve=network_class)
    check_paths(opt)
    weights = opt["path"].get("pretrain_network_g")
    if weights is None:
        raise option_error(opt, "path.pretrain_network_g", "required option is missing (the weights to test)")
    use_cuda = torch.cuda.is_available() and opt.get("num_gpu", "auto") != 0
    device = torch.device("cuda" if use_cuda else "cpu")
    net = build_network(opt, "network_g")
    try:  # before results/<name>/ is made: a bad file leaves nothing behind
        load_pretrained(net, weights, opt["path"].get("param_key_g", "params"), opt["path"].get("strict_load_g", True))
    except CheckpointError as error:
        raise option_error(opt, "path.pretrain_network_g", str(error)) from None
    root = Path("results") / opt["name"]
    log = setup_logging(root / f"test_{opt['name']}_{time.strftime('%Y%m%d_%H%M%S')}.log", True)
    log.info(configure_threads())
    net = net.to(device).eval()
    val = opt.get("val") or {}
    suffix = val.get("suffix") or opt["name"]
    multiple = int(opt["network_g"].get("window_size", 1))
    for key, section in opt["datasets"].items():
        if key.split("_")[0] not in ("test", "val"):
            continue
        name = section.get("name", key)
        try:
            dataset = build_dataset(section)
        except (ValueError, OSError) as error:
            raise option_error(opt, f"datasets.{key}", str(error)) from None
        folder = root / "visualization" / name

        def save(image_name: str, folder: Path = folder) -> Path:
            return folder / f"{image_name}_{suffix}.png"

        results = evaluate(net, eval_loader(dataset), val.get("metrics"), device=device, multiple=multiple,
                           save_path=save if val.get("save_img", False) else None, progress=True, desc=name,
                           tile=opt.get("tile"))
        values = ", ".join(f"{metric}: {value:.4f}" for metric, value in results.items()) or "no ground truth"
        log.info("%s (%d images): %s", name, len(dataset), values)


def run(args: argparse.Namespace) -> int:
    from ..config import OptionError, load_options

    try:
        _test(load_options(args.opt, is_train=False))
    except OptionError as error:
        print(f"restoregen test: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("restoregen test: interrupted", file=sys.stderr)
        return 130
    return 0
