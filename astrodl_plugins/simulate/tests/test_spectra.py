# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the galaxy-spectrum simulator."""

import numpy as np
import pytest

pytest.importorskip('galsim')

from astropy import units as u  # noqa: E402
from astropy.nddata import InverseVariance, NDData  # noqa: E402

from astrodl_plugins.simulate.spectra import (  # noqa: E402
    CWW_TEMPLATES,
    EMISSION_LINES,
    SPECTRAL_SETUPS,
    SPECTRUM_FLUX_UNIT,
    calzetti_attenuation,
    lines_in_band,
    simulate_spectra,
    simulate_spectrum_arrays,
    spectral_grid,
)

C_ANGSTROM = 2.99792458e18
HALPHA, HBETA = EMISSION_LINES['halpha'], EMISSION_LINES['hbeta']
OIII = EMISSION_LINES['oiii_5007']


@pytest.fixture(scope='module', params=['nisp', 'optical'])
def pair(request):
    """Noisy and noiseless spectra of the same seed, with their truth."""
    n = 60 if request.param == 'nisp' else 24
    noisy = simulate_spectrum_arrays(n, seed=5, setup=request.param)
    noiseless = simulate_spectrum_arrays(n, seed=5, setup=request.param,
                                         noiseless=True)
    return request.param, noisy, noiseless


def robust_std(values):
    values = values[np.isfinite(values)]
    if values.size < 10:
        return np.nan
    return 1.4826 * np.median(np.abs(values - np.median(values)))


def band_integral(setup, flux):
    """Integral of pixel flux densities over the band, 1e-17 erg/s/cm2."""
    return flux @ np.diff(spectral_grid(setup)[1])


class TestSetupsAndGrids:
    @pytest.mark.parametrize('setup', list(SPECTRAL_SETUPS))
    def test_grid_is_log_uniform_two_pixels_per_resolution_element(self,
                                                                   setup):
        spec = SPECTRAL_SETUPS[setup]
        wavelength, edges = spectral_grid(setup)
        assert wavelength.shape == (spec['n_pixels'],)
        assert spec['n_pixels'] <= 4096
        assert edges[0] == spec['wavelength_range'][0]
        assert spec['wavelength_range'][1] <= edges[-1] < (
            spec['wavelength_range'][1] * (1 + 2 * spec['log_step']))
        ratio = edges[1:] / edges[:-1]
        assert np.allclose(ratio, ratio[0], rtol=1e-12)
        assert np.all((edges[:-1] < wavelength) & (wavelength < edges[1:]))
        # FWHM = lambda / R over the pixel width lambda * ln(ratio).
        pixels_per_fwhm = 1 / (spec['resolving_power'][1] * np.log(ratio[0]))
        assert pixels_per_fwhm == pytest.approx(2.0, rel=0.01)

    def test_issue_ranges(self):
        nisp, optical = SPECTRAL_SETUPS['nisp'], SPECTRAL_SETUPS['optical']
        assert nisp['wavelength_range'] == (12000.0, 19000.0)
        assert nisp['resolving_power'] == (250.0, 450.0)
        assert nisp['z_range'] == (0.9, 1.8)
        assert optical['wavelength_range'] == (3600.0, 9800.0)
        assert optical['z_range'] == (0.0, 1.5)
        assert 1700 <= optical['resolving_power'][0] <= 2000 <= (
            optical['resolving_power'][1]) <= 2300
        assert spectral_grid('optical')[0].size > 3000

    def test_nisp_has_halpha_and_oiii_in_band(self):
        lines = SPECTRAL_SETUPS['nisp']['lines']
        # Halpha over the whole redshift range, [OIII] from z = 1.396.
        assert lines['halpha'] == (0.9, 1.8)
        assert lines['oiii_5007'][0] == pytest.approx(12000 / OIII - 1,
                                                      abs=1e-4)
        assert lines['oiii_5007'][1] == 1.8
        assert 'oii_3729' not in lines  # at 1.04 micron at most
        for z in np.linspace(0.9, 1.799, 60):
            names = lines_in_band('nisp', z)
            assert 'halpha' in names
            assert ('oiii_5007' in names) == (OIII * (1 + z) >= 12000)
        assert 'oiii_5007' in lines_in_band('nisp', 1.5)
        assert 'oiii_5007' not in lines_in_band('nisp', 1.2)

    def test_optical_lines_in_band(self):
        lines = SPECTRAL_SETUPS['optical']['lines']
        assert lines['oii_3729'] == (0.0, 1.5)
        assert lines['halpha'][1] == pytest.approx(9800 / HALPHA - 1,
                                                   abs=1e-4)


class TestCalzetti:
    def test_values_of_the_curve(self):
        def k(wavelength):
            return -2.5 * np.log10(calzetti_attenuation(wavelength, 1.0))

        # k(V) = R_V = 4.05; k(Halpha) = 3.33, k(Hbeta) = 4.60.
        assert k(5500.0) == pytest.approx(4.05, abs=0.01)
        assert k(HALPHA) == pytest.approx(3.33, abs=0.01)
        assert k(HBETA) == pytest.approx(4.60, abs=0.01)
        assert k(1500.0) == pytest.approx(10.33, abs=0.02)
        # The two published pieces meet at 0.63 micron within 0.025.
        assert k(6299.999) == pytest.approx(k(6300.0), abs=0.03)
        grid = np.linspace(1200.0, 22000.0, 500)
        assert np.all(np.diff(k(grid)) < 0)
        assert calzetti_attenuation(0.55 * u.micron, 0.0) == 1.0
        assert calzetti_attenuation(0.55 * u.micron, 0.2) == pytest.approx(
            calzetti_attenuation(5500.0, 0.2))


class TestSimulateSpectrumArrays:
    def test_reproducible_and_independent_of_n(self):
        a = simulate_spectrum_arrays(6, seed=7)
        b = simulate_spectrum_arrays(3, seed=7)
        c = simulate_spectrum_arrays(3, seed=8)
        for x, y in zip(a[1:4], b[1:4]):
            assert np.array_equal(x[:3], y, equal_nan=True)
        assert np.array_equal(a[4]['z'][:3], b[4]['z'])
        assert not np.allclose(a[1][:3], c[1], equal_nan=True)

    def test_shapes_units_and_truth(self, pair):
        setup, (wavelength, flux, ivar, mask, truth), _ = pair
        n, n_pixels = len(truth), SPECTRAL_SETUPS[setup]['n_pixels']
        assert np.array_equal(wavelength, spectral_grid(setup)[0])
        assert flux.shape == ivar.shape == mask.shape == (n, n_pixels)
        assert flux.dtype == ivar.dtype == np.float64 and mask.dtype == bool
        assert np.all(ivar[mask] == 0) and np.all(ivar[~mask] > 0)
        assert np.all(np.isfinite(flux[~mask]))
        assert truth.meta['setup'] == setup
        assert set(truth['kind']) == {'galaxy'}
        low, high = SPECTRAL_SETUPS[setup]['z_range']
        assert np.all((truth['z'] >= low) & (truth['z'] < high))
        assert truth['flux_halpha'].unit.is_equivalent(u.erg / u.s / u.cm ** 2)
        assert truth['ew_halpha'].unit == u.AA
        assert truth['size'].unit == u.arcsec
        assert truth['sigma_v'].unit == u.km / u.s
        low, high = SPECTRAL_SETUPS[setup]['resolving_power']
        assert np.all((truth['resolving_power'] >= low)
                      & (truth['resolving_power'] <= high))
        weights = np.array([truth[f'weight_{name.lower()}']
                            for name in CWW_TEMPLATES])
        assert np.allclose(weights.sum(axis=0), 1.0)
        # Continuum levels: the magnitudes' mean flux densities.
        assert np.all((truth['mag'] >= SPECTRAL_SETUPS[setup]['mag_range'][0])
                      & (truth['mag'] <= SPECTRAL_SETUPS[setup]['mag_range'][1]))

    def test_nisp_resolution_falls_with_size(self):
        *_, truth = simulate_spectrum_arrays(
            40, seed=2, kinds=('galaxy', 'star'), fractions=(0.8, 0.2))
        galaxies = truth['kind'] == 'galaxy'
        order = np.argsort(truth['size'][galaxies])
        assert np.all(np.diff(truth['resolving_power'][galaxies][order]) <= 0)
        assert np.all(truth['resolving_power'][~galaxies] == 450)
        assert np.any(truth['resolving_power'] < 300)

    @pytest.mark.parametrize('setup, z_range', [('nisp', None),
                                                ('optical', (0.05, 0.45))])
    def test_halpha_at_its_observed_wavelength(self, setup, z_range):
        wavelength, flux, _, mask, truth = simulate_spectrum_arrays(
            30, seed=3, setup=setup, z_range=z_range, snr_range=(40, 50))
        strong = np.flatnonzero(truth['ew_halpha'] > 40 * u.AA)
        checked = 0
        for i in strong:
            expected = HALPHA * (1 + truth['z'][i])
            near = np.abs(wavelength / expected - 1) < 0.01
            if mask[i][near].any():
                continue
            peak = wavelength[near][np.argmax(flux[i][near])]
            pixel = expected * SPECTRAL_SETUPS[setup]['log_step']
            assert abs(peak - expected) < pixel
            checked += 1
        assert checked >= 3

    def test_line_width_is_intrinsic_and_instrumental(self):
        """Halpha's width (from its peak and flux): velocity dispersion and
        FWHM = lambda / R in quadrature, and the pixels' own width."""
        wavelength, model, _, _, truth = simulate_spectrum_arrays(
            20, seed=15, setup='optical', z_range=(0.1, 0.4), noiseless=True)
        # Strong enough that the Balmer absorption below hardly matters.
        strong = np.flatnonzero(truth['ew_halpha'] > 40 * u.AA)
        assert strong.size >= 3
        for i in strong:
            centre = HALPHA * (1 + truth['z'][i])
            near = np.abs(wavelength - centre) < 3
            side = (np.abs(wavelength - centre) > 60) & (
                np.abs(wavelength - centre) < 100)
            peak = model[i][near].max() - np.median(model[i][side])
            width = truth['flux_halpha'][i].value / (np.sqrt(2 * np.pi)
                                                     * peak)
            pixel = centre * SPECTRAL_SETUPS['optical']['log_step']
            sigma_v = truth['sigma_v'][i].to_value(u.km / u.s) / 299792.458
            expected = np.sqrt((centre * sigma_v) ** 2 + pixel ** 2 / 12 + (
                centre / truth['resolving_power'][i] / 2.3548) ** 2)
            assert width == pytest.approx(expected, rel=0.1)

    def test_oiii_in_band_at_high_redshift(self):
        """At z = 1.6 [OIII] shows in NISP, with the flux of the truth."""
        wavelength, flux, _, _, truth = simulate_spectrum_arrays(
            20, seed=4, z_range=(1.6, 1.6), noiseless=True)
        centre = OIII * 2.6
        line = np.abs(wavelength - centre) < 60
        side = (np.abs(wavelength - centre) > 150) & (
            np.abs(wavelength - centre) < 400)
        width = np.diff(spectral_grid('nisp')[1])
        strong = np.flatnonzero(truth['ew_oiii_5007'] > 10 * u.AA)
        assert strong.size >= 3
        for i in strong:
            excess = (flux[i][line] - np.median(flux[i][side])) @ width[line]
            assert excess == pytest.approx(truth['flux_oiii_5007'][i].value,
                                           rel=0.1)

    def test_balmer_decrement_and_doublets(self, pair):
        *_, truth = pair[1]
        lines = truth['ew_halpha'] > 0
        assert 0.05 < np.mean(~lines) < 0.7
        truth = truth[lines]
        gas = truth['ebv_gas']
        assert np.allclose(gas, truth['ebv'] / 0.44)

        def intrinsic(name):
            return truth[f'flux_{name}'].value / calzetti_attenuation(
                EMISSION_LINES[name], gas)

        assert np.allclose(intrinsic('halpha') / intrinsic('hbeta'), 2.86)
        assert np.allclose(intrinsic('hgamma') / intrinsic('hbeta'), 0.468)
        assert np.allclose(intrinsic('oiii_5007') / intrinsic('oiii_4959'),
                           2.98)
        assert np.allclose(intrinsic('nii_6583') / intrinsic('nii_6548'), 3.05)
        # Observed decrements are larger, by the dust.
        observed = truth['flux_halpha'] / truth['flux_hbeta']
        assert np.all(observed >= 2.86 - 1e-9)
        assert np.any(observed > 4)

    def test_bpt_star_forming_sequence(self, pair):
        *_, truth = pair[1]
        truth = truth[truth['ew_halpha'] > 0]
        x = np.log10(truth['flux_nii_6583'] / truth['flux_halpha'])
        y = np.log10(truth['flux_oiii_5007'] / truth['flux_hbeta'])
        y_dust_free = y + 0.4 * truth['ebv_gas'] * (
            -2.5 * np.log10(calzetti_attenuation(OIII, 1.0))
            + 2.5 * np.log10(calzetti_attenuation(HBETA, 1.0)))
        # Below the Kauffmann et al. (2003) demarcation, with a spread.
        assert np.all(y_dust_free < 0.61 / (x - 0.05) + 1.3)
        assert np.ptp(x) > 0.5 and np.ptp(y_dust_free) > 0.5

    def test_population(self):
        *_, truth = simulate_spectrum_arrays(300, seed=6)
        ew = truth['ew_halpha'].to_value(u.AA)
        assert ew.max() <= 300 and ew.max() > 150
        assert np.median(ew[ew > 0]) == pytest.approx(20, rel=0.6)
        weights = {name: truth[f'weight_{name.lower()}']
                   for name in CWW_TEMPLATES}
        dominant = np.max(list(weights.values()), axis=0)
        assert np.mean(dominant > 0.5) > 0.6 and np.mean(dominant < 0.9) > 0.3
        early, late = weights['E'] > 0.6, weights['Im'] > 0.6
        assert early.sum() > 10 and late.sum() > 10
        assert np.mean(ew[early] == 0) > 0.5 > np.mean(ew[late] == 0)
        assert np.median(ew[late]) > 5 * np.median(ew[early])
        assert np.mean(truth['ebv'][early]) < np.mean(truth['ebv'][late])
        assert truth['ebv'].min() >= 0 and truth['ebv'].max() <= 0.6
        sigma_v = truth['sigma_v'].to_value(u.km / u.s)
        assert sigma_v.min() >= 50 and sigma_v.max() <= 250

    def test_noise_matches_ivar_and_snr(self, pair):
        """The noise of a noisy-noiseless pair has the variance ivar says
        (sky residuals aside) and the truth's continuum S/N per pixel."""
        setup, (_, flux, ivar, mask, truth), (_, model, *_) = pair
        normalized = np.where(mask, np.nan, flux - model) * np.sqrt(ivar)
        assert robust_std(normalized.ravel()) == pytest.approx(1.0, abs=0.05)
        ratios = []
        for i in range(len(truth)):
            good = ~mask[i]
            from_ivar = np.median(model[i][good] * np.sqrt(ivar[i][good]))
            # Emission lines raise the median a little.
            assert 1.0 - 1e-9 <= from_ivar / truth['snr'][i] < 1.05
            # The noise's actual scale, on the shape ivar gives.
            ratios.append(from_ivar / robust_std(normalized[i])
                          / truth['snr'][i])
        ratios = np.array(ratios)
        if setup == 'optical':  # 4006 pixels: a precise measure
            assert np.all(np.abs(ratios - 1) < 0.15)
        else:  # 414 pixels: the measure scatters by about 6 %
            assert np.median(ratios) == pytest.approx(1.0, abs=0.05)
            assert np.mean(np.abs(ratios - 1) < 0.15) > 0.9
            assert np.all(np.abs(ratios - 1) < 0.25)

    def test_masks_and_gaps(self):
        _, flux, ivar, mask, truth = simulate_spectrum_arrays(
            200, seed=10, snr_range=(20, 20))
        _, model, *_ = simulate_spectrum_arrays(200, seed=10,
                                                snr_range=(20, 20),
                                                noiseless=True)
        gaps = np.isnan(flux)
        assert np.array_equal(gaps.any(axis=1), truth['gap'])
        assert 0.15 < np.mean(truth['gap']) < 0.45
        assert np.all(gaps <= mask)
        assert np.all(gaps.sum(axis=1) <= 0.1 * flux.shape[1])
        for row in gaps[truth['gap']]:  # one contiguous chunk
            assert np.count_nonzero(np.diff(row.astype(int))) <= 2
        scattered = np.mean(mask & ~gaps)
        assert 0.002 < scattered < 0.012
        assert np.allclose(mask.mean(axis=1), truth['mask_fraction'])
        # Cosmic-ray hits stand far above the noise.
        hits = mask & ~gaps & (flux != 0)
        assert np.median(((flux - model) / model)[hits]) > 0.2
        assert not np.isnan(model).any()

    @pytest.mark.parametrize('setup, z', [('nisp', 1.2), ('optical', 0.3)])
    def test_flux_is_conserved(self, setup, z):
        """Pixel sums equal the input's integral (continuum from the
        magnitude, plus the emission lines of the truth)."""
        _, model, _, _, truth = simulate_spectrum_arrays(
            12, seed=11, setup=setup, z_range=(z, z), noiseless=True)
        _, edges = spectral_grid(setup)
        centre = np.sqrt(edges[0] * edges[-1])
        mean = (10 ** (-0.4 * (truth['mag'] + 48.6)) * C_ANGSTROM
                / centre ** 2 / 1e-17)
        expected = mean * (edges[-1] - edges[0])
        for name, rest in EMISSION_LINES.items():
            if edges[0] < rest * (1 + z) < edges[-1]:
                expected += truth[f'flux_{name}'].value
        assert np.any(truth['ew_halpha'] > 50 * u.AA)
        assert band_integral(setup, model) == pytest.approx(expected,
                                                            rel=0.01)

    def test_continuum_follows_templates_and_dust(self):
        """A galaxy's continuum has the shape of its mixture of GalSim's
        CWW templates, redshifted and reddened."""
        galsim = pytest.importorskip('galsim')
        wavelength, model, _, _, truth = simulate_spectrum_arrays(
            40, seed=12, noiseless=True)
        seds = [galsim.SED(f'CWW_{name}_ext.sed', wave_type='Ang',
                           flux_type='flambda') for name in CWW_TEMPLATES]

        def flambda(sed, rest):
            return sed(rest / 10) / rest / (sed(550.0) / 5500)

        def chunk_ratios(i, ebv):
            rest = wavelength / (1 + truth['z'][i])
            expected = sum(truth[f'weight_{name.lower()}'][i]
                           * flambda(sed, rest)
                           for name, sed in zip(CWW_TEMPLATES, seds))
            expected *= calzetti_attenuation(rest, ebv)
            # The Scd and Im files hold smeared [OII], Hbeta and [OIII]
            # lines, which the simulator bridges: compare elsewhere.
            ratio = np.where((rest > 3680) & (rest < 5060), np.nan,
                             model[i] / expected)
            # Medians over chunks of 46 pixels: absorption lines aside.
            chunks = ratio[:414].reshape(9, 46)
            chunks = chunks[np.isfinite(chunks).sum(axis=1) > 20]
            ratio = np.nanmedian(chunks, axis=1)
            return ratio / np.median(ratio)

        # The dustiest (their narrow lines do not move chunk medians).
        dusty = np.argsort(truth['ebv'])[-6:]
        assert truth['ebv'][dusty].min() > 0.15
        for i in dusty:
            ebv = truth['ebv'][i]
            assert np.all(np.abs(chunk_ratios(i, ebv) - 1) < 0.03)
            assert np.any(np.abs(chunk_ratios(i, 0.7 * ebv) - 1) > 0.03)

    @pytest.mark.parametrize('kwargs, name', [
        ({'n': -1}, 'n'), ({'n': 2.5}, 'n'), ({'setup': 'desi'}, 'setup'),
        ({'z_range': (1.0, 0.5)}, 'z_range'), ({'z_range': (-0.1, 1.0)},
                                               'z_range'),
        ({'z_range': (1.0, 7.0)}, 'z_range'), ({'z_range': 1.0}, 'z_range'),
        ({'snr_range': (0, 10)}, 'snr_range'),
        ({'snr_range': (-5, 10)}, 'snr_range'),
        ({'mag_range': (22, 19)}, 'mag_range'),
        ({'kinds': ('galaxy', 'agn')}, 'kinds'), ({'kinds': ()}, 'kinds'),
        ({'kinds': ('galaxy', 'star'), 'fractions': (0.5, 0.6)}, 'fractions'),
        ({'kinds': ('galaxy',), 'fractions': {'qso': 1.0}}, 'fractions'),
        ({'kinds': ('galaxy', 'star'), 'fractions': (1.0,)}, 'fractions'),
    ])
    def test_bad_arguments(self, kwargs, name):
        kwargs = {'n': 2, **kwargs}
        with pytest.raises(ValueError, match=f'^{name} '):
            simulate_spectrum_arrays(kwargs.pop('n'), seed=1, **kwargs)

    def test_other_kinds(self):
        _, model, _, _, truth = simulate_spectrum_arrays(
            30, seed=13, kinds=('galaxy', 'star', 'qso'),
            fractions={'galaxy': 0.2, 'star': 0.4, 'qso': 0.4},
            noiseless=True)
        kinds = np.asarray(truth['kind'])
        assert {'galaxy', 'star', 'qso'} == set(kinds)
        stars, qsos = kinds == 'star', kinds == 'qso'
        assert np.all(np.abs(truth['z'][stars]) < 0.0011)
        assert np.all(truth['line_snr'][stars] == 0)
        assert np.all(truth['weight_e'][~(kinds == 'galaxy')] == 0)
        # Quasars: a broad Halpha (FWHM 3000-5000 km/s) in band at z < 1.89.
        for i in np.flatnonzero(qsos):
            centre = HALPHA * (1 + truth['z'][i])
            assert truth['flux_halpha'][i] > 0
            assert truth['ew_halpha'][i] > 50 * u.AA
            assert truth['line_snr'][i] > 0
            if centre < 18500:
                assert truth['strongest_line'][i] == 'halpha'


class TestSimulateSpectra:
    def test_nddata_like_the_arrays(self):
        spectra, truth = simulate_spectra(3, seed=14, setup='optical')
        wavelength, flux, ivar, mask, truth_arrays = simulate_spectrum_arrays(
            3, seed=14, setup='optical')
        assert len(spectra) == 3
        for i, spectrum in enumerate(spectra):
            assert isinstance(spectrum, NDData)
            assert spectrum.unit == SPECTRUM_FLUX_UNIT
            assert isinstance(spectrum.uncertainty, InverseVariance)
            assert np.array_equal(spectrum.data, flux[i], equal_nan=True)
            assert np.array_equal(spectrum.uncertainty.array, ivar[i])
            assert np.array_equal(spectrum.mask, mask[i])
            axis = spectrum.meta['spectral_axis']
            assert axis.unit == u.AA and np.array_equal(axis.value, wavelength)
            assert spectrum.meta['z'] == truth['z'][i]
            assert spectrum.meta['kind'] == 'galaxy'
        assert np.array_equal(truth['z'], truth_arrays['z'])
