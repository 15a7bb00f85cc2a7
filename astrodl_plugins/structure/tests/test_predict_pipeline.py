# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
GalaxyStructure specifics of the predict pipeline, with a tiny untrained
network: ``r_eff`` in arcsec or pixels, position angles east of north or
from +x, the PSF FWHM as an angle, the config and network it saves.

The generic pipeline (columns, seeds, flags, errors...) is tested with the
core's tiny estimators in ``astrodl_plugins/core/tests``.
"""

import json

import numpy as np
import pytest
from astropy import units as u

from astrodl_plugins.core.store import (
    UnverifiedPresetWarning,
    load_keras_model,
)
from astrodl_plugins.core.tests.tiny import (
    CENTERS,
    SCALE,
    image_data,
    make_ccd,
    make_wcs,
)
from astrodl_plugins.structure import GalaxyStructure
from astrodl_plugins.structure.network import build_network

STAMP = 32
OUTPUTS = ('sersic_n', 'r_eff', 'axis_ratio', 'position_angle', 'flux')
KWARGS = dict(n_samples=6, seed=3)


def tiny_galaxy_structure(seed=0):
    """An untrained, tiny GalaxyStructure (no shipped weights needed)."""
    import keras

    keras.utils.set_random_seed(seed)
    estimator = GalaxyStructure(stamp_size=STAMP, widths=(4, 4, 4), dense=8)
    estimator.model_ = build_network(STAMP, (4, 4, 4), 8, 0.1)
    estimator.target_mean_ = [0.0] * 6
    estimator.target_std_ = [1.0] * 6
    estimator.error_scale_ = {}
    estimator.error_scale_tta_ = {}
    return estimator


@pytest.fixture(scope='module')
def estimator():
    return tiny_galaxy_structure()


@pytest.fixture(scope='module')
def table(estimator):
    return estimator.predict(make_ccd(), positions=CENTERS,
                             quantiles=(0.16, 0.84), **KWARGS)


class TestColumns:
    def test_columns(self, table):
        assert GalaxyStructure.output_names == OUTPUTS
        assert table.colnames[:4] == ['label', 'x_centroid', 'y_centroid',
                                      'sky_centroid']
        assert table.colnames[-2:] == ['rescale', 'flag']
        assert table.colnames[4:-2] == [
            name + suffix for name in OUTPUTS
            for suffix in ('', '_err', '_q16', '_q84')]
        for name in OUTPUTS:
            assert np.isfinite(table[name]).all(), name

    def test_units_with_wcs(self, table):
        assert table['r_eff'].unit == u.arcsec
        assert table['r_eff_err'].unit == u.arcsec
        assert table['r_eff_q16'].unit == u.arcsec
        assert table['flux'].unit == u.electron / u.s
        assert table['position_angle'].unit == u.deg
        assert table['sersic_n'].unit is None
        assert table['axis_ratio'].unit is None
        pa = table['position_angle'].value
        assert ((pa >= 0) & (pa < 180)).all()
        for name in ('position_angle_q16', 'position_angle_q84'):
            assert ((table[name].value >= 0)
                    & (table[name].value < 180)).all()

    def test_meta(self, table):
        meta = table.meta
        assert meta['estimator'] == 'galaxy-structure'
        assert meta['angle_convention'] == 'east of north'
        assert meta['r_eff_unit'] == 'arcsec'
        assert meta['r_eff_convention'] == \
            'half-light radius along the semi-major axis'
        assert 'pixel_scale' in meta


class TestPixelsAndArcsec:
    def test_without_wcs(self, estimator):
        ccd = make_ccd(wcs=False)
        pix = estimator.predict(ccd, positions=CENTERS, **KWARGS)
        assert pix['r_eff'].unit == u.pix
        assert pix.meta['r_eff_unit'].startswith('pix')
        assert pix.meta['angle_convention'] == 'counter-clockwise from +x'
        assert 'pixel_scale' not in pix.meta
        scaled = estimator.predict(ccd, positions=CENTERS,
                                   pixel_scale=SCALE * u.arcsec / u.pix,
                                   **KWARGS)
        assert scaled['r_eff'].unit == u.arcsec
        np.testing.assert_allclose(scaled['r_eff'].value,
                                   SCALE * pix['r_eff'].value, rtol=1e-6)
        np.testing.assert_allclose(scaled['r_eff_err'].value,
                                   SCALE * pix['r_eff_err'].value, rtol=1e-6)
        np.testing.assert_allclose(scaled['sersic_n'], pix['sersic_n'])
        # A pixel scale alone does not orient the image on the sky.
        np.testing.assert_allclose(scaled['position_angle'],
                                   pix['position_angle'])
        assert scaled.meta['angle_convention'] == 'counter-clockwise from +x'

    def test_wcs_same_scale_as_pixel_scale(self, estimator):
        with_wcs = estimator.predict(make_ccd(), positions=CENTERS, **KWARGS)
        scaled = estimator.predict(make_ccd(wcs=False), positions=CENTERS,
                                   pixel_scale=SCALE * u.arcsec, **KWARGS)
        np.testing.assert_allclose(with_wcs['r_eff'], scaled['r_eff'],
                                   rtol=1e-6)

    def test_sky_angle(self, estimator):
        # make_wcs has north up and east left (cdelt1 < 0): the pixel
        # angle from +x maps to 270 + angle east of north, modulo 180.
        sky = estimator.predict(make_ccd(), positions=CENTERS, **KWARGS)
        pix = estimator.predict(make_ccd(wcs=False), positions=CENTERS,
                                **KWARGS)
        expected = (270.0 + pix['position_angle'].value) % 180.0
        difference = (sky['position_angle'].value - expected + 90) % 180 - 90
        np.testing.assert_allclose(difference, 0.0, atol=1e-3)

    def test_flipped_wcs(self, estimator):
        wcs = make_wcs()
        wcs.wcs.cdelt = [SCALE / 3600, SCALE / 3600]
        ccd = make_ccd()
        ccd.wcs = wcs
        flipped = estimator.predict(ccd, positions=CENTERS, **KWARGS)
        pix = estimator.predict(make_ccd(wcs=False), positions=CENTERS,
                                **KWARGS)
        expected = (270.0 - pix['position_angle'].value) % 180.0
        difference = (flipped['position_angle'].value - expected + 90) \
            % 180 - 90
        np.testing.assert_allclose(difference, 0.0, atol=1e-3)

    def test_predict_stamps_in_pixels(self, estimator):
        stamps = np.stack([image_data()[14:46, 14:46]] * 2).astype(
            np.float32)
        table = estimator.predict_stamps(stamps, psf_fwhm=3.0, **KWARGS)
        assert table['r_eff'].unit == u.pix
        assert table.meta['angle_convention'] == 'counter-clockwise from +x'


class TestPSFAngle:
    def test_angle_with_wcs(self, estimator, table):
        angle = estimator.predict(make_ccd(meta=False), positions=CENTERS,
                                  psf_fwhm=0.6 * u.arcsec,
                                  quantiles=(0.16, 0.84), **KWARGS)
        # 0.6 arcsec at 0.2 arcsec/pix is the 3 pixels of the meta.
        np.testing.assert_allclose(angle['r_eff'], table['r_eff'], rtol=1e-5)
        np.testing.assert_array_equal(angle['flag'], table['flag'])

    def test_angle_needs_pixel_scale(self, estimator):
        with pytest.raises(ValueError,
                           match='psf_fwhm is an angle.*pixel scale'):
            estimator.predict(make_ccd(wcs=False, meta=False),
                              positions=CENTERS, psf_fwhm=0.6 * u.arcsec,
                              **KWARGS)

    def test_changes_result(self, estimator, table):
        other = estimator.predict(make_ccd(), positions=CENTERS,
                                  psf_fwhm=4.5, quantiles=(0.16, 0.84),
                                  **KWARGS)
        assert not np.array_equal(other['r_eff'], table['r_eff'])


@pytest.fixture(scope='module')
def saved(estimator, tmp_path_factory):
    return estimator.save(tmp_path_factory.mktemp('gs') / 'tiny')


class TestSaved:
    def test_config(self, saved):
        config = json.loads((saved / 'config.json').read_text())
        assert config['class'] == \
            'astrodl_plugins.structure.estimator.GalaxyStructure'
        assert config['name'] == 'galaxy-structure'
        assert config['params'] == {'stamp_size': STAMP, 'widths': [4, 4, 4],
                                    'dense': 8, 'dropout': 0.1}
        assert config['state']['target_mean'] == [0.0] * 6
        assert config['state']['target_std'] == [1.0] * 6

    def test_network(self, saved):
        model = load_keras_model(saved / 'model.keras')
        assert model.name == 'galaxy_structure'
        assert [t.name for t in model.inputs] == ['image', 'psf_fwhm']

    def test_round_trip(self, estimator, saved):
        # A preset saved here is intact but not one of the shipped ones.
        with pytest.warns(UnverifiedPresetWarning, match='not a shipped'):
            loaded = GalaxyStructure.from_preset(saved)
        assert loaded.widths == (4, 4, 4)
        assert loaded.target_mean_ == estimator.target_mean_
        assert loaded.target_std_ == estimator.target_std_
        assert loaded.error_scale_ == {}
        stamps = np.stack([image_data()[14:46, 14:46]] * 2).astype(
            np.float32)
        kwargs = dict(psf_fwhm=3.0, quantiles=(0.16, 0.84), **KWARGS)
        before = estimator.predict_stamps(stamps, **kwargs)
        after = loaded.predict_stamps(stamps, **kwargs)
        for name in before.colnames:
            np.testing.assert_array_equal(before[name], after[name],
                                          err_msg=name)
