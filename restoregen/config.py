"""Option files: BasicSR's YAML schema, read and validated on load.

:func:`load_options` reads a YAML option file, checks every key against the schema below (unknown
keys, types, required keys, allowed values) and returns plain nested dicts with normalised values
(``5e3`` for an integer option becomes ``5000``; ``'1e-4'`` for a float option becomes ``1e-4``).
Every problem raises :class:`OptionError`, whose message names the file, the line and the key.

The schema is BasicSR's, as used by the official HAT, DRCT and DLGSANet option files. restoregen's
additions are few and documented where they are declared (``image_list``, ``worker_timeout``,
``mixed_precision``, ``grad_clip_norm``, ``grad_accum_steps``, ``vgg_weights``,
``keep_checkpoints``, and the GAN recipes' datasets, regularisers, ``val.fid`` and snapshots).
Keys that only matter to BasicSR's own launcher (``dist_params``, ``prefetch_mode``, ``wandb``)
are accepted and ignored: Accelerate does that job.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class OptionError(ValueError):
    """A problem in an option file: ``file`` (path), ``key`` (dotted, or None for the whole file),
    ``problem`` (one sentence), ``line`` (1-based, when known)."""

    def __init__(self, file: str | Path | None, key: str | None, problem: str, line: int | None = None) -> None:
        self.file, self.key, self.problem, self.line = file, key, problem, line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = str(self.file) if self.file is not None else "<options>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.key}: {self.problem}" if self.key else f"{where}: {self.problem}"


# --------------------------------------------------------------------------------------------
# A small schema language: each spec checks one value and returns it normalised, or raises
# _Invalid(problem, key-suffix) which load_options turns into an OptionError.


class _Invalid(Exception):
    def __init__(self, problem: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(problem)
        self.problem, self.path = problem, path


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}..." if len(text) > 60 else text


class Spec:
    name = "a value"

    def check(self, value: Any) -> Any:
        raise NotImplementedError


class _Any(Spec):
    def check(self, value: Any) -> Any:
        return value


class _Int(Spec):
    name = "an integer"

    def check(self, value: Any) -> int:
        if isinstance(value, bool):
            raise _Invalid(f"expected an integer, got {_describe(value)}")
        if isinstance(value, str):
            value = _number_from_text(value, self.name)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise _Invalid(f"expected an integer, got {_describe(value)}")
        return value


class _Float(Spec):
    name = "a number"

    def check(self, value: Any) -> float:
        if isinstance(value, bool):
            raise _Invalid(f"expected a number, got {_describe(value)}")
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            value = _number_from_text(value, self.name)
        if not isinstance(value, (int, float)):
            raise _Invalid(f"expected a number, got {_describe(value)}")
        return float(value)


def _number_from_text(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _Invalid(f"expected {name}, got {_describe(text)}") from None


class _Bool(Spec):
    name = "true or false"

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _Invalid(f"expected true or false, got {_describe(value)}")
        return value


class _Str(Spec):
    name = "a string"

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise _Invalid(f"expected a string, got {_describe(value)}")
        return value


ANY, INT, FLOAT, BOOL, STR = _Any(), _Int(), _Float(), _Bool(), _Str()


@dataclass
class Opt(Spec):
    """``spec`` or null (``~``)."""

    spec: Spec

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.spec.name} or ~"

    def check(self, value: Any) -> Any:
        return None if value is None else self.spec.check(value)


@dataclass
class Choice(Spec):
    values: tuple[Any, ...]

    @property
    def name(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(repr(v) for v in self.values)

    def check(self, value: Any) -> Any:
        if value not in self.values:
            hint = _suggest(value, [v for v in self.values if isinstance(v, str)]) if isinstance(value, str) else ""
            raise _Invalid(f"expected {self.name}, got {_describe(value)}{hint}")
        return value


@dataclass
class Either(Spec):
    specs: tuple[Spec, ...]

    @property
    def name(self) -> str:  # type: ignore[override]
        return " or ".join(s.name for s in self.specs)

    def check(self, value: Any) -> Any:
        for spec in self.specs:
            try:
                return spec.check(value)
            except _Invalid:
                continue
        raise _Invalid(f"expected {self.name}, got {_describe(value)}")


@dataclass
class ListOf(Spec):
    item: Spec
    length: int | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        size = f"{self.length} " if self.length else ""
        return f"a list of {size}values ({self.item.name})"

    def check(self, value: Any) -> list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise _Invalid(f"expected {self.name}, got {_describe(value)}")
        if self.length is not None and len(value) != self.length:
            raise _Invalid(f"expected {self.length} values, got {len(value)}")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(self.item.check(item))
            except _Invalid as error:
                raise _Invalid(error.problem, (f"[{i}]", *error.path)) from None
        return out


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass
class Section(Spec):
    """A mapping with known keys. ``extra`` checks keys not listed (None: unknown keys are errors);
    ``required`` keys must be present (and not null)."""

    fields: dict[str, Spec]
    required: tuple[str, ...] = ()
    extra: Spec | None = None
    name: str = "a mapping"  # type: ignore[assignment]

    def check(self, value: Any) -> dict:
        if value is None and not self.required:
            value = {}
        if not isinstance(value, Mapping):
            raise _Invalid(f"expected a mapping (key: value lines), got {_describe(value)}")
        if self.extra is None:  # before the required keys: a misspelt one is reported as misspelt
            for key in map(str, value):
                if key not in self.fields:
                    raise _Invalid(f"unknown option{_suggest(key, list(self.fields))}", (key,))
        for key in self.required:
            if value.get(key) is None:
                raise _Invalid("required option is missing", (key,))
        out = {}
        for key, item in value.items():
            key = str(key)
            spec = self.fields.get(key, self.extra)
            try:
                out[key] = spec.check(item)
            except _Invalid as error:
                raise _Invalid(error.problem, (key, *error.path)) from None
        return out


@dataclass
class Tagged(Spec):
    """A section whose allowed keys depend on its ``type``: ``common`` keys plus ``variants[type]``."""

    variants: dict[str, dict[str, Spec]]
    common: dict[str, Spec] = field(default_factory=dict)
    what: str = "type"

    def check(self, value: Any) -> dict:
        if not isinstance(value, Mapping):
            raise _Invalid(f"expected a mapping with a 'type' key, got {_describe(value)}")
        kind = value.get("type")
        if kind is None:
            raise _Invalid("required option is missing", ("type",))
        if kind not in self.variants:
            known = ", ".join(sorted(self.variants))
            hint = _suggest(str(kind), list(self.variants))
            raise _Invalid(f"unknown {self.what} {kind!r}{hint}; known: {known}", ("type",))
        fields = {"type": STR, **self.common, **self.variants[kind]}
        return Section(fields).check(value)


@dataclass
class Datasets(Spec):
    """``datasets``: keys ``train``, ``val``/``val_*`` and ``test``/``test_*``."""

    dataset: Spec

    def check(self, value: Any) -> dict:
        if not isinstance(value, Mapping):
            raise _Invalid(f"expected a mapping of datasets, got {_describe(value)}")
        out = {}
        for key, item in value.items():
            key = str(key)
            if key.split("_")[0] not in ("train", "val", "test"):
                raise _Invalid("a dataset key must be 'train', 'val', 'val_<n>', 'test' or 'test_<n>'", (key,))
            try:
                out[key] = self.dataset.check(item)
            except _Invalid as error:
                raise _Invalid(error.problem, (key, *error.path)) from None
        return out


# --------------------------------------------------------------------------------------------
# The BasicSR schema.

NUMBERS = ListOf(FLOAT)
IO_BACKEND = Section({"type": Choice(("disk", "lmdb")), "db_paths": ANY, "client_keys": ANY, "readonly": BOOL,
                      "lock": BOOL, "readahead": BOOL, "meminit": BOOL}, required=("type",))
KERNEL_LIST = ListOf(Choice(("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")))

_DATASET_COMMON: dict[str, Spec] = {
    "name": STR,
    "phase": Choice(("train", "val", "test")),  # set by the loader from the dataset key
    "scale": INT,  # copied from the top-level scale
    "io_backend": IO_BACKEND,
    "color": Opt(Choice(("y",))),
    "mean": Opt(NUMBERS),
    "std": Opt(NUMBERS),
    # data loader (train)
    "use_shuffle": BOOL,
    "num_worker_per_gpu": INT,
    "batch_size_per_gpu": INT,
    "dataset_enlarge_ratio": INT,
    "prefetch_mode": Opt(Choice(("cpu", "cuda"))),  # accepted, not needed: workers prefetch
    "pin_memory": BOOL,
    "persistent_workers": BOOL,
    # restoregen: seconds a batch may take before the workers are restarted (0: never)
    "worker_timeout": FLOAT,
}
_CROP: dict[str, Spec] = {"gt_size": INT, "use_hflip": BOOL, "use_rot": BOOL}
_GT_SOURCE: dict[str, Spec] = {
    "dataroot_gt": STR,
    "meta_info_file": Opt(STR),
    "meta_info": Opt(STR),
    # restoregen: the GT files, relative to dataroot_gt (instead of scanning the folder)
    "image_list": Opt(ListOf(STR)),
}
_REAL_KERNELS: dict[str, Spec] = {
    f"{key}{suffix}": spec
    for suffix in ("", "2")
    for key, spec in {"blur_kernel_size": INT, "kernel_list": KERNEL_LIST, "kernel_prob": NUMBERS,
                      "sinc_prob": FLOAT, "blur_sigma": ListOf(FLOAT, 2), "betag_range": ListOf(FLOAT, 2),
                      "betap_range": ListOf(FLOAT, 2)}.items()
}

DATASET_TYPES: dict[str, dict[str, Spec]] = {
    "PairedImageDataset": {**_GT_SOURCE, "dataroot_lq": STR, "filename_tmpl": STR, **_CROP},
    # GT only; LQ made on the fly by MATLAB bicubic (HAT's name for it is ImageNetPairedDataset)
    "BicubicPairedDataset": {**_GT_SOURCE, "dataroot_lq": Opt(STR), **_CROP},
    "ImageNetPairedDataset": {**_GT_SOURCE, "dataroot_lq": Opt(STR), **_CROP},
    "RealESRGANDataset": {**_GT_SOURCE, **_REAL_KERNELS, "final_sinc_prob": FLOAT, **_CROP},
    "SingleImageDataset": {"dataroot_lq": STR, "meta_info_file": Opt(STR), "filename_tmpl": STR},
    # restoregen: unconditional images for GAN training, resized to `size` (StyleSwin)
    "ImageFolderDataset": {"dataroot": STR, "size": INT, "use_hflip": BOOL, "image_list": Opt(ListOf(STR))},
    "LMDBImageDataset": {"dataroot": STR, "size": INT, "use_hflip": BOOL},
}
DATASET = Tagged(DATASET_TYPES, _DATASET_COMMON, what="dataset type")

NETWORK = Section({"type": STR}, required=("type",), extra=ANY)

OPTIMIZER = Tagged({
    "Adam": {"lr": FLOAT, "weight_decay": FLOAT, "betas": ListOf(FLOAT, 2), "eps": FLOAT, "amsgrad": BOOL},
    "AdamW": {"lr": FLOAT, "weight_decay": FLOAT, "betas": ListOf(FLOAT, 2), "eps": FLOAT, "amsgrad": BOOL},
}, what="optimizer")

SCHEDULER = Tagged({
    "MultiStepLR": {"milestones": ListOf(INT), "gamma": FLOAT, "restarts": ListOf(INT),
                    "restart_weights": NUMBERS},
    "MultiStepRestartLR": {"milestones": ListOf(INT), "gamma": FLOAT, "restarts": ListOf(INT),
                           "restart_weights": NUMBERS},
    "CosineAnnealingRestartLR": {"periods": ListOf(INT), "restart_weights": NUMBERS, "eta_min": FLOAT},
    # restoregen: constant, then linearly down to 0 at total_iter (StyleSwin's --lr_decay)
    "LinearDecay": {"start_iter": INT},
}, what="scheduler")

_REDUCTION = Choice(("none", "mean", "sum"))
LOSS = Tagged({
    "L1Loss": {"loss_weight": FLOAT, "reduction": _REDUCTION},
    "MSELoss": {"loss_weight": FLOAT, "reduction": _REDUCTION},
    "CharbonnierLoss": {"loss_weight": FLOAT, "reduction": _REDUCTION, "eps": FLOAT},
    "PerceptualLoss": {
        "layer_weights": Section({}, extra=FLOAT), "vgg_type": Choice(("vgg11", "vgg13", "vgg16", "vgg19")),
        "use_input_norm": BOOL, "range_norm": BOOL, "perceptual_weight": FLOAT, "style_weight": FLOAT,
        "criterion": Choice(("l1", "l2", "fro")),
        # restoregen: a local torchvision VGG state dict (nothing is downloaded)
        "vgg_weights": Opt(STR),
    },
    "GANLoss": {"gan_type": Choice(("vanilla", "lsgan", "wgan", "wgan_softplus", "hinge")),
                "real_label_val": FLOAT, "fake_label_val": FLOAT, "loss_weight": FLOAT},
}, what="loss")

TRAIN = Section({
    "ema_decay": FLOAT,
    "optim_g": OPTIMIZER,
    "optim_d": OPTIMIZER,
    "scheduler": Opt(SCHEDULER),
    "total_iter": INT,
    "warmup_iter": INT,
    "pixel_opt": Opt(LOSS),
    "perceptual_opt": Opt(LOSS),
    "gan_opt": Opt(LOSS),
    "net_d_iters": INT,
    "net_d_init_iters": INT,
    # restoregen additions
    "mixed_precision": Choice(("no", "fp16", "bf16")),
    "grad_clip_norm": Opt(FLOAT),
    "grad_accum_steps": INT,
    # restoregen, GAN recipes (StyleSwinGANModel)
    "lazy_regularization": BOOL,
    "r1_opt": Opt(Section({"gamma": FLOAT, "interval": INT}, required=("gamma",))),
    "bcr_opt": Opt(Section({"real_weight": FLOAT, "fake_weight": FLOAT})),
    "diffaug_opt": Opt(Section({"policy": STR, "p": FLOAT, "target": Opt(FLOAT), "interval": INT,
                                "speed_kimg": FLOAT})),
    "d_grad_clip": Opt(FLOAT),
    "style_mixing": FLOAT,
}, required=("optim_g", "total_iter"))

METRIC = Tagged({
    "calculate_psnr": {"crop_border": INT, "test_y_channel": BOOL, "input_order": Choice(("HWC", "CHW"))},
    "calculate_ssim": {"crop_border": INT, "test_y_channel": BOOL, "input_order": Choice(("HWC", "CHW"))},
    "calculate_lpips": {"crop_border": INT, "net": Choice(("alex", "vgg", "squeeze"))},
}, {"better": Choice(("higher", "lower"))}, what="metric")

VAL = Section({
    "val_freq": INT,
    "save_img": BOOL,
    "pbar": BOOL,
    "suffix": Opt(STR),
    "metrics": Opt(Section({}, extra=METRIC)),
    # restoregen, GAN recipes: FID/KID of generated images (see restoregen.metrics.fid)
    "fid": Opt(Section({"inception_weights": Opt(STR), "num_samples": INT, "batch_size": INT,
                        "real_images": Opt(STR), "kid": BOOL, "seed": INT})),
})

LOGGER = Section({
    "print_freq": INT,
    "save_checkpoint_freq": INT,
    "use_tb_logger": BOOL,
    "wandb": Opt(Section({"project": Opt(STR), "resume_id": Opt(STR)})),
    # restoregen: how many training states to keep on disk (0: all)
    "keep_checkpoints": INT,
    # restoregen, GAN recipes: image grids of fixed latents every this many iterations, and how many
    "save_snapshot_freq": INT,
    "snapshot_images": INT,
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
}

OPTIONS = Section({
    "name": STR,
    "model_type": STR,
    "scale": INT,
    "num_gpu": Either((INT, Choice(("auto",)))),
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
    "tile": Opt(Section({"tile_size": INT, "tile_pad": INT})),
    **REAL_DEGRADATION,
}, required=("name", "model_type", "datasets", "network_g"))


# --------------------------------------------------------------------------------------------
# Loading.


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path of a YAML document to its 1-based line."""
    import yaml

    lines: dict[tuple[str, ...], int] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*path, str(key_node.value))
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*path, f"[{i}]")] = item.start_mark.line + 1
                walk(item, (*path, f"[{i}]"))

    walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    return lines


def _dotted(path: tuple[str, ...]) -> str:
    return "".join(part if part.startswith("[") else f".{part}" for part in path).lstrip(".")


def read_yaml(file: str | Path) -> tuple[dict, dict[tuple[str, ...], int]]:
    """Parse ``file`` (safe loader) into a dict and a key-path -> line map."""
    import yaml

    path = Path(file)
    if not path.is_file():
        raise OptionError(file, None, "option file not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        lines = _key_lines(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise OptionError(file, None, f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise OptionError(file, None, "expected a mapping of options at the top level")
    return data, lines


def validate(data: dict, file: str | Path | None = None, lines: dict | None = None, *, is_train: bool = True) -> dict:
    """Check ``data`` against the schema; return the normalised options (``is_train`` adds the
    training requirements and sets each dataset's ``phase`` and ``scale`` as BasicSR does)."""
    lines = lines or {}

    def fail(path: tuple[str, ...], problem: str) -> OptionError:
        line = next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)
        return OptionError(file, _dotted(path), problem, line)

    try:
        opt = OPTIONS.check(data)
    except _Invalid as error:
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
    for key, dataset in opt["datasets"].items():
        dataset["phase"] = key.split("_")[0]
        if "scale" in opt:
            dataset["scale"] = opt["scale"]
        fields = DATASET_TYPES[dataset["type"]]
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


def option_error(opt: dict, key: str, problem: str) -> OptionError:
    """An :class:`OptionError` for dotted ``key`` of loaded options ``opt`` (file and line filled in)."""
    path = tuple(part for part in re.split(r"\.|(?=\[)", key) if part)
    lines = opt.get("_lines", {})
    line = next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)
    return OptionError(opt.get("_file"), key, problem, line)


def check_paths(opt: dict) -> None:
    """Check that the folders and files the options name exist (datasets, meta info files,
    pretrained networks); raise :class:`OptionError` naming the first one that does not."""
    for name, dataset in opt["datasets"].items():
        lmdb = dataset.get("io_backend", {}).get("type") == "lmdb" or dataset["type"] == "LMDBImageDataset"
        for key in ("dataroot_gt", "dataroot_lq", "dataroot"):
            folder = dataset.get(key)
            if folder is None:
                continue
            if not Path(folder).is_dir():
                kind = "LMDB folder" if lmdb else "folder"
                raise option_error(opt, f"datasets.{name}.{key}", f"{kind} {folder!r} does not exist")
        for key in ("meta_info_file", "meta_info"):
            meta = dataset.get(key)
            if meta is not None and not lmdb and not Path(meta).is_file():
                raise option_error(opt, f"datasets.{name}.{key}", f"file {meta!r} does not exist")
        root = dataset.get("dataroot_gt")
        for i, item in enumerate(dataset.get("image_list") or []):
            if root is not None and not (Path(root) / item).is_file():
                raise option_error(opt, f"datasets.{name}.image_list[{i}]",
                                   f"file {str(Path(root) / item)!r} does not exist")
    for key, value in opt.get("path", {}).items():
        if key.startswith("pretrain_network_") and value is not None and not Path(value).is_file():
            raise option_error(opt, f"path.{key}", f"file {value!r} does not exist")
    fid = (opt.get("val") or {}).get("fid") or {}
    if fid.get("inception_weights") is not None and not Path(fid["inception_weights"]).is_file():
        raise option_error(opt, "val.fid.inception_weights", f"file {fid['inception_weights']!r} does not exist")
    if fid.get("real_images") is not None and not Path(fid["real_images"]).exists():
        raise option_error(opt, "val.fid.real_images",
                           f"{fid['real_images']!r} does not exist (a folder of images or a pytorch-fid .npz)")


def check_network(opt: dict, key: str, resolve: Callable[[str], type] | None = None) -> None:
    """Check the ``type`` and constructor arguments of network section ``key`` (``network_g``)
    against the class ``resolve(type)`` returns (default: the restoregen registry)."""
    section = opt[key]
    if resolve is None:
        from .archs import get_arch as resolve
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
                               f"{section['type']} has no argument {name!r}{_suggest(name, names)}")


__all__ = ["OptionError", "check_network", "check_paths", "load_options", "option_error", "read_yaml", "validate"]
