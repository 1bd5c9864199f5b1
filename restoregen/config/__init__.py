"""Option files: BasicSR's YAML schema, read and validated on load.

:func:`load_options` reads a YAML option file, checks every key against the schema and returns
plain nested dicts with normalised values; every problem raises :class:`OptionError`, whose
message names the file, the line and the key. The parts:

- :mod:`.schema`: the small schema library (specs that check and normalise one value);
- :mod:`.basicsr`: BasicSR's option schema, :func:`load_options`, :func:`validate` and
  :func:`check_network`; the ``type`` names of datasets, losses, metrics, schedulers and
  optimizers, and their options, come from those registries;
- :mod:`.yaml_lines`: reading YAML with the line of every key, :class:`OptionError`,
  :func:`option_error`;
- :mod:`.paths`: :func:`check_paths`, that the files and folders named exist.

The names load on first use: the registries import :mod:`.schema`, and :mod:`.basicsr` imports
the registries.
"""

from __future__ import annotations

from .._lazy import lazy_exports

# name -> submodule that defines it
_EXPORTS = {
    "OptionError": "yaml_lines", "option_error": "yaml_lines", "read_yaml": "yaml_lines",
    "check_network": "basicsr", "load_options": "basicsr", "validate": "basicsr",
    "check_paths": "paths",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
