# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The project's shared real FITS images, for the real-data tests.

They live in ``ASTRODL_TEST_DATA_DIR`` (set by tox) or in ``shared/data``
beside the checkout; a test that needs them is skipped when they are
absent. The package itself never depends on them.
"""

import os
from pathlib import Path

import pytest


def shared_data_dir():
    """The folder of the shared test images, or None."""
    candidates = [os.environ.get('ASTRODL_TEST_DATA_DIR'),
                  Path.cwd().parent / 'shared' / 'data',
                  Path(__file__).resolve().parents[2] / 'shared' / 'data']
    for candidate in candidates:
        if candidate and (Path(candidate) / 'M13_blue_0001.fits').exists():
            return Path(candidate)
    return None


def read_shared(name, **kwargs):
    """`~astropy.nddata.CCDData` of a shared image; skips when absent."""
    from astropy.nddata import CCDData

    directory = shared_data_dir()
    if directory is None:
        pytest.skip('shared test data not found (ASTRODL_TEST_DATA_DIR)')
    return CCDData.read(directory / name, **kwargs)


def light_curve_path(name):
    """
    Path of a real light curve of the checkout's ``data/lightcurves``
    (``ASTRODL_LIGHTCURVE_DIR``, set by tox); skips when absent.
    """
    candidates = [os.environ.get('ASTRODL_LIGHTCURVE_DIR'),
                  Path(__file__).resolve().parents[2] / 'data' / 'lightcurves',
                  Path.cwd() / 'data' / 'lightcurves']
    for candidate in candidates:
        if candidate and (Path(candidate) / name).exists():
            return Path(candidate) / name
    pytest.skip(f'real light curve {name} not found (ASTRODL_LIGHTCURVE_DIR)')
    return None
