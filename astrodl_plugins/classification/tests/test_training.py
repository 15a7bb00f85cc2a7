# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Training of the classifiers: fit hooks, fine-tuning and the recipes."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from astrodl_plugins.classification import (
    GalaxyMorphology,
    StarGalaxyClassifier,
)
from astrodl_plugins.classification import network as net
from astrodl_plugins.classification.recipe import RECIPES, StarGalaxyRecipe
from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.simulate.classes import (
    BANDS,
    MORPHOLOGY_CLASSES,
    STAR_GALAXY_CLASSES,
    simulate_star_galaxy_stamps,
)

from .helpers import STAMP, tiny

PACKAGE = Path(__file__).parents[1]


@pytest.fixture(scope='module')
def star_galaxy_set():
    return simulate_star_galaxy_stamps(64, seed=4, stamp_size=STAMP,
                                       n_processes=1)


class TestFit:
    def test_fit_finetune_save_load(self, tmp_path, star_galaxy_set):
        images, truth = star_galaxy_set
        est = StarGalaxyClassifier(stamp_size=STAMP, widths=(4, 4), dense=8)
        est.fit(images, truth['class'], psf_fwhm=truth['psf_fwhm'],
                bands=BANDS, epochs=1, batch_size=32)
        assert len(est.history_['loss']) == 1
        weights = [w.copy() for w in est.model_.get_weights()]
        est.fit(images[..., 1], truth['label'], psf_fwhm=truth['psf_fwhm'],
                bands=('r',), epochs=1, batch_size=32, freeze='conv')
        convs = [layer for layer in est.model_.layers
                 if 'conv' in layer.name]
        assert np.array_equal(convs[0].get_weights()[0], weights[0])
        est.temperature_ = 1.7
        est.save(tmp_path / 'sg')
        again = StarGalaxyClassifier.from_preset(tmp_path / 'sg')
        assert again.temperature_ == 1.7
        a = est.predict_stamps(images[:4], bands=BANDS,
                               psf_fwhm=truth['psf_fwhm'][:4], n_samples=3,
                               seed=5)
        b = again.predict_stamps(images[:4], bands=BANDS,
                                 psf_fwhm=truth['psf_fwhm'][:4], n_samples=3,
                                 seed=5)
        assert np.allclose(a['p_star'], b['p_star'])

    def test_bad_labels(self):
        est = StarGalaxyClassifier(stamp_size=STAMP, widths=(4, 4), dense=8)
        stamps = np.zeros((4, STAMP, STAMP, 3), np.float32)
        with pytest.raises(ValueError, match='not classes'):
            est.fit(stamps, ['star', 'quasar', 'star', 'star'], psf_fwhm=3.0)
        with pytest.raises(ValueError, match='freeze'):
            tiny().fit(stamps, [0, 1, 0, 1], psf_fwhm=3.0, freeze='all',
                       epochs=1)

    def test_validation_data_and_bands(self, star_galaxy_set):
        images, truth = star_galaxy_set
        est = GalaxyMorphology(stamp_size=STAMP, widths=(4, 4), dense=8)
        labels = np.arange(64) % len(MORPHOLOGY_CLASSES)
        est.fit(images[:48, ..., :2], labels[:48],
                psf_fwhm=truth['psf_fwhm'][:48], bands=('g', 'r'),
                validation_data=(images[48:, ..., :2], labels[48:],
                                 truth['psf_fwhm'][48:]),
                epochs=2, patience=5, batch_size=16, augment=False)
        assert len(est.history_['val_loss']) == 2
        assert est.temperature_ == 1.0
        table = est.predict_stamps(images[:3, ..., :2], bands='gr',
                                   psf_fwhm=3.0, n_samples=2, seed=0)
        assert table.meta['bands'] == ['g', 'r']

    def test_band_order_does_not_matter(self, star_galaxy_set):
        images, truth = star_galaxy_set
        weights = []
        for channels, bands in (([2, 0], ('i', 'g')), ([0, 2], ('g', 'i'))):
            est = StarGalaxyClassifier(stamp_size=STAMP, widths=(4, 4),
                                       dense=8)
            est.fit(images[..., channels], truth['label'],
                    psf_fwhm=truth['psf_fwhm'], bands=bands, epochs=1,
                    batch_size=32)
            weights.append(est.model_.get_weights())
        assert all(np.array_equal(a, b) for a, b in zip(*weights))

    def test_bad_bands_and_lengths(self):
        est = StarGalaxyClassifier(stamp_size=STAMP, widths=(4, 4), dense=8)
        stamps = np.zeros((3, STAMP, STAMP, 2), np.float32)
        with pytest.raises(ValueError, match='bands'):
            est.fit(stamps, [0, 1, 0], psf_fwhm=2.5, bands=('g', 'z'))
        with pytest.raises(ValueError, match='3 labels for 2 stamps'):
            est.fit(stamps[:2], [0, 1, 0], psf_fwhm=2.5)
        with pytest.raises(ValueError, match='stamps must have shape'):
            est.fit(stamps[:, :10], [0, 1, 0], psf_fwhm=2.5)

    @pytest.mark.parametrize('freeze, fixed', [(None, 0), (1, 2),
                                               ('conv', 4)])
    def test_freeze(self, star_galaxy_set, freeze, fixed):
        images, truth = star_galaxy_set
        est = tiny()
        convs = [layer for layer in est.model_.layers
                 if 'conv' in layer.name]
        before = [layer.get_weights()[0].copy() for layer in convs]
        est.fit(images, truth['label'], psf_fwhm=truth['psf_fwhm'],
                epochs=1, batch_size=32, freeze=freeze)
        same = [np.array_equal(layer.get_weights()[0], weights)
                for layer, weights in zip(convs, before)]
        assert same == [True] * fixed + [False] * (len(convs) - fixed)
        assert all(layer.trainable for layer in est.model_.layers)


class TestLayout:
    def test_literals_match_the_simulators(self):
        assert StarGalaxyClassifier.classes == STAR_GALAXY_CLASSES
        assert GalaxyMorphology.classes == MORPHOLOGY_CLASSES
        assert net.BANDS == BANDS == StarGalaxyClassifier.bands

    @pytest.mark.parametrize('module', ['estimator.py', 'network.py'])
    def test_inference_code_imports(self, module):
        tree = ast.parse((PACKAGE / module).read_text())
        imported = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.level}
        assert not any(name and name.startswith('simulate')
                       for name in imported)
        assert {name for name in imported if name and name.startswith(
            'training')} <= {'training.mixin', 'training.augment'}

    def test_no_card_no_range_check(self):
        est = tiny()
        est.card_ = {}
        stamps = np.zeros((2, STAMP, STAMP, 3), np.float32)
        table = est.predict_stamps(stamps, psf_fwhm=12.0, n_samples=0)
        assert not np.any(table['flag'] & SourceFlags.OUT_OF_RANGE)
        est.card_ = {'valid_ranges': {'psf_fwhm': [1.5, 6.0]}}
        table = est.predict_stamps(stamps, psf_fwhm=12.0, n_samples=0)
        assert np.all(table['flag'] & SourceFlags.OUT_OF_RANGE)

    def test_psf_required_for_stamps(self):
        stamps = np.zeros((2, STAMP, STAMP, 3), np.float32)
        with pytest.raises(ValueError, match='psf_fwhm is required'):
            tiny().predict_stamps(stamps, n_samples=0)


class _TinyRecipe(StarGalaxyRecipe):
    def make_estimator(self):
        return StarGalaxyClassifier(widths=(4, 4), dense=8)


def test_recipe_one_epoch(tmp_path):
    assert set(RECIPES) == {'star-galaxy', 'star-galaxy-sky',
                            'galaxy-morphology'}
    assert RECIPES['star-galaxy-sky'].make_estimator().psf_jitter == 0.25
    assert RECIPES['galaxy-morphology'].make_estimator().stamp_size == 48
    est = _TinyRecipe().run(output=tmp_path / 'sg', n_train=96,
                            n_validation=40, n_test=60, epochs=1,
                            verbose=0, cache_dir=tmp_path / 'cache')
    card = est.card_
    assert list(card) == ['title', 'summary', 'reference', 'command', 'seed',
                          'training_data', 'valid_ranges', 'training',
                          'calibration', 'metrics', 'tables', 'figures',
                          'familiarity']
    # Fitted on the validation set in the four evaluated band sets.
    assert card['familiarity']['n_fit'] == 4 * 40
    assert card['familiarity']['n_calibration'] == 4 * 60
    assert 'ood_score' in est.predict_stamps(
        np.zeros((2, est.stamp_size, est.stamp_size, 3), np.float32),
        bands='gri', psf_fwhm=3.0, n_samples=2).colnames
    assert list(card['training_data'])[:2] == ['simulator', 'bands']
    assert card['training_data']['n_test'] == 60
    assert card['valid_ranges']['psf_fwhm'] == [1.5, 6.0]
    assert card['calibration']['temperature'] == est.temperature_
    assert {'gri', 'r', 'g', 'i', 'baseline_r',
            'baseline_r_fwhm_only'} <= set(card['metrics'])
    assert [len(table['header']) for table in card['tables']] == [7, 3, 8]
    for name in ('history.png', 'reliability.png', 'auc_vs_snr.png'):
        assert (tmp_path / 'sg' / name).exists()
    config = json.loads((tmp_path / 'sg' / 'config.json').read_text())
    assert config['class'] == ('astrodl_plugins.classification.estimator.'
                               'StarGalaxyClassifier')
    again = StarGalaxyClassifier.from_preset(tmp_path / 'sg')
    assert again.valid_ranges['psf_fwhm'] == (1.5, 6.0)
