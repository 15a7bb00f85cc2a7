# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Simulated training sets, cached on disk by (simulator, size, seed)."""

import hashlib
import sys
from pathlib import Path

import numpy as np
from astropy.table import QTable

__all__ = ['cached_simulation']


def cached_simulation(simulator, n_stamps, seed, cache_dir=None, **kwargs):
    """
    Run ``simulator(n_stamps, seed=seed, **kwargs)`` or load its cached result.

    The simulators are deterministic given their seed, so a cache keyed on
    the simulator's name, its arguments and its code (the source files of
    the simulator's package folder: a changed simulator, or a helper next
    to it, misses the cache) returns the same data a fresh run would.

    Parameters
    ----------
    simulator : callable
        A simulator returning ``(images, truth)``, or ``(array, ...,
        truth)`` with several arrays (e.g. blends and their members'
        models).
    n_stamps, seed : int
        Passed to the simulator.
    cache_dir : path-like, optional
        Where to keep the arrays (``.npy``, or ``.npz`` for several) and
        the ``.ecsv`` truth; no caching if `None`.
    **kwargs
        Further simulator keywords (part of the cache key).

    Returns
    -------
    arrays and truth : tuple
        What the simulator returns: ``(images, truth)`` or
        ``(array, ..., truth)``.
    """
    if cache_dir is None:
        return simulator(n_stamps, seed=seed, **kwargs)
    key = repr((simulator.__module__, simulator.__name__, n_stamps, seed,
                sorted(kwargs.items()), _source_digest(simulator)))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir)
    base = cache_dir / f'{simulator.__name__}-{digest}'
    single, several = base.with_suffix('.npy'), base.with_suffix('.npz')
    truth_path = base.with_suffix('.ecsv')
    if truth_path.exists() and single.exists():
        return np.load(single), QTable.read(truth_path)
    if truth_path.exists() and several.exists():
        saved = np.load(several)
        return (*(saved[f'arr_{i}'] for i in range(len(saved.files))),
                QTable.read(truth_path))
    *arrays, truth = simulator(n_stamps, seed=seed, **kwargs)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if len(arrays) == 1:
        np.save(single, arrays[0])
    else:
        np.savez(several, *arrays)
    truth.write(truth_path, overwrite=True)
    return (*arrays, truth)


def _source_digest(simulator):
    """
    SHA-256 of the Python sources beside the simulator's module (its
    package folder), so that a changed simulator is simulated again; an
    editable install keeps its version number across such changes.
    """
    module = sys.modules.get(getattr(simulator, '__module__', ''))
    path = getattr(module, '__file__', None)
    digest = hashlib.sha256()
    if path:
        for source in sorted(Path(path).parent.glob('*.py')):
            digest.update(source.name.encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]
