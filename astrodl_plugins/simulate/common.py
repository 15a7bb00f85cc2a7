# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Helpers shared by the simulators: random draws, worker processes and the
GalSim import.
"""

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

__all__ = ['loguniform', 'check_fractions', 'require_batman', 'require_galsim',
           'require_lenstronomy', 'run_jobs']

TRAIN_EXTRA_HINT = 'pip install "astrodl-plugins[train]"'


def require_galsim():
    """
    Import and return GalSim, which only simulating and training need.

    Raises
    ------
    ImportError
        GalSim is not installed; the message says how to install it (the
        ``train`` extra).
    """
    return _require('galsim', 'simulating training sets and training need '
                    'GalSim')


def require_lenstronomy():
    """
    Import and return lenstronomy, which only simulating lenses needs.

    Raises
    ------
    ImportError
        lenstronomy is not installed; the message names the ``train``
        extra.
    """
    return _require('lenstronomy', 'simulating lenses needs lenstronomy')


def require_batman():
    """
    Import and return batman, which only simulating light curves needs.

    Raises
    ------
    ImportError
        batman (the ``batman-package`` distribution) is not installed; the
        message names the ``train`` extra.
    """
    return _require('batman', 'simulating light curves needs batman-package')


def _require(name, need):
    """Import ``name``, or raise an ImportError that names the extra."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        msg = (f'{need}, which a plain install does not include (prediction '
               f'does not need it); install it with: {TRAIN_EXTRA_HINT}')
        raise ImportError(msg, name=name) from error


def loguniform(rng, low, high, size=None):
    """Draw from a log-uniform distribution between ``low`` and ``high``."""
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def check_fractions(fractions, kinds, defaults):
    """
    The fraction of each of ``kinds`` (summing to 1), checked.

    Parameters
    ----------
    fractions : sequence, dict or None
        One non-negative number per kind, or ``{kind: fraction}`` (kinds
        left out get 0), or `None` for ``defaults`` renormalised.
    kinds : tuple of str
    defaults : dict
        ``{kind: weight}`` used when ``fractions`` is `None`.

    Returns
    -------
    `~numpy.ndarray`
    """
    if fractions is None:
        fractions = np.array([defaults[kind] for kind in kinds], np.float64)
        return fractions / fractions.sum()
    if isinstance(fractions, dict):
        if set(fractions) - set(kinds):
            msg = (f'fractions has kinds not in kinds={kinds}: '
                   f'{sorted(set(fractions) - set(kinds))}')
            raise ValueError(msg)
        fractions = [fractions.get(kind, 0.0) for kind in kinds]
    fractions = np.asarray(fractions, dtype=np.float64)
    if (fractions.shape != (len(kinds),) or np.any(fractions < 0)
            or not np.isclose(fractions.sum(), 1.0, atol=1e-6)):
        msg = (f'fractions must be {len(kinds)} non-negative numbers (one '
               f'per kind of {kinds}) summing to 1, not {fractions.tolist()}')
        raise ValueError(msg)
    return fractions


def run_jobs(function, jobs, n_processes=None):
    """
    Map ``function`` over ``jobs`` in worker processes, in order.

    Forking a process that has loaded TensorFlow (whose threads hold locks)
    can deadlock the children: then the workers start from a fork server
    instead (which, like 'spawn', re-imports the main module).
    """
    require_galsim()
    n_processes = n_processes or os.cpu_count() or 1
    if n_processes > 1 and len(jobs) > 1:
        threaded = any(name in sys.modules
                       for name in ('tensorflow', 'torch', 'jax'))
        context = multiprocessing.get_context('forkserver' if threaded
                                              else 'fork')
        with ProcessPoolExecutor(min(n_processes, len(jobs)),
                                 mp_context=context) as pool:
            return list(pool.map(_single_threaded_call,
                                 [(function, job) for job in jobs]))
    return [function(job) for job in jobs]


def _single_threaded_call(args):
    """Run ``function(job)`` in a worker with GalSim's OpenMP off.

    Each worker already has a core: OpenMP threads on top oversubscribe
    the machine (measured ~3x slower with 2 workers on 2 cores).
    """
    galsim = require_galsim()
    function, job = args
    with galsim.utilities.single_threaded():
        return function(job)
