# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The deblender on real crowded fields (M13, Spitzer): it runs to
completion, keeps every detected pixel in its parent, and separates at
least as many sources as photutils' deblend_sources on the same detection.

The FITS files come from the project's shared test data
(``ASTRODL_TEST_DATA_DIR``, set by tox; skipped when absent).
"""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.convolution import convolve
from astropy.nddata import CCDData

from astrodl_plugins.core.detection import subtract_background_and_detect
from astrodl_plugins.deblending import deblend_sources_dl


def _read(name, **kwargs):
    candidates = [os.environ.get('ASTRODL_TEST_DATA_DIR'),
                  Path.cwd().parent / 'shared' / 'data',
                  Path(__file__).resolve().parents[3] / 'shared' / 'data']
    for candidate in candidates:
        if candidate and (Path(candidate) / name).exists():
            return CCDData.read(Path(candidate) / name, **kwargs)
    pytest.skip('shared test data not found (ASTRODL_TEST_DATA_DIR)')


def _both(ccd):
    from photutils.segmentation import deblend_sources, make_2dgaussian_kernel

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data, segm, _ = subtract_background_and_detect(ccd, n_pixels=5)
        convolved = convolve(np.nan_to_num(np.asarray(data.data, float)),
                             make_2dgaussian_kernel(3.0, size=5))
        theirs = deblend_sources(convolved, segm, 5, progress_bar=False)
    ours = deblend_sources_dl(data, segm, 5)
    return segm, theirs, ours


@pytest.mark.parametrize('name, kwargs', [
    ('M13_blue_0001.fits', {'unit': 'adu'}),
    ('spitzer_example_image.fits', {}),
])
def test_crowded_field(name, kwargs):
    segm, theirs, ours = _both(_read(name, **kwargs))
    assert np.array_equal(ours.data > 0, segm.data > 0)
    assert ours.n_labels >= theirs.n_labels
