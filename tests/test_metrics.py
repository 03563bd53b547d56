"""Metrics against naive loops over every example."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.metrics import accuracy, confusion_matrix, predicted_classes, top_k_accuracy


def _naive_top_k(logits, y, k):
    hits = 0
    for i in range(logits.shape[0]):
        order = sorted(range(logits.shape[1]), key=lambda j: (-logits[i, j], j))
        hits += y[i] in order[:k]
    return hits / logits.shape[0]


def _naive_confusion(y_true, y_pred, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    return cm


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_matches_loop(seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((50, 7)).astype(np.float32)
    y = rng.integers(0, 7, 50)
    naive = sum(int(np.argmax(logits[i]) == y[i]) for i in range(50)) / 50
    assert accuracy(logits, y) == pytest.approx(naive)
    assert accuracy(logits, y) == top_k_accuracy(logits, y, 1)


def test_accuracy_binary_single_column():
    logits = np.array([[2.0], [-1.0], [0.5], [-3.0]])
    assert accuracy(logits, np.array([1, 0, 0, 0])) == 0.75
    np.testing.assert_array_equal(predicted_classes(logits), [1, 0, 1, 0])


@pytest.mark.parametrize("k", [1, 2, 3, 5, 9])
def test_top_k_matches_loop_with_ties(k):
    rng = np.random.default_rng(k)
    # integer scores give many ties, which the loop breaks by the lower class index
    logits = rng.integers(0, 4, (60, 8)).astype(np.float64)
    y = rng.integers(0, 8, 60)
    assert top_k_accuracy(logits, y, k) == pytest.approx(_naive_top_k(logits, y, k))


@pytest.mark.parametrize("num_classes", [1, 3, 10])
def test_confusion_matrix_matches_loop(num_classes):
    rng = np.random.default_rng(num_classes)
    y_true = rng.integers(0, num_classes, 200)
    y_pred = rng.integers(0, num_classes, 200)
    cm = confusion_matrix(y_true, y_pred, num_classes)
    np.testing.assert_array_equal(cm, _naive_confusion(y_true, y_pred, num_classes))
    assert cm.dtype == np.int64 and cm.sum() == 200
    assert np.trace(cm) / 200 == pytest.approx(np.mean(y_true == y_pred))


def test_empty_inputs():
    assert accuracy(np.zeros((0, 3)), np.zeros(0, dtype=np.int64)) == 0.0
    cm = confusion_matrix(np.zeros(0, dtype=int), np.zeros(0, dtype=int), 4)
    np.testing.assert_array_equal(cm, np.zeros((4, 4)))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: accuracy(np.zeros((3, 2)), np.array([0.0, 1.0, 0.0])), TypeError, "integer"),
        (lambda: accuracy(np.zeros((3, 2)), np.array([0, 1])), ValueError, "expected 3 labels"),
        (lambda: accuracy(np.zeros(3), np.array([0, 1, 0])), ValueError, r"\(N, K\)"),
        (lambda: accuracy(np.zeros((2, 3)), np.array([0, 3])), ValueError, r"\[0, 3\)"),
        (lambda: top_k_accuracy(np.zeros((2, 3)), np.array([0, 1]), 0), ValueError, "k must"),
        (lambda: confusion_matrix([0, 1], [0], 2), ValueError, "same length"),
        (lambda: confusion_matrix([0, 2], [0, 1], 2), ValueError, "y_true must be in"),
        (lambda: confusion_matrix([0, 1], [0, 1], 0), ValueError, "positive"),
        (lambda: confusion_matrix([0, 1], [0, 1], 2.0), TypeError, "num_classes"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
