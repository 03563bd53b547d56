"""evaluate / predict: the scores against a manual computation, modes, custom blocks, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.optim import SGD
from deltanet.train import evaluate, fit, predict
from tests.train.common import blobs, images, mlp, residual_net


def test_evaluate_and_predict_match_manual_computation():
    x, y = blobs(30, classes=7)
    model = mlp(classes=7)
    logits = model(x).astype(np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    classes, probs = predict(model, x, batch_size=7)
    np.testing.assert_array_equal(classes, logits.argmax(1))
    np.testing.assert_allclose(probs, p, rtol=1e-5)
    assert probs.dtype == np.float32
    scores = evaluate(model, "cross_entropy", x, y, batch_size=8)
    assert scores["loss"] == pytest.approx(-np.mean(np.log(p[np.arange(30), y])), rel=1e-5)
    assert scores["accuracy"] == np.mean(logits.argmax(1) == y)
    top5 = np.mean([y[i] in np.argsort(-logits[i])[:5] for i in range(30)])
    assert scores["top5"] == pytest.approx(top5)


def test_evaluate_and_predict_reject_bad_input():
    x, y = blobs(8)
    model = mlp()
    with pytest.raises(TypeError, match="predict: x must be a float"):
        predict(model, x.astype(np.int64))
    with pytest.raises(ValueError, match="predict: batch_size"):
        predict(model, x, batch_size=0)
    with pytest.raises(ValueError, match="evaluate"):
        evaluate(model, "cross_entropy", x, y[:3])


def test_a_custom_block_is_evaluated_in_eval_mode_and_gets_its_mode_back():
    x, y = images(32)
    model = residual_net()  # batch norm and dropout inside a Residual around a custom Block
    block = model[1].block
    first = evaluate(model, "cross_entropy", x, y)
    second = evaluate(model, "cross_entropy", x, y)
    assert first == second  # no dropout mask, no batch statistic: eval mode reached the block
    assert block.bn.num_batches_tracked == 0  # the running statistics were only read
    assert all(layer.training for layer in model.layers_tree())
    np.testing.assert_array_equal(predict(model, x)[1], predict(model, x)[1])
    fit(model, "cross_entropy", SGD(model, lr=0.05), (x, y), batch_size=16, verbose=0)
    assert block.bn.num_batches_tracked == 2 and block.drop.training
    model.eval()
    assert not any(layer.training for layer in model.layers_tree())


def test_evaluate_checks_its_flags():
    x, y = blobs(8)
    with pytest.raises(TypeError, match="evaluate: distributed must be a bool"):
        evaluate(mlp(), "cross_entropy", x, y, distributed="yes")
