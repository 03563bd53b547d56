"""fit(augment=...): training batches only, deterministic under a seed, exact across resume."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet import io
from deltanet.data.augment import RandomCrop
from deltanet.layers import Conv2D, Dense, Flatten, ReLU, Sequential
from deltanet.optim import SGD, Adam
from deltanet.train import Callback, ModelCheckpoint, evaluate, fit
from tests.train.common import assert_same_weights, images, residual_net, weights

AUGMENT = "crop1,flip"


def run(model=None, epochs=2, augment=AUGMENT, seed=0, resume_from=None, callbacks=(), val=None):
    model = residual_net() if model is None else model
    fit(model, "cross_entropy", Adam(model, lr=0.01), images(), epochs=epochs, batch_size=16,
        validation_data=val, seed=seed, verbose=0, augment=augment, resume_from=resume_from,
        callbacks=callbacks)  # fmt: skip
    return model


def differ(a, b):
    return any(not np.array_equal(wa, wb) for wa, wb in zip(weights(a), weights(b)))


def test_same_seed_gives_the_same_weights_other_seeds_and_no_augment_differ():
    a, b = run(), run()
    assert_same_weights(a, b)
    assert differ(a, run(seed=1))
    assert differ(a, run(augment=None))
    g = run(seed=np.random.default_rng(3))  # a Generator as seed: its own stream spawned
    assert_same_weights(g, run(seed=np.random.default_rng(3)))


def test_no_augment_is_the_run_of_before(tmp_path):
    plain = run(augment=None, callbacks=[ModelCheckpoint(tmp_path, monitor="loss")])
    for same in ("none", [], ""):
        assert_same_weights(plain, run(augment=same))
    meta = io.load_checkpoint(str(tmp_path / "last.safetensors")).metadata
    assert "augment" not in meta and "augment_rng_state" not in meta  # as older checkpoints


def test_resume_with_augmentation_is_bit_identical(tmp_path):
    straight = run(epochs=8)
    run(epochs=4, callbacks=[ModelCheckpoint(tmp_path, monitor="loss")])
    last = str(tmp_path / "last.safetensors")
    meta = io.load_checkpoint(last).metadata
    assert meta["augment"] == AUGMENT and "state" in meta["augment_rng_state"]
    resumed = run(residual_net(seed=5), epochs=8, resume_from=last)  # fresh weights, loaded
    assert_same_weights(straight, resumed)


@pytest.mark.parametrize(
    "saved, resumed, match",
    [
        (AUGMENT, None, "augmented its training batches with 'crop1,flip', this one with 'none'"),
        (AUGMENT, "crop2,flip", "with 'crop1,flip', this one with 'crop2,flip'"),
        (None, "flip", "with 'none', this one with 'flip'.*Pass augment=None"),
    ],
)
def test_resume_with_other_augmentation_is_refused(tmp_path, saved, resumed, match):
    run(epochs=1, augment=saved, callbacks=[ModelCheckpoint(tmp_path, monitor="loss")])
    model = residual_net(seed=5)
    before = weights(model)
    with pytest.raises(io.FormatError, match=match):
        run(model, epochs=2, augment=resumed, resume_from=str(tmp_path / "last.safetensors"))
    for a, b in zip(before, weights(model)):
        np.testing.assert_array_equal(a, b)


class Spy:
    """An augmentation that records the batches it is given (and changes nothing)."""

    spec = "spy"

    def __init__(self):
        self.seen = []

    def __call__(self, x, rng):
        self.seen.append(x.copy())
        return x.copy()


class AfterEpoch(Callback):
    def __init__(self, spy):
        self.spy, self.counts = spy, []

    def on_epoch_end(self, epoch, logs):  # validation has run: nothing new was augmented
        self.counts.append(sum(map(len, self.spy.seen)))


def test_validation_data_is_never_augmented():
    x, y = images()
    xv, yv = images(20, seed=1)
    spy = Spy()
    after = AfterEpoch(spy)
    run(epochs=3, augment=[RandomCrop(1), spy], val=(xv + 100, yv), callbacks=[after])
    assert after.counts == [48, 96, 144]  # each training example once an epoch, no more
    assert max(float(b.max()) for b in spy.seen) < 50  # no validation row among them
    # the logged validation scores are those of the data as given
    model = residual_net()
    history = fit(model, "cross_entropy", Adam(model, lr=0.01), (x, y), epochs=2, batch_size=16,
                  validation_data=(xv, yv), verbose=0, augment="crop2,flip")  # fmt: skip
    scores = evaluate(model, "cross_entropy", xv, yv)
    assert history.history["val_loss"][-1] == pytest.approx(scores["loss"], rel=1e-6)
    assert history.history["val_accuracy"][-1] == scores["accuracy"]


def test_augmentation_that_does_not_fit_the_data_is_refused_before_training(tmp_path):
    x = np.zeros((8, 1, 12), np.float32)
    model = Sequential(Flatten(), Dense(12, 2, rng=0))
    checkpoints = ModelCheckpoint(tmp_path / "ck", monitor="loss")
    with pytest.raises(ValueError, match=r"'flip' needs examples of shape \(C, H, W\) \(images\)"
                                         r"\. Received: examples of shape \(1, 12\)"):  # fmt: skip
        fit(model, "cross_entropy", SGD(model), (x, np.zeros(8, np.int64)), verbose=0,
            augment="shift2,flip", callbacks=[checkpoints])  # fmt: skip
    assert not (tmp_path / "ck").exists()


def test_a_transform_must_keep_the_batch_shape_and_dtype():
    def cut(x, rng):
        return x[..., :-1]

    def to64(x, rng):
        return x.astype(np.float64)

    with pytest.raises(ValueError, match=r"augment 'cut' must return .* \(16, 1, 6, 6\) float32. "
                                         r"Received: \(16, 1, 6, 5\) float32"):  # fmt: skip
        run(augment=[cut])
    with pytest.raises(ValueError, match="Received: .* float64"):
        run(augment=to64)
    with pytest.raises(TypeError, match="fit: augment must be a spec like 'crop4,flip'"):
        run(augment=4)


def test_a_plain_conv_net_learns_with_augmentation():
    model = Sequential(Conv2D(1, 4, 3, padding=1, rng=0), ReLU(), Flatten(), Dense(144, 3, rng=1))
    history = fit(model, "cross_entropy", Adam(model, lr=0.01), images(96), epochs=6,
                  batch_size=16, verbose=0, augment="crop1,flip")  # fmt: skip
    assert history.history["loss"][-1] < history.history["loss"][0]
