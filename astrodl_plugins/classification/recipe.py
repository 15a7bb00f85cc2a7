# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The recipes that produce the shipped star-galaxy and galaxy-morphology
presets.

``astrodl train star-galaxy --n-train N --seed S --output DIR`` (and the
same for ``galaxy-morphology``) simulates the training (seed S),
validation (S + 1) and held-out test (S + 2) sets, fits with rotation/flip
and band-subset augmentation and early stopping, fits the temperature of
the probabilities on the validation set, measures the held-out metrics for
several band sets (and, for star-galaxy, the photutils concentration
baseline on the same sources), and saves the preset with its model card
and figures.
"""

import numpy as np

from ..simulate.classes import (
    BANDS,
    MORPHOLOGY_RANGES,
    STAR_GALAXY_RANGES,
    STAR_GALAXY_SKY_RANGES,
)
from ..training.recipe import Recipe
from .estimator import GalaxyMorphology, StarGalaxyClassifier
from .evaluate import (
    EVALUATED_BAND_SETS,
    baseline_star_galaxy,
    calibrate_temperature,
    evaluate_classifier,
    plot_auc,
    plot_reliability,
)

__all__ = ['ClassifierRecipe', 'StarGalaxyRecipe', 'StarGalaxySkyRecipe',
           'MorphologyRecipe',
           'RECIPES', 'train_star_galaxy', 'train_galaxy_morphology']


class ClassifierRecipe(Recipe):
    """
    The recipe of a classifier preset: fit on all bands (random subsets
    drawn in training), calibrate the temperature on the validation set,
    evaluate per band set on the held-out set.

    Attributes
    ----------
    estimator_class : type
        The `~astrodl_plugins.classification.SourceClassifier` trained.
    simulator : str
        Name of the simulator in `astrodl_plugins.simulate.classes`.
    ranges : dict
        The simulator's ranges (the card's ``valid_ranges``).
    patience : int
        Early-stopping patience of the first stage.
    """

    estimator_class = None
    simulator = None
    ranges = {}
    n_train = 40_000
    n_validation = 8_000
    n_test = 10_000
    epochs = 15
    patience = 3

    @property
    def simulator_name(self):
        """What made the data (model card)."""
        return f'astrodl_plugins.simulate.{self.simulator}'

    def simulate(self, n, seed, cache_dir=None):
        """``(images, truth)`` of ``n`` stamps, all bands."""
        from ..simulate import classes
        from ..training.cache import cached_simulation

        return cached_simulation(getattr(classes, self.simulator), n, seed,
                                 cache_dir=cache_dir)

    def make_estimator(self):
        """A new classifier with its default parameters."""
        return self.estimator_class()

    def valid_ranges(self):
        """The simulator's ranges."""
        return self.ranges

    def fit_stage(self, estimator, train, validation, **kwargs):
        """``estimator.fit`` on simulated ``(images, truth)`` sets, all bands."""
        kwargs.setdefault('patience', self.patience)
        return estimator.fit(
            train[0], train[1]['label'], psf_fwhm=train[1]['psf_fwhm'],
            bands=BANDS, validation_data=(validation[0],
                                          validation[1]['label'],
                                          validation[1]['psf_fwhm']),
            **kwargs)

    def familiarity_features(self, estimator, data):
        """Features of the stamps in every evaluated band set, labelled."""
        images, truth = data
        features, labels = [], []
        for bands in EVALUATED_BAND_SETS:
            channels = [BANDS.index(band) for band in bands]
            found, usable = estimator.network_features(
                images[..., channels], psf_fwhm=truth['psf_fwhm'],
                bands=bands)
            features.append(found)
            labels.append(np.asarray(truth['label'])[usable])
        return np.concatenate(features), np.concatenate(labels)

    def training_data_card(self, estimator, sets, seed):
        """The base entry with the bands after the simulator."""
        card = super().training_data_card(estimator, sets, seed)
        return {'simulator': card.pop('simulator'),
                'bands': ', '.join(BANDS) + ' (random subsets in training)',
                **card}

    def evaluate(self, estimator, validation, test, *, seed):
        """Temperature on ``validation``; metrics and tables on ``test``."""
        temperature, before, after = calibrate_temperature(
            estimator, *validation, seed=seed)
        metrics = evaluate_classifier(estimator, *test, seed=seed)
        self._probabilities = metrics.pop('_probabilities')
        tables = [_summary_table(metrics, estimator.classes),
                  _confusion_table(metrics, estimator.classes)]
        rows = [_by_snr_row(a, b) for a, b in zip(metrics['gri']['by_snr'],
                                                  metrics['r']['by_snr'])]
        header = self.add_baseline(metrics, test, rows)
        tables.append({'title': 'Held-out metrics by S/N (reference band)',
                       'header': header, 'rows': rows})
        return {'calibration': {'temperature': temperature,
                                'validation_ece_before': before,
                                'validation_ece_after': after},
                'metrics': metrics, 'tables': tables,
                'figures': self.figures()}

    def add_baseline(self, metrics, test, rows):
        """Baseline metrics and columns (none); the by-S/N table header."""
        return ['S/N', 'n', 'accuracy gri', 'accuracy r']

    def figures(self):
        """The card's ``figures`` entry."""
        return {'reliability.png': 'Reliability diagram on the held-out '
                                   'set (calibrated probabilities).'}

    def plot(self, estimator, directory, validation, test, *, seed):
        """The reliability diagram of bands gri and r."""
        probabilities = self._probabilities
        plot_reliability({key: probabilities[key] for key in ('gri', 'r')},
                         np.asarray(test[1]['label']),
                         estimator.temperature_,
                         directory / 'reliability.png', self.name)


class StarGalaxyRecipe(ClassifierRecipe):
    """The ``'star-galaxy'`` preset, compared with the photutils baseline."""

    name = 'star-galaxy'
    reference = 'Kim & Brunner 2017, MNRAS 464, 4463'
    estimator_class = StarGalaxyClassifier
    simulator = 'simulate_star_galaxy_stamps'
    ranges = STAR_GALAXY_RANGES

    def add_baseline(self, metrics, test, rows):
        """The photutils concentration baseline, FWHM only and + beta."""
        baseline = baseline_star_galaxy(*test)
        nominal = baseline_star_galaxy(*test, psf_beta=3.5)
        metrics['baseline_r'] = baseline
        metrics['baseline_r_fwhm_only'] = nominal
        for row, base, nom in zip(rows, baseline['by_snr'],
                                  nominal['by_snr']):
            row += [nom['auc'], base['auc']]
        return [*super().add_baseline(metrics, test, rows), 'AUC gri',
                'AUC r', 'AUC photutils (r, FWHM only)',
                'AUC photutils (r, FWHM + true beta)']

    def figures(self):
        """Reliability and AUC against S/N."""
        return {**super().figures(),
                'auc_vs_snr.png': 'ROC AUC against S/N: the CNN with three '
                                  'bands and with r alone, and the photutils '
                                  'concentration baseline.'}

    def plot(self, estimator, directory, validation, test, *, seed):
        """Reliability and AUC against S/N."""
        super().plot(estimator, directory, validation, test, seed=seed)
        metrics = estimator.card_['metrics']
        plot_auc(metrics, metrics['baseline_r'], directory / 'auc_vs_snr.png')


class StarGalaxySkyRecipe(StarGalaxyRecipe):
    """
    An experiment, not a shipped preset: star-galaxy trained on the
    sky-like simulator (`~astrodl_plugins.simulate.simulate_star_galaxy_sky_stamps`:
    PSF families, undersampling, crowding, saturation, nebulosity) with
    the PSF given to the network jittered by 25 % (``psf_jitter``).
    ``astrodl train star-galaxy-sky --output DIR`` makes it; the docs'
    "Real data" page says why it is not shipped.
    """

    name = 'star-galaxy-sky'
    simulator = 'simulate_star_galaxy_sky_stamps'
    ranges = STAR_GALAXY_SKY_RANGES
    n_train = 30_000
    n_validation = 5_000
    n_test = 6_000
    psf_jitter = 0.25

    def make_estimator(self):
        """A star-galaxy classifier trained with a jittered PSF."""
        estimator = super().make_estimator()
        estimator.psf_jitter = self.psf_jitter
        return estimator


class MorphologyRecipe(ClassifierRecipe):
    """The ``'galaxy-morphology'`` preset."""

    name = 'galaxy-morphology'
    reference = ('Huertas-Company et al. 2015, ApJS 221, 8; Dieleman et al. '
                 '2015, MNRAS 450, 1441')
    estimator_class = GalaxyMorphology
    simulator = 'simulate_morphology_stamps'
    ranges = MORPHOLOGY_RANGES


#: The recipe of each shipped classifier preset.
RECIPES = {'star-galaxy': StarGalaxyRecipe(),
           'star-galaxy-sky': StarGalaxySkyRecipe(),
           'galaxy-morphology': MorphologyRecipe()}


def _summary_table(metrics, classes):
    rows = []
    for key, result in metrics.items():
        if not isinstance(result, dict):
            continue
        row = [key, result['accuracy'], result['ece_uncalibrated'],
               result['ece'], result['seconds_per_source'] * 1e3]
        if 'auc' in result:
            row += [result['auc'], result['auc_snr_gt_20']]
        rows.append(row)
    header = ['bands', 'accuracy', 'ECE (T=1)', 'ECE (calibrated)',
              'ms/source (T=50)']
    if len(classes) == 2:
        header += ['AUC', 'AUC S/N>20']
    return {'title': 'Held-out metrics per band set', 'header': header,
            'rows': rows}


def _confusion_table(metrics, classes):
    return {'title': 'Confusion matrix, bands gri (rows: true, columns: '
                     'predicted)',
            'header': ['true \\ predicted', *classes],
            'rows': [[name, *row] for name, row
                     in zip(classes, metrics['gri']['confusion'])]}


def _by_snr_row(gri, r):
    row = [f"{gri['snr_min']}-{gri['snr_max']}", gri['n_sources'],
           gri['accuracy'], r['accuracy']]
    if 'auc' in gri:
        row += [gri['auc'], r['auc']]
    return row


def train_star_galaxy(**kwargs):
    """Train the star-galaxy preset (see `ClassifierRecipe.run`)."""
    return RECIPES['star-galaxy'].run(**kwargs)


def train_galaxy_morphology(**kwargs):
    """Train the galaxy-morphology preset (see `ClassifierRecipe.run`)."""
    return RECIPES['galaxy-morphology'].run(**kwargs)
