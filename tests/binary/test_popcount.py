"""binary/popcount.py: bit packing and XOR-popcount against naive integer loops, with the numba
kernel and with the NumPy reference."""

import numpy as np
import pytest

from deltanet.binary.popcount import (
    pack_bits,
    pack_channel_signs,
    pack_signs,
    unpack_bits,
    xor_popcount,
    xor_popcount_numpy,
)


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


@pytest.mark.parametrize("c", [3, 64, 70])
def test_pack_channel_signs_is_pack_signs_along_the_channels(c, engine):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, c, 5))
    x[0, 0, 0] = 0.0  # sign(0) = +1
    np.testing.assert_array_equal(pack_channel_signs(x), pack_signs(np.moveaxis(x, 1, -1)))
