"""Wrong answers without a word: each case now ends in a clear error or says what it means.

API cases run in-process, each in its own temporary directory; CLI cases run ``deltanet`` in a
subprocess under the harness's memory cap and time limit. Files that must not change are
compared byte for byte (``snapshot``).
"""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet.binary import QActivation, QConv2D, QDense
from deltanet.gradcheck import gradcheck
from deltanet.layers import Conv2D, Dense, Flatten, ReLU, Sequential
from deltanet.ops.losses import softmax_cross_entropy
from deltanet.optim import SGD, Adam
from deltanet.train.callbacks import ModelCheckpoint
from tests.faults.harness import assert_clean_error, run_cli, snapshot


def _mlp(seed: int = 0) -> Sequential:
    return Sequential(Dense(4, 8, rng=seed), ReLU(), Dense(8, 3, rng=seed + 1))


def _data(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)).astype(np.float32), np.arange(n) % 3


def _weights(model) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.state_dict().items()}


def _assert_same(before: dict[str, np.ndarray], model) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)


# --- fit with an optimizer built for another model ----------------------------------------------


def test_fit_refuses_an_optimizer_of_another_model(tmp_path):
    model, other = _mlp(), _mlp()  # the same architecture and weights: only identity differs
    before, other_before = _weights(model), _weights(other)
    ckpt = tmp_path / "ckpt.safetensors"
    callback = ModelCheckpoint(ckpt)
    with pytest.raises(ValueError) as info:
        dn.fit(model, "cross_entropy", SGD(other, 0.1), _data(), verbose=0, callbacks=[callback])
    msg = str(info.value)
    assert "fit: 4 of the optimizer's 4 parameters are not this model's" in msg
    assert "it holds 0 of the model's 4" in msg and "SGD(model.parameters(), ...)" in msg
    _assert_same(before, model)
    _assert_same(other_before, other)
    assert list(tmp_path.iterdir()) == []  # no checkpoint written


def test_fit_refuses_an_optimizer_holding_some_parameters_of_another_model(tmp_path):
    model, other = _mlp(), _mlp()
    mixed = Adam(model.parameters()[:2] + other.parameters()[2:], 1e-3)
    before = _weights(model)
    with pytest.raises(ValueError, match=r"2 of the optimizer's 4 parameters are not this mod"):
        dn.fit(model, "cross_entropy", mixed, _data(), verbose=0)
    _assert_same(before, model)
    assert mixed.steps == 0


def test_fit_refuses_an_optimizer_holding_none_of_the_models_parameters(tmp_path):
    class Empty:  # a duck-typed optimizer that lists no parameter
        params: list = []
        lr = 0.1

        def step(self) -> None:
            pass

    with pytest.raises(ValueError, match="holds none of the model's 4 parameters"):
        dn.fit(_mlp(), "cross_entropy", Empty(), _data(), verbose=0)


def test_fit_with_part_of_the_models_parameters_trains_those_only(tmp_path):
    """The documented behaviour: the parameters the optimizer does not hold stay fixed."""
    model = _mlp()
    before = _weights(model)
    dn.fit(model, "cross_entropy", SGD(model.parameters()[2:], 0.1), _data(), verbose=0)
    after = model.state_dict()
    np.testing.assert_array_equal(after["0.weight"], before["0.weight"])
    assert not np.array_equal(after["2.weight"], before["2.weight"])


# --- predict on non-finite input ----------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_refuses_non_finite_input_as_evaluate_does(tmp_path, bad):
    model = _mlp()
    x, y = _data()
    x[5, 2] = bad
    with pytest.raises(ValueError) as pred:
        dn.predict(model, x)
    with pytest.raises(ValueError) as ev:
        dn.evaluate(model, "cross_entropy", x, y)
    assert str(pred.value) == f"predict: x must be finite. Received {bad} at index (5, 2) " + (
        "(1 non-finite values)."
    )
    assert str(ev.value).replace("evaluate: data: ", "predict: ") == str(pred.value)


def test_predict_on_finite_and_empty_input_still_answers(tmp_path):
    classes, probs = dn.predict(_mlp(), _data()[0])
    assert classes.shape == (12,) and np.allclose(probs.sum(axis=1), 1)
    classes, probs = dn.predict(_mlp(), np.zeros((0, 4), np.float32))
    assert classes.shape == (0,)


def test_cli_predict_refuses_a_nan_npy(tmp_path):
    model = _mlp()
    dn.save(model, tmp_path / "m.safetensors")
    x = np.zeros((2, 4), np.float32)
    x[1, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    before = snapshot(tmp_path)
    proc = run_cli("predict", "m.safetensors", "x.npy", cwd=tmp_path)
    assert_clean_error(proc, "x.npy", "NaN")
    assert "class" not in proc.stdout
    assert snapshot(tmp_path) == before


# --- softmax_cross_entropy with targets that are not probabilities -------------------------------


@pytest.mark.parametrize(
    "row, match",
    [
        ([0.5, 0.6, 0.0], r"First: row 1, sum 1\.1, min 0"),
        ([2.0, -1.0, 0.0], r"First: row 1, sum 1, min -1"),
        ([0.0, 0.0, 0.0], r"First: row 1, sum 0, min 0"),
        ([3.0, 1.0, 7.0], r"First: row 1, sum 11"),  # scores, not probabilities
    ],
)
def test_softmax_cross_entropy_refuses_targets_that_are_not_distributions(tmp_path, row, match):
    z = np.zeros((3, 3))
    t = np.full((3, 3), 1 / 3)
    t[1] = row
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: target probabilities must be "):
        softmax_cross_entropy(z, t)
    with pytest.raises(ValueError, match=match):
        softmax_cross_entropy(z, t)


def test_softmax_cross_entropy_names_the_position_of_a_bad_spatial_distribution(tmp_path):
    t = np.full((2, 3, 4, 5), 1 / 3)
    t[1, :, 2, 3] = [0.9, 0.9, 0.9]
    with pytest.raises(ValueError, match=r"1 of 40 distributions.*row 1 at position \(2, 3\)"):
        softmax_cross_entropy(np.zeros((2, 3, 4, 5)), t)


def test_softmax_cross_entropy_keeps_its_math_on_distributions(tmp_path):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((5, 4))
    t = rng.uniform(0.1, 1, (5, 4))
    t /= t.sum(axis=1, keepdims=True)
    loss, dz = softmax_cross_entropy(z, t, reduction="sum")
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-(t * logp).sum(), rel=1e-12)
    np.testing.assert_allclose(dz, np.exp(logp) - t, atol=1e-12)
    labels = rng.integers(0, 4, 5)  # integer labels are never checked as distributions
    assert softmax_cross_entropy(z, labels)[0] == pytest.approx(
        softmax_cross_entropy(z, np.eye(4)[labels])[0], rel=1e-12
    )


# --- gradcheck of straight-through estimators ---------------------------------------------------


def _binary_model() -> Sequential:
    return Sequential(
        Conv2D(1, 2, 3, rng=0), QActivation(1), QConv2D(2, 3, 3, rng=1), Flatten(),
        QDense(12, 5, rng=2), ReLU(), Dense(5, 3, rng=3),
    )  # fmt: skip


def test_gradcheck_report_says_straight_through_rows_differ_by_design(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 1, 6, 6)), np.array([0, 2])
    report = gradcheck(_binary_model(), x, target_values=y, loss=softmax_cross_entropy, eps=1e-4)
    assert report.straight_through == ["1 (QActivation)", "2 (QConv2D)", "4 (QDense)"]
    marked = {r.name: r.straight_through for r in report.rows}
    assert marked == {
        "input": True, "0.weight": True, "0.bias": True, "2.weight": True, "2.bias": True,
        "4.weight": True, "4.bias": True, "6.weight": False, "6.bias": False,
        "all parameters": True,
    }  # fmt: skip
    assert not report.ok and report.exact_rows_ok
    text = str(report)
    assert "FAILED" in text and "0.weight*" in text and "6.weight " in text
    flat = " ".join(text.split())
    assert "not the derivative of the forward" in flat and "by design" in flat
    assert "are expected to FAIL" in flat and "The rows after them: OK" in flat
    assert "check the float model" in flat and "act_bit=32 and weight_bit=32" in flat


def test_gradcheck_of_float_quantized_layers_has_no_note(tmp_path):
    model = Sequential(QDense(4, 3, act_bit=32, weight_bit=32, rng=0), QActivation(32))
    report = gradcheck(model, np.random.default_rng(0).standard_normal((2, 4)))
    assert report.ok and report.straight_through == []
    assert "Straight-through" not in str(report)


def test_cli_gradcheck_binary_lenet_explains_its_failure(tmp_path):
    proc = run_cli("gradcheck", "--model", "binary_lenet", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # a disagreement, with its reason
    out = " ".join(proc.stdout.split())
    assert "FAILED" in out and "Traceback" not in proc.stderr
    assert "Straight-through estimator: layers 2 (QConv2D), 5 (QConv2D), 9 (QDense)" in out
    assert "expected to FAIL" in out and "The rows after them: OK" in out
    assert list(tmp_path.iterdir()) == []
