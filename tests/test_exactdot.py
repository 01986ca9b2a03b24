"""The exact score kernel's two forms (engine/exactdot.py): the compiled one gives the numpy
one's bits for every pair, over widths that are and are not powers of two, signs, zeros,
tiny and huge values; it refuses arrays it cannot read, naming them; and CI fails, rather
than skips, when the install did not build it."""

from __future__ import annotations

import numpy as np
import pytest

from reco_sidecar.engine import exactdot
from tests.support.requires import require


def test_the_compiled_kernel_gives_the_numpy_kernels_bits() -> None:
    require(exactdot.KERNEL is not None, "the compiled exact score kernel (a C compiler at install)")
    rng = np.random.default_rng(5)
    for d in (0, 1, 2, 3, 5, 8, 31, 32, 33, 64, 100, 128):
        vectors = rng.standard_normal((7, d)).astype(np.float32)
        items = rng.standard_normal((300, d)).astype(np.float32)
        if d:
            vectors[0] = 0.0
            vectors[1, 0] = -0.0
            items[:20] *= np.float32(1e-30)  # products below float32's range, exact in float64
            items[20:40] *= np.float32(1e19)  # and above it
            items[40:60] = np.round(items[40:60])  # sums that cancel exactly
        pv = rng.integers(0, len(vectors), 5000)
        pi = rng.integers(0, len(items), 5000)
        compiled = exactdot.scores(vectors, items, pv, pi)
        reference = exactdot.numpy_scores(vectors, items, pv, pi)
        assert compiled.dtype == reference.dtype == np.float32
        assert compiled.tobytes() == reference.tobytes(), d
    # the differences the kernel is there to avoid: a float32 product rounds otherwise
    vectors = rng.standard_normal((50, 64)).astype(np.float32)
    items = rng.standard_normal((2000, 64)).astype(np.float32)
    pv, pi = np.repeat(np.arange(50), 2000), np.tile(np.arange(2000), 50)
    blas = (vectors @ items.T).ravel()
    assert (exactdot.scores(vectors, items, pv, pi) != blas).any()


def test_the_compiled_kernel_refuses_what_it_cannot_read() -> None:
    require(exactdot.KERNEL is not None, "the compiled exact score kernel (a C compiler at install)")
    from reco_sidecar.engine import _exactdot

    v, i = np.ones((2, 4), np.float32), np.ones((3, 4), np.float32)
    pairs, out = np.zeros(2, np.int64), np.empty(2, np.float32)
    _exactdot.scores(v, i, pairs, pairs, out)
    assert out.tolist() == [4.0, 4.0]
    with pytest.raises(TypeError, match="vectors"):
        _exactdot.scores(v.astype(np.float64), i, pairs, pairs, out)
    with pytest.raises(ValueError, match="same width"):
        _exactdot.scores(v, np.ones((3, 5), np.float32), pairs, pairs, out)
    with pytest.raises(IndexError, match="outside"):
        _exactdot.scores(v, i, pairs, np.asarray([0, 3], np.int64), out)
    with pytest.raises(TypeError, match="out"):
        _exactdot.scores(v, i, pairs, pairs, np.empty(2, np.float64))
    # other dtypes take the numpy form, with the same contract
    assert exactdot.scores(v.astype(np.float64), i, pairs, pairs).tolist() == [4.0, 4.0]

