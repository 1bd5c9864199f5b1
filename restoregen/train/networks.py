"""Building networks from option sections and loading pretrained weights into them.

``type`` is looked up in restoregen's registry first, then in basicsr's ``ARCH_REGISTRY`` (for
the networks restoregen does not reimplement, e.g. the ``UNetDiscriminatorSN`` of the Real-*
GAN recipes).
"""

from __future__ import annotations

import contextlib
import io
import logging

from torch import nn

from ..checkpoints import CheckpointError, describe_mismatch
from .checkpoint import network_state

log = logging.getLogger("restoregen.train")


def network_class(name: str) -> type[nn.Module]:
    from .. import archs

    if name in archs.list_archs():
        return archs.get_arch(name)
    from .._compat import import_basicsr

    registry = import_basicsr("archs").ARCH_REGISTRY
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # get() prints when it falls back to '<name>_basicsr'
            return registry.get(name)
    except KeyError:
        pass
    from ..config.schema import suggest

    known = archs.list_archs() + sorted(k for k in registry.keys() if not k.endswith("_basicsr"))  # noqa: SIM118 (iterating gives pairs)
    raise KeyError(f"unknown network {name!r}{suggest(name, known)} (restoregen has {', '.join(archs.list_archs())}, "
                   "and basicsr's registry does not have it either)")


def build_network(opt: dict, key: str = "network_g") -> nn.Module:
    """The network of option section ``key``; a bad ``type`` or argument is an option error."""
    from ..config import option_error

    section = opt[key]
    try:
        cls = network_class(section["type"])
    except KeyError as error:
        raise option_error(opt, f"{key}.type", str(error.args[0])) from None
    try:
        return cls(**{k: v for k, v in section.items() if k != "type"})
    except (TypeError, ValueError) as error:
        raise option_error(opt, key, str(error)) from None


def load_pretrained(net: nn.Module, path: str, param_key: str | None = "params", strict: bool = True) -> str | None:
    """Load weights file ``path`` into ``net``; returns the key actually used. A file that cannot be
    read safely or does not fit raises :class:`~restoregen.checkpoints.CheckpointError` (one line)."""
    state, used = network_state(path, param_key)
    if not strict:  # as BasicSR: tensors whose shape differs are left at their initial values
        own = net.state_dict()
        mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
        if mismatched:
            log.warning("loading %s: %d tensors of another shape left out: %s", path, len(mismatched), mismatched)
            state = {k: v for k, v in state.items() if k not in mismatched}
    try:
        result = net.load_state_dict(state, strict=strict)
    except RuntimeError:  # torch lists every key on one line; say it in a few names and counts
        mismatch = describe_mismatch(net.state_dict(), state) or "load_state_dict failed"
        raise CheckpointError(f"{path}: the weights{f' (key {used!r})' if used else ''} do not fit "
                              f"{type(net).__name__}: {mismatch}") from None
    if not strict and (result.missing_keys or result.unexpected_keys):
        log.warning("loading %s: missing %s, unexpected %s", path, result.missing_keys, result.unexpected_keys)
    log.info("loaded %s from %s (key %s)", type(net).__name__, path, used)
    return used
