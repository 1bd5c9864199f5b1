"""BasicSR's option schema, as used by the official HAT, DRCT and DLGSANet option files, and
:func:`load_options`, which reads and validates a file against it.

Every key is checked (unknown keys, types, required keys, allowed values) and values are
normalised (see :mod:`.schema`). The ``type`` of a dataset, loss, metric, scheduler or optimizer
section is one its registry lists (:data:`restoregen.data.DATASETS`, :data:`restoregen.losses.LOSSES`,
:data:`restoregen.metrics.METRICS`, :data:`restoregen.train.schedulers.SCHEDULERS`,
:data:`restoregen.train.optimizers.OPTIMIZERS`), and the registry gives the options of that type.
restoregen's additions are few and documented where they are declared (``image_list``,
``worker_timeout``, ``mixed_precision``, ``grad_clip_norm``, ``grad_accum_steps``, ``vgg_weights``,
``keep_checkpoints``, and the GAN recipes' datasets, regularisers, ``val.fid`` and snapshots).
Keys that only matter to BasicSR's own launcher (``dist_params``, ``prefetch_mode``, ``wandb``)
are accepted and ignored: Accelerate does that job.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import DATASETS
from ..losses import LOSSES
from ..metrics import METRICS
from ..train.optimizers import OPTIMIZERS
from ..train.schedulers import SCHEDULERS
from .schema import (
    ANY,
    BOOL,
    COUNT,
    FLOAT,
    INT,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    NUMBERS,
    POSITIVE,
    PROBABILITY,
    STR,
    Bounded,
    Choice,
    Either,
    Invalid,
    ListOf,
    Opt,
    RegisteredTypes,
    Section,
    Spec,
    Tagged,
    describe,
    suggest,
)
from .yaml_lines import Lines, OptionError, dotted, line_of, option_error, read_yaml


@dataclass
class Datasets(Spec):
    """``datasets``: keys ``train``, ``val``/``val_*`` and ``test``/``test_*``."""

    dataset: Spec

    def check(self, value: Any) -> dict:
        if not isinstance(value, Mapping):
            raise Invalid(f"expected a mapping of datasets, got {describe(value)}")
        out = {}
        for key, item in value.items():
            key = str(key)
            if key.split("_")[0] not in ("train", "val", "test"):
                raise Invalid("a dataset key must be 'train', 'val', 'val_<n>', 'test' or 'test_<n>'", (key,))
            try:
                out[key] = self.dataset.check(item)
            except Invalid as error:
                raise Invalid(error.problem, (key, *error.path)) from None
        return out


SCALE = Bounded(INT, allowed=(1, 2, 3, 4, 8))  # the upscaling factors of the released models, and 1 (restoration)
IO_BACKEND = Section({"type": Choice(("disk", "lmdb")), "db_paths": ANY, "client_keys": ANY, "readonly": BOOL,
                      "lock": BOOL, "readahead": BOOL, "meminit": BOOL}, required=("type",))

# the options every dataset section takes; each type adds its own (restoregen.data.DATASETS)
_DATASET_COMMON: dict[str, Spec] = {
    "name": STR,
    "phase": Choice(("train", "val", "test")),  # set by the loader from the dataset key
    "scale": SCALE,  # copied from the top-level scale
    "io_backend": IO_BACKEND,
    "color": Opt(Choice(("y",))),
    "mean": Opt(NUMBERS),
    "std": Opt(NUMBERS),
    # data loader (train)
    "use_shuffle": BOOL,
    "num_worker_per_gpu": NON_NEGATIVE_INT,
    "batch_size_per_gpu": COUNT,
    "dataset_enlarge_ratio": COUNT,
    "prefetch_mode": Opt(Choice(("cpu", "cuda"))),  # accepted, not needed: workers prefetch
    "pin_memory": BOOL,
    "persistent_workers": BOOL,
    # restoregen: seconds a batch may take before the workers are restarted (0: never)
    "worker_timeout": NON_NEGATIVE,
}
DATASET = Tagged(RegisteredTypes(DATASETS), _DATASET_COMMON, what="dataset type")
NETWORK = Section({"type": STR}, required=("type",), extra=ANY)
OPTIMIZER = Tagged(RegisteredTypes(OPTIMIZERS), what="optimizer")
SCHEDULER = Tagged(RegisteredTypes(SCHEDULERS), what="scheduler")
LOSS = Tagged(RegisteredTypes(LOSSES), what="loss")
METRIC = Tagged(RegisteredTypes(METRICS), {"better": Choice(("higher", "lower"))}, what="metric")

TRAIN = Section({
    "ema_decay": Bounded(FLOAT, least=0, below=1),  # 0: no EMA
    "optim_g": OPTIMIZER,
    "optim_d": OPTIMIZER,
    "scheduler": Opt(SCHEDULER),
    "total_iter": COUNT,
    "warmup_iter": Bounded(INT, least=-1),  # -1: no warm-up
    "pixel_opt": Opt(LOSS),
    "perceptual_opt": Opt(LOSS),
    "gan_opt": Opt(LOSS),
    "net_d_iters": COUNT,
    "net_d_init_iters": NON_NEGATIVE_INT,
    # restoregen additions
    "mixed_precision": Choice(("no", "fp16", "bf16")),
    "grad_clip_norm": Opt(POSITIVE),
    "grad_accum_steps": COUNT,
    # restoregen, GAN recipes (StyleSwinGANModel)
    "lazy_regularization": BOOL,
    "r1_opt": Opt(Section({"gamma": NON_NEGATIVE, "interval": COUNT}, required=("gamma",))),
    "bcr_opt": Opt(Section({"real_weight": NON_NEGATIVE, "fake_weight": NON_NEGATIVE})),
    "diffaug_opt": Opt(Section({"policy": STR, "p": PROBABILITY, "target": Opt(FLOAT), "interval": COUNT,
                                "speed_kimg": POSITIVE})),
    "d_grad_clip": Opt(POSITIVE),
    "style_mixing": PROBABILITY,
}, required=("optim_g", "total_iter"))

VAL = Section({
    "val_freq": NON_NEGATIVE_INT,  # 0: no validation
    "save_img": BOOL,
    "pbar": BOOL,
    "suffix": Opt(STR),
    "metrics": Opt(Section({}, extra=METRIC)),
    # restoregen, GAN recipes: FID/KID of generated images (see restoregen.metrics.fid)
    "fid": Opt(Section({"inception_weights": Opt(STR), "num_samples": COUNT, "batch_size": COUNT,
                        "real_images": Opt(STR), "kid": BOOL, "seed": INT})),
})

LOGGER = Section({
    "print_freq": COUNT,
    "save_checkpoint_freq": COUNT,
    "use_tb_logger": BOOL,
    "wandb": Opt(Section({"project": Opt(STR), "resume_id": Opt(STR)})),
    # restoregen: how many training states to keep on disk (0: all)
    "keep_checkpoints": NON_NEGATIVE_INT,
    # restoregen, GAN recipes: image grids of fixed latents every this many iterations, and how many
    "save_snapshot_freq": COUNT,
    "snapshot_images": COUNT,
})

PATH = Section({
    "pretrain_network_g": Opt(STR), "param_key_g": Opt(STR), "strict_load_g": BOOL,
    "pretrain_network_d": Opt(STR), "param_key_d": Opt(STR), "strict_load_d": BOOL,
    "resume_state": Opt(STR),
    "experiments_root": STR, "models": STR, "training_states": STR, "log": STR, "visualization": STR,
    "results_root": STR,
})

# top-level keys of the Real-ESRGAN degradation pipeline (RealHAT*/RealDRCT*/RealESR* models)
REAL_DEGRADATION: dict[str, Spec] = {
    "high_order_degradation": BOOL,
    "gt_usm": BOOL, "l1_gt_usm": BOOL, "percep_gt_usm": BOOL, "gan_gt_usm": BOOL,
    "resize_prob": ListOf(FLOAT, 3), "resize_range": ListOf(FLOAT, 2), "gaussian_noise_prob": FLOAT,
    "noise_range": ListOf(FLOAT, 2), "poisson_scale_range": ListOf(FLOAT, 2), "gray_noise_prob": FLOAT,
    "jpeg_range": ListOf(FLOAT, 2), "second_blur_prob": FLOAT, "resize_prob2": ListOf(FLOAT, 3),
    "resize_range2": ListOf(FLOAT, 2), "gaussian_noise_prob2": FLOAT, "noise_range2": ListOf(FLOAT, 2),
    "poisson_scale_range2": ListOf(FLOAT, 2), "gray_noise_prob2": FLOAT, "jpeg_range2": ListOf(FLOAT, 2),
    "gt_size": INT, "queue_size": INT,
    # restoregen's: shares of batches given the MATLAB-bicubic LQ, as it is / with the second noise and JPEG
    "clean_prob": PROBABILITY, "bicubic_degrade_prob": PROBABILITY,
}

OPTIONS = Section({
    "name": STR,
    "model_type": STR,
    "scale": SCALE,
    "num_gpu": Either((NON_NEGATIVE_INT, Choice(("auto",)))),
    "manual_seed": Opt(INT),
    "datasets": Datasets(DATASET),
    "network_g": NETWORK,
    "network_d": NETWORK,
    "path": PATH,
    "train": TRAIN,
    "val": Opt(VAL),
    "logger": LOGGER,
    "dist_params": Section({"backend": STR, "port": INT}),
    "find_unused_parameters": BOOL,
    "tile": Opt(Section({"tile_size": COUNT, "tile_pad": NON_NEGATIVE_INT})),
    **REAL_DEGRADATION,
}, required=("name", "model_type", "datasets", "network_g"))


def validate(data: dict, file: str | Path | None = None, lines: Lines | None = None, *,
             is_train: bool = True) -> dict:
    """Check ``data`` against the schema; return the normalised options (``is_train`` adds the
    training requirements and sets each dataset's ``phase`` and ``scale`` as BasicSR does)."""
    lines = lines or {}

    def fail(path: tuple[str, ...], problem: str) -> OptionError:
        return OptionError(file, dotted(path), problem, line_of(lines, path))

    try:
        opt = OPTIONS.check(data)
    except Invalid as error:
        raise fail(error.path, error.problem) from None
    if is_train:
        if "train" not in opt:
            raise fail(("train",), "required option is missing (an option file for training needs it)")
        if "train" not in opt["datasets"]:
            raise fail(("datasets", "train"), "required option is missing (an option file for training needs it)")
        if "batch_size_per_gpu" not in opt["datasets"]["train"]:
            raise fail(("datasets", "train", "batch_size_per_gpu"), "required option is missing")
    elif not any(k.split("_")[0] in ("test", "val") for k in opt["datasets"]):
        raise fail(("datasets",), "no test dataset (a key 'test_1' or 'val_1' with a dataset)")
    upscale = opt["network_g"].get("upscale")
    if "scale" in opt and isinstance(upscale, int) and upscale != opt["scale"]:
        raise fail(("network_g", "upscale"), f"is {upscale}, but the top-level scale is {opt['scale']}")
    for key, dataset in opt["datasets"].items():
        dataset["phase"] = key.split("_")[0]
        if "scale" in opt:
            dataset["scale"] = opt["scale"]
        fields = DATASETS[dataset["type"]].options
        if dataset["phase"] == "train" and "gt_size" in fields and "gt_size" not in dataset:
            raise fail(("datasets", key, "gt_size"), "required option is missing (the training patch size)")
        for name in ("dataroot", "size"):
            if name in fields and name not in dataset:
                raise fail(("datasets", key, name), "required option is missing")
    opt.setdefault("path", {})
    opt.setdefault("logger", {})
    opt["is_train"] = is_train
    return opt


def load_options(file: str | Path, *, is_train: bool = True) -> dict:
    """Read and validate the option file ``file``; raise :class:`OptionError` on any problem."""
    data, lines = read_yaml(file)
    opt = validate(data, file, lines, is_train=is_train)
    opt["_file"] = str(file)
    opt["_lines"] = lines
    return opt


def check_network(opt: dict, key: str, resolve: Callable[[str], type] | None = None) -> None:
    """Check the ``type`` and constructor arguments of network section ``key`` (``network_g``)
    against the class ``resolve(type)`` returns (default: the restoregen registry)."""
    section = opt[key]
    if resolve is None:
        from ..archs import get_arch as resolve
    try:
        cls = resolve(section["type"])
    except KeyError as error:
        raise option_error(opt, f"{key}.type", str(error.args[0])) from None
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    names = [n for n in params if n != "self"]
    for name in section:
        if name != "type" and name not in names:
            raise option_error(opt, f"{key}.{name}",
                               f"{section['type']} has no argument {name!r}{suggest(name, names)}")


__all__ = ["OPTIONS", "check_network", "load_options", "validate"]
