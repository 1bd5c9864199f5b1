"""Reading model files without running code from them.

``.safetensors`` files hold only tensors. ``.pt``/``.pth`` files are pickles, and unpickling can
call any function named in the file; :func:`read_checkpoint` therefore never fully unpickles:

1. it lists the file's pickle globals statically (nothing is executed);
2. it refuses files whose pickle names a function that can run code (``os.system``,
   ``builtins.eval``, ``subprocess``, ...): a model file never needs one;
3. it reads the file with ``torch.load(weights_only=True)``, where every other global that torch
   does not allow by default is replaced by an inert stand-in: ``argparse.Namespace`` (the
   ``args`` entry of official StyleSwin/StyleGAN2 checkpoints) becomes a plain
   :class:`NamespaceRecord` of its fields, anything else a :class:`SkippedObject` that records the
   name it stands for. Their code never runs; the names are reported as skipped.

:func:`unwrap_state_dict` then finds the state dict inside the training wrappers (``params_ema``,
``params``, ``g_ema``, ``state_dict``, ...): the one checkpoint unwrapper of loading, training and
sampling; :func:`key_variants` removes the prefixes that wrapper modules add to the keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


class CheckpointError(ValueError):
    """A model file that cannot be read (the message names the file and the problem)."""


class UnsafeCheckpointError(CheckpointError):
    """A model file whose pickle tries to call code while loading."""


class NamespaceRecord:
    """Inert stand-in for ``argparse.Namespace``: the pickled fields as attributes."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __setstate__(self, state: dict) -> None:  # pickle BUILD
        if isinstance(state, dict):
            self.__dict__.update(state)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return f"NamespaceRecord({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


class SkippedObject:
    """Stands in for an object whose class or function is not allow-listed. It accepts and drops
    whatever the pickle passes to it; the real class or function is never imported or called."""

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> SkippedObject:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<skipped {self.global_name}>"


# pickle globals mapped to inert stand-ins with the same data
_RECORDS: dict[str, type] = {"argparse.Namespace": NamespaceRecord}

# modules whose functions can execute code, touch files or processes; a model file never names them
_CODE_MODULES = frozenset({
    "builtins", "__builtin__", "os", "posix", "nt", "sys", "subprocess", "shutil", "importlib", "runpy", "pickle",
    "_pickle", "marshal", "ctypes", "socket", "code", "codeop", "pty", "webbrowser", "operator", "functools",
    "types", "inspect", "io", "_io", "pathlib", "tempfile", "multiprocessing", "threading", "asyncio", "signal",
    "pdb", "timeit", "trace", "commands", "platform", "glob", "zipfile", "tarfile", "urllib", "http", "ftplib",
    "smtplib", "telnetlib", "pydoc", "cProfile", "profile", "dill", "cloudpickle", "joblib", "torch.hub",
    "torch.utils.cpp_extension", "torch.jit", "torch._dynamo",
})


def _is_code_global(name: str) -> bool:
    module = name.rsplit(".", 1)[0]
    return any(module == m or module.startswith(m + ".") for m in _CODE_MODULES)


def _stand_in(name: str) -> type:
    return _RECORDS.get(name) or type("Skipped", (SkippedObject,), {"global_name": name})


@dataclass
class Checkpoint:
    """What :func:`read_checkpoint` found: the object, the safetensors metadata and the skipped globals."""

    path: Path
    data: Any
    metadata: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a ``.safetensors`` file or a ``torch.save`` pickle safely (see the module docstring).

    Raises :class:`CheckpointError` (or :class:`UnsafeCheckpointError`) with a message naming the
    file; tensors are loaded on the CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    with path.open("rb") as handle:
        head = handle.read(9)  # safetensors: 8-byte little-endian header length, then the JSON header
    looks_safetensors = len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size
    if path.suffix == ".safetensors" or looks_safetensors:
        return _read_safetensors(path)
    return _read_pickle(path)


def _read_safetensors(path: Path) -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is not iterable)
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    return Checkpoint(path, tensors, metadata)


def _read_pickle(path: Path) -> Checkpoint:
    import pickle

    try:
        unsafe = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception as error:  # not a zip-format torch.save file (or damaged)
        raise CheckpointError(f"{path}: not a torch.save checkpoint in the zip format of torch >= 1.6 "
                              f"({error}); re-save it or convert it to safetensors") from None
    dangerous = [name for name in unsafe if _is_code_global(name)]
    if dangerous:
        raise UnsafeCheckpointError(
            f"{path}: refused: its pickle would call {', '.join(dangerous)} while loading, which a model file "
            "never needs (nothing was executed)")
    stand_ins = [(_stand_in(name), name) for name in unsafe]
    try:
        with torch.serialization.safe_globals(stand_ins):
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path}: could not be read safely ({type(error).__name__}: {error})") from None
    return Checkpoint(path, data, skipped=[name for name in unsafe if name not in _RECORDS])


# Entries that training code wraps a state dict in, in order of preference (EMA weights first): BasicSR
# (params_ema, params), StyleSwin/StyleGAN2 (g_ema, g), Lightning (state_dict) and others.
WRAPPER_KEYS = ("params_ema", "g_ema", "params", "g", "state_dict", "model", "net_g", "generator")
# Prefixes added by DataParallel/DDP (module.), torch.compile (_orig_mod.) and Lightning-style wrappers.
STRIPPED_PREFIXES = ("module.", "_orig_mod.", "model.", "net_g.")


def _wrapped(data: Mapping, keys: tuple[str, ...]) -> str | None:
    return next((key for key in keys if isinstance(data.get(key), Mapping)), None)


def unwrap_state_dict(data: Any, param_key: str | None = None) -> tuple[dict[str, Tensor], str | None]:
    """The state dict inside a loaded checkpoint, keys as stored, and the entry it came from (None:
    ``data`` is the state dict itself; nested entries are joined by ``/``).

    ``param_key`` names the entry as BasicSR's ``path.param_key_g`` does: when the file lacks it,
    ``params_ema`` falls back to ``g_ema`` (official StyleSwin/StyleGAN2 files), and any key to
    ``params``; a file with entries, none of them these, is an error. Without ``param_key``, the
    first of :data:`WRAPPER_KEYS` present is taken. Below the chosen entry (or the top without
    one), further :data:`WRAPPER_KEYS` entries are followed, then the tensors are the state dict
    (other values, e.g. ``epoch``, are left out). Raises :class:`CheckpointError` (without the file
    name, which the caller adds).
    """
    if not isinstance(data, Mapping):
        what = repr(data) if isinstance(data, SkippedObject) else f"a {type(data).__name__}"
        raise CheckpointError(f"holds {what}, not a dict of weights")
    path = []
    if param_key is not None:
        fallbacks = (param_key, "g_ema", "params") if param_key == "params_ema" else (param_key, "params")
        entry = _wrapped(data, fallbacks)
        if entry is None and any(isinstance(v, Mapping) for v in data.values()):
            raise CheckpointError(f"no {param_key!r} in the file (keys: {_some(list(map(str, data)), 8)})")
        if entry is not None:
            path.append(entry)
            data = data[entry]
    while len(path) < 8 and (entry := _wrapped(data, WRAPPER_KEYS)) is not None:  # 8: ends a self-containing dict
        path.append(entry)
        data = data[entry]
    state_dict = {str(k): v for k, v in data.items() if isinstance(v, Tensor)}
    if not state_dict:
        raise CheckpointError(f"no tensors found (keys: {_some(list(map(str, data)), 8) or 'none'})")
    return state_dict, "/".join(path) or None


def key_variants(state_dict: dict[str, Tensor]) -> list[dict[str, Tensor]]:
    """``state_dict`` as stored, then with one more common wrapper prefix (``module.``, ``model.``, ...)
    removed each time; the last has none left. ``model.`` is ambiguous (old ESRGAN files store
    ``model.0.weight``), so detectors try the variants in this order."""
    variants = [state_dict]
    while variants[-1]:
        prefix = next((p for p in STRIPPED_PREFIXES if all(k.startswith(p) for k in variants[-1])), None)
        if prefix is None:
            break
        variants.append({k[len(prefix):]: v for k, v in variants[-1].items()})
    return variants


def _some(names: list[str], shown: int = 3) -> str:
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def describe_mismatch(expected: dict[str, Any], given: dict[str, Any]) -> str:
    """One line on how state dict ``given`` differs from a network's ``expected`` one: counts of
    missing, unexpected and differently shaped tensors, the first few names of each ("" if none)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k} {tuple(given[k].shape)} in the file, {tuple(expected[k].shape)} in the network"
              for k in given if k in expected and hasattr(given[k], "shape") and given[k].shape != expected[k].shape]
    parts = [f"{what} {len(names)} ({_some(names, 1 if what == 'other shape' else 3)})"
             for what, names in (("missing", missing), ("unexpected", unexpected), ("other shape", shapes)) if names]
    return "; ".join(parts)


def metadata_json(checkpoint: Checkpoint, key: str) -> Any:
    """A JSON value stored in the safetensors metadata under ``key`` (``None`` when absent)."""
    text = checkpoint.metadata.get(key)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{checkpoint.path}: metadata {key!r} is not valid JSON ({error})") from None


__all__ = [
    "STRIPPED_PREFIXES", "WRAPPER_KEYS", "Checkpoint", "CheckpointError", "NamespaceRecord", "SkippedObject",
    "UnsafeCheckpointError", "describe_mismatch", "key_variants", "metadata_json", "read_checkpoint",
    "unwrap_state_dict",
]
