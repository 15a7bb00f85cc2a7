# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
``table.meta`` conventions shared by every estimator: the package
version, quantiles only when asked for, the pixel scale as a Quantity
that ECSV keeps.
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

import astrodl_plugins as adl
from astrodl_plugins.core.output import write_table_file
from astrodl_plugins.core.tests.tiny import (
    CENTERS,
    STAMP_KWARGS,
    image_data,
    make_ccd,
)

SCALE = 0.2 * u.arcsec / u.pix


@pytest.fixture(scope='module')
def scaled_table(tiny_stamp):
    return tiny_stamp.predict(image_data(), positions=CENTERS, psf_fwhm=3.0,
                              pixel_scale=SCALE, **STAMP_KWARGS)


def test_package_version(scaled_table):
    assert scaled_table.meta['astrodl_plugins_version'] == adl.__version__


def test_no_quantiles_entry_unless_asked(tiny_stamp, scaled_table):
    assert 'quantiles' not in scaled_table.meta
    table = tiny_stamp.predict(make_ccd(), positions=CENTERS,
                               quantiles=(0.16, 0.84), **STAMP_KWARGS)
    assert table.meta['quantiles'] == [0.16, 0.84]


def test_pixel_scale_quantity(scaled_table):
    scale = scaled_table.meta['pixel_scale']
    assert isinstance(scale, u.Quantity)
    assert u.isclose(scale, SCALE)


def test_no_pixel_scale_without_one(tiny_stamp):
    table = tiny_stamp.predict(make_ccd(wcs=False), positions=CENTERS,
                               **STAMP_KWARGS)
    assert 'pixel_scale' not in table.meta


def test_meta_round_trips_in_ecsv(scaled_table, tmp_path):
    path = tmp_path / 'table.ecsv'
    write_table_file(scaled_table, path, 'ascii.ecsv')
    read = QTable.read(path)
    assert u.isclose(read.meta['pixel_scale'], SCALE)
    assert read.meta['astrodl_plugins_version'] == adl.__version__
    np.testing.assert_array_equal(read['flag'], scaled_table['flag'])
