# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The eight rotations and flips of a square stamp (the dihedral group D4).

Used for test-time augmentation by the stamp family (``tta=True``) and,
through `astrodl_plugins.training.augment`, for training augmentation.
"""

import numpy as np

__all__ = ['DIHEDRAL', 'apply_dihedral', 'dihedral_views', 'pool_views']

#: The eight (quarter turns, flip) pairs, in the order of `dihedral_views`.
DIHEDRAL = tuple((k, flip) for k in range(4) for flip in (False, True))


def apply_dihedral(images, k, flip):
    """
    Rotate by ``k`` quarter turns, then mirror left-right if ``flip``.

    Parameters
    ----------
    images : `~numpy.ndarray`
        Shape ``(n, ny, nx, ...)``, square in (ny, nx).
    k : int
        Quarter turns (``numpy.rot90`` convention: in an array shown with
        the origin at the lower left, a clockwise turn of 90 degrees each).
    flip : bool
        Mirror along x afterwards (x -> -x).

    Returns
    -------
    out : `~numpy.ndarray`
        A new array.
    """
    out = np.rot90(images, k=k, axes=(1, 2))
    if flip:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def dihedral_views(inputs):
    """
    Network inputs of the eight orientations of each stamp.

    Parameters
    ----------
    inputs : list of `~numpy.ndarray`
        The first holds the stamps ``(n, ny, nx, ...)``; the others (per
        source conditions, e.g. the PSF) are repeated.

    Returns
    -------
    views : list of `~numpy.ndarray`
        ``8 n`` rows each, orientation by orientation (`DIHEDRAL` order).
    """
    stamps, *others = inputs
    views = [np.concatenate([apply_dihedral(stamps, k, flip)
                             for k, flip in DIHEDRAL])]
    return views + [np.tile(other, (len(DIHEDRAL),) + (1,) * (other.ndim - 1))
                    for other in others]


def pool_views(draws):
    """
    ``(8 n, T, ...)`` draws of `dihedral_views` -> ``(n, 8 T, ...)``: the
    draws of each source's eight orientations pooled.
    """
    n = len(draws) // len(DIHEDRAL)
    views = draws.reshape(len(DIHEDRAL), n, *draws.shape[1:])
    return np.concatenate(list(views), axis=1)
