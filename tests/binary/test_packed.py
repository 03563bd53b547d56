"""binary/packed.py: the count ops exact against naive integer loops and the float convolution of
±1 arrays (both engines), and the packed layers' checks, config and registration."""

import subprocess
import sys

import numpy as np
import pytest

from deltanet.binary.packed import (
    PackedConv,
    PackedDense,
    conv_counts,
    conv_weight_words,
    dense_counts,
    pack_conv_weight,
)
from deltanet.binary.popcount import pack_signs
from deltanet.layers.registry import layer_from_dict, layer_to_dict
from deltanet.ops.conv import conv_forward


def signs(x):
    return np.where(x >= 0, 1, -1).astype(np.int64)


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
    # 5 words per position (the numba kernel takes 4 at a time, then the rest), 2 groups
    ((1, 2 * 300, 4, 5), 6, (3, 3), (1, 2), ((1, 1), (2, 0)), (1, 1), 2),
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[2], CONV_CASES[5]])
def test_packed_conv_numba_output_is_bit_exact_with_numpy(case, dtype, monkeypatch):
    """The numba path fuses counts and affine (float32/float64): the same bits as NumPy's."""
    pytest.importorskip("numba")
    shape, c_out, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(3)
    layer = PackedConv(shape[1], c_out, kernel, stride, padding, dilation, groups)
    w = rng.standard_normal((c_out, shape[1] // groups, *kernel))
    layer.set_packed(pack_conv_weight(w, groups), rng.random(c_out) + 0.1, rng.random(c_out))
    x = rng.standard_normal(shape).astype(dtype)
    monkeypatch.setenv("DELTANET_NUMBA", "0")
    ref = layer(x)
    monkeypatch.setenv("DELTANET_NUMBA", "1")
    y = layer(x)
    assert y.dtype == ref.dtype == dtype
    np.testing.assert_array_equal(y, ref)


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


def test_packed_conv_spatial_dims_padding_and_config_round_trip():
    conv = PackedConv(4, 6, (3, 2), stride=(2, 1), padding=((1, 0), (1, 1)), groups=2)
    assert conv.spatial_dims == conv.ndim == 2
    assert conv.padding == ((1, 0), (1, 1))
    assert PackedConv(2, 2, (3,), padding=1).padding == (1,)  # symmetric: one int per dim
    for layer in (conv, PackedDense(70, 3, dtype=np.float64)):
        clone = layer_from_dict(layer_to_dict(layer))
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()


def test_packed_layers_are_registered_once_deltanet_is_imported():
    code = (
        "import deltanet\n"
        "from deltanet.layers.registry import registered_layers\n"
        "assert {'PackedDense', 'PackedConv'} <= set(registered_layers())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_input():
    dense = PackedDense(4, 2)
    with pytest.raises(ValueError, match=r"PackedDense\(in_features=4\): a packed layer is"):
        dense.backward(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match=r"PackedDense\(in_features=4\): expected input"):
        dense(np.zeros((1, 5), np.float32))
    with pytest.raises(TypeError, match=r"PackedDense\(in_features=4\): expected a floating"):
        dense(np.zeros((1, 4), np.int64))
    conv = PackedConv(2, 2, (5, 5))
    with pytest.raises(ValueError, match=r"PackedConv\(in_channels=2\): the kernel is larger"):
        conv(np.zeros((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"PackedConv\(in_channels=3\): groups must divide"):
        PackedConv(3, 4, (3, 3), groups=2)
    with pytest.raises(ValueError, match=r"PackedConv\(in_channels=3\): padding must be"):
        PackedConv(3, 4, (3, 3), padding="full")
    with pytest.raises(ValueError, match=r"PackedConv\(in_channels=3\): kernel_size must be"):
        PackedConv(3, 4, 3)
