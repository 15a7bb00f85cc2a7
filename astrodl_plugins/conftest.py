# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Fixtures shared by the test suites of every package.

The tiny estimators (`astrodl_plugins.core.tests.tiny`) are imported
inside the fixtures, so collecting a test module that does not use them
does not import Keras. Session-scoped estimators are shared: a test that
changes one (``card_``, ``error_scale_``) uses ``monkeypatch`` or builds
its own with the factories of ``tiny``.
"""

import os
import tempfile

import pytest

# Keras writes its config (keras.json) under KERAS_HOME on import: keep the
# tests away from the user's ~/.keras unless the caller chose a place.
os.environ.setdefault('KERAS_HOME',
                      tempfile.mkdtemp(prefix='astrodl-test-keras-'))


@pytest.fixture(scope='session')
def keras_home():
    """The KERAS_HOME directory of the test session."""
    return os.environ['KERAS_HOME']


@pytest.fixture(scope='session')
def tiny_stamp():
    """An untrained `TinyStamp` (PSF required, supports tta)."""
    from astrodl_plugins.core.tests import tiny

    return tiny.make_tiny_stamp()


@pytest.fixture(scope='session')
def tiny_stamp_nopsf():
    """An untrained `TinyStampNoPSF` (no PSF, no tta)."""
    from astrodl_plugins.core.tests import tiny

    return tiny.make_tiny_stamp(tiny.TinyStampNoPSF)


@pytest.fixture(scope='session')
def tiny_multiband():
    """An untrained `TinyMultiBand` (bands g, r, i)."""
    from astrodl_plugins.core.tests import tiny

    return tiny.make_tiny_stamp(tiny.TinyMultiBand)


@pytest.fixture(scope='session')
def tiny_series():
    """An untrained `TinySeries` (1-D inputs)."""
    from astrodl_plugins.core.tests import tiny

    return tiny.make_tiny_series()


@pytest.fixture(scope='session')
def tiny_series_pair():
    """An untrained `TinySeriesPair` (two networks)."""
    from astrodl_plugins.core.tests import tiny

    return tiny.make_tiny_series(tiny.TinySeriesPair)


@pytest.fixture(scope='session')
def tiny_segments():
    """An untrained `TinySegments` (image-to-image)."""
    from astrodl_plugins.core.tests import tiny

    return tiny.make_tiny_segments()


@pytest.fixture
def sim_image():
    """
    A fresh 80x100 CCDData (electron/s, 0.2 arcsec/pix TAN WCS, unit
    uncertainty, empty mask, ``meta['PSF_FWHM'] = 3``) with three sources
    at ``tiny.CENTERS``.
    """
    from astrodl_plugins.core.tests import tiny

    return tiny.make_ccd()


@pytest.fixture
def sim_segmentation():
    """The segmentation of `sim_image`: labels ``tiny.LABELS``."""
    from astrodl_plugins.core.tests import tiny

    return tiny.make_segmentation()
