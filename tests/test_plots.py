"""Plots: each function writes a non-empty PNG from small fake inputs."""

import numpy as np
import pytest

from deltanet import plots

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 100 and data.startswith(PNG)


def test_plot_history(tmp_path):
    history = {
        "loss": [1.0, 0.5, 0.3],
        "accuracy": [0.6, 0.8, 0.9],
        "val_loss": [1.1, 0.6, 0.4],
        "val_accuracy": [0.5, 0.7, 0.85],
        "lr": [0.1, 0.1, 0.1],
    }
    assert is_png(plots.plot_history(history, tmp_path / "curves.png"))


def test_plot_history_accepts_an_object_with_history_and_no_validation(tmp_path):
    class Hist:
        history = {"loss": [1.0, 0.5], "accuracy": [0.5, 0.7]}

    assert is_png(plots.plot_history(Hist(), tmp_path / "sub" / "curves.png"))


def test_plot_confusion_matrix(tmp_path):
    cm = np.array([[5, 1, 0], [0, 4, 2], [1, 0, 6]])
    path = plots.plot_confusion_matrix(cm, tmp_path / "cm.png", class_names=["a", "b", "c"])
    assert is_png(path)


@pytest.mark.parametrize(
    "shape", [(8, 1, 3, 3), (4, 3, 5, 5), (6, 2, 5), (4, 2, 3, 3, 3), (25, 400), (7, 10)]
)
def test_plot_filters(tmp_path, shape):
    w = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert is_png(plots.plot_filters(w, tmp_path / "filters.png"))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 40), (64,), (1, 4, 6, 6)])
def test_plot_misclassified(tmp_path, shape):
    rng = np.random.default_rng(0)
    x = rng.random((12, *shape))
    y_true = rng.integers(0, 3, 12)
    y_pred = y_true.copy()
    y_pred[:5] = (y_pred[:5] + 1) % 3
    assert is_png(plots.plot_misclassified(x, y_true, y_pred, tmp_path / "wrong.png", n=4))


def test_plot_misclassified_with_none_wrong(tmp_path):
    x = np.zeros((3, 1, 8, 8))
    y = np.array([0, 1, 2])
    assert is_png(plots.plot_misclassified(x, y, y, tmp_path / "wrong.png"))


def test_bad_inputs():
    with pytest.raises(ValueError, match="K, K"):
        plots.plot_confusion_matrix(np.zeros((2, 3)), "unused.png")
    with pytest.raises(ValueError, match="dense"):
        plots.plot_filters(np.zeros(5), "unused.png")
    with pytest.raises(TypeError, match="History"):
        plots.plot_history([1, 2], "unused.png")


def test_a_confusion_matrix_of_1000_classes_draws_in_bounded_time_and_memory(tmp_path):
    """One label per cell and a figure growing with K took minutes and gigabytes at 200+."""
    from tests.faults.harness import run_python

    proc = run_python(
        """
        import numpy as np
        from deltanet.plots import plot_confusion_matrix
        cm = np.random.default_rng(0).integers(0, 5, (1000, 1000))
        plot_confusion_matrix(cm, "cm.png")
        """,
        cwd=tmp_path,
        memory_mb=1024,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cm.png").stat().st_size > 0
