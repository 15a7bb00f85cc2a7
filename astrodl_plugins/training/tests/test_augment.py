# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The dihedral group of a square stamp: training augmentation
(random_dihedral) and test-time views (dihedral_views, pool_views) agree.
"""

import numpy as np
import pytest

from astrodl_plugins.core.dihedral import (
    DIHEDRAL,
    apply_dihedral,
    dihedral_views,
    pool_views,
)
from astrodl_plugins.training.augment import random_dihedral


def images(n=5, size=6, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, size, size, channels)).astype(np.float32)


def key(image):
    return image.tobytes()


class TestApplyDihedral:
    def test_identity(self):
        x = images()
        np.testing.assert_array_equal(apply_dihedral(x, 0, False), x)

    def test_quarter_turn_and_flip(self):
        x = images()
        np.testing.assert_array_equal(apply_dihedral(x, 1, False),
                                      np.rot90(x, 1, axes=(1, 2)))
        np.testing.assert_array_equal(apply_dihedral(x, 0, True),
                                      x[:, :, ::-1])
        np.testing.assert_array_equal(apply_dihedral(x, 3, True),
                                      np.rot90(x, 3, axes=(1, 2))[:, :, ::-1])

    def test_pixel_mapping(self):
        # One bright pixel at (row 1, col 4) of a 6x6 stamp.
        x = np.zeros((1, 6, 6))
        x[0, 1, 4] = 1.0
        turned = apply_dihedral(x, 1, False)
        assert np.argwhere(turned[0]).tolist() == [[1, 1]]
        flipped = apply_dihedral(x, 0, True)
        assert np.argwhere(flipped[0]).tolist() == [[1, 1]]

    def test_eight_distinct(self):
        x = images(1)
        views = {key(apply_dihedral(x, k, flip)) for k, flip in DIHEDRAL}
        assert len(views) == 8
        assert len(DIHEDRAL) == 8

    @pytest.mark.parametrize('k, flip', DIHEDRAL)
    def test_inverse(self, k, flip):
        x = images()
        once = apply_dihedral(x, k, flip)
        # A flip is its own inverse; a turn is undone by the opposite turn.
        back = (apply_dihedral(once, k, flip) if flip
                else apply_dihedral(once, (4 - k) % 4, False))
        np.testing.assert_array_equal(back, x)

    def test_contiguous_copy(self):
        x = images()
        out = apply_dihedral(x, 1, True)
        assert out.flags['C_CONTIGUOUS']
        out[:] = 0
        assert np.any(x != 0)

    def test_without_channel_axis(self):
        x = images(channels=1)[..., 0]
        np.testing.assert_array_equal(apply_dihedral(x, 2, True)[..., None],
                                      apply_dihedral(x[..., None], 2, True))


class TestRandomDihedral:
    def test_matches_apply(self):
        x = images(64)
        out, k, flip = random_dihedral(x, np.random.default_rng(1))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert k.shape == flip.shape == (64,)
        assert set(np.unique(k)) <= {0, 1, 2, 3}
        for i in range(64):
            np.testing.assert_array_equal(
                out[i:i + 1], apply_dihedral(x[i:i + 1], k[i], flip[i]))

    def test_all_eight_used(self):
        _, k, flip = random_dihedral(images(400, size=2),
                                     np.random.default_rng(2))
        assert len(set(zip(k.tolist(), flip.tolist()))) == 8

    def test_seeded(self):
        x = images(16)
        first = random_dihedral(x, np.random.default_rng(3))
        second = random_dihedral(x, np.random.default_rng(3))
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a, b)

    def test_input_untouched(self):
        x = images(16)
        before = x.copy()
        random_dihedral(x, np.random.default_rng(4))
        np.testing.assert_array_equal(x, before)

    def test_outputs_are_views(self):
        # Every augmented stamp is one of the test-time views.
        x = images(10)
        out, _, _ = random_dihedral(x, np.random.default_rng(5))
        (views,) = dihedral_views([x])
        for i in range(10):
            candidates = {key(views[v * 10 + i]) for v in range(8)}
            assert key(out[i]) in candidates


class TestViews:
    def test_order_and_tiling(self):
        x = images(3)
        psf = np.array([[1.0], [2.0], [3.0]])
        views, tiled = dihedral_views([x, psf])
        assert views.shape == (24,) + x.shape[1:]
        for v, (k, flip) in enumerate(DIHEDRAL):
            np.testing.assert_array_equal(views[3 * v:3 * v + 3],
                                          apply_dihedral(x, k, flip))
        np.testing.assert_array_equal(tiled[:, 0], np.tile([1, 2, 3], 8))

    def test_pool_views(self):
        # Draw t of view v of source j holds (v, j, t): pooling gathers each
        # source's eight views, view by view.
        n, draws = 3, 2
        value = np.zeros((8 * n, draws, 3))
        for v in range(8):
            for j in range(n):
                for t in range(draws):
                    value[v * n + j, t] = (v, j, t)
        pooled = pool_views(value)
        assert pooled.shape == (n, 8 * draws, 3)
        for j in range(n):
            np.testing.assert_array_equal(pooled[j, :, 1], j)
            np.testing.assert_array_equal(pooled[j, :, 0],
                                          np.repeat(np.arange(8), draws))
            np.testing.assert_array_equal(pooled[j, :, 2],
                                          np.tile(np.arange(draws), 8))

    def test_round_trip_with_an_invariant(self):
        # A rotation-invariant statistic of the views, pooled, is the same
        # for the eight draws of each source.
        x = images(4)
        (views,) = dihedral_views([x])
        stat = views.sum(axis=(1, 2, 3))[:, None, None]
        pooled = pool_views(stat)
        np.testing.assert_allclose(pooled[..., 0],
                                   np.repeat(x.sum(axis=(1, 2, 3))[:, None],
                                             8, axis=1), rtol=1e-5)
