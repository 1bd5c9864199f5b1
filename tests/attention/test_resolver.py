"""The backend resolver: one table per operation (``OPERATIONS``), one ``resolve`` that reads it."""

import ast
import types
from pathlib import Path

import pytest
import torch

import restoregen
from restoregen.attention import (
    BACKENDS,
    CUDA_AUTO,
    ENV_VAR,
    OPERATIONS,
    attend,
    attention_backend,
    auto_backend,
    available_backends,
    backend_table,
    backends,
    resolve,
    window_backend,
)
from restoregen.attention.sliding import auto_sliding_backend

OPS = ("dense", "window", "overlapping", "sliding", "dynamic_conv")
FLEX = "flex" in available_backends()
WINDOWED = ("window", "overlapping", "dynamic_conv")  # the operations with Triton kernels


@pytest.fixture(autouse=True)
def _auto(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def triton_on(monkeypatch):
    """Pretend triton is installed and runs on the devices ``runs(x)`` accepts (CUDA by default)."""
    def set_devices(runs=lambda x: x.is_cuda):
        monkeypatch.setitem(backends._REQUIREMENTS, "triton", (lambda: True, "needs nothing"))
        monkeypatch.setitem(backends._DEVICE_CHECKS, "triton", runs)

    set_devices()
    return set_devices


def cuda_like():
    """Stands in for a CUDA tensor: the resolver reads only the device."""
    return types.SimpleNamespace(is_cuda=True, device=torch.device("cuda"))


def test_every_operation_lists_every_backend_with_math_the_only_reference():
    assert tuple(OPERATIONS) == OPS
    for operation in OPERATIONS.values():
        assert tuple(operation.backends) == BACKENDS
        math = operation.backends["math"]
        assert math.reference and not math.caches_bias and not math.fuses_epilogues
        assert [b.name for b in operation.backends.values() if b.reference] == ["math"]


def test_table_constraints():
    # triton: a kernel only where the operation is windowed, and it runs on CUDA only (else sdpa)
    for op in WINDOWED:
        triton = OPERATIONS[op].backends["triton"]
        assert triton.fused_kernel and triton.fallback == "sdpa" and triton.recomputed_backward
    assert OPERATIONS["dense"].backends["triton"].instead == "sdpa"
    assert OPERATIONS["sliding"].backends["triton"].instead == "auto"
    assert backends._DEVICE_NOTES["triton"].startswith("CUDA")
    # flex: no attention dropout (window attention falls back to sdpa), and no CPU backward of its own
    window_flex, dense_flex = OPERATIONS["window"].backends["flex"], OPERATIONS["dense"].backends["flex"]
    assert not window_flex.dropout and window_flex.fallback == "sdpa"
    assert not dense_flex.dropout and dense_flex.fallback is None
    for op in ("dense", "window", "overlapping", "sliding"):
        assert "CPU" in OPERATIONS[op].backends["flex"].recomputed_backward
    assert OPERATIONS["dynamic_conv"].backends["flex"].instead == "sdpa"
    # only sdpa splits shifted windows into their regions
    assert [b.name for b in OPERATIONS["window"].backends.values() if b.splits_shift_regions] == ["sdpa"]


@pytest.mark.parametrize("op", OPS)
def test_cpu_float32_inference_and_training_run_sdpa(op):
    x = torch.randn(1, 2, 16, 8)
    for dropout in (False, True):
        chosen = resolve(op, x, dropout=dropout)
        assert chosen.name == "sdpa" and not chosen.reference and chosen.caches_bias and chosen.fuses_epilogues
    with torch.enable_grad():
        assert resolve(op, x.requires_grad_()).name == "sdpa"


@pytest.mark.parametrize("op", OPS)
def test_math_is_the_reference_everywhere(op, monkeypatch):
    x = torch.randn(1, 2, 16, 8)
    with attention_backend("math"):
        assert resolve(op, x, dropout=True).reference
    assert resolve(op, x, "math").name == "math"
    monkeypatch.setenv(ENV_VAR, "math")
    assert resolve(op, x).reference


def test_auto_on_cuda_is_what_it_was(triton_on):
    x = cuda_like()
    assert {op: resolve(op, x).name for op in OPS} == {
        "dense": "sdpa", "window": "sdpa", "overlapping": "sdpa", "dynamic_conv": "sdpa",
        "sliding": "flex" if FLEX else "sdpa"}
    assert CUDA_AUTO == {"window": "sdpa", "dynamic_conv": "sdpa"}
    assert auto_sliding_backend(x) == resolve("sliding", x).name


def test_triton_runs_its_kernels_on_cuda_and_sdpa_elsewhere(triton_on):
    cpu, cuda = torch.randn(2, 8), cuda_like()
    with attention_backend("triton"):
        for op in WINDOWED:
            assert resolve(op, cuda).fused_kernel
            assert resolve(op, cpu).name == "sdpa"
        assert resolve("window", cuda, dropout=True).name == "sdpa"
        assert resolve("dense", cuda).name == "sdpa"
        assert resolve("sliding", cpu).name == "sdpa"
    triton_on(lambda x: x.device.type == "cpu")  # Triton's interpreter
    assert resolve("window", cpu, "triton").fused_kernel


@pytest.mark.skipif(not FLEX, reason="torch without FlexAttention")
def test_flex_falls_back_for_window_dropout_and_refuses_dense_dropout():
    x = torch.randn(1, 2, 16, 8)
    with attention_backend("flex"):
        assert resolve("window", x).block_sparse
        assert resolve("window", x, dropout=True).name == "sdpa"
        assert resolve("overlapping", x).block_sparse
        assert resolve("sliding", x).name == "flex"
        assert resolve("dynamic_conv", x).name == "sdpa"
        assert resolve("dense", x, dropout=True).name == "flex"
        with pytest.raises(NotImplementedError, match="dropout"):
            attend(x, x, x, dropout_p=0.5)


def test_selection_errors_name_their_source(monkeypatch):
    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match="backend="):
        resolve("window", x, "fast")
    monkeypatch.setenv(ENV_VAR, "cudnn")
    with pytest.raises(ValueError, match=ENV_VAR):
        resolve("sliding", x)
    with pytest.raises(KeyError):
        resolve("convolution", x, "auto")


def test_the_old_helpers_read_the_table():
    q = torch.randn(1, 1, 4, 30)
    assert auto_backend(q) == resolve("dense", q, "auto").name == "sdpa"
    with attention_backend("math"):
        assert window_backend(q) == "math" and window_backend(q, "dynamic_conv") == "math"


def test_backend_table_prints_every_operation_and_backend():
    lines = backend_table()
    assert lines[0].startswith("usable: math, sdpa") and "selected: auto" in lines[0]
    assert lines[1].startswith("auto on cpu: dense -> sdpa")
    for op in OPS:
        assert sum(line.startswith(f"{op}: ") for line in lines) == 1
    for name in BACKENDS:
        assert sum(line.split()[0] == name for line in lines if line.startswith("  ")) == len(OPS)


# Files that may compare backend names: the table and resolver (with the dense implementations), and
# the triton backend's own kernels. Every other implementation registers under its name in a dict and
# is reached through ``resolve``.
OWN_IMPLEMENTATIONS = {"attention/backends.py", "attention/kernels.py"}
# bench.py compares its benchmark path labels ("math" is its reference row), not backends.
NOT_BACKENDS = {"bench.py"}


def _backend_names_compared(tree: ast.AST):
    def names(node):
        if isinstance(node, ast.Constant) and node.value in BACKENDS:
            yield node.value
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            for element in node.elts:
                yield from names(element)

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                yield from ((node.lineno, name) for name in names(side))
        elif isinstance(node, ast.MatchValue):
            yield from ((node.lineno, name) for name in names(node.value))


def test_no_backend_name_is_compared_outside_the_resolver():
    package = Path(restoregen.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative in OWN_IMPLEMENTATIONS | NOT_BACKENDS:
            continue
        found += [f"{relative}:{line} compares {name!r}" for line, name in _backend_names_compared(
            ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, "ask resolve() for a capability instead:\n" + "\n".join(found)


def test_the_scan_sees_comparisons():
    code = 'if backend == "math" or name in ("flex", "x"): pass\nmatch b:\n    case "sdpa": pass\n'
    assert sorted(name for _, name in _backend_names_compared(ast.parse(code))) == ["flex", "math", "sdpa"]
