# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the shipped galaxy-structure estimator and its training code."""

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

import astrodl_plugins as adl
from astrodl_plugins.simulate import simulate_galaxy_stamps
from astrodl_plugins.structure import GalaxyStructure, structure_regions
from astrodl_plugins.structure.train import evaluate_structure, train_galaxy_structure


@pytest.fixture(scope='module')
def shipped():
    return adl.get_estimator('galaxy-structure')


@pytest.fixture(scope='module')
def bright_set():
    # A fixed-seed set, not the training (1), validation (2) or test (3)
    # seeds, inside the accuracy regime of the issue (S/N > 50).
    return simulate_galaxy_stamps(300, seed=20261121,
                                  ranges={'snr': (50.0, 1000.0)})


class TestShippedModel:
    def test_registered_and_loaded(self, shipped):
        names = list(adl.list_estimators()['name'])
        assert 'galaxy-structure' in names
        assert isinstance(shipped, GalaxyStructure)
        assert len(shipped.model_sha256_) == 64
        card = shipped.card_
        assert card['command'].startswith('astrodl train galaxy-structure')
        assert card['metrics']['n_test'] >= 1000

    def test_accuracy_on_fixed_seed_set(self, shipped, bright_set):
        # Thresholds a little looser than the model card's (300 galaxies,
        # not 10 000), tight enough that a broken model fails them.
        metrics = evaluate_structure(shipped, *bright_set, n_samples=30,
                                     seed=0)['all']
        assert metrics['median_abs_rel_err_r_eff'] < 0.07
        assert metrics['median_abs_rel_err_sersic_n'] < 0.14
        assert metrics['median_abs_err_axis_ratio'] < 0.045
        assert metrics['median_abs_err_position_angle_deg_q_lt_0.7'] < 7.0
        assert metrics['median_abs_rel_err_flux'] < 0.08
        for name in ('sersic_n', 'r_eff', 'axis_ratio', 'position_angle',
                     'flux'):
            assert 0.5 < metrics[f'coverage_68_{name}'] < 0.86, name

    def test_deterministic_pass(self, shipped, bright_set):
        images, truth = bright_set
        a = shipped.predict_stamps(images[:20], psf_fwhm=truth['psf_fwhm'][:20],
                                   n_samples=0)
        b = shipped.predict_stamps(images[:20], psf_fwhm=truth['psf_fwhm'][:20],
                                   n_samples=0)
        assert np.array_equal(a['r_eff'], b['r_eff'])
        # One pass: no MC spread, only the (aleatoric) predicted error.
        assert np.all(a['r_eff_err'] > 0)

    def test_rotation_changes_only_the_angle(self, shipped, bright_set):
        images, truth = bright_set
        rows = np.flatnonzero(np.asarray(truth['axis_ratio']) < 0.6)[:20]
        psf = truth['psf_fwhm'][rows]
        a = shipped.predict_stamps(images[rows], psf_fwhm=psf, n_samples=0)
        turned = np.rot90(images[rows], k=1, axes=(1, 2))
        b = shipped.predict_stamps(turned, psf_fwhm=psf, n_samples=0)
        assert np.median(np.abs(np.log(b['r_eff'] / a['r_eff']))) < 0.07
        delta = (b['position_angle'] - a['position_angle']).value % 180
        assert np.median(np.abs(delta - 90)) < 6

    def test_sky_angle_and_arcsec(self, shipped):
        from astrodl_plugins.datasets import load_sample_field

        ccd, truth = load_sample_field()
        ccd = ccd.subtract(ccd.meta['SKYLEVEL'] * ccd.unit,
                           handle_meta='first_found')
        galaxies = truth[(truth['kind'] == 'galaxy')
                         & (truth['axis_ratio'] < 0.6)]
        table = shipped.predict(ccd, positions=galaxies['sky_centroid'],
                                n_samples=10, seed=0)
        assert table['r_eff'].unit == u.arcsec
        assert table.meta['angle_convention'] == 'east of north'
        delta = (table['position_angle'] - galaxies['position_angle']).value
        delta = (delta + 90) % 180 - 90
        assert np.median(np.abs(delta)) < 8
        ratio = (table['r_eff'] / galaxies['r_eff_arcsec']).decompose()
        assert abs(np.median(ratio) - 1) < 0.1
        # In-range galaxies are not flagged out of range in arcsec either.
        assert np.mean(table['flag'] & 4 == 0) > 0.8

    def test_regions(self, shipped):
        from astrodl_plugins.datasets import load_sample_field

        ccd, truth = load_sample_field()
        ccd = ccd.subtract(ccd.meta['SKYLEVEL'] * ccd.unit,
                           handle_meta='first_found')
        galaxies = truth[truth['kind'] == 'galaxy'][:4]
        table = shipped.predict(ccd, positions=galaxies['sky_centroid'],
                                n_samples=5, seed=0)
        regions = structure_regions(table)
        assert len(regions) == 4
        pixel = regions[0].to_pixel(ccd.wcs)
        # Back in pixels: semi-major axis = r_eff / pixel scale.
        assert pixel.width / 2 == pytest.approx(
            (table['r_eff'][0] / (0.2 * u.arcsec)).value, rel=0.02)


class TestFineTuning:
    def test_freeze_conv_and_round_trip(self, shipped, tmp_path):
        images, truth = simulate_galaxy_stamps(96, seed=7)
        tuned = GalaxyStructure.from_preset('galaxy-structure')
        before = {layer.name: [w.copy() for w in layer.get_weights()]
                  for layer in tuned.model_.layers}
        tuned.fit(images, truth, freeze='conv', epochs=1, batch_size=32)
        assert 'loss' in tuned.history_
        for layer in tuned.model_.layers:
            weights = layer.get_weights()
            if not weights:
                continue
            same = all(np.array_equal(a, b)
                       for a, b in zip(before[layer.name], weights))
            if layer.name.startswith(('stem', 'block')):
                assert same, layer.name  # frozen, BN statistics included
            elif layer.name == 'mean_log_var':
                assert not same
        tuned.save(tmp_path / 'tuned')
        loaded = GalaxyStructure.from_preset(tmp_path / 'tuned')
        a = tuned.predict_stamps(images[:5], psf_fwhm=truth['psf_fwhm'][:5],
                                 n_samples=5, seed=3)
        b = loaded.predict_stamps(images[:5], psf_fwhm=truth['psf_fwhm'][:5],
                                  n_samples=5, seed=3)
        assert np.allclose(a['r_eff'], b['r_eff'])
        # The shipped estimator itself is untouched.
        assert shipped.model_ is not tuned.model_

    def test_bad_freeze(self):
        images, truth = simulate_galaxy_stamps(8, seed=7)
        tuned = GalaxyStructure.from_preset('galaxy-structure')
        with pytest.raises(ValueError, match='freeze'):
            tuned.fit(images, truth, freeze='everything', epochs=1)

    def test_missing_psf(self):
        images, truth = simulate_galaxy_stamps(8, seed=7)
        truth.remove_column('psf_fwhm')
        with pytest.raises(ValueError, match='psf_fwhm'):
            GalaxyStructure().fit(images, truth, epochs=1)


class TestTrainingRecipe:
    def test_tiny_run_writes_a_loadable_preset(self, tmp_path):
        estimator = train_galaxy_structure(
            n_train=128, seed=5, output=tmp_path / 'model', n_validation=32,
            n_test=32, epochs=1, refine_epochs=1, verbose=0)
        card = estimator.card_
        assert card['seed'] == 5
        assert len(estimator.history_['loss']) == 2  # stage 1 + stage 2
        assert card['training']['stage1_epochs'] == 1
        assert set(card['error_scale']) == {
            'snr_edges', 'sersic_n', 'r_eff', 'axis_ratio', 'position_angle',
            'flux'}
        assert (tmp_path / 'model' / 'history.png').exists()
        loaded = GalaxyStructure.from_preset(tmp_path / 'model')
        assert loaded.card_['metrics']['n_test'] == 32
        with pytest.raises(FileExistsError, match='overwrite'):
            train_galaxy_structure(n_train=8, seed=5,
                                   output=tmp_path / 'model', epochs=1,
                                   refine_epochs=0)


class TestDocumentedContract:
    def test_labels_table_for_fit(self):
        labels = QTable({'sersic_n': [1.0], 'r_eff': [3.0],
                         'axis_ratio': [0.5], 'position_angle': [10.0],
                         'flux': [100.0]})
        with pytest.raises(ValueError, match='psf_fwhm'):
            GalaxyStructure()._label_psf(labels, None, 1)


class TestTestTimeAugmentation:
    def test_tta_is_rotation_invariant_and_pools_draws(self, shipped,
                                                       bright_set):
        images, truth = bright_set
        rows = np.flatnonzero(np.asarray(truth['axis_ratio']) < 0.6)[:10]
        psf = truth['psf_fwhm'][rows]
        a, draws = shipped.predict_stamps(images[rows], psf_fwhm=psf,
                                          n_samples=3, seed=1, tta=True,
                                          return_samples=True)
        assert draws['r_eff'].shape == (10, 24)  # 8 orientations x 3
        # A quarter turn permutes the 8 orientations: with dropout off the
        # pooled result is the same, and the angle turns by 90 deg.
        a = shipped.predict_stamps(images[rows], psf_fwhm=psf, n_samples=0,
                                   tta=True)
        turned = np.rot90(images[rows], k=1, axes=(1, 2))
        b = shipped.predict_stamps(turned, psf_fwhm=psf, n_samples=0,
                                   tta=True)
        assert np.allclose(a['r_eff'], b['r_eff'], rtol=1e-3)
        delta = (b['position_angle'] - a['position_angle']).value % 180
        assert np.allclose(delta, 90, atol=0.1)

    def test_tta_calibration_is_shipped(self, shipped):
        assert shipped.error_scale_tta_['snr_edges'] == \
            shipped.error_scale_['snr_edges']
        assert 'metrics_tta' in shipped.card_
