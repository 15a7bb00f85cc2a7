# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Data augmentation for stamps: the eight rotations and flips of a square."""

import numpy as np

from ..core.dihedral import apply_dihedral

__all__ = ['random_dihedral']


def random_dihedral(images, rng):
    """
    Apply an independent random rotation/flip to each image.

    Parameters
    ----------
    images : `~numpy.ndarray`
        Shape ``(n, ny, nx, ...)``.
    rng : `numpy.random.Generator`
        Random generator.

    Returns
    -------
    out : `~numpy.ndarray`
        Augmented copy.
    k : `~numpy.ndarray`
        Quarter turns applied to each image (0-3).
    flip : `~numpy.ndarray`
        Whether each image was mirrored along x.
    """
    k = rng.integers(4, size=len(images))
    flip = rng.random(len(images)) < 0.5
    out = np.empty_like(images)
    for kk in range(4):
        for ff in (False, True):
            select = (k == kk) & (flip == ff)
            if select.any():
                out[select] = apply_dihedral(images[select], kk, ff)
    return out, k, flip
