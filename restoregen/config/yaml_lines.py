"""Reading YAML option files with the line of every key, and the errors that name file, line and key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

Lines = dict[tuple[str, ...], int]  # key path ("datasets", "train", "gt_size") -> 1-based line


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


def key_lines(text: str) -> Lines:
    """Map each key path of a YAML document to its 1-based line."""
    import yaml

    lines: Lines = {}

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


def dotted(path: tuple[str, ...]) -> str:
    """``("datasets", "train", "image_list", "[0]")`` -> ``datasets.train.image_list[0]``."""
    return "".join(part if part.startswith("[") else f".{part}" for part in path).lstrip(".")


def line_of(lines: Lines, path: tuple[str, ...]) -> int | None:
    """The line of key ``path``, else of its nearest parent that has one."""
    return next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)


def read_yaml(file: str | Path) -> tuple[dict, Lines]:
    """Parse ``file`` (safe loader) into a dict and a key-path -> line map."""
    import yaml

    path = Path(file)
    if not path.is_file():
        raise OptionError(file, None, "option file not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        lines = key_lines(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise OptionError(file, None, f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise OptionError(file, None, "expected a mapping of options at the top level")
    return data, lines


def option_error(opt: dict, key: str, problem: str) -> OptionError:
    """An :class:`OptionError` for dotted ``key`` of loaded options ``opt`` (file and line filled in)."""
    path = tuple(part for part in re.split(r"\.|(?=\[)", key) if part)
    return OptionError(opt.get("_file"), key, problem, line_of(opt.get("_lines", {}), path))


__all__ = ["Lines", "OptionError", "dotted", "key_lines", "line_of", "option_error", "read_yaml"]
