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
