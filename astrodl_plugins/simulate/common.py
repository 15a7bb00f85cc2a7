# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Helpers shared by the simulators: random draws and worker processes."""

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

__all__ = ['loguniform', 'run_jobs']


def loguniform(rng, low, high, size=None):
    """Draw from a log-uniform distribution between ``low`` and ``high``."""
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def run_jobs(function, jobs, n_processes=None):
    """
    Map ``function`` over ``jobs`` in worker processes, in order.

    Forking a process that has loaded TensorFlow (whose threads hold locks)
    can deadlock the children: then the workers start from a fork server
    instead (which, like 'spawn', re-imports the main module).
    """
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
    import galsim

    function, job = args
    with galsim.utilities.single_threaded():
        return function(job)
