# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The multi-band classifiers' machinery, on tiny untrained networks."""

import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.wcs import WCS

from astrodl_plugins.classification import GalaxyMorphology
from astrodl_plugins.classification.evaluate import (
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    roc_auc,
)
from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.core.inputs import read_bands
from astrodl_plugins.exceptions import AstrodlUserWarning
from astrodl_plugins.simulate.classes import (
    BANDS,
    MORPHOLOGY_CLASSES,
    simulate_morphology_stamps,
    simulate_star_galaxy_stamps,
)

from .helpers import STAMP, tiny


def _wcs(shift=0.0):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [30.0, -10.0]
    wcs.wcs.crpix = [40 + shift, 30]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    return wcs


def _bands(n_bands=3, seed=0, unit=u.electron, shape=(60, 80)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    images = []
    for b in range(n_bands):
        data = rng.normal(0, 1.0, shape)
        for x, y in ((20, 30), (55, 28)):
            data += (100 * (b + 1)) * np.exp(-((xx - x)**2 + (yy - y)**2)
                                              / (2 * 1.5**2))
        images.append(CCDData(data, unit=unit, wcs=_wcs(),
                              uncertainty=StdDevUncertainty(
                                  np.ones(shape)),
                              meta={'PSF_FWHM': 3.0}))
    return images


POSITIONS = np.array([[20.0, 30.0], [55.0, 28.0]])


class TestSimulators:
    def test_star_galaxy_reproducible_and_shaped(self):
        a, ta = simulate_star_galaxy_stamps(12, seed=3, stamp_size=24,
                                            n_processes=1)
        b, tb = simulate_star_galaxy_stamps(12, seed=3, stamp_size=24,
                                            n_processes=2)
        assert a.shape == (12, 24, 24, 3)
        assert np.array_equal(a, b)
        assert set(ta['class']) <= {'star', 'galaxy'}
        assert np.all(ta['r_eff'][ta['label'] == 0] == 0)
        # Colours set the band fluxes: g/r = 10**(-0.4 (g - r)).
        ratio = ta['flux_g'] / ta['flux_r']
        assert np.allclose(ratio, 10 ** (-0.4 * ta['g_r']))

    def test_star_is_more_concentrated_than_big_galaxy(self):
        from astrodl_plugins.classification.baseline import (
            psf_concentration_score,
        )

        images, truth = simulate_star_galaxy_stamps(
            200, seed=1, stamp_size=32, n_processes=1,
            ranges={'snr': (200, 1000), 'psf_halo': (0.0, 0.0)},
            neighbour_fraction=0.0)
        score = psf_concentration_score(images[..., 1],
                                        truth['psf_fwhm'], truth['psf_beta'])
        stars = truth['label'] == 0
        big = (truth['label'] == 1) & (truth['r_eff'] > 2 * truth['psf_fwhm'])
        assert abs(np.median(score[stars]) - 1) < 0.05
        assert np.median(score[big]) < 0.8

    def test_morphology_classes_and_truncation(self):
        images, truth = simulate_morphology_stamps(40, seed=2,
                                                   stamp_size=32,
                                                   bands=('r',),
                                                   n_processes=1)
        assert images.shape == (40, 32, 32, 1)
        assert set(truth['class']) <= set(MORPHOLOGY_CLASSES)
        has_nan = np.isnan(images).any(axis=(1, 2, 3))
        assert np.array_equal(has_nan, np.asarray(truth['kind'])
                              == 'truncated')

    def test_sky_simulator_reproducible_and_crowded(self):
        from astrodl_plugins.simulate import simulate_star_galaxy_sky_stamps
        from astrodl_plugins.simulate.sky import saturate

        a, ta = simulate_star_galaxy_sky_stamps(
            16, seed=3, stamp_size=24, n_processes=1,
            ranges={'crowding': (6.0, 12.0)}, saturated_fraction=1.0)
        b, _ = simulate_star_galaxy_sky_stamps(16, seed=3, stamp_size=24,
                                               n_processes=2,
                                               ranges={'crowding': (6.0,
                                                                    12.0)},
                                               saturated_fraction=1.0)
        assert a.shape == (16, 24, 24, 3) and np.array_equal(a, b)
        assert np.isfinite(a).all()
        assert ta['n_neighbours'].mean() > 3
        assert set(ta['psf_kind']) <= {'moffat', 'kolmogorov',
                                       'double_gaussian', 'airy'}
        assert np.all(ta['r_eff'][ta['label'] == 0] == 0)
        # Saturation clips at the full well and bleeds along the column.
        image = np.zeros((9, 5))
        image[4, 2] = 10.0
        clipped, mask = saturate(image, 2.0)
        assert clipped.max() == 2.0 and mask[:, 2].sum() == 5
        assert not mask[:, [0, 1, 3, 4]].any()

    def test_sky_simulator_psf_kinds_checked(self):
        from astrodl_plugins.simulate import simulate_star_galaxy_sky_stamps

        with pytest.raises(ValueError, match='psf_kinds'):
            simulate_star_galaxy_sky_stamps(2, seed=0, psf_kinds=('square',))

    @pytest.mark.parametrize('bands', [(), ('u',)])
    def test_bad_bands(self, bands):
        with pytest.raises(ValueError, match='bands'):
            simulate_star_galaxy_stamps(2, seed=0, bands=bands)


class TestReadBands:
    def test_list_cube_and_meta_names(self):
        images = _bands()
        out, bands = read_bands(images, bands=('g', 'r', 'i'),
                                known_bands=BANDS, default_band='r')
        assert bands == ('g', 'r', 'i') and len(out) == 3
        cube = NDData(np.stack([i.data for i in images]), unit=u.electron)
        out, bands = read_bands(cube, bands='gri', known_bands=BANDS,
                                default_band='r')
        assert bands == ('g', 'r', 'i')
        assert np.array_equal(out[2].data, images[2].data)
        for image, band in zip(images, 'irg'):
            image.meta['FILTER'] = band
        _, bands = read_bands(images, known_bands=BANDS, default_band='r')
        assert bands == ('i', 'r', 'g')
        _, bands = read_bands(images[0], known_bands=BANDS,
                              default_band='r')
        assert bands == ('r',)

    def test_convertible_units_are_converted(self):
        images = _bands(2, unit=u.Jy)
        images[1] = CCDData(images[1].data * 1000, unit=u.mJy)
        out, _ = read_bands(images, bands='gr', known_bands=BANDS,
                            default_band='r')
        assert out[1].unit == u.Jy
        assert np.allclose(out[1].data, images[0].data * 0 + out[1].data)
        assert np.allclose(out[1].data * 1000, images[1].data)

    @pytest.mark.parametrize('case, match', [
        ('shape', 'shape'),
        ('wcs', 'pixel grid'),
        ('units', 'mixed units'),
        ('too_many', 'trained for at most 3'),
        ('unknown', 'not bands the model'),
        ('repeated', 'repeated'),
        ('no_names', 'give bands='),
        ('count', '2 names for 3'),
    ])
    def test_bad_band_sets(self, case, match):
        images = _bands()
        bands = ('g', 'r', 'i')
        if case == 'shape':
            images[1] = CCDData(images[1].data[:-1], unit=u.electron)
        elif case == 'wcs':
            images[2] = CCDData(images[2].data, unit=u.electron,
                                wcs=_wcs(shift=1.5))
        elif case == 'units':
            images[1] = CCDData(images[1].data, unit=u.adu)
        elif case == 'too_many':
            images = images + [images[0]]
            bands = ('g', 'r', 'i', 'z')
        elif case == 'unknown':
            bands = ('g', 'r', 'z')
        elif case == 'repeated':
            bands = ('g', 'r', 'r')
        elif case == 'no_names':
            bands = None
        elif case == 'count':
            bands = ('g', 'r')
        with pytest.raises(ValueError, match=match):
            read_bands(images, bands=bands, known_bands=BANDS,
                       default_band='r')


class TestPredict:
    def test_table(self):
        est = tiny()
        images = _bands()
        table = est.predict(images, bands=('g', 'r', 'i'),
                            positions=POSITIONS, n_samples=8, seed=1,
                            quantiles=(0.16, 0.84))
        assert table.colnames[:4] == ['label', 'x_centroid', 'y_centroid',
                                      'sky_centroid']
        for name in ('p_star', 'p_star_err', 'p_star_q16', 'p_galaxy',
                     'class', 'entropy', 'mutual_information', 'flag'):
            assert name in table.colnames
        total = table['p_star'] + table['p_galaxy']
        assert np.allclose(total.value, 1.0, atol=1e-6)
        assert set(table['class']) <= {'star', 'galaxy'}
        assert np.all(table['entropy'].value <= np.log(2) + 1e-9)
        assert np.all(table['mutual_information'].value >= 0)
        assert np.all(table['mutual_information'].value
                      <= table['entropy'].value + 1e-9)
        assert table.meta['bands'] == ['g', 'r', 'i']
        assert table.meta['classes'] == ['star', 'galaxy']

    def test_deterministic_pass_has_no_epistemic_part(self):
        table = tiny().predict(_bands(1), positions=POSITIONS, n_samples=0)
        assert np.all(table['mutual_information'].value == 0)
        assert np.all(table['p_star_err'].value == 0)

    def test_band_order_does_not_matter(self):
        est = tiny()
        images = _bands()
        a = est.predict(images, bands='gri', positions=POSITIONS,
                        n_samples=4, seed=2)
        b = est.predict(images[::-1], bands='irg', positions=POSITIONS,
                        n_samples=4, seed=2)
        assert np.allclose(a['p_star'], b['p_star'])

    def test_cube_matches_list(self):
        est = tiny()
        images = _bands()
        cube = CCDData(np.stack([i.data for i in images]), unit=u.electron,
                       meta={'PSF_FWHM': 3.0})
        a = est.predict(images, bands='gri', positions=POSITIONS,
                        n_samples=4, seed=2)
        b = est.predict(cube, bands='gri', positions=POSITIONS,
                        n_samples=4, seed=2)
        assert np.allclose(a['p_star'], b['p_star'])

    def test_tta_and_stamps(self):
        est = tiny(GalaxyMorphology)
        images, truth = simulate_morphology_stamps(6, seed=0,
                                                   stamp_size=STAMP,
                                                   n_processes=1)
        table = est.predict_stamps(images, bands=BANDS,
                                   psf_fwhm=truth['psf_fwhm'], n_samples=4,
                                   seed=0, tta=True)
        assert len(table) == 6
        assert table.meta['tta'] is True
        probabilities = np.stack([table[f'p_{c}'].value
                                  for c in MORPHOLOGY_CLASSES], axis=1)
        assert np.allclose(probabilities.sum(1), 1.0, atol=1e-6)
        # tta pools the 8 orientations: a rotated stamp gives the same.
        rotated = est.predict_stamps(np.rot90(images, 1, axes=(1, 2)),
                                     bands=BANDS, psf_fwhm=truth['psf_fwhm'],
                                     n_samples=0, tta=True)
        plain = est.predict_stamps(images, bands=BANDS,
                                   psf_fwhm=truth['psf_fwhm'], n_samples=0,
                                   tta=True)
        assert np.allclose(rotated['p_disk'], plain['p_disk'], atol=1e-5)

    def test_psf_estimated_with_warning(self):
        images = _bands(1)
        del images[0].meta['PSF_FWHM']
        with pytest.warns(AstrodlUserWarning, match='psf_fwhm not given'):
            table = tiny().predict(images[0], positions=POSITIONS,
                                   n_samples=2)
        assert table.meta['psf_fwhm_source'].startswith('estimated from ')
        assert 'point sources found in the image' in (
            table.meta['psf_fwhm_source'])

    def test_psf_out_of_range_flagged(self):
        table = tiny().predict(_bands(1)[0], positions=POSITIONS,
                               n_samples=2, psf_fwhm=12.0, rescale=False)
        assert np.all(table['flag'] & SourceFlags.OUT_OF_RANGE)
        # Size-aware stamps: measured binned, where the PSF is in range.
        binned = tiny().predict(_bands(1)[0], positions=POSITIONS,
                                n_samples=2, psf_fwhm=12.0)
        assert np.all(binned['rescale'] > 1)
        assert not np.any(binned['flag'] & SourceFlags.OUT_OF_RANGE)

    def test_masked_source_gives_flagged_nan_row(self):
        images = _bands(2)
        mask = np.zeros(images[0].shape, bool)
        mask[20:40, 10:30] = True
        images[0].mask = mask
        est = tiny()
        table = est.predict(images, bands='gr', positions=POSITIONS,
                            n_samples=2, seed=0)
        # Masked in g only: classified from r alone, flagged.
        assert table['flag'][0] & SourceFlags.MASKED
        assert not table['flag'][0] & SourceFlags.UNUSABLE
        r_only = est.predict(images[1], bands='r', positions=POSITIONS,
                             n_samples=2, seed=0)
        assert np.allclose(table['p_star'][0], r_only['p_star'][0])
        images[1].mask = mask
        table = est.predict(images, bands='gr', positions=POSITIONS,
                            n_samples=2)
        assert table['flag'][0] & SourceFlags.UNUSABLE
        assert np.isnan(table['p_star'][0])
        assert table['class'][0] == ''
        assert table['class'][1] in ('star', 'galaxy')

    def test_inputs_not_modified(self):
        images = _bands(2)
        before = [i.data.copy() for i in images]
        positions = POSITIONS.copy()
        tiny().predict(images, bands='gr', positions=positions, n_samples=2)
        for image, data in zip(images, before):
            assert np.array_equal(image.data, data)
            assert image.mask is None
        assert np.array_equal(positions, POSITIONS)

    def test_bad_stamps(self):
        with pytest.raises(ValueError, match='stamps must have shape'):
            tiny().predict_stamps(np.zeros((2, 10, 10)), psf_fwhm=3.0)
        with pytest.raises(ValueError, match='bands'):
            tiny().predict_stamps(np.zeros((2, STAMP, STAMP, 2)),
                                  bands=('g', 'z'), psf_fwhm=3.0)


class TestMetrics:
    def test_auc(self):
        assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        assert roc_auc([0, 1, 0, 1], [1, 2, 3, 4]) == 0.75
        assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))

    def test_ece_and_temperature(self):
        rng = np.random.default_rng(0)
        n, k = 20000, 3
        true_logits = rng.normal(0, 2.0, (n, k))
        p = np.exp(true_logits)
        p /= p.sum(1, keepdims=True)
        y = np.array([rng.choice(k, p=row) for row in p])
        # Calibrated probabilities: small ECE; sharpened ones: large.
        assert expected_calibration_error(p, y) < 0.02
        sharp = np.exp(true_logits * 2.5)
        sharp /= sharp.sum(1, keepdims=True)
        assert expected_calibration_error(sharp, y) > 0.05
        # The fitted temperature undoes the sharpening.
        logits = (true_logits * 2.5)[:, None, :]
        assert fit_temperature(logits, y) == pytest.approx(2.5, rel=0.08)

    def test_confusion(self):
        matrix = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
        assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]


def test_no_warnings_from_clean_predict():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        tiny().predict(_bands(3), bands='gri', positions=POSITIONS,
                       n_samples=2)
