# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The ``spec-redshift`` estimator's pipeline: inputs, units, resampling,
posterior columns, flags and bad input (with tiny untrained networks:
the shipped model is tested in test_shipped.py).
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import InverseVariance, NDData, StdDevUncertainty

from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.core.series import read_series
from astrodl_plugins.specz._resample import (
    model_grid,
    resample_series,
    spectrum_class,
)
from astrodl_plugins.specz.estimator import (
    SpecRedshift,
    network_input,
    posterior_quantiles,
)

pytest.importorskip('specutils')
pytest.importorskip('galsim')


@pytest.fixture(scope='module')
def estimator():
    """An untrained estimator with a tiny network (the pipeline)."""
    import keras

    keras.utils.set_random_seed(0)
    est = SpecRedshift(widths=(4,), dense=8)
    est.model_ = est.build()
    est.temperature_ = 1.0
    return est


@pytest.fixture(scope='module')
def simulated():
    from astrodl_plugins.simulate.spectra import simulate_spectra

    return simulate_spectra(4, seed=3)


def _fixed(estimator, logits):
    """A copy of ``estimator`` whose network always returns ``logits``."""
    import keras
    from keras import layers

    from astrodl_plugins.core.mc import MCDropout

    spectrum = keras.Input((estimator.n_pixels, 3))
    x = layers.Flatten()(spectrum)
    x = layers.Dense(8, kernel_initializer='zeros')(x)
    x = MCDropout(0.5)(x)
    out = layers.Dense(estimator.n_bins, kernel_initializer='zeros',
                       bias_initializer=keras.initializers.Constant(
                           np.asarray(logits, np.float32)))(x)
    est = SpecRedshift(**estimator.get_params())
    est.model_ = keras.Model(spectrum, out)
    est.temperature_ = 1.0
    return est


def _spectrum(nddata):
    return spectrum_class()(
        spectral_axis=nddata.meta['spectral_axis'],
        flux=nddata.data * nddata.unit, uncertainty=nddata.uncertainty,
        mask=nddata.mask)


class TestPredict:
    def test_columns_units_and_posterior(self, estimator, simulated):
        spectra, _ = simulated
        table = estimator.predict(spectra, n_samples=5, seed=1)
        assert len(table) == 4
        assert list(table['index']) == [0, 1, 2, 3]
        for name in ('z', 'z_err', 'z_q16', 'z_q84', 'z_mode',
                     'p_multimodal', 'entropy', 'coverage', 'flag'):
            assert name in table.colnames
        posterior = np.asarray(table['posterior'])
        assert posterior.shape == (4, 900)
        assert np.allclose(posterior.sum(1), 1, atol=1e-4)
        z = np.asarray(table['z'])
        assert np.all((z >= 0.9) & (z < 1.8))
        assert np.all(np.asarray(table['z_q16']) <= np.asarray(table['z_q84']))
        assert np.all(np.asarray(table['z_err']) > 0)
        assert np.allclose(table['coverage'], 1.0, atol=0.01)
        assert table.meta['z_bins'] == {'z_min': 0.9, 'z_step': 0.001,
                                        'n_bins': 900}
        assert table.meta['resampler'] == 'specutils FluxConservingResampler'

    def test_specutils_spectrum_equals_nddata(self, estimator, simulated):
        spectra, _ = simulated
        a = estimator.predict(spectra[:2], n_samples=4, seed=2)
        b = estimator.predict([_spectrum(s) for s in spectra[:2]],
                              n_samples=4, seed=2)
        np.testing.assert_allclose(a['z'], b['z'], rtol=1e-6)
        np.testing.assert_allclose(a['posterior'], b['posterior'], atol=1e-6)

    def test_2d_spectrum_is_a_batch(self, estimator, simulated):
        spectra, _ = simulated
        axis = spectra[0].meta['spectral_axis']
        flux = np.stack([s.data for s in spectra[:3]]) * spectra[0].unit
        batch = spectrum_class()(spectral_axis=axis, flux=flux)
        table = estimator.predict(batch, n_samples=4, seed=2)
        assert list(table['index']) == [0, 1, 2]
        rows = estimator.predict([spectrum_class()(spectral_axis=axis,
                                                   flux=row) for row in flux],
                                 n_samples=4, seed=2)
        assert np.isfinite(table['z']).all()
        np.testing.assert_allclose(table['posterior'], rows['posterior'],
                                   atol=1e-6)

    def test_frequency_axis_and_fnu_give_the_same(self, estimator, simulated):
        spectra, _ = simulated
        s = spectra[0]
        wavelength = s.meta['spectral_axis']
        flux = s.data * s.unit
        fnu = flux.to(u.mJy, equivalencies=u.spectral_density(wavelength))
        frequency = wavelength.to(u.THz, equivalencies=u.spectral())
        other = NDData(fnu.value, unit=fnu.unit, mask=s.mask,
                       meta={'spectral_axis': frequency})
        plain = NDData(s.data, unit=s.unit, mask=s.mask,
                       meta={'spectral_axis': wavelength})
        a = estimator.predict(plain, n_samples=4, seed=3)
        b = estimator.predict(other, n_samples=4, seed=3)
        np.testing.assert_allclose(a['posterior'], b['posterior'], atol=1e-4)

    def test_flux_scale_does_not_matter(self, estimator, simulated):
        spectra, _ = simulated
        s = spectra[1]
        scaled = NDData(s.data * 1000, unit=s.unit / 1000, mask=s.mask,
                        uncertainty=InverseVariance(s.uncertainty.array / 1e6),
                        meta=s.meta)
        a = estimator.predict(s, n_samples=4, seed=3)
        b = estimator.predict(scaled, n_samples=4, seed=3)
        np.testing.assert_allclose(a['posterior'], b['posterior'], atol=1e-5)

    def test_input_not_mutated(self, estimator, simulated):
        spectra, _ = simulated
        s = spectra[2]
        before = (s.data.copy(), s.mask.copy(), s.uncertainty.array.copy())
        estimator.predict(s, n_samples=3, seed=0)
        np.testing.assert_array_equal(s.data, before[0])
        np.testing.assert_array_equal(s.mask, before[1])
        np.testing.assert_array_equal(s.uncertainty.array, before[2])

    def test_same_seed_same_table(self, estimator, simulated):
        spectra, _ = simulated
        a = estimator.predict(spectra[:2], n_samples=5, seed=11)
        b = estimator.predict(spectra[:2], n_samples=5, seed=11)
        np.testing.assert_array_equal(a['z'], b['z'])

    def test_quantiles_asked_for_come_from_the_posterior(self, estimator,
                                                         simulated):
        spectra, _ = simulated
        table = estimator.predict(spectra[:2], n_samples=10, seed=1,
                                  quantiles=(0.16, 0.5, 0.84))
        edges = estimator.z_edges()
        expected = posterior_quantiles(np.asarray(table['posterior']),
                                       edges, (0.16, 0.5, 0.84))
        np.testing.assert_allclose(table['z_q50'], expected[:, 1])
        np.testing.assert_allclose(table['z_q16'], expected[:, 0])


class TestPosteriorColumns:
    def test_single_peak(self, estimator, simulated):
        spectra, _ = simulated
        logits = np.full(900, -20.0)
        logits[400:403] = [5.0, 6.0, 5.0]  # peak at bin 401: z = 1.3015
        table = _fixed(estimator, logits).predict(spectra[0], n_samples=5,
                                                  seed=0)
        assert table['z_mode'][0] == pytest.approx(1.3015)
        assert table['z'][0] == pytest.approx(1.3015, abs=1e-6)
        assert 0 < table['z_err'][0] < 0.002
        assert table['p_multimodal'][0] < 1e-6
        assert not table['flag'][0] & SourceFlags.MULTIMODAL
        assert table['z_q16'][0] < 1.3015 < table['z_q84'][0]

    def test_two_peaks_are_flagged(self, estimator, simulated):
        spectra, _ = simulated
        logits = np.full(900, -20.0)
        logits[200] = 5.0
        logits[600] = 4.8
        table = _fixed(estimator, logits).predict(spectra[0], n_samples=5,
                                                  seed=0)
        assert table['z_mode'][0] == pytest.approx(1.1005)
        # z is the main peak's, not the mean of the two peaks.
        assert table['z'][0] == pytest.approx(1.1005, abs=1e-6)
        assert table['p_multimodal'][0] == pytest.approx(
            np.exp(4.8) / (np.exp(5) + np.exp(4.8)), abs=1e-3)
        assert table['flag'][0] & SourceFlags.MULTIMODAL
        assert table['z_q16'][0] < 1.2 < table['z_q84'][0]

    def test_quantiles_of_a_flat_posterior(self):
        edges = np.linspace(0, 1, 11)
        values = posterior_quantiles(np.full((1, 10), 0.1), edges,
                                     [0.16, 0.5, 0.84])
        np.testing.assert_allclose(values[0], [0.16, 0.5, 0.84])


class TestBadInput:
    def test_axis_without_unit(self, estimator, simulated):
        spectra, _ = simulated
        s = spectra[0]
        bad = NDData(s.data, unit=s.unit,
                     meta={'spectral_axis': s.meta['spectral_axis'].value})
        with pytest.raises(ValueError, match='has no unit'):
            estimator.predict(bad, n_samples=2)

    def test_no_spectral_axis(self, estimator):
        with pytest.raises(ValueError, match='no spectral axis'):
            estimator.predict(np.ones((2, 414)), n_samples=2)

    def test_axis_not_spectral(self, estimator, simulated):
        s = simulated[0][0]
        bad = NDData(s.data, meta={'spectral_axis': np.arange(414) * u.s})
        with pytest.raises(ValueError, match='not a wavelength'):
            estimator.predict(bad, n_samples=2)

    def test_all_masked_alone_raises(self, estimator, simulated):
        s = simulated[0][0]
        bad = NDData(s.data, unit=s.unit, mask=np.ones(s.data.shape, bool),
                     meta=s.meta)
        with pytest.raises(ValueError, match='every pixel is masked'):
            estimator.predict(bad, n_samples=2)

    def test_all_masked_in_a_batch_is_unusable(self, estimator, simulated):
        spectra, _ = simulated
        s = spectra[0]
        bad = NDData(s.data, unit=s.unit, mask=np.ones(s.data.shape, bool),
                     meta=s.meta)
        table = estimator.predict([spectra[1], bad], n_samples=3, seed=0)
        assert table['flag'][1] & SourceFlags.UNUSABLE
        assert np.isnan(table['z'][1]) and np.isnan(table['z_mode'][1])
        assert np.isnan(np.asarray(table['posterior'][1])).all()
        assert not table['flag'][0] & SourceFlags.UNUSABLE

    def test_outside_the_band(self, estimator, simulated):
        s = simulated[0][0]
        optical = NDData(s.data, unit=s.unit,
                         meta={'spectral_axis': s.meta['spectral_axis'] / 2})
        with pytest.raises(ValueError, match="within the model's band"):
            estimator.predict(optical, n_samples=2)

    def test_partial_coverage_is_flagged(self, estimator, simulated):
        s = simulated[0][0]
        half = slice(0, 250)
        part = NDData(s.data[half], unit=s.unit, mask=s.mask[half],
                      meta={'spectral_axis': s.meta['spectral_axis'][half]})
        table = estimator.predict([part, s], n_samples=3, seed=0)
        assert table['flag'][0] & SourceFlags.PARTIAL_COVERAGE
        assert 0.5 < table["coverage"][0] < 0.6
        assert not table['flag'][1] & SourceFlags.PARTIAL_COVERAGE

    def test_logarithmic_flux_refused(self, estimator, simulated):
        s = simulated[0][0]
        mags = NDData(np.full(414, 20.0), unit=u.ABmag, meta=s.meta)
        with pytest.raises(ValueError, match='logarithmic'):
            estimator.predict(mags, n_samples=2)

    def test_unknown_option(self, estimator, simulated):
        with pytest.raises(TypeError, match='unexpected keyword'):
            estimator.predict(simulated[0][0], n_samples=2, z_max=3)


class TestResampling:
    def _series(self, wavelength, flux, mask=None, error=None):
        data = NDData(flux, mask=mask, meta={'spectral_axis': wavelength},
                      uncertainty=None if error is None
                      else StdDevUncertainty(error))
        return read_series(data)[0]

    def test_flux_conserving_on_a_finer_input(self):
        wavelength, edges = model_grid(12000.0, 1 / 900, 414)
        fine, fine_edges = model_grid(12000.0, 1 / 3600, 414 * 4)
        flux = 3.0 + 0 * fine
        flux_out, ivar, mask, coverage = resample_series(
            self._series(fine * u.AA, flux, error=np.ones_like(fine)),
            wavelength, edges)
        good = ~mask
        assert good.sum() > 400
        np.testing.assert_allclose(flux_out[good], 3.0, rtol=1e-6)
        # Four input pixels of variance 1 per output pixel: variance 1/4.
        np.testing.assert_allclose(ivar[good][5:-5], 4.0, rtol=0.05)
        assert coverage == pytest.approx(1.0, abs=1e-3)

    def test_masked_pixels_mask_their_model_pixels(self):
        wavelength, edges = model_grid(12000.0, 1 / 900, 414)
        flux = np.ones(414)
        mask = np.zeros(414, bool)
        mask[100:103] = True
        _, ivar, out_mask, _ = resample_series(
            self._series(wavelength * u.AA, flux, mask, np.ones(414)),
            wavelength, edges)
        assert out_mask[100:103].all()
        assert not out_mask[110:300].any()
        assert (ivar[out_mask] == 0).all()

    def test_without_uncertainty_a_noise_is_estimated(self):
        wavelength, edges = model_grid(12000.0, 1 / 900, 414)
        rng = np.random.default_rng(0)
        flux = 5 + rng.normal(0, 0.5, 414)
        _, ivar, mask, _ = resample_series(
            self._series(wavelength * u.AA, flux), wavelength, edges)
        assert np.ptp(ivar[~mask]) < 1e-9
        assert 1 / np.sqrt(ivar[~mask][0]) == pytest.approx(0.5, rel=0.2)

    def test_network_input_is_unit_free(self):
        flux = np.array([[1.0, 2.0, 3.0, np.nan]])
        ivar = np.array([[1.0, 1.0, 0.0, 1.0]])
        mask = np.array([[False, False, False, False]])
        x = network_input(flux, ivar, mask)
        y = network_input(flux * 1e-17, ivar * 1e34, mask)
        np.testing.assert_allclose(x, y, rtol=1e-5)
        assert x[0, :, 1].tolist() == [1, 1, 0, 0]
        assert x[0, 2].tolist() == [0, 0, 0]


class TestFit:
    def test_fit_save_and_load(self, simulated, tmp_path):
        from astrodl_plugins.simulate.spectra import simulate_spectrum_arrays

        _, flux, ivar, mask, truth = simulate_spectrum_arrays(24, seed=5)
        est = SpecRedshift(widths=(4,), dense=8)
        assert est.fit(flux, truth['z'], ivar, mask, epochs=1,
                       batch_size=8) is est
        assert len(est.history_['loss']) == 1
        est.save(tmp_path / 'preset')
        loaded = SpecRedshift.from_preset(tmp_path / 'preset')
        spectra, _ = simulated
        a = est.predict(spectra[:2], n_samples=3, seed=4)
        b = loaded.predict(spectra[:2], n_samples=3, seed=4)
        np.testing.assert_allclose(a['z'], b['z'])
        assert loaded.temperature_ == est.temperature_

    def test_bad_training_arrays(self):
        est = SpecRedshift(widths=(4,), dense=8)
        with pytest.raises(ValueError, match='flux must have shape'):
            est.fit(np.ones((3, 100)), [1.0] * 3, np.ones((3, 100)),
                    np.zeros((3, 100), bool))
        with pytest.raises(ValueError, match='z must hold'):
            est.fit(np.ones((3, 414)), [0.1, 1.0, 1.2], np.ones((3, 414)),
                    np.zeros((3, 414), bool))

    def test_familiarity_adds_ood_score(self, estimator, simulated):
        spectra, _ = simulated
        from astrodl_plugins.simulate.spectra import simulate_spectrum_arrays

        _, flux, ivar, mask, _ = simulate_spectrum_arrays(40, seed=6)
        est = SpecRedshift(**estimator.get_params())
        est.model_ = estimator.model_
        est.temperature_ = 1.0
        features = est.mc_engine().features([network_input(flux, ivar,
                                                           mask)])
        est.fit_familiarity(features[:30], held_out=features[30:],
                            n_components=4)
        table = est.predict(spectra, n_samples=3, seed=0)
        assert np.isfinite(table['ood_score']).all()
