"""The ``restoregen`` command (also ``python -m restoregen``).

Each subcommand lives in its own module, which exposes ``configure(parser)``: it adds the
arguments and sets ``parser.set_defaults(func=run)`` where ``run(args) -> int``. Command modules
keep their top-level imports light (``--help`` must be quick) and import heavy things in ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from collections.abc import Sequence

from . import __version__

# name -> (module with configure(parser), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "upscale": ("restoregen.inference.command", "super-resolve an image or a folder"),
    "train": ("restoregen.train.command", "train from a BasicSR-style option file"),
    "test": ("restoregen.train.test_command", "evaluate a model on the test sets of an option file"),
    "sample": ("restoregen.inference.sample", "sample images from a StyleSwin generator"),
    "freeswim": ("restoregen.diffusion.command", "high-resolution video with FreeSwim on a diffusers model"),
    "bench": ("restoregen.bench", "print the benchmark table"),
    "models": ("restoregen.inference.bundled", "list the bundled models and their measured results"),
    "export": ("restoregen.inference.export", "write a model as ONNX or self-describing safetensors"),
}


def _model_info(model: str) -> int:
    from .inference.bundled import BundledModelError, resolve_model_argument
    from .inference.loading import CheckpointError, load_model
    from .inference.model_info import model_report

    try:
        network, info = load_model(resolve_model_argument(model, None))
    except (BundledModelError, CheckpointError) as error:
        print(f"restoregen info: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(model_report(network, info)))
    return 0


def _info(args: argparse.Namespace) -> int:
    if getattr(args, "model", None):
        return _model_info(args.model)
    import torch

    from . import archs, attention

    print(f"restoregen {__version__}")
    print(f"python     {platform.python_version()} ({sys.executable})")
    print(f"torch      {torch.__version__}")
    devices = [f"cpu ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append(f"cuda:{i} {props.name} ({props.total_memory / 2**30:.0f} GiB)")
    else:
        devices.append("no CUDA device")
    print(f"devices    {', '.join(devices)}")
    print("\n".join(f"{'attention' if i == 0 else '':<10} {line}" for i, line in enumerate(attention.backend_table())))
    print(f"archs      {', '.join(archs.list_archs())}")
    return 0


def _not_available(args: argparse.Namespace) -> int:
    print(f"restoregen {args.command}: not available in restoregen {__version__} yet", file=sys.stderr)
    return 2


def _command_module(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            return None  # the command is not implemented yet
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="restoregen", description="Low-level vision toolkit.")
    parser.add_argument("--version", action="version", version=f"restoregen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="print versions, devices and attention backends; with --model, what a "
                               "checkpoint is and what runs it")
    info.add_argument("--model", metavar="PATH|NAME",
                      help="a checkpoint (.pth/.safetensors/.onnx) or a bundled model's name")
    info.set_defaults(func=_info)
    for name, (module_name, help_text) in COMMANDS.items():
        module = _command_module(module_name)
        if module is None:
            sub = commands.add_parser(name, help=f"{help_text} (not available yet)")
            sub.add_argument("args", nargs=argparse.REMAINDER)
            sub.set_defaults(func=_not_available)
        else:
            module.configure(commands.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)
