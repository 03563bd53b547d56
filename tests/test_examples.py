"""The classic experiments in examples/: each script's headline numbers, at reduced size where
the full run is slow (the full-size figures are in the README; the commands reproduce them)."""

from __future__ import annotations

import gzip
import sys

import numpy as np
import pytest

from examples import (
    cnn_backprop_walkthrough,
    conv3d_volumes,
    digits_400_25_10,
    jacobian,
    mnist1d_conv1d,
    perceptron,
    pooling_invariance,
    sparse_autoencoder,
)

# --- 1. the 400-25-10 digit network ---------------------------------------------------------


def test_sigmoid_gradient_table():
    np.testing.assert_allclose(
        digits_400_25_10.sigmoid_gradient_table(),
        [0.196612, 0.235004, 0.250000, 0.235004, 0.196612],
        atol=5e-7,
    )


def test_debug_network_gradient_check_below_1e9():
    assert digits_400_25_10.debug_gradcheck() < 1e-9


def test_digits_64_25_10_reaches_95_percent(tmp_path):
    """Full size: all 1,437 training digits, CG for 50 iterations, λ = 1."""
    r = digits_400_25_10.run(lam=1.0, maxiter=50, out=tmp_path)
    assert r["dataset"] == "digits 64-25-10"
    assert r["train_accuracy"] >= 0.95
    assert r["hidden_weights"].shape == (25, 64)
    assert r["figure"].is_file() and r["figure"].stat().st_size > 1000


def _write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fake_mnist(directory, n_train=120, n_test=20):
    """28x28 images whose class is a bright bar at a class-specific row inside the 20x20 box."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, (n, 28, 28))
        for i, k in enumerate(labels):
            images[i, 5 + 2 * k, 6:22] = 255
        _write_idx(directory / f"{split}-images-idx3-ubyte.gz", images, 2051)
        _write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels, 2049)


def test_mnist_crop_path_on_fake_idx_files(tmp_path):
    _fake_mnist(tmp_path)
    x, y, name = digits_400_25_10.load(str(tmp_path), n_train=5000)
    assert name == "MNIST 20x20 400-25-10" and x.shape == (120, 400) and x.dtype == np.float64
    # the crop keeps rows 4..23: class k's bar (row 5 + 2k) is row 1 + 2k of the 20x20 box
    assert np.all(x.reshape(-1, 20, 20)[np.arange(120), 1 + 2 * y, 2:18] == 1.0)
    r = digits_400_25_10.run(str(tmp_path), maxiter=50, n_train=100, out=tmp_path)
    assert r["dataset"] == "MNIST 20x20 400-25-10" and r["hidden_weights"].shape == (25, 400)
    assert r["train_accuracy"] >= 0.95
    assert r["figure"].name == "hidden_mnist.png" and r["figure"].is_file()


def test_crop_rejects_other_shapes():
    with pytest.raises(ValueError, match=r"crop_mnist: expected images \(N, 1, 28, 28\)"):
        digits_400_25_10.crop_mnist(np.zeros((2, 1, 20, 20)))


# --- 2. CNN backpropagation, step by step ---------------------------------------------------


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_walkthrough_every_delta_matches_numerics(pool):
    results = cnn_backprop_walkthrough.walkthrough(pool, verbose=False)
    assert len(results) == 10  # 5 layer outputs, the input, 4 parameter arrays
    assert max(results.values()) < 1e-7, results


def test_walkthrough_main_prints_ok(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["walkthrough", "--pool", "max", "--quiet"])
    cnn_backprop_walkthrough.main()
    assert "OK" in capsys.readouterr().out.splitlines()[-1]


def test_walkthrough_rejects_unknown_pool():
    with pytest.raises(ValueError, match="tiny_cnn: pool must be 'mean' or 'max'"):
        cnn_backprop_walkthrough.tiny_cnn("median")


# --- 3. the perceptron ----------------------------------------------------------------------


def test_perceptron_separable_xor_and_backprop(tmp_path):
    r = perceptron.run(out=tmp_path)
    assert r["separable_final_mistakes"] == 0 and r["separable_epochs"] < 100
    assert r["xor_perceptron_min_mistakes"] >= 1  # no line separates XOR
    assert r["xor_perceptron_accuracy"] <= 0.75
    assert r["xor_network_accuracy"] == 1.0 and r["xor_network_loss"] < 0.05
    assert 1 <= r["xor_network_solved_of_10_seeds"] <= 10
    assert r["figure"].is_file()


def test_perceptron_rule_on_a_tiny_set():
    """One epoch by hand: w, b start at 0; (1, 1) -> +1 is a mistake (0 <= 0): w = (1, 1), b = 1;
    (-1, -1) -> -1: w·x + b = -1, right. The next epoch makes no mistake."""
    w, b, mistakes = perceptron.perceptron(np.array([[1.0, 1.0], [-1.0, -1.0]]), np.array([1, 0]))
    np.testing.assert_array_equal(w, [1.0, 1.0])
    assert b == 1.0 and mistakes == [1, 0]


# --- 4. Jacobians ---------------------------------------------------------------------------


def test_jacobian_example_matches_finite_differences(tmp_path):
    errors = jacobian.check()
    assert len(errors) == 2 and max(errors.values()) < 1e-6, errors
    assert jacobian.digit_saliency(tmp_path / "j.png", maxiter=5).is_file()


# --- 5. the sparse autoencoder --------------------------------------------------------------


def test_sparse_autoencoder_cost_gradient():
    assert sparse_autoencoder.gradcheck_cost() < 1e-9


def test_sparse_autoencoder_reaches_target_sparsity(tmp_path):
    """Reduced: 400 digits, 100 L-BFGS iterations (full: 1,437 digits, 400 iterations)."""
    x = sparse_autoencoder.digits_images(400)
    model, r = sparse_autoencoder.train(x, rho=0.1, maxiter=100)
    assert abs(r["mean_activation"] - 0.1) < 0.02
    assert r["reconstruction_mse"] < 0.05  # predicting the mean image gives 0.072
    from deltanet.plots import plot_filters

    assert plot_filters(model[0].weight.data, tmp_path / "f.png").is_file()


# --- 6. MNIST-1D ----------------------------------------------------------------------------


def test_mnist1d_conv1d_full_size(tmp_path):
    """Full size (about 15 s on 2 idle cores): 4,000 sequences, 30 epochs, >= 94% on the 1,000
    test sequences (published CNN: 94%); the logistic baseline lands on the published 32%."""
    r = mnist1d_conv1d.run(epochs=30, out=tmp_path)
    assert r["test_accuracy"] >= 0.94
    assert 0.25 <= r["logistic_regression_accuracy"] <= 0.40
    assert r["figure"].is_file()


# --- 7. 3D convolution ----------------------------------------------------------------------


def test_conv3d_volumes_full_size(tmp_path):
    """Full size: 1,000 training volumes, 6 epochs, >= 95% on the 250 test volumes.

    (Fewer steps do not reach it: 400 volumes for 3 epochs give 36%, 500 for 4 give 74%.)
    """
    r = conv3d_volumes.run(epochs=6, out=tmp_path)
    assert r["test_accuracy"] >= 0.95
    assert all(path.is_file() for path in r["figures"])


# --- 8. translation invariance of pooling ---------------------------------------------------


def test_pooling_reduces_the_change_under_shifts():
    c = pooling_invariance.measure(n=120)
    assert c["pixels"] > c["conv (no pooling)"] > c["conv + max pool 2x2"]
    assert c["conv + max pool 2x2"] > c["conv + max pool 4x4"] > c["conv + global max pool"]
    assert c["conv + global max pool"] < 1e-6  # equivariant conv + global max: exactly invariant
