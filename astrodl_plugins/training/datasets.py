# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Simulated training sets, cached on disk by (simulator, size, seed)."""

import hashlib
from pathlib import Path

import numpy as np
from astropy.table import QTable

__all__ = ['cached_simulation']


def cached_simulation(simulator, n_stamps, seed, cache_dir=None, **kwargs):
    """
    Run ``simulator(n_stamps, seed=seed, **kwargs)`` or load its cached result.

    The simulators are deterministic given their seed, so a cache keyed on
    the simulator's name, its arguments and the package version returns the
    same data a fresh run would.

    Parameters
    ----------
    simulator : callable
        A simulator returning ``(images, truth)``.
    n_stamps, seed : int
        Passed to the simulator.
    cache_dir : path-like, optional
        Where to keep ``.npz``/``.ecsv`` pairs; no caching if `None`.
    **kwargs
        Further simulator keywords (part of the cache key).

    Returns
    -------
    images : `~numpy.ndarray`
    truth : `~astropy.table.QTable`
    """
    if cache_dir is None:
        return simulator(n_stamps, seed=seed, **kwargs)
    key = repr((simulator.__module__, simulator.__name__, n_stamps, seed,
                sorted(kwargs.items())))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir)
    images_path = cache_dir / f'{simulator.__name__}-{digest}.npy'
    truth_path = images_path.with_suffix('.ecsv')
    if images_path.exists() and truth_path.exists():
        return np.load(images_path), QTable.read(truth_path)
    images, truth = simulator(n_stamps, seed=seed, **kwargs)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(images_path, images)
    truth.write(truth_path, overwrite=True)
    return images, truth
