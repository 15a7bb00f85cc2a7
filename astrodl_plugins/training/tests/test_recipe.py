# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The Recipe skeleton, run end to end with tiny recipes."""

import json

import numpy as np
import pytest

from astrodl_plugins.core.tests.tiny import (
    TinySeries,
    TinySeriesPair,
    TinyStamp,
    blob_stamps,
    level_series,
)
from astrodl_plugins.training import fit as fit_module
from astrodl_plugins.training.cache import cached_simulation
from astrodl_plugins.training.recipe import Recipe

SIMULATED = []


def simulate_blobs(n, seed=0):
    SIMULATED.append((n, seed))
    return blob_stamps(n, seed=seed)


def simulate_levels(n, seed=0):
    SIMULATED.append((n, seed))
    return level_series(n, seed=seed)


class TinyStampRecipe(Recipe):
    name = 'tiny-stamp'
    reference = 'a unit test'
    simulator_name = 'blob_stamps'
    n_train = 64
    n_validation = 16
    n_test = 16
    epochs = 1

    def __init__(self):
        self.plotted = []

    def simulate(self, n, seed, cache_dir=None):
        return cached_simulation(simulate_blobs, n, seed, cache_dir)

    def make_estimator(self):
        return TinyStamp()

    def valid_ranges(self):
        return {'size': (1.0, 3.0), 'psf_fwhm': (2.0, 4.0)}

    def evaluate(self, estimator, validation, test, *, seed):
        stamps, truth = test
        table = estimator.predict_stamps(stamps, psf_fwhm=truth['psf_fwhm'],
                                         n_samples=4, seed=seed)
        error = np.log(table['size'].value / truth['size'])
        # The evaluation sees the card's ranges already.
        return {'metrics': {'n_test': len(table),
                            'rms_log_size': float(np.sqrt(np.mean(
                                error ** 2)))},
                'ranges_seen': {k: list(v) for k, v in
                                estimator.valid_ranges.items()}}

    def plot(self, estimator, directory, validation, test, *, seed):
        self.plotted.append(directory)
        (directory / 'tiny-figure.txt').write_text('figure')


class TinySeriesRecipe(Recipe):
    """A two-network recipe (its card has no stamp size)."""

    name = 'tiny-series-pair'
    simulator_name = 'level_series'
    n_train = 48
    n_validation = 16
    n_test = 0
    epochs = 1

    def simulate(self, n, seed, cache_dir=None):
        return cached_simulation(simulate_levels, n, seed, cache_dir)

    def make_estimator(self):
        return TinySeriesPair()

    def training_data_card(self, estimator, sets, seed):
        train, validation, test = sets
        return {'simulator': self.simulator_name, 'n_train': len(train[0]),
                'n_validation': len(validation[0]), 'test': test is None}

    def evaluate(self, estimator, validation, test, *, seed):
        return {'metrics': {'n_validation': len(validation[0])}}


@pytest.fixture(scope='module')
def stamp_run(tmp_path_factory):
    SIMULATED.clear()
    recipe = TinyStampRecipe()
    output = tmp_path_factory.mktemp('recipe') / 'preset'
    estimator = recipe.run(output=output, seed=3, verbose=0)
    return recipe, estimator, output, list(SIMULATED)


class TestStampRecipe:
    def test_sets_and_seeds(self, stamp_run):
        _, _, _, simulated = stamp_run
        assert simulated == [(64, 3), (16, 4), (16, 5)]

    def test_card(self, stamp_run):
        _, estimator, _, _ = stamp_run
        card = estimator.card_
        assert set(card) == {'title', 'summary', 'reference', 'command',
                             'seed', 'training_data', 'valid_ranges',
                             'training', 'metrics', 'ranges_seen'}
        assert card['title'] == 'tiny-stamp'
        assert card['summary'] == TinyStamp.description
        assert card['reference'] == 'a unit test'
        assert card['seed'] == 3
        assert card['command'].startswith('astrodl train tiny-stamp '
                                          '--n-train 64 --seed 3 --epochs 1')
        assert card['training_data'] == {
            'simulator': 'blob_stamps', 'n_train': 64, 'train_seed': 3,
            'n_validation': 16, 'validation_seed': 4, 'n_test': 16,
            'test_seed': 5, 'stamp_size': 16}
        assert card['valid_ranges'] == {'size': [1.0, 3.0],
                                        'psf_fwhm': [2.0, 4.0]}
        assert card['ranges_seen'] == card['valid_ranges']
        training = card['training']
        assert training['epochs_run'] == training['stage1_epochs'] == 1
        assert training['best_val_loss'] == pytest.approx(
            min(estimator.history_['val_loss']))
        assert training['seconds'] > 0
        assert card['metrics']['n_test'] == 16
        json.dumps(card)

    def test_files(self, stamp_run):
        recipe, _, output, _ = stamp_run
        names = sorted(p.name for p in output.iterdir())
        assert names == ['config.json', 'history.png', 'manifest.json',
                         'model.keras', 'tiny-figure.txt']
        assert recipe.plotted == [output]

    def test_saved_preset_loads(self, stamp_run):
        _, estimator, output, _ = stamp_run
        loaded = TinyStamp.from_preset(output)
        assert loaded.card_ == json.loads(json.dumps(estimator.card_))
        assert loaded.valid_ranges == {'size': (1.0, 3.0),
                                       'psf_fwhm': (2.0, 4.0)}
        stamps, _ = blob_stamps(3, seed=9)
        kwargs = dict(psf_fwhm=3.0, n_samples=3, seed=0)
        np.testing.assert_array_equal(
            loaded.predict_stamps(stamps, **kwargs)['size'],
            estimator.predict_stamps(stamps, **kwargs)['size'])

    def test_refuses_non_empty_output(self, tmp_path):
        (tmp_path / 'keep.txt').write_text('keep')
        SIMULATED.clear()
        with pytest.raises(FileExistsError, match='overwrite=True'):
            TinyStampRecipe().run(output=tmp_path, verbose=0)
        # Refused before any simulation or training.
        assert SIMULATED == []
        assert (tmp_path / 'keep.txt').read_text() == 'keep'


class TestOptions:
    def test_overwrite_cache_and_sizes(self, tmp_path):
        output = tmp_path / 'out'
        output.mkdir()
        (output / 'old.txt').write_text('old')
        SIMULATED.clear()
        recipe = TinyStampRecipe()
        estimator = recipe.run(output=output, n_train=32, n_validation=8,
                               n_test=8, cache_dir=tmp_path / 'cache',
                               overwrite=True, verbose=0)
        assert SIMULATED == [(32, 1), (8, 2), (8, 3)]
        assert estimator.card_['training_data']['n_train'] == 32
        assert (output / 'model.keras').exists()
        assert len(list((tmp_path / 'cache').glob('*.ecsv'))) == 3
        # The cached sets are reused.
        TinyStampRecipe().run(output=tmp_path / 'again', n_train=32,
                              n_validation=8, n_test=8,
                              cache_dir=tmp_path / 'cache', verbose=0)
        assert len(SIMULATED) == 3


class TestTwoNetworksAndRefine:
    def test_run(self, tmp_path, monkeypatch):
        calls = []
        real = fit_module.fit_network

        def spy(model, train, validation, **kwargs):
            calls.append((model.name, kwargs['learning_rate'],
                          kwargs['epochs'], kwargs['patience']))
            return real(model, train, validation, **kwargs)

        monkeypatch.setattr(fit_module, 'fit_network', spy)
        estimator = TinySeriesRecipe().run(output=tmp_path / 'out',
                                           refine_epochs=1,
                                           refine_learning_rate=2e-4,
                                           verbose=0)
        # Stage 1 from scratch at each task's rate, stage 2 at the given
        # rate (not a tenth of it) with patience = refine epochs.
        assert calls == [('tiny_series', 1e-2, 1, 2),
                         ('tiny_spread', 1e-2, 1, 2),
                         ('tiny_series', 2e-4, 1, 1),
                         ('tiny_spread', 2e-4, 1, 1)]
        history = estimator.history_
        assert set(history) == {'model', 'other'}
        for network in ('model', 'other'):
            assert len(history[network]['loss']) == 2
            assert history[network]['stage1_epochs'] == 1
        training = estimator.card_['training']
        assert training['model']['epochs_run'] == 2
        assert training['other']['stage1_epochs'] == 1
        assert estimator.card_['training_data']['test'] is True
        names = sorted(p.name for p in (tmp_path / 'out').iterdir())
        assert names == ['config.json', 'history_model.png',
                         'history_other.png', 'manifest.json', 'model.keras',
                         'other.keras']
        loaded = TinySeriesPair.from_preset(tmp_path / 'out')
        assert loaded.card_['training']['model']['epochs_run'] == 2

    def test_default_card_of_a_series_recipe(self, tmp_path):
        class Plain(TinySeriesRecipe):
            training_data_card = Recipe.training_data_card

            def make_estimator(self):
                return TinySeries()

        estimator = Plain().run(output=tmp_path / 'out', verbose=0)
        assert 'stamp_size' not in estimator.card_['training_data']


class TestSkeleton:
    @pytest.mark.parametrize('method, args', [
        ('simulate', (10, 1)), ('make_estimator', ()),
    ])
    def test_required(self, method, args):
        with pytest.raises(NotImplementedError):
            getattr(Recipe(), method)(*args)

    def test_evaluate_required(self):
        with pytest.raises(NotImplementedError):
            Recipe().evaluate(None, None, None, seed=0)

    def test_defaults(self):
        recipe = Recipe()
        assert recipe.valid_ranges() == {}
        assert recipe.plot(None, None, None, None, seed=0) is None
        assert (recipe.n_train, recipe.n_validation, recipe.n_test) == \
            (10_000, 2_000, 2_000)
        assert (recipe.epochs, recipe.refine_epochs) == (20, 0)
