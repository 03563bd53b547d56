"""``fast/plan.py``: the paths it picks for the benchmark networks' layers, and that its table is
where the thresholds live."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from deltanet.fast import plan
from deltanet.ops.conv import ConvPath, conv_window

FAST = Path(plan.__file__).parent


def path(x_shape, w_shape, stride=1, padding=0, groups=1, dtype=np.float32):
    x, w = np.zeros(x_shape, dtype), np.zeros(w_shape, dtype)
    return plan.conv_path(x, w, conv_window(x, w, stride, padding, 1, groups), groups)


D, C, G = ConvPath.DIRECT, ConvPath.CHUNKED, ConvPath.GEMM

# x shape, w shape, padding, the path with numba, without
LAYERS = [
    pytest.param((256, 1, 28, 28), (6, 1, 5, 5), 2, D, C, id="lenet5-conv1-b256"),
    pytest.param((64, 1, 28, 28), (6, 1, 5, 5), 2, D, G, id="lenet5-conv1-b64"),
    pytest.param((256, 6, 14, 14), (16, 6, 5, 5), 0, D, C, id="lenet5-conv2-b256"),
    pytest.param((64, 6, 14, 14), (16, 6, 5, 5), 0, G, G, id="lenet5-conv2-b64"),
    pytest.param((32, 64, 32, 32), (64, 64, 3, 3), 1, C, C, id="vgg-block-b32"),
    pytest.param((256, 1, 40), (32, 1, 5), 2, D, G, id="cnn1d-conv1-b256"),
    pytest.param((256, 32, 20), (64, 32, 5), 2, G, G, id="cnn1d-conv2-b256"),
    pytest.param((16, 1, 16, 16, 16), (8, 1, 3, 3, 3), 1, D, G, id="cnn3d-conv1-b16"),
    pytest.param((16, 8, 8, 8, 8), (16, 8, 3, 3, 3), 1, G, G, id="cnn3d-conv2-b16"),
]


@pytest.mark.parametrize("x_shape, w_shape, padding, with_numba, without", LAYERS)
def test_the_benchmark_layers_take_their_paths(
    monkeypatch, x_shape, w_shape, padding, with_numba, without
):
    monkeypatch.setenv("DELTANET_NUMBA", "0")
    assert path(x_shape, w_shape, padding=padding) is without
    pytest.importorskip("numba")
    monkeypatch.setenv("DELTANET_NUMBA", "1")
    assert path(x_shape, w_shape, padding=padding) is with_numba


def test_the_direct_loops_need_stride_1_one_group_a_float_and_a_compact_frame(numba_on):
    assert path((4, 1, 28, 28), (6, 1, 5, 5), padding=2) is D
    assert path((4, 1, 40), (32, 1, 5), padding=2, dtype=np.float64) is D
    assert path((4, 6, 14, 14), (16, 6, 5, 5)) is G  # 150 taps, small: windows kept
    assert path((256, 32, 40), (64, 32, 5), padding=2) is G  # a short frame, 64 filters
    assert path((4, 1, 28, 28), (6, 1, 5, 5), stride=2) is G
    assert path((4, 2, 28, 28), (6, 1, 5, 5), groups=2) is G
    assert path((4, 1, 28, 28), (6, 1, 5, 5), dtype=np.float16) is G
    assert path((4, 1, 40, 10), (6, 1, 1, 7)) is G  # a frame 2.5x the output map


def test_grouped_convolutions_never_chunk(monkeypatch):
    monkeypatch.setenv("DELTANET_NUMBA", "0")
    assert path((32, 64, 32, 32), (64, 32, 3, 3), padding=1, groups=2) is G


def test_the_paths_move_with_the_table(monkeypatch, numba_on):
    """The thresholds are read from the table: changing it moves LeNet-5's layers."""
    assert path((64, 6, 14, 14), (16, 6, 5, 5)) is G
    table = dataclasses.replace(plan.THRESHOLDS, chunked_from=0)
    monkeypatch.setattr(plan, "THRESHOLDS", table)
    assert path((64, 6, 14, 14), (16, 6, 5, 5)) is D  # chunks would pay: direct instead
    monkeypatch.setattr(plan, "THRESHOLDS", dataclasses.replace(table, direct_taps_long=100))
    assert path((64, 6, 14, 14), (16, 6, 5, 5)) is C
    no_direct = dataclasses.replace(table, direct_taps=0, direct_taps_long=0)
    monkeypatch.setattr(plan, "THRESHOLDS", no_direct)
    assert path((64, 1, 28, 28), (6, 1, 5, 5), padding=2) is C
    assert plan.chunk_samples(1 << 30) == 1 and plan.chunk_samples(1) == table.chunk


def test_thin_matmul_and_relu_plans(numba_on):
    a = np.zeros((6, 5000), np.float32)
    assert plan.thin_matmul(a, np.zeros((25, 5000), np.float32), 25)
    assert not plan.thin_matmul(a, np.zeros((50, 5000), np.float32), 50)  # 300 result cells
    assert not plan.thin_matmul(a[:, :4000], np.zeros((25, 4000), np.float32), 25)
    assert not plan.thin_matmul(a, np.zeros((25, 5000), np.float64), 25)
    big = np.zeros((256, 6, 28, 28), np.float32)
    assert plan.compiled_relu(big, big) and not plan.compiled_relu(big[:8], big[:8])
    assert plan.unrolled_max_pool((1, 2, 2)) and not plan.unrolled_max_pool((1, 3, 3))


def _numbers_outside_the_table(path: Path) -> list[str]:
    """Numeric constants of the module or its classes, and numbers above 3 compared with."""
    tree = ast.parse(path.read_text())
    found = []
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    for node in [*tree.body, *(n for c in classes for n in c.body)]:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if value is not None and any(
            isinstance(n, ast.Constant) and type(n.value) in (int, float) for n in ast.walk(value)
        ):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                if isinstance(side, ast.Constant) and type(side.value) in (int, float):
                    if abs(side.value) > 3:
                        found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_the_plan_table_is_the_only_place_thresholds_live():
    """No other module of the fast paths (kernels aside) or of the reference ops sets a size
    limit: a new threshold goes into ``plan.Thresholds`` with one line saying why."""
    modules = [p for p in FAST.glob("*.py") if p.name != "plan.py" and "_numba" not in p.name]
    modules += [p for p in (FAST.parent / "ops").glob("*.py") if p.name != "binary.py"]
    assert len(modules) > 15
    assert [hit for p in sorted(modules) for hit in _numbers_outside_the_table(p)] == []
    assert _numbers_outside_the_table(FAST / "plan.py")  # the check does see the table
