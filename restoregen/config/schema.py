"""A small schema library for option files: each :class:`Spec` checks one value and returns it
normalised (``5e3`` for an integer becomes ``5000``; ``'1e-4'`` for a number becomes ``1e-4``), or
raises :class:`Invalid` with the problem and the key path below it, which the loader turns into an
:class:`~restoregen.config.OptionError` naming the file and the line.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Invalid(Exception):
    """A value that does not fit its spec: ``problem`` (one sentence) and ``path``, the keys below
    the checked value that lead to it."""

    def __init__(self, problem: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(problem)
        self.problem, self.path = problem, path


def describe(value: Any) -> str:
    """``value`` as an error message shows it (its repr, cut at 60 characters)."""
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
            raise Invalid(f"expected an integer, got {describe(value)}")
        if isinstance(value, str):
            value = _number_from_text(value, self.name)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise Invalid(f"expected an integer, got {describe(value)}")
        return value


class _Float(Spec):
    name = "a number"

    def check(self, value: Any) -> float:
        if isinstance(value, bool):
            raise Invalid(f"expected a number, got {describe(value)}")
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            value = _number_from_text(value, self.name)
        if not isinstance(value, (int, float)):
            raise Invalid(f"expected a number, got {describe(value)}")
        return float(value)


def _number_from_text(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise Invalid(f"expected {name}, got {describe(text)}") from None


class _Bool(Spec):
    name = "true or false"

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid(f"expected true or false, got {describe(value)}")
        return value


class _Str(Spec):
    name = "a string"

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(f"expected a string, got {describe(value)}")
        return value


ANY, INT, FLOAT, BOOL, STR = _Any(), _Int(), _Float(), _Bool(), _Str()


@dataclass
class Bounded(Spec):
    """A number (``spec``: INT or FLOAT) in a range: ``>= least``, ``> above``, ``< below``,
    ``<= most``, and one of ``allowed`` when given."""

    spec: Spec
    least: float | None = None
    above: float | None = None
    below: float | None = None
    most: float | None = None
    allowed: tuple[int, ...] | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.spec.name

    def check(self, value: Any) -> Any:
        value = self.spec.check(value)
        if self.allowed is not None and value not in self.allowed:
            raise Invalid(f"must be one of {', '.join(map(str, self.allowed))}, got {value}")
        for words, bound, holds in (("at least", self.least, operator.ge), ("above", self.above, operator.gt),
                                    ("below", self.below, operator.lt), ("at most", self.most, operator.le)):
            if bound is not None and not holds(value, bound):
                raise Invalid(f"must be {words} {bound:g}, got {value:g}")
        return value


COUNT = Bounded(INT, least=1)  # iterations, batch sizes, frequencies
NON_NEGATIVE_INT = Bounded(INT, least=0)
POSITIVE = Bounded(FLOAT, above=0)  # learning rates, epsilons
NON_NEGATIVE = Bounded(FLOAT, least=0)  # loss weights, decays of weights
PROBABILITY = Bounded(FLOAT, least=0, most=1)


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
            hint = suggest(value, [v for v in self.values if isinstance(v, str)]) if isinstance(value, str) else ""
            raise Invalid(f"expected {self.name}, got {describe(value)}{hint}")
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
            except Invalid:
                continue
        raise Invalid(f"expected {self.name}, got {describe(value)}")


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
            raise Invalid(f"expected {self.name}, got {describe(value)}")
        if self.length is not None and len(value) != self.length:
            raise Invalid(f"expected {self.length} values, got {len(value)}")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(self.item.check(item))
            except Invalid as error:
                raise Invalid(error.problem, (f"[{i}]", *error.path)) from None
        return out


NUMBERS = ListOf(FLOAT)


def suggest(word: str, candidates: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the candidate ``x`` closest to ``word``, or ``""`` if none is close."""
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
            raise Invalid(f"expected a mapping (key: value lines), got {describe(value)}")
        if self.extra is None:  # before the required keys: a misspelt one is reported as misspelt
            for key in map(str, value):
                if key not in self.fields:
                    raise Invalid(f"unknown option{suggest(key, list(self.fields))}", (key,))
        for key in self.required:
            if value.get(key) is None:
                raise Invalid("required option is missing", (key,))
        out = {}
        for key, item in value.items():
            key = str(key)
            spec = self.fields.get(key, self.extra)
            try:
                out[key] = spec.check(item)
            except Invalid as error:
                raise Invalid(error.problem, (key, *error.path)) from None
        return out


@dataclass
class Tagged(Spec):
    """A section whose allowed keys depend on its ``type``: ``common`` keys plus ``variants[type]``."""

    variants: Mapping[str, dict[str, Spec]]
    common: dict[str, Spec] = field(default_factory=dict)
    what: str = "type"

    def check(self, value: Any) -> dict:
        if not isinstance(value, Mapping):
            raise Invalid(f"expected a mapping with a 'type' key, got {describe(value)}")
        kind = value.get("type")
        if kind is None:
            raise Invalid("required option is missing", ("type",))
        if kind not in self.variants:
            known = ", ".join(sorted(self.variants))
            hint = suggest(str(kind), list(self.variants))
            raise Invalid(f"unknown {self.what} {kind!r}{hint}; known: {known}", ("type",))
        fields = {"type": STR, **self.common, **self.variants[kind]}
        return Section(fields).check(value)


class OptionType(NamedTuple):
    """A ``type`` that option files may name, as a registry lists it (``DATASETS``, ``LOSSES``, ...):
    what it builds (``target``: the implementation, or ``"module:attribute"`` under the registry's
    package, imported on first use) and the options its section takes besides ``type``."""

    target: Any
    options: dict[str, Spec]


class RegisteredTypes(Mapping):
    """The variants of a :class:`Tagged` section from a registry: each type name with its options,
    read from the registry on each use (a type registered later is known too)."""

    def __init__(self, registry: Mapping[str, OptionType]) -> None:
        self.registry = registry

    def __getitem__(self, name: str) -> dict[str, Spec]:
        return self.registry[name].options

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry)

    def __len__(self) -> int:
        return len(self.registry)


__all__ = [
    "ANY", "BOOL", "COUNT", "FLOAT", "INT", "NON_NEGATIVE", "NON_NEGATIVE_INT", "NUMBERS", "POSITIVE", "PROBABILITY",
    "STR", "Bounded", "Choice", "Either", "Invalid", "ListOf", "Opt", "OptionType", "RegisteredTypes", "Section",
    "Spec", "Tagged", "describe", "suggest",
]
