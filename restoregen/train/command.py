"""``restoregen train -opt FILE [--auto-resume] [--debug]``; also runs under
``accelerate launch -m restoregen train -opt FILE`` (several processes, GPUs or machines)."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-opt", "--opt", required=True, metavar="FILE", help="BasicSR-style YAML option file")
    parser.add_argument("--auto-resume", "--auto_resume", dest="auto_resume", action="store_true",
                        help="continue from the newest complete checkpoint of this experiment, if any")
    parser.add_argument("--debug", action="store_true",
                        help="a few iterations, logging each one, then validation and a checkpoint")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads per process (default: $OMP_NUM_THREADS, else this process's share "
                        "of the CPUs). On a CPU that other work also uses, fewer threads can be several times faster")
    parser.set_defaults(func=run)


def load_training_options(file: str) -> tuple[dict, type]:
    """Validated options, with paths and networks checked, and the recipe class to train them."""
    from ..config import check_network, check_paths, load_options, option_error
    from .networks import network_class
    from .recipes import recipe_class

    opt = load_options(file, is_train=True)
    try:
        recipe = recipe_class(opt["model_type"])
    except KeyError as error:
        raise option_error(opt, "model_type", str(error.args[0])) from None
    for key in ("network_g", "network_d"):
        if key in opt:
            check_network(opt, key, resolve=network_class)
    check_paths(opt)
    return opt, recipe


def run(args: argparse.Namespace) -> int:
    from ..config import OptionError

    if args.threads is not None and args.threads < 1:
        print(f"restoregen train: error: --threads {args.threads}: must be at least 1", file=sys.stderr)
        return 2
    try:
        opt, recipe = load_training_options(args.opt)
        from .engine import Engine

        engine = Engine(opt, auto_resume=args.auto_resume, debug=args.debug, threads=args.threads)
        engine.run(recipe)
        if engine.world_size > 1:
            _end_without_teardown()
    except OptionError as error:
        print(f"restoregen train: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("restoregen train: interrupted; continue with --auto-resume", file=sys.stderr)
        return 130
    return 0


def _end_without_teardown() -> None:
    """End a finished process of a multi-process run, exit status 0, past the interpreter's teardown.

    DistributedDataParallel keeps the gloo process group, and its threads, alive after
    ``destroy_process_group`` (torch 2.x); the interpreter's teardown then aborts now and then
    ("terminate called without an active exception"), failing ``accelerate launch`` after a good run.
    Everything the run writes is closed and flushed first.
    """
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
