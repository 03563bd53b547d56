"""Bit-packed inference: kernels exact against naive integer loops, packed layers equal to the
float path in eval mode (every binary layer type, binary_lenet), save/load, size, bad input."""

import numpy as np
import pytest

from deltanet import io
from deltanet.binary import (
    PackedConv,
    PackedDense,
    conv_counts,
    dense_counts,
    pack,
    pack_bits,
    pack_signs,
    packed_weight_bytes,
    unpack_bits,
    xor_popcount,
)
from deltanet.binary.kernels import xor_popcount_numpy
from deltanet.binary.ops import conv_weight_words, pack_conv_weight
from deltanet.layers import (
    BatchNorm1D,
    BatchNorm2D,
    Dense,
    Flatten,
    QConv1D,
    QConv2D,
    QConv3D,
    QDense,
    ReLU,
    Sequential,
)
from deltanet.ops.conv import conv_forward
from deltanet.zoo import build_model


@pytest.fixture(params=["numba", "numpy"])
def engine(request, monkeypatch):
    """Run a test with the compiled kernel and with the NumPy reference."""
    monkeypatch.setenv("DELTANET_NUMBA", "0" if request.param == "numpy" else "1")
    return request.param


def signs(x):
    return np.where(x >= 0, 1, -1).astype(np.int64)


@pytest.mark.parametrize("k", [1, 63, 64, 65, 200])
def test_pack_unpack_round_trip_and_zero_high_bits(k):
    rng = np.random.default_rng(k)
    bits = rng.random((3, k)) < 0.5
    words = pack_bits(bits)
    assert words.dtype == np.uint64 and words.shape == (3, -(-k // 64))
    np.testing.assert_array_equal(unpack_bits(words, k), bits)
    for r in range(3):  # bit i of the vector is bit i % 64 of word i // 64; the rest is 0
        expected = [0] * words.shape[1]
        for i in range(k):
            expected[i // 64] |= int(bits[r, i]) << (i % 64)
        assert [int(v) for v in words[r]] == expected


@pytest.mark.parametrize("k", [5, 64, 130])
def test_xor_popcount_naive_loop_both_engines(k, engine):
    rng = np.random.default_rng(0)
    a, w = rng.random((2, 7, k)) < 0.5, rng.random((2, 4, k)) < 0.5
    d = xor_popcount(pack_bits(a), pack_bits(w))
    for g in range(2):
        for m in range(7):
            for o in range(4):
                assert d[g, m, o] == sum(a[g, m, i] != w[g, o, i] for i in range(k))
    np.testing.assert_array_equal(xor_popcount(pack_bits(a[0]), pack_bits(w[0])), d[0])
    np.testing.assert_array_equal(xor_popcount_numpy(pack_bits(a), pack_bits(w)), d)


@pytest.mark.parametrize("k", [1, 63, 64, 65, 300])
def test_dense_counts_are_exact_integer_dot_products(k, engine):
    rng = np.random.default_rng(k)
    x, w = rng.standard_normal((5, k)), rng.standard_normal((3, k))
    x[0, 0] = 0.0  # sign(0) = +1
    counts = dense_counts(x, pack_signs(w), k)
    np.testing.assert_array_equal(counts, signs(x) @ signs(w).T)


CONV_CASES = [  # (x shape, C_out, kernel, stride, padding, dilation, groups)
    ((2, 3, 11), 4, (3,), (2,), ((1, 1),), (1,), 1),
    ((2, 70, 5, 6), 6, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ((1, 8, 7, 6), 4, (3, 2), (2, 1), ((2, 0), (1, 1)), (1, 2), 2),
    ((1, 4, 4, 5, 4), 2, (2, 3, 2), (1, 1, 1), "same", (1, 1, 1), 1),
    ((2, 6, 9, 9), 6, (3, 3), (3, 2), ((0, 0), (0, 0)), (1, 1), 3),
]


@pytest.mark.parametrize("shape,c_out,kernel,stride,padding,dilation,groups", CONV_CASES)
def test_conv_counts_are_exact_with_padding_strides_groups(
    shape, c_out, kernel, stride, padding, dilation, groups, engine
):
    rng = np.random.default_rng(len(shape) + c_out)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((c_out, shape[1] // groups, *kernel))
    x.flat[0] = 0.0
    k_pos = int(np.prod(kernel))
    words = conv_weight_words(pack_conv_weight(w, groups), shape[1] // groups, k_pos)
    counts = conv_counts(x, words, kernel, stride, padding, dilation, groups)
    # reference: the float convolution of ±1 arrays, zero padding included (exact in float64)
    ref, _ = conv_forward(
        signs(x).astype(np.float64), signs(w).astype(np.float64), None, stride, padding,
        dilation, groups,
    )  # fmt: skip
    assert counts.dtype == np.int32
    np.testing.assert_array_equal(counts, ref.astype(np.int64))


def test_conv_counts_naive_loop_at_the_border():
    """One output position by hand: padded taps contribute 0, valid taps ±1 products."""
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((1, 3, 4, 4)), rng.standard_normal((2, 3, 3, 3))
    words = conv_weight_words(pack_conv_weight(w, 1), 3, 9)
    counts = conv_counts(x, words, (3, 3), (1, 1), 1, (1, 1), 1)
    for o in range(2):
        total = 0
        for c in range(3):
            for i in range(3):
                for j in range(3):
                    r, s = i - 1, j - 1  # output (0, 0) with padding 1
                    if 0 <= r < 4 and 0 <= s < 4:
                        total += signs(x)[0, c, r, s] * signs(w)[o, c, i, j]
        assert counts[0, o, 0, 0] == total


def with_random_stats(bn, rng):
    bn.running_mean[...] = rng.standard_normal(bn.num_features)
    bn.running_var[...] = rng.uniform(0.5, 2.0, bn.num_features)
    bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.num_features) * rng.choice([-1, 1])
    bn.bias.data[...] = rng.standard_normal(bn.num_features)
    return bn


@pytest.mark.parametrize("scaling", ["none", "layer", "channel"])
@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda s, r: QDense(100, 7, scaling=s, rng=r), (5, 100)),
        (lambda s, r: QConv1D(5, 4, 3, stride=2, padding=1, scaling=s, rng=r), (2, 5, 12)),
        (lambda s, r: QConv2D(6, 4, 3, padding=1, groups=2, scaling=s, rng=r), (2, 6, 5, 5)),
        (lambda s, r: QConv3D(3, 2, 2, padding="same", dilation=2, scaling=s, rng=r),
         (1, 3, 4, 5, 4)),
    ],
)  # fmt: skip
def test_packed_layer_equals_the_float_path(make, shape, scaling, engine):
    rng = np.random.default_rng(3)
    layer = make(scaling, rng).eval()
    x = rng.standard_normal(shape).astype(np.float32)
    packed = pack(layer)
    assert isinstance(packed, PackedDense if isinstance(layer, QDense) else PackedConv)
    y = packed(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, layer(x), rtol=1e-5, atol=1e-5)


def test_batch_norm_is_folded_and_other_layers_stay(engine):
    rng = np.random.default_rng(4)
    model = Sequential(
        QConv2D(4, 8, 3, padding=1, scaling="channel", rng=rng),
        with_random_stats(BatchNorm2D(8), rng),
        ReLU(),
        Flatten(),
        QDense(8 * 25, 6, bias=False, rng=rng),
        with_random_stats(BatchNorm1D(6), rng),
        Dense(6, 3, rng=rng),
    ).eval()
    x = rng.standard_normal((3, 4, 5, 5)).astype(np.float32)
    packed, report = pack(model, return_report=True)
    kinds = [type(layer).__name__ for layer in packed.layers]
    assert kinds == ["PackedConv", "ReLU", "Flatten", "PackedDense", "Dense"]
    assert "batch norm folded" in report[0] and "kept as it is" in report[-1]
    np.testing.assert_allclose(packed(x), model(x), rtol=1e-4, atol=1e-4)
    assert packed.layers[-1] is not model.layers[-1]  # a copy: the packed model is independent


def test_binary_lenet_packed_equals_float_saves_loads_and_is_small(tmp_path, engine):
    rng = np.random.default_rng(5)
    for shape in ((1, 8, 8), (1, 28, 28)):
        model = build_model("binary_lenet", input_shape=shape, seed=0)
        for layer in model.layers:
            if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
                with_random_stats(layer, rng)
        model.eval()
        x = rng.standard_normal((4, *shape)).astype(np.float32)
        packed = pack(model)
        y, y_packed = model(x), packed(x)
        np.testing.assert_allclose(y_packed, y, rtol=1e-3, atol=1e-3)
        assert (y_packed.argmax(1) == y.argmax(1)).all()
    io.save(packed, tmp_path / "packed.safetensors")
    loaded = io.load(tmp_path / "packed.safetensors").eval()  # the kept batch norm: eval mode
    assert loaded.state_dict()["2.weight_bits"].dtype == np.uint64
    np.testing.assert_array_equal(loaded(x), y_packed)
    float_bytes = sum(
        layer.weight.data.astype(np.float32).nbytes
        for layer in model.layers
        if isinstance(layer, (QDense, QConv2D))
    )
    assert float_bytes / packed_weight_bytes(packed) >= 25


def test_bad_input():
    with pytest.raises(ValueError, match=r"pack: Sequential\(2 layers\) has no 1-bit layer"):
        pack(Sequential(Dense(3, 2), QDense(2, 2, weight_bit=2)))
    with pytest.raises(TypeError, match="pack: expected a deltanet Layer"):
        pack("model")
    packed = pack(QDense(4, 2))
    with pytest.raises(ValueError, match=r"PackedDense\(in_features=4\): a packed layer is"):
        packed.backward(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match=r"PackedDense\(in_features=4\): expected input"):
        packed(np.zeros((1, 5), np.float32))
    conv = pack(QConv2D(2, 2, 5))
    with pytest.raises(ValueError, match=r"PackedConv\(in_channels=2\): the kernel is larger"):
        conv(np.zeros((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"PackedConv\(in_channels=3\): groups must divide"):
        PackedConv(3, 4, (3, 3), groups=2)
