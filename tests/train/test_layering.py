"""Layering: training never imports inference (directly, or through the modules it imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import restoregen

PACKAGE = Path(restoregen.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _source(module: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def _imports_in(text: str, package: str) -> set[str]:
    """The restoregen modules that code in ``package`` imports anywhere (inside functions too),
    relative imports resolved; ``from package import name`` counts ``package.name`` when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if _source(f"{base}.{alias.name}"))
    return {name for name in found if name == "restoregen" or name.startswith("restoregen.")}


def _imported(path: Path) -> set[str]:
    module = _module_name(path)
    return _imports_in(path.read_text(encoding="utf-8"),
                       module if path.name == "__init__.py" else module.rpartition(".")[0])


def _reached_from(start: list[str]) -> dict[str, str]:
    """Every restoregen module reachable from ``start`` by imports, with the module that imports it."""
    importer = {name: name for name in start}
    queue = list(start)
    while queue:
        source = _source(queue.pop())
        if source is None:
            continue
        for name in _imported(source):
            parts = name.split(".")
            for n in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                parent = ".".join(parts[:n])
                if parent not in importer and _source(parent):
                    importer[parent] = _module_name(source)
                    queue.append(parent)
    return importer


def test_train_never_imports_inference() -> None:
    train = sorted(_module_name(p) for p in (PACKAGE / "train").rglob("*.py"))
    assert "restoregen.train.recipes.gan" in train
    reached = _reached_from(train)
    inference = {name: by for name, by in reached.items() if name.split(".")[:2] == ["restoregen", "inference"]}
    assert not inference, f"restoregen.train reaches {inference} (module: imported by)"


def test_the_check_resolves_relative_imports() -> None:
    code = "def snapshot():\n    from ...inference.sample import image_grid\nfrom ... import inference, config\n"
    assert _imports_in(code, "restoregen.train.recipes") == {
        "restoregen.inference.sample", "restoregen", "restoregen.inference", "restoregen.config"}
