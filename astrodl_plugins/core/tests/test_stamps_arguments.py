# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The source-stamp family: arguments and errors, inputs left untouched,
MC samples and the parts of the uncertainties.
"""

import copy

import numpy as np
import pytest
from astropy import units as u

from astrodl_plugins.core.device import available_gpus
from astrodl_plugins.core.tests.tiny import (
    CENTERS,
    SCALE,
    STAMP_KWARGS,
    STAMP_OUTPUTS,
    TinyStamp,
    assert_same_outputs,
    blob_stamps,
    image_data,
    make_ccd,
    make_segmentation,
)
from astrodl_plugins.exceptions import (
    DeviceNotAvailableError,
    NotFittedError,
)

OUTPUTS, KWARGS = STAMP_OUTPUTS, STAMP_KWARGS


class TestArguments:
    @pytest.mark.parametrize('value', [-1, 1.5, True, '5'])
    def test_n_samples(self, estimator, value):
        with pytest.raises(ValueError, match='n_samples must be an integer'):
            estimator.predict(make_ccd(), positions=CENTERS, n_samples=value)

    @pytest.mark.parametrize('value', [0, -3, 2.0])
    def test_batch_size(self, estimator, value):
        with pytest.raises(ValueError, match='batch_size must be an integer'):
            estimator.predict(make_ccd(), positions=CENTERS,
                              batch_size=value)

    @pytest.mark.parametrize('value', [-1, 1.5, True])
    def test_seed(self, estimator, value):
        with pytest.raises(ValueError, match='seed must be None or an '
                                             'integer'):
            estimator.predict(make_ccd(), positions=CENTERS, seed=value)

    @pytest.mark.parametrize('value', [(0.0, 0.5), (1.2,), 1.0])
    def test_quantiles(self, estimator, value):
        with pytest.raises(ValueError, match=r'quantiles must lie in'):
            estimator.predict(make_ccd(), positions=CENTERS,
                              quantiles=value)

    def test_single_quantile(self, estimator):
        table = estimator.predict(make_ccd(), positions=CENTERS,
                                  quantiles=0.5, **KWARGS)
        assert 'flux_q50' in table.colnames
        assert table.meta['quantiles'] == [0.5]

    def test_missing_psf_fwhm(self, estimator):
        with pytest.raises(ValueError, match='psf_fwhm is required'):
            estimator.predict(make_ccd(meta=False), positions=CENTERS,
                              **KWARGS)

    @pytest.mark.parametrize('value', [0.0, -2.0, np.nan])
    def test_bad_psf_fwhm(self, estimator, value):
        with pytest.raises(ValueError, match='psf_fwhm must be positive'):
            estimator.predict(make_ccd(meta=False), positions=CENTERS,
                              psf_fwhm=value, **KWARGS)

    def test_psf_fwhm_not_length(self, estimator):
        with pytest.raises(ValueError, match='in pixels or an angle'):
            estimator.predict(make_ccd(), positions=CENTERS,
                              psf_fwhm=3.0 * u.m, **KWARGS)

    def test_psf_fwhm_angle_needs_pixel_scale(self, estimator):
        with pytest.raises(ValueError,
                           match='psf_fwhm is an angle.*pixel scale'):
            estimator.predict(make_ccd(wcs=False, meta=False),
                              positions=CENTERS, psf_fwhm=0.6 * u.arcsec,
                              **KWARGS)

    def test_psf_fwhm_angle_with_wcs(self, estimator, table):
        angle = estimator.predict(make_ccd(meta=False), positions=CENTERS,
                                  psf_fwhm=0.6 * u.arcsec,
                                  quantiles=(0.16, 0.84), **KWARGS)
        # 0.6 arcsec at 0.2 arcsec/pix is the 3 pixels of the meta.
        assert_same_outputs(angle, table, rtol=1e-5)
        np.testing.assert_array_equal(angle['flag'], table['flag'])

    def test_psf_fwhm_angle_with_pixel_scale(self, estimator, table):
        angle = estimator.predict(make_ccd(wcs=False, meta=False),
                                  positions=CENTERS, psf_fwhm=0.6 * u.arcsec,
                                  pixel_scale=SCALE * u.arcsec,
                                  quantiles=(0.16, 0.84), **KWARGS)
        assert_same_outputs(angle, table, rtol=1e-5)

    def test_psf_fwhm_keyword_matches_meta(self, estimator, table):
        keyword = estimator.predict(make_ccd(meta=False), positions=CENTERS,
                                    psf_fwhm=3.0 * u.pix,
                                    quantiles=(0.16, 0.84), **KWARGS)
        for name in OUTPUTS:
            np.testing.assert_array_equal(keyword[name], table[name])

    def test_psf_fwhm_keyword_wins_over_meta(self, estimator, table):
        other = estimator.predict(make_ccd(), positions=CENTERS,
                                  psf_fwhm=4.5, quantiles=(0.16, 0.84),
                                  **KWARGS)
        assert not np.array_equal(other['size'], table['size'])

    def test_psf_fwhm_per_source(self, estimator, table):
        each = estimator.predict(make_ccd(meta=False), positions=CENTERS,
                                 psf_fwhm=[3.0, 3.0, 3.0],
                                 quantiles=(0.16, 0.84), **KWARGS)
        assert_same_outputs(each, table, rtol=0)

    def test_psf_ignored_without_psf(self, tiny_stamp_nopsf):
        # psf = None: neither a keyword nor the meta is needed.
        first = tiny_stamp_nopsf.predict(make_ccd(meta=False),
                                         positions=CENTERS, **KWARGS)
        second = tiny_stamp_nopsf.predict(make_ccd(), positions=CENTERS,
                                          psf_fwhm=4.0, **KWARGS)
        assert_same_outputs(first, second, rtol=0)

    def test_unknown_keyword(self, estimator):
        with pytest.raises(TypeError, match=r"TinyStamp\.predict got "
                                            r"unexpected keyword.*'psf_fwhmm'"):
            estimator.predict(make_ccd(), positions=CENTERS, psf_fwhmm=3.0,
                              **KWARGS)

    def test_unknown_keyword_predict_stamps(self, estimator):
        with pytest.raises(TypeError, match='colour'):
            estimator.predict_stamps(blob_stamps(2)[0], psf_fwhm=3.0,
                                     colour='red')

    def test_bands_refused_for_one_image(self, estimator):
        with pytest.raises(ValueError, match='measures one image'):
            estimator.predict(make_ccd(), positions=CENTERS, bands=('r',),
                              **KWARGS)

    def test_tta_refused_without_support(self, tiny_stamp_nopsf):
        with pytest.raises(ValueError, match='does not support tta=True'):
            tiny_stamp_nopsf.predict(make_ccd(), positions=CENTERS, tta=True,
                                     **KWARGS)

    def test_boolean_data(self, estimator):
        with pytest.raises(TypeError, match='data must be numeric'):
            estimator.predict(np.ones((80, 100), bool), positions=CENTERS,
                              psf_fwhm=3.0, **KWARGS)

    def test_integer_data(self, estimator):
        data = np.round(image_data() * 10).astype(np.int32)
        table = estimator.predict(data, positions=CENTERS, psf_fwhm=3.0,
                                  **KWARGS)
        for name in OUTPUTS:
            assert np.isfinite(table[name]).all(), name

    def test_not_fitted(self):
        with pytest.raises(NotFittedError, match='TinyStamp has no trained '
                                                 'model network'):
            TinyStamp().predict(make_ccd(), positions=CENTERS)

    @pytest.mark.skipif(available_gpus() > 0, reason='a GPU is visible')
    def test_gpu_unavailable(self, estimator):
        with pytest.raises(DeviceNotAvailableError, match="device='gpu'"):
            estimator.predict(make_ccd(), positions=CENTERS, device='gpu',
                              **KWARGS)

    def test_bad_device(self, estimator):
        with pytest.raises(ValueError, match="device must be 'auto'"):
            estimator.predict(make_ccd(), positions=CENTERS, device='tpu',
                              **KWARGS)

    def test_cpu_device(self, estimator, table):
        cpu = estimator.predict(make_ccd(), positions=CENTERS, device='cpu',
                                quantiles=(0.16, 0.84), **KWARGS)
        assert cpu.meta['device'] == 'cpu:0'
        if table.meta['device'] == 'cpu:0':
            np.testing.assert_array_equal(cpu['size'], table['size'])

    def test_batch_size_smaller_than_n(self, estimator):
        first = estimator.predict(make_ccd(), positions=CENTERS,
                                  batch_size=2, **KWARGS)
        second = estimator.predict(make_ccd(), positions=CENTERS,
                                   batch_size=2, **KWARGS)
        assert len(first) == len(CENTERS)
        np.testing.assert_array_equal(first['size'], second['size'])

    def test_progress_bar(self, estimator, table, capsys):
        again = estimator.predict(make_ccd(), positions=CENTERS,
                                  progress_bar=True, quantiles=(0.16, 0.84),
                                  **KWARGS)
        assert_same_outputs(again, table, rtol=0)
        assert 'tiny-stamp' in capsys.readouterr().err


class TestInputsUntouched:
    def test_ccddata_and_positions(self, estimator):
        data = image_data()
        data[5:8, 5:8] = np.nan
        ccd = make_ccd(data=data)
        ccd.mask[70, 90] = True
        positions = CENTERS.copy()
        before = copy.deepcopy(ccd)
        estimator.predict(ccd, positions=positions, **KWARGS)
        np.testing.assert_array_equal(ccd.data, before.data)
        np.testing.assert_array_equal(ccd.mask, before.mask)
        np.testing.assert_array_equal(ccd.uncertainty.array,
                                      before.uncertainty.array)
        assert dict(ccd.meta) == dict(before.meta)
        assert ccd.wcs.wcs.compare(before.wcs.wcs)
        np.testing.assert_array_equal(positions, CENTERS)

    def test_segmentation(self, estimator):
        segm = make_segmentation()
        before = segm.data.copy()
        estimator.predict(make_ccd(), segmentation_image=segm, **KWARGS)
        np.testing.assert_array_equal(segm.data, before)

    def test_stamps(self, estimator):
        stamps, _ = blob_stamps(3)
        stamps[0, 0, 0] = np.nan
        before = stamps.copy()
        estimator.predict_stamps(stamps, psf_fwhm=3.0, **KWARGS)
        np.testing.assert_array_equal(stamps, before)


    def test_read_only_inputs(self, estimator):
        data = image_data()
        data.flags.writeable = False
        positions = CENTERS.copy()
        positions.flags.writeable = False
        estimator.predict(np.ma.masked_array(data, mask=data > 90),
                          positions=positions, psf_fwhm=3.0, **KWARGS)
        np.testing.assert_array_equal(data, image_data())
        np.testing.assert_array_equal(positions, CENTERS)

    def test_masked_stamps(self, estimator):
        stamps, _ = blob_stamps(2)
        masked = np.ma.masked_array(stamps, mask=np.zeros(stamps.shape, bool))
        masked[0, 1, 1] = np.ma.masked
        table = estimator.predict_stamps(masked, psf_fwhm=3.0, **KWARGS)
        np.testing.assert_array_equal(table['flag'] & 1, [1, 0])
        assert np.ma.getmaskarray(masked).sum() == 1

    @pytest.mark.parametrize('stamps', ['abc', np.ones((2, 16, 16), complex),
                                        np.ones((2, 16, 16), bool)])
    def test_stamps_not_real(self, estimator, stamps):
        with pytest.raises(TypeError, match='stamps must be real numbers'):
            estimator.predict_stamps(stamps, psf_fwhm=3.0, **KWARGS)

class TestReturnSamples:
    def test_samples(self, estimator):
        table, samples = estimator.predict(make_ccd(), positions=CENTERS,
                                           return_samples=True, **KWARGS)
        assert set(samples) == set(OUTPUTS)
        for name, value in samples.items():
            assert isinstance(value, u.Quantity), name
            assert value.shape == (len(CENTERS), KWARGS['n_samples']), name
            assert value.unit == table[name].unit, name
            # Non-circular outputs: the column is the mean of the draws.
            np.testing.assert_allclose(value.mean(axis=1), table[name],
                                       rtol=1e-6)

    def test_samples_nan_for_unusable(self, estimator):
        data = image_data()
        x, y = CENTERS[1].astype(int)
        data[y - 6:y + 7, x - 6:x + 7] = np.nan
        _, samples = estimator.predict(make_ccd(data=data), positions=CENTERS,
                                       return_samples=True, **KWARGS)
        assert np.isnan(samples['size'][1]).all()
        assert np.isfinite(samples['size'][[0, 2]]).all()

    def test_zero_samples_one_draw(self, estimator):
        _, samples = estimator.predict(make_ccd(), positions=CENTERS,
                                       return_samples=True, n_samples=0,
                                       seed=0)
        assert samples['flux'].shape == (len(CENTERS), 1)


class TestUncertaintyParts:
    def test_columns(self, estimator):
        table = estimator.predict(make_ccd(), positions=CENTERS,
                                  uncertainty_parts=True, **KWARGS)
        for name in OUTPUTS:
            epistemic = table[f'{name}_err_epistemic']
            aleatoric = table[f'{name}_err_aleatoric']
            assert epistemic.unit == aleatoric.unit == table[name].unit
            assert (epistemic > 0).all() and (aleatoric > 0).all()
            np.testing.assert_allclose(np.hypot(epistemic, aleatoric),
                                       table[f'{name}_err'], rtol=1e-6)

    def test_error_scale(self, estimator, table, monkeypatch):
        monkeypatch.setattr(estimator, 'error_scale_', {'flux': 2.0})
        scaled = estimator.predict(make_ccd(), positions=CENTERS,
                                   quantiles=(0.16, 0.84),
                                   uncertainty_parts=True, **KWARGS)
        np.testing.assert_allclose(scaled['flux_err'], 2 * table['flux_err'],
                                   rtol=1e-6)
        np.testing.assert_allclose(scaled['size_err'], table['size_err'],
                                   rtol=1e-6)
        # The parts are before the calibration; the quantiles widen too.
        np.testing.assert_allclose(
            np.hypot(scaled['flux_err_epistemic'],
                     scaled['flux_err_aleatoric']), table['flux_err'],
            rtol=1e-6)
        np.testing.assert_allclose(scaled['flux_q84'] - scaled['flux'],
                                   2 * (table['flux_q84'] - table['flux']),
                                   rtol=1e-8)
