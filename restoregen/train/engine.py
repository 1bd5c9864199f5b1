"""The training loop core, on ``accelerate.Accelerator``.

The engine owns everything that does not depend on what is trained: devices and processes,
mixed precision, gradient accumulation and clipping, seeds, the endless resumable data stream,
learning-rate schedules, EMA, checkpoints and resume, logs, TensorBoard and the progress bar,
best-metric tracking. It knows nothing of network insides.

A :class:`Recipe` says what one iteration does and how to validate. In ``setup`` it builds its
networks, losses and optimizers and registers them (:meth:`Engine.add_network`,
:meth:`Engine.add_optimizer`); ``train_step`` runs forward passes and calls
:meth:`Engine.backward` and :meth:`Engine.step`; ``validate`` returns metrics per dataset;
``on_iteration_end`` runs after each finished iteration (EMA updated, checkpoint written), e.g. for
image snapshots.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoints import CheckpointError
from ..config import option_error
from ..fileio import remove_stale_parts
from .checkpoint import atomic_save, clean_state_dict, find_latest, model_path, state_path
from .ema import EMA
from .logs import Scalars, setup_logging
from .networks import load_pretrained
from .optimizers import build_optimizer
from .schedulers import build_scheduler, set_learning_rate

log = logging.getLogger("restoregen.train")

DEBUG_ITERATIONS = 8  # --debug: this many iterations, logging each, validating and saving at the end


class Recipe:
    """What one training iteration does, and validation. Subclasses implement the three methods;
    ``state_dict``/``load_state_dict`` carry any extra state into checkpoints."""

    lower_is_better: frozenset[str] = frozenset()  # metrics whose best value is the lowest (FID ...)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.opt = engine.opt

    def setup(self) -> None:
        raise NotImplementedError

    def train_step(self, batch: dict, iteration: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def validate(self, iteration: int) -> dict[str, dict[str, float]]:
        """{dataset name: {metric: value}}; runs on the main process only."""
        return {}

    def on_iteration_end(self, iteration: int) -> None:
        """Called on every process after iteration ``iteration`` is complete (EMA updated, logs,
        validation and checkpoint done)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class Slot:
    """A registered network: as prepared by Accelerate (``module``), unwrapped (``bare``), its
    moving average, and its option section when the model files should describe it."""

    module: nn.Module
    bare: nn.Module
    ema: EMA | None
    section: dict | None = None


def _python_rng_state() -> dict:
    return {"python": random.getstate(),
            "numpy": (lambda s: [s[0], s[1].tolist(), s[2], s[3], s[4]])(np.random.get_state()),
            "torch": torch.random.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.random.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Engine:
    """Trains ``opt`` (validated options) with a recipe: ``Engine(opt).run(RecipeClass)``."""

    def __init__(self, opt: dict, *, auto_resume: bool = False, debug: bool = False,
                 threads: int | None = None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import broadcast_object_list

        from ..threads import configure_threads

        self.opt = opt
        self.debug = debug
        self.auto_resume = auto_resume
        train = opt["train"]
        if debug:
            opt["name"] = opt["name"] if opt["name"].startswith("debug") else f"debug_{opt['name']}"
            train["total_iter"] = min(train["total_iter"], DEBUG_ITERATIONS)
            opt["logger"].update(print_freq=1, save_checkpoint_freq=DEBUG_ITERATIONS, use_tb_logger=False)
            if opt.get("val"):
                opt["val"]["val_freq"] = DEBUG_ITERATIONS
        self.accelerator = Accelerator(
            cpu=opt.get("num_gpu") == 0,
            mixed_precision=train.get("mixed_precision"),
            gradient_accumulation_steps=train.get("grad_accum_steps", 1),
        )
        self.device = self.accelerator.device
        self.threads = configure_threads(threads)  # logged once the log file exists
        self.rank = self.accelerator.process_index
        self.world_size = self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        seed = [opt.get("manual_seed")]
        if seed[0] is None:
            seed = [random.randint(1, 10000)]
            broadcast_object_list(seed)
        self.seed = int(seed[0])
        self.root = Path("experiments") / opt["name"]
        self.visualization = self.root / "visualization"
        self.total_iter = int(train["total_iter"])
        self.slots: dict[str, Slot] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedule = build_scheduler(train.get("scheduler"), self.total_iter)
        self.best: dict[str, dict[str, dict]] = {}
        self.iteration = 0
        self.loader = None
        self.scalars = Scalars(None)
        setup_logging(None, self.is_main)

    # ---------------------------------------------------------------- for recipes

    def add_network(self, label: str, net: nn.Module, *, ema_decay: float = 0.0,
                    describe: dict | None = None) -> nn.Module:
        """Register network ``net_<label>``: loads ``path.pretrain_network_<label>`` if set, adds an
        EMA copy when ``ema_decay > 0``, and returns the module prepared for training.

        With ``describe`` (the network's option section: ``type`` and constructor arguments) every
        model file also holds it under ``network_<label>``, and each checkpoint writes the
        evaluation weights (EMA if any) as a self-describing ``net_<label>_latest.safetensors``
        (:mod:`restoregen.train.export`)."""
        paths = self.opt.get("path", {})
        pretrained = paths.get(f"pretrain_network_{label}")
        strict = paths.get(f"strict_load_{label}", True)
        if pretrained is not None:
            self._load_pretrained(label, net, pretrained, paths.get(f"param_key_{label}", "params"), strict)
        net = net.to(self.device).train()
        ema = None
        if ema_decay > 0:
            ema = EMA(net, ema_decay)
            if pretrained is not None:
                self._load_pretrained(label, ema.module, pretrained, "params_ema", strict)
        module = self.accelerator.prepare(net)
        self.slots[label] = Slot(module, net, ema, describe)
        return module

    def _load_pretrained(self, label: str, net: nn.Module, path: str, param_key: str | None, strict: bool) -> None:
        """:func:`load_pretrained`, its errors reported against ``path.pretrain_network_<label>``
        (recipes set up before the experiment folder is made, so a bad file leaves nothing behind)."""
        try:
            load_pretrained(net, path, param_key, strict)
        except CheckpointError as error:
            raise option_error(self.opt, f"path.pretrain_network_{label}", str(error)) from None

    def add_optimizer(self, label: str, params, section: dict) -> torch.optim.Optimizer:
        """The optimizer of option section ``section`` (``train.optim_<label>``) over ``params``."""
        optimizer = build_optimizer([p for p in params if p.requires_grad], section)
        self.optimizers[label] = self.accelerator.prepare(optimizer)
        return self.optimizers[label]

    def backward(self, loss: Tensor) -> None:
        self.accelerator.backward(loss)

    def step(self, label: str) -> None:
        """Clip (``train.grad_clip_norm``), step and zero the gradients of optimizer ``label``
        (a no-op between the micro-batches of gradient accumulation)."""
        optimizer = self.optimizers[label]
        clip = self.opt["train"].get("grad_clip_norm")
        if clip and self.accelerator.sync_gradients:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            self.accelerator.clip_grad_norm_(params, clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def no_sync(self, label: str):
        """Context: forward passes through ``net_<label>`` that must not synchronise gradients."""
        return self.accelerator.no_sync(self.slots[label].module)

    def eval_network(self, label: str) -> nn.Module:
        """The network to validate or save as the result: the EMA if there is one."""
        slot = self.slots[label]
        return slot.ema.module if slot.ema is not None else slot.bare

    # ---------------------------------------------------------------- checkpoints

    def _save_models(self, tag: int | str) -> None:
        from .export import export_state

        for label, slot in self.slots.items():
            data = {"params": clean_state_dict(slot.bare.state_dict())}
            if slot.ema is not None:
                data["params_ema"] = clean_state_dict(slot.ema.module.state_dict())
            if slot.section is not None:
                data[f"network_{label}"] = slot.section
            atomic_save(data, model_path(self.root, label, tag))
            if slot.section is not None and isinstance(tag, int):
                key = "params_ema" if slot.ema is not None else "params"
                export_state(data[key], slot.section, self.root / "models" / f"net_{label}_latest.safetensors",
                             param_key=key, iteration=str(tag))

    def save_checkpoint(self, recipe: Recipe) -> None:
        """Models, then the training state (all processes call this; the main one writes)."""
        from accelerate.utils import gather_object

        rng = gather_object([_python_rng_state()])
        if self.is_main:
            self._save_models(self.iteration)
            state = {
                "iter": self.iteration,
                "epoch": self.loader.epoch(),
                "seed": self.seed,
                "world_size": self.world_size,
                "optimizers": {label: o.state_dict() for label, o in self.optimizers.items()},
                "schedulers": {label: {"iteration": self.iteration} for label in self.optimizers},
                "scaler": self.accelerator.scaler.state_dict() if self.accelerator.scaler else None,
                "loader": self.loader.state_dict(),
                "rng": rng,
                "best": self.best,
                "recipe": recipe.state_dict(),
            }
            atomic_save(state, state_path(self.root, self.iteration))
            self._prune_checkpoints()
            log.info("saved checkpoint %s", state_path(self.root, self.iteration))
        self.accelerator.wait_for_everyone()

    def _prune_checkpoints(self) -> None:
        keep = self.opt["logger"].get("keep_checkpoints", 0)
        if keep <= 0:
            return
        states = sorted(int(p.stem) for p in (self.root / "training_states").glob("*.state") if p.stem.isdigit())
        for iteration in states[:-keep]:
            state_path(self.root, iteration).unlink(missing_ok=True)
            for label in self.slots:
                model_path(self.root, label, iteration).unlink(missing_ok=True)

    def _find_resume(self) -> tuple[int, dict] | None:
        explicit = self.opt.get("path", {}).get("resume_state")
        if explicit and not self.auto_resume:
            if not Path(explicit).is_file() or not Path(explicit).stem.isdigit():
                raise option_error(self.opt, "path.resume_state",
                                   f"{explicit!r} is not a training state (training_states/<iteration>.state)")
            iteration = int(Path(explicit).stem)
            root = Path(explicit).parent.parent
            return iteration, {**torch.load(explicit, map_location="cpu", weights_only=True), "_root": root}
        if self.auto_resume:
            found = find_latest(self.root, list(self.slots))
            if found is not None:
                return found[0], {**found[1], "_root": self.root}
        return None

    def _restore(self, iteration: int, state: dict, recipe: Recipe) -> None:
        root = state["_root"]
        for label, slot in self.slots.items():
            data = torch.load(model_path(root, label, iteration), map_location="cpu", weights_only=True)
            slot.bare.load_state_dict(data["params"])
            if slot.ema is not None:
                slot.ema.module.load_state_dict(data.get("params_ema", data["params"]))
        for label, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][label])
        if state.get("scaler") and self.accelerator.scaler:
            self.accelerator.scaler.load_state_dict(state["scaler"])
        self.seed = int(state.get("seed", self.seed))
        self.best = state.get("best", {})
        self.iteration = iteration
        recipe.load_state_dict(state.get("recipe", {}))
        self._loader_state = state["loader"]
        rng = state["rng"]
        if len(rng) == self.world_size:
            self._rng_state = rng[self.rank]
        else:
            log.warning("resuming with %d processes from a checkpoint of %d: random streams are reseeded",
                        self.world_size, len(rng))
            self._rng_state = None
        log.info("resumed from iteration %d (%s)", iteration, state_path(root, iteration))

    # ---------------------------------------------------------------- data

    def _dataset(self, key: str):
        from ..data import build_dataset

        try:
            return build_dataset(self.opt["datasets"][key])
        except (ValueError, OSError, KeyError) as error:
            raise option_error(self.opt, f"datasets.{key}", str(error).strip("'\"")) from None

    def _train_loader(self):
        from ..data.loader import TrainLoader

        section = self.opt["datasets"]["train"]
        dataset = self._dataset("train")
        loader = TrainLoader(
            dataset,
            batch_size=section["batch_size_per_gpu"],
            seed=self.seed,
            num_workers=section.get("num_worker_per_gpu", 0),
            shuffle=section.get("use_shuffle", True),
            enlarge_ratio=section.get("dataset_enlarge_ratio", 1),
            rank=self.rank,
            world_size=self.world_size,
            pin_memory=section.get("pin_memory", False) and self.device.type == "cuda",
            timeout=section.get("worker_timeout", 300.0),
        )
        per_epoch = max(1, len(dataset) * section.get("dataset_enlarge_ratio", 1)
                        // (section["batch_size_per_gpu"] * self.world_size))
        log.info("training data: %d images, batch %d x %d processes, %d iterations per epoch, %d iterations",
                 len(dataset), section["batch_size_per_gpu"], self.world_size, per_epoch, self.total_iter)
        return loader

    def val_loaders(self) -> dict[str, torch.utils.data.DataLoader]:
        """{dataset name: loader} of the ``val*`` datasets (built once)."""
        if not hasattr(self, "_val_loaders"):
            from ..data.loader import eval_loader

            self._val_loaders = {}
            for key, section in self.opt["datasets"].items():
                if key.split("_")[0] == "val":
                    self._val_loaders[section.get("name", key)] = eval_loader(self._dataset(key))
        return self._val_loaders

    # ---------------------------------------------------------------- the loop

    def _prepare_folders(self, resuming: bool) -> None:
        if self.is_main:
            if not resuming and self.root.exists():
                stamp = time.strftime("%Y%m%d_%H%M%S")
                archived = self.root.with_name(f"{self.root.name}_archived_{stamp}")
                self.root.rename(archived)
                print(f"restoregen train: moved the existing {self.root} to {archived}")
            for sub in ("models", "training_states"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            source = self.opt.get("_file")
            if source:
                shutil.copyfile(source, self.root / Path(source).name)
        self.accelerator.wait_for_everyone()
        stamp = time.strftime("%Y%m%d_%H%M%S")
        setup_logging(self.root / f"train_{self.opt['name']}_{stamp}.log", self.is_main)
        if self.is_main:  # before anything is written: a killed run's partial checkpoints and images
            removed = [part for folder, _, _ in os.walk(self.root) for part in remove_stale_parts(folder)]
            if removed:
                log.info("removed %d partial file(s) left by an interrupted run: %s", len(removed),
                         ", ".join(str(part.relative_to(self.root)) for part in removed))
        if self.is_main and self.opt["logger"].get("use_tb_logger", False):
            self.scalars = Scalars(Path("tb_logger") / self.opt["name"])

    def _validate(self, recipe: Recipe) -> None:
        if self.is_main:
            results = recipe.validate(self.iteration)
            metric_opts = (self.opt.get("val") or {}).get("metrics") or {}
            first = True
            for dataset, values in results.items():
                parts = []
                for metric, value in values.items():
                    default = "lower" if metric in recipe.lower_is_better else "higher"
                    better = metric_opts.get(metric, {}).get("better", default)
                    record = self.best.setdefault(dataset, {}).get(metric)
                    improved = record is None or (
                        value >= record["val"] if better == "higher" else value <= record["val"])
                    if improved:
                        record = self.best[dataset][metric] = {"val": value, "iter": self.iteration}
                        if first:
                            self._save_models("best")
                    first = False
                    parts.append(f"{metric}: {value:.4f} (best {record['val']:.4f} @ {record['iter']})")
                    self.scalars.add({f"metrics/{dataset}/{metric}": value}, self.iteration)
                log.info("validation %s at iteration %d: %s", dataset, self.iteration, ", ".join(parts))
        self.accelerator.wait_for_everyone()

    def _check_in_sync(self) -> None:
        """All processes must hold the same weights (one model trained, not several)."""
        from accelerate.utils import gather_object

        sums = [float(sum(p.detach().double().sum() for p in slot.bare.parameters())) for slot in self.slots.values()]
        gathered = gather_object([sums])
        if any(g != gathered[0] for g in gathered):
            raise RuntimeError(f"the processes' weights differ after training: {gathered}")
        if self.world_size > 1:
            log.info("weights identical on all %d processes", self.world_size)

    def run(self, recipe_cls: type[Recipe]) -> None:
        _seed_everything(self.seed)  # identical initial weights in every process
        recipe = recipe_cls(self)
        recipe.setup()
        resume = self._find_resume()
        self._prepare_folders(resuming=resume is not None)
        log.info(self.threads)
        self._rng_state = None
        self._loader_state = None
        if resume is not None:
            self._restore(*resume, recipe)
        else:
            log.info("training %s (%s) from scratch, seed %d, %d process(es) on %s%s", self.opt["name"],
                     self.opt["model_type"], self.seed, self.world_size, self.device,
                     f", mixed precision {self.accelerator.mixed_precision}"
                     if self.accelerator.mixed_precision != "no" else "")
        for label, slot in self.slots.items():
            n_params = sum(p.numel() for p in slot.bare.parameters())
            log.info("network net_%s: %s, %s parameters%s", label, type(slot.bare).__name__, f"{n_params:,}",
                     f", EMA decay {slot.ema.decay}" if slot.ema else "")
        self.loader = self._train_loader()
        if self._loader_state is not None:
            self.loader.load_state_dict(self._loader_state)
        if self._rng_state is not None:
            _set_rng_state(self._rng_state)
        else:
            _seed_everything(self.seed + self.rank + self.iteration)
        finished = False
        try:
            self._loop(recipe)
            finished = True
        finally:
            self.loader.close()
            self.scalars.close()
            _leave_process_group(synchronize=finished)

    def _loop(self, recipe: Recipe) -> None:
        from tqdm import tqdm

        train, logger_opt = self.opt["train"], self.opt["logger"]
        val_freq = (self.opt.get("val") or {}).get("val_freq")
        print_freq = logger_opt.get("print_freq", 100)
        save_freq = logger_opt.get("save_checkpoint_freq", 5000)
        accumulate = train.get("grad_accum_steps", 1)
        warmup = train.get("warmup_iter", -1)
        modules = [slot.module for slot in self.slots.values()]
        window: dict[str, float] = {}
        window_count, data_time = 0, 0.0
        start_iteration, start_time = self.iteration, time.time()
        bar = tqdm(total=self.total_iter, initial=self.iteration, disable=not self.is_main, unit="it",
                   dynamic_ncols=True, mininterval=1.0, desc=self.opt["name"])
        while self.iteration < self.total_iter:
            self.iteration += 1
            for optimizer in self.optimizers.values():
                set_learning_rate(optimizer, self.schedule, self.iteration, warmup)
            tick = time.time()
            for _ in range(accumulate):
                batch = next(self.loader)
                data_time += time.time() - tick
                with self.accelerator.accumulate(*modules):
                    losses = recipe.train_step(batch, self.iteration)
                tick = time.time()
            for slot in self.slots.values():
                if slot.ema is not None:
                    slot.ema.update(slot.bare)
            for key, value in losses.items():
                window[key] = window.get(key, 0.0) + float(value)
            window_count += 1
            lr = next(iter(self.optimizers.values())).param_groups[0]["lr"] if self.optimizers else 0.0
            bar.set_postfix({k: f"{v / window_count:.3e}" for k, v in list(window.items())[:2]} | {"lr": f"{lr:.2e}"},
                            refresh=False)
            bar.update(1)
            if self.iteration % print_freq == 0 or self.iteration == self.total_iter:
                self._log_line(window, window_count, lr, time.time() - start_time, data_time, start_iteration)
                window, window_count = {}, 0
            validate = bool(val_freq) and (self.iteration % val_freq == 0 or self.iteration == self.total_iter)
            if validate:
                self._validate(recipe)
            if self.iteration % save_freq == 0 or self.iteration == self.total_iter:
                self.save_checkpoint(recipe)
            recipe.on_iteration_end(self.iteration)
        bar.close()
        if self.is_main:
            for label in self.slots:
                shutil.copyfile(model_path(self.root, label, self.iteration), model_path(self.root, label, "latest"))
            elapsed = datetime.timedelta(seconds=int(time.time() - start_time))
            log.info("training done: %d iterations in %s; weights in %s", self.total_iter, elapsed,
                     model_path(self.root, next(iter(self.slots)), "latest"))
        self._check_in_sync()

    def _log_line(self, window: dict, count: int, lr: float, elapsed: float, data_time: float, start: int) -> None:
        names = list(window)
        values = torch.tensor([window[k] / max(count, 1) for k in names], dtype=torch.float64, device=self.device)
        if self.world_size > 1 and names:
            values = self.accelerator.reduce(values, reduction="mean")
        if not self.is_main:
            return
        done = max(self.iteration - start, 1)
        eta = datetime.timedelta(seconds=int(elapsed / done * (self.total_iter - self.iteration)))
        named = dict(zip(names, values.tolist(), strict=True))
        losses = " ".join(f"{k}: {v:.4e}" for k, v in named.items())
        log.info("[epoch %d, iter %d, lr %.3e] [eta %s, time (data) %.3f (%.3f)] %s", self.loader.epoch(),
                 self.iteration, lr, eta, elapsed / done, data_time / done, losses)
        self.scalars.add({f"losses/{k}": v for k, v in named.items()} | {"lr": lr}, self.iteration)



def _leave_process_group(synchronize: bool) -> None:
    """Destroy the distributed process group (``restoregen train`` then ends its processes without the
    interpreter's teardown: see ``command._end_without_teardown``).

    After a finished run the processes first meet in a barrier, so that none tears its connections
    down while another still uses them (once seen as an abort of rank 1 at exit); after an error
    they do not wait for each other.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if synchronize and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
