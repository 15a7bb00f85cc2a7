# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Fixtures of the command-line tests."""

import pytest


@pytest.fixture(scope='module')
def small_image(tmp_path_factory):
    """A 128x128 corner of the sample field, as a FITS file."""
    from astropy.nddata import CCDData

    from astrodl_plugins.datasets import load_sample_field

    ccd, _ = load_sample_field()
    small = CCDData(ccd.data[:128, :128], unit=ccd.unit, meta=ccd.meta,
                    wcs=ccd.wcs[:128, :128] if ccd.wcs is not None else None)
    path = tmp_path_factory.mktemp('image') / 'small.fits'
    small.write(path)
    return path
