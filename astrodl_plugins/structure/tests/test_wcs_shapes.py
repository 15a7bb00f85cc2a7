# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Galaxy shapes on skewed and anisotropic WCS grids: the pixel-space
ellipse mapped to the sky through the local Jacobian, and the flag where
the grid is too far from square pixels for the network.
"""

import numpy as np
import pytest
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs import WCS
from scipy import ndimage

import astrodl_plugins as adl
from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.structure import GalaxyStructure
from astrodl_plugins.structure.estimator import (
    MAX_PIXEL_ANISOTROPY,
    local_jacobian,
    pixel_anisotropy,
    sky_shape,
)
from astrodl_plugins.structure.network import build_network

SCALE = 0.2
#: Sky offsets (east, north; in units of SCALE) per pixel along x and y.
SQUARE = np.array([[-1.0, 0.0], [0.0, 1.0]])
MILD_SKEW = np.array([[-1.0, 0.15], [0.0, 1.0]])
STRONG_SKEW = np.array([[-1.0, 0.6], [0.0, 1.0]])
CENTRES = np.array([(30.0, 30.0), (70.0, 50.0), (24.0, 60.0)])


def _wcs(matrix, crpix=(48.0, 48.0)):
    """A TAN WCS whose CD matrix is ``matrix * SCALE`` arcsec (east, north)."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [crpix[0] + 1, crpix[1] + 1]
    wcs.wcs.cd = np.asarray(matrix) * SCALE / 3600
    return wcs


def _svd_shape(jacobian, r_eff, axis_ratio, angle):
    """
    The truth, computed another way: the sky ellipse is the image of the
    unit circle under ``J R diag(a, b)``; its semi-axes are the singular
    values, its major axis the first left singular vector (east, north).
    """
    theta = np.deg2rad(angle)
    rotation = np.array([[np.cos(theta), -np.sin(theta)],
                         [np.sin(theta), np.cos(theta)]])
    u, s, _ = np.linalg.svd(jacobian @ rotation
                            @ np.diag([r_eff, axis_ratio * r_eff]))
    east, north = u[:, 0]
    return s[0], s[1] / s[0], np.rad2deg(np.arctan2(east, north)) % 180.0


def _angle_difference(a, b):
    return (np.asarray(a) - np.asarray(b) + 90.0) % 180.0 - 90.0


class TestSkyShape:
    def test_matches_the_singular_value_decomposition(self):
        rng = np.random.default_rng(0)
        for _ in range(50):
            jacobian = rng.normal(size=(2, 2))
            r_eff = rng.uniform(1, 10)
            ratio = rng.uniform(0.1, 1.0)
            angle = rng.uniform(0, 180)
            got = sky_shape(jacobian, r_eff, ratio, angle)
            want = _svd_shape(jacobian, r_eff, ratio, angle)
            np.testing.assert_allclose(got[:2], want[:2], rtol=1e-9)
            if ratio < 0.99:
                assert abs(_angle_difference(got[2], want[2])) < 1e-6

    def test_broadcasts_over_draws(self):
        jacobian = np.stack([SQUARE, MILD_SKEW, STRONG_SKEW])[:, None]
        r_eff = np.full((3, 4), 5.0)
        out = sky_shape(jacobian, r_eff, 0.5, np.linspace(0, 90, 4))
        assert all(part.shape == (3, 4) for part in out)

    def test_square_pixels_keep_the_shape(self):
        turned = np.array([[np.cos(0.3), -np.sin(0.3)],
                           [np.sin(0.3), np.cos(0.3)]])
        for jacobian in (SQUARE, -SQUARE, turned, SQUARE @ turned):
            assert pixel_anisotropy(jacobian) == pytest.approx(1.0)
            r_eff, ratio, _ = sky_shape(SCALE * jacobian, 10.0, 0.3, 40.0)
            assert r_eff == pytest.approx(10.0 * SCALE)
            assert ratio == pytest.approx(0.3)

    def test_anisotropy(self):
        assert pixel_anisotropy(np.diag([1.0, 1.3])) == pytest.approx(1.3)
        assert pixel_anisotropy(MILD_SKEW) < MAX_PIXEL_ANISOTROPY
        assert pixel_anisotropy(STRONG_SKEW) > MAX_PIXEL_ANISOTROPY

    def test_local_jacobian_is_the_cd_matrix_at_the_reference(self):
        jacobian = local_jacobian(_wcs(STRONG_SKEW), [48.0], [48.0])
        np.testing.assert_allclose(jacobian[0], SCALE * STRONG_SKEW,
                                   atol=1e-8)


def _tiny_estimator():
    """An untrained, tiny GalaxyStructure: the transform is what is tested."""
    import keras

    keras.utils.set_random_seed(0)
    estimator = GalaxyStructure(stamp_size=32, widths=(4, 4, 4), dense=8)
    estimator.model_ = build_network(32, (4, 4, 4), 8, 0.1)
    estimator.target_mean_ = [0.0] * 6
    estimator.target_std_ = [1.0] * 6
    estimator.error_scale_ = {}
    estimator.error_scale_tta_ = {}
    return estimator


def _blobs(wcs):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:80, :100]
    data = rng.normal(0.0, 1.0, yy.shape)
    for x, y in CENTRES:
        data += 100 * np.exp(-((xx - x) ** 2 + 0.6 * (yy - y) ** 2) / 8.0)
    return CCDData(data, unit='electron/s', wcs=wcs,
                   uncertainty=StdDevUncertainty(np.ones(data.shape)),
                   meta={'PSF_FWHM': 3.0})


@pytest.fixture(scope='module')
def tables():
    estimator = _tiny_estimator()
    # One deterministic pass: each summary is the draw itself.
    kwargs = {'positions': CENTRES, 'n_samples': 0, 'seed': 1}
    return {name: estimator.predict(_blobs(wcs), **kwargs)
            for name, wcs in (('pixels', None), ('square', _wcs(SQUARE)),
                              ('mild', _wcs(MILD_SKEW)),
                              ('strong', _wcs(STRONG_SKEW)))}


class TestPredictOnSkewedGrids:

    @pytest.mark.parametrize('name', ['square', 'mild', 'strong'])
    def test_shape_through_the_jacobian(self, tables, name):
        pixels, sky = tables['pixels'], tables[name]
        matrix = {'square': SQUARE, 'mild': MILD_SKEW,
                  'strong': STRONG_SKEW}[name]
        for row, (r_eff, ratio, angle) in enumerate(zip(
                pixels['r_eff'].value, pixels['axis_ratio'].value,
                pixels['position_angle'].value)):
            want = _svd_shape(SCALE * matrix, r_eff, ratio, angle)
            assert float(sky['r_eff'][row].value) == pytest.approx(
                want[0], rel=1e-5)
            assert float(sky['axis_ratio'][row]) == pytest.approx(
                want[1], abs=1e-5)
            if want[1] < 0.99:
                assert abs(_angle_difference(
                    sky['position_angle'][row].value, want[2])) < 1e-3
        assert 'Jacobian' in sky.meta['sky_shape']

    def test_draws_are_mapped_one_by_one(self):
        estimator = _tiny_estimator()
        kwargs = {'positions': CENTRES, 'n_samples': 4, 'seed': 1,
                  'return_samples': True}
        _, pixels = estimator.predict(_blobs(None), **kwargs)
        _, sky = estimator.predict(_blobs(_wcs(STRONG_SKEW)), **kwargs)
        jacobian = local_jacobian(_wcs(STRONG_SKEW), CENTRES[:, 0],
                                  CENTRES[:, 1])
        want = sky_shape(jacobian[:, None], pixels['r_eff'].value,
                         np.asarray(pixels['axis_ratio']),
                         pixels['position_angle'].value)
        np.testing.assert_allclose(sky['r_eff'].value, want[0], rtol=1e-6)
        # axis_ratio is dimensionless: plain draws, as its column.
        np.testing.assert_allclose(np.asarray(sky['axis_ratio']), want[1],
                                   atol=1e-6)
        np.testing.assert_allclose(_angle_difference(
            sky['position_angle'].value, want[2]), 0.0, atol=1e-4)

    def test_anisotropic_grid_is_flagged(self, tables):
        out = SourceFlags.OUT_OF_RANGE
        assert np.all(tables['strong']['flag'] & out)
        # Below the limit the grid adds no flag.
        np.testing.assert_array_equal(tables['mild']['flag'] & out,
                                      tables['square']['flag'] & out)


def _sky_sersic(matrix, angle, ratio=0.4, r_eff_arcsec=1.6, size=96):
    """
    A Sersic (n = 1) galaxy defined on the sky (position angle east of
    north, axis ratio, r_eff in arcsec) and sampled on a pixel grid whose
    sky offsets per pixel are ``SCALE * matrix``; a Gaussian PSF of 3
    pixels FWHM and a little noise.
    """
    centre = size / 2
    yy, xx = np.mgrid[:size, :size]
    east, north = np.tensordot(SCALE * np.asarray(matrix),
                               np.stack([xx - centre, yy - centre]), 1)
    pa = np.deg2rad(angle)
    major = east * np.sin(pa) + north * np.cos(pa)
    minor = -east * np.cos(pa) + north * np.sin(pa)
    radius = np.hypot(major, minor / ratio)
    image = 50.0 * np.exp(-1.678 * (radius / r_eff_arcsec - 1))
    image = ndimage.gaussian_filter(image, 3.0 / 2.3548)
    image += np.random.default_rng(3).normal(0.0, 0.5, image.shape)
    return CCDData(image, unit='electron/s',
                   wcs=_wcs(matrix, (centre, centre)),
                   uncertainty=StdDevUncertainty(np.full(image.shape, 0.5)),
                   meta={'PSF_FWHM': 3.0}), centre


@pytest.fixture(scope='module')
def shipped():
    return adl.get_estimator('galaxy-structure')


class TestShippedModelOnSkewedGrids:
    @pytest.mark.parametrize(('matrix', 'angle', 'flagged'),
                             [(MILD_SKEW, 170.0, False),
                              (STRONG_SKEW, 20.0, True)])
    def test_sky_position_angle(self, shipped, matrix, angle, flagged):
        """
        The truth is the sky's own angle; mapping the pixel angle by the
        +x axis alone was 9 and 40 degrees off on these grids.
        """
        ccd, centre = _sky_sersic(matrix, angle)
        table = shipped.predict(ccd, positions=[[centre, centre]],
                                n_samples=5, seed=0)
        assert abs(_angle_difference(table['position_angle'][0].value,
                                     angle)) < 4.0
        assert float(table['axis_ratio'][0]) == pytest.approx(0.4, abs=0.08)
        assert float(table['r_eff'][0].value) == pytest.approx(1.6, rel=0.15)
        assert bool(table['flag'][0] & SourceFlags.OUT_OF_RANGE) is flagged


def test_wild_flux_flagged():
    # A flux far outside the trained flux-to-stamp ratios (an overflowing
    # output on pure noise) is flagged OUT_OF_RANGE, not returned clean.
    from astrodl_plugins import get_estimator
    from astrodl_plugins.core.context import PredictContext
    from astrodl_plugins.core.flags import SourceFlags

    estimator = get_estimator('galaxy-structure')
    context = PredictContext(options={}, n_samples=2, seed=0, batch_size=8,
                             device='cpu:0', quantiles=None)
    context.usable = np.ones(2, bool)
    context.aux = {'norm': np.array([10.0, 10.0])}
    ratio = np.exp(estimator.target_mean_[5])
    values = {'flux': np.array([[10.0 * ratio] * 2, [1e215] * 2])}
    flags = estimator._range_flags(values, context)
    assert not flags[0] & SourceFlags.OUT_OF_RANGE
    assert flags[1] & SourceFlags.OUT_OF_RANGE
