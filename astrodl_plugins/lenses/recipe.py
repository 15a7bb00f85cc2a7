# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The recipes that produce the shipped lens-finder and lens-parameters
presets.

``astrodl train lens-finder --n-train N --seed S --output DIR`` simulates
the training (seed S), validation (S + 1) and held-out test (S + 2) sets of
lenses and lens-like non-lenses
(`~astrodl_plugins.simulate.simulate_lens_stamps`), fits with rotation,
flip and band-subset augmentation, fits the temperature on the validation
set and measures the Metcalf et al. (2019) and Lanusse et al. (2018)
metrics on the test set for bands gri and r, each class of non-lens on
its own. ``astrodl train lens-parameters`` does the same with lenses only,
calibrates the ``_err`` scales on the validation set and measures the
errors and coverage of each parameter.
"""

import numpy as np

from ..classification.recipe import ClassifierRecipe
from ..simulate.lenses import LENS_RANGES
from ..training.recipe import Recipe
from .estimator import LensFinder, LensParameters
from .evaluate import (
    calibrate_finder_temperature,
    calibrate_parameter_errors,
    evaluate_finder,
    evaluate_parameters,
    findable,
    plot_negatives,
    plot_parameters,
    plot_roc,
)

__all__ = ['LensFinderRecipe', 'LensParametersRecipe', 'RECIPES',
           'lens_valid_ranges']

_SIMULATOR = ('astrodl_plugins.simulate.simulate_lens_stamps (lenstronomy '
              'SIE + shear lenses of knotty Sersic sources; eight classes of '
              'lens-like non-lenses; sky-like PSFs and noise; g, r, i)')


def lens_valid_ranges():
    """The simulator's ranges, with the PSF and Einstein radius in pixels."""
    low_scale, high_scale = LENS_RANGES['pixel_scale']
    psf = LENS_RANGES['psf_fwhm_arcsec']
    theta = LENS_RANGES['theta_e_arcsec']
    return {'psf_fwhm': (psf[0] / high_scale, psf[1] / low_scale),
            'theta_e': (theta[0] / high_scale, theta[1] / low_scale),
            **{key: tuple(value) for key, value in LENS_RANGES.items()}}


class LensFinderRecipe(ClassifierRecipe):
    """The ``'lens-finder'`` preset."""

    name = 'lens-finder'
    reference = ('Lanusse et al. 2018, MNRAS 473, 3895; Metcalf et al. '
                 '2019, A&A 625, A119')
    estimator_class = LensFinder
    n_train = 60_000
    n_validation = 8_000
    n_test = 20_000
    epochs = 6
    patience = 3
    #: Epochs of the first, easy stage (0: none): lenses of the DeepLens
    #: cut (theta_E > 1.4 arcsec, S/N > 20) against as many non-lenses
    #: again and a half. From scratch on every lens the network stayed at
    #: chance level for three epochs (faint arcs next to a bright
    #: deflector give too weak a gradient); shown clear arcs first it
    #: learns them in one or two, and the full set then fine-tunes it.
    curriculum_epochs = 4
    curriculum_learning_rate = 1e-3
    full_learning_rate = 3e-4

    @property
    def simulator_name(self):
        """What made the data (model card)."""
        return _SIMULATOR

    def simulate(self, n, seed, cache_dir=None):
        """``(images, truth)`` of ``n`` stamps, half lenses."""
        from ..simulate.lenses import simulate_lens_stamps
        from ..training.cache import cached_simulation

        return cached_simulation(simulate_lens_stamps, n, seed,
                                 cache_dir=cache_dir)

    def valid_ranges(self):
        """The simulator's ranges (PSF and Einstein radius in pixels)."""
        return lens_valid_ranges()

    def fit_stage(self, estimator, train, validation, **kwargs):
        """
        On the findable stamps (`~.evaluate.findable`: simulated lenses
        whose arcs are invisible are left out, as Metcalf et al. 2019
        did not count them as lenses). From scratch: the easy stage
        (``curriculum_epochs`` on the clear lenses and a random 1.5 times
        as many non-lenses), then every findable stamp at
        ``full_learning_rate``; a fitted estimator, or a training set
        without clear lenses: every findable stamp.
        """
        train = _subset(train, findable(train[1]))
        validation = _subset(validation, findable(validation[1]))
        easy = np.flatnonzero(_deeplens_cut(train[1]))
        if getattr(estimator, 'model_', None) is not None or not (
                self.curriculum_epochs) or not easy.size:
            return super().fit_stage(estimator, train, validation, **kwargs)
        from ..training.recipe import join_histories

        images, truth = train
        negatives = np.flatnonzero(np.asarray(truth['label']) == 1)
        rng = np.random.default_rng(kwargs.get('seed', 0))
        chosen = rng.choice(negatives, size=min(len(negatives),
                                                int(1.5 * len(easy))),
                            replace=False)
        keep = np.sort(np.concatenate([easy, chosen]))
        first_kwargs = {**kwargs, 'epochs': self.curriculum_epochs,
                        'learning_rate': self.curriculum_learning_rate}
        super().fit_stage(estimator, (images[keep], truth[keep]), validation,
                          **first_kwargs)
        first = estimator.history_
        kwargs.setdefault('learning_rate', self.full_learning_rate)
        super().fit_stage(estimator, train, validation, **kwargs)
        estimator.history_ = join_histories(first, estimator.history_)
        self._curriculum = {'easy_lenses': int(len(easy)),
                            'non_lenses': int(len(chosen)),
                            'findable_stamps': int(len(images)),
                            'epochs': self.curriculum_epochs,
                            'learning_rate': self.curriculum_learning_rate,
                            'then_all_stamps_learning_rate':
                                kwargs['learning_rate']}
        return estimator

    def training_data_card(self, estimator, sets, seed):
        """The base entry with the curriculum."""
        card = super().training_data_card(estimator, sets, seed)
        if getattr(self, '_curriculum', None):
            card['curriculum'] = dict(self._curriculum)
        return card

    def evaluate(self, estimator, validation, test, *, seed):
        """Temperature on ``validation``; Metcalf metrics on ``test``."""
        temperature, before, after = calibrate_finder_temperature(
            estimator, *_subset(validation, findable(validation[1])),
            seed=seed)
        metrics = evaluate_finder(estimator, *test, seed=seed)
        self._scores = metrics.pop('_scores')
        return {'calibration': {'temperature': temperature,
                                'validation_ece_before': before,
                                'validation_ece_after': after,
                                'training_prior': estimator.training_prior_},
                'conventions': {
                    'lens': 'a simulated lens with at least 20 pixels of '
                            'lensed light above 1 sigma of the noise '
                            '(Metcalf et al. 2019); the others are left out '
                            'of training and calibration',
                    'p_lens': 'probability for the population of '
                              'class_prior (default: one lens in a '
                              'thousand sources); the metrics below rank '
                              'stamps and do not depend on it'},
                'metrics': metrics, 'tables': _finder_tables(metrics),
                'figures': {
                    'roc.png': 'ROC curves on the held-out set (bands gri '
                               'and r; all lenses and the DeepLens cut).',
                    'negatives.png': 'False-positive rate of each class of '
                                     'non-lens at the overall 1 % '
                                     'false-positive threshold.'}}

    def plot(self, estimator, directory, validation, test, *, seed):
        """ROC curves and the non-lens breakdown."""
        plot_roc(self._scores, test[1], directory / 'roc.png', self.name)
        plot_negatives(estimator.card_['metrics'],
                       directory / 'negatives.png', self.name)


class LensParametersRecipe(Recipe):
    """The ``'lens-parameters'`` preset (trained on lenses only)."""

    name = 'lens-parameters'
    reference = ('Hezaveh et al. 2017, Nature 548, 555; Perreault Levasseur '
                 'et al. 2017, ApJL 850, L7')
    simulator_name = _SIMULATOR + ', lenses only'
    n_train = 40_000
    n_validation = 5_000
    n_test = 5_000
    epochs = 12
    refine_epochs = 3
    refine_learning_rate = 3e-4

    def simulate(self, n, seed, cache_dir=None):
        """``(images, truth)`` of ``n`` lenses."""
        from ..simulate.lenses import simulate_lens_stamps
        from ..training.cache import cached_simulation

        return cached_simulation(simulate_lens_stamps, n, seed,
                                 cache_dir=cache_dir, lens_fraction=1.0)

    def make_estimator(self):
        """A new `~astrodl_plugins.lenses.LensParameters`."""
        return LensParameters()

    def valid_ranges(self):
        """The simulator's ranges (PSF and Einstein radius in pixels)."""
        return lens_valid_ranges()

    def fit_stage(self, estimator, train, validation, **kwargs):
        """``estimator.fit`` on simulated lenses, all bands."""
        from ..simulate.classes import BANDS

        return estimator.fit(train[0], train[1], bands=BANDS,
                             validation_data=(validation[0], validation[1]),
                             **kwargs)

    def familiarity_features(self, estimator, data):
        """Features of the simulated lenses, bands gri and r."""
        images, truth = data
        features = []
        for channels, bands in (([0, 1, 2], ('g', 'r', 'i')), ([1], ('r',))):
            found, _ = estimator.network_features(
                images[..., channels], psf_fwhm=truth['psf_fwhm'],
                bands=bands)
            features.append(found)
        return np.concatenate(features), None

    def evaluate(self, estimator, validation, test, *, seed):
        """``_err`` scales on ``validation``; errors on ``test``."""
        scales = calibrate_parameter_errors(estimator, *validation,
                                            seed=seed)
        metrics = evaluate_parameters(estimator, *test, seed=seed)
        self._metrics = metrics
        card_metrics = {key: value for key, value in metrics.items()
                        if not key.startswith('_')}
        return {'error_scale': scales, 'metrics': card_metrics,
                'tables': _parameter_tables(card_metrics,
                                            estimator.output_names),
                'conventions': {
                    'theta_e': 'arcsec with a WCS or pixel_scale; pixels '
                               'from predict_stamps',
                    'e1, e2, gamma1, gamma2': 'pixel frame, angles '
                                              'counter-clockwise from +x '
                                              '(lenstronomy)'},
                'figures': {'pred_vs_true.png': 'Predicted against true '
                                                'lens parameters on the '
                                                'held-out lenses.'}}

    def plot(self, estimator, directory, validation, test, *, seed):
        """Predicted against true parameters."""
        plot_parameters(self._metrics, test[1],
                        directory / 'pred_vs_true.png', self.name)


def _subset(data, keep):
    images, truth = data
    return images[keep], truth[keep]


def _deeplens_cut(truth):
    """Lenses with theta_E > 1.4 arcsec and S/N > 20 (Lanusse et al.)."""
    lens = np.asarray(truth['label']) == 0
    theta = np.nan_to_num(np.asarray(truth['theta_e_arcsec'], float))
    return lens & (theta > 1.4) & (np.asarray(truth['snr'], float) > 20)


def _finder_tables(metrics):
    rows = []
    for key in ('gri', 'r'):
        m = metrics[key]
        rows.append([key, m['auc'], m['tpr0'], m['tpr10'], m['tpr_fpr1'],
                     m.get('auc_visible', np.nan),
                     m.get('tpr0_visible', np.nan),
                     m.get('tpr10_visible', np.nan),
                     m.get('tpr_fpr1_visible', np.nan),
                     m['auc_cut'], m['tpr_fpr1_cut'], m['tpr0_cut'],
                     m['tpr10_cut'], m['seconds_per_source'] * 1e3])
    tables = [{'title': 'Held-out metrics per band set (Metcalf et al. 2019; '
                        'all: every simulated lens; visible: the lenses '
                        'with 20 pixels of arcs above 1 sigma, as Metcalf '
                        'counted them; cut: theta_E > 1.4 arcsec, S/N > 20 '
                        'as in Lanusse et al. 2018)',
               'header': ['bands', 'AUC', 'TPR0', 'TPR10', 'TPR at FPR 1 %',
                          'AUC visible', 'TPR0 visible', 'TPR10 visible',
                          'TPR at FPR 1 % visible',
                          'AUC cut', 'TPR at FPR 1 % cut', 'TPR0 cut',
                          'TPR10 cut', 'ms/source'],
               'rows': rows}]
    tables.append({
        'title': 'Non-lenses by class (bands gri; threshold of the overall '
                 '1 % false-positive rate)',
        'header': ['class', 'n', 'false-positive rate', 'mean p_lens',
                   'AUC against lenses'],
        'rows': [[row['kind'], row['n'], row['fpr_at_threshold'],
                  row['mean_p_lens'], row['auc_vs_lenses']]
                 for row in metrics['gri']['by_kind']]})
    tables.append({
        'title': 'Completeness at FPR 1 % by Einstein radius (arcsec) and '
                 'S/N (bands gri)',
        'header': ['bin', 'n', 'TPR at FPR 1 %'],
        'rows': [[f"theta_E {row['min']}-{row['max']}", row['n'],
                  row['tpr_fpr1']] for row in metrics['gri']['by_theta_e']]
        + [[f"S/N {row['min']}-{row['max']}", row['n'], row['tpr_fpr1']]
           for row in metrics['gri']['by_snr']]})
    return tables


def _parameter_tables(metrics, names):
    header = ['subset', 'n'] + [f'{name} med |err|' for name in names]
    cover = ['subset'] + [f'{name} cov. 68' for name in names]
    rows, covers = [], []
    subsets = [('all', metrics['all']), ('cut', metrics['cut'])] + [
        (f"S/N {row['snr_min']}-{row['snr_max']}", row)
        for row in metrics['by_snr']]
    for label, values in subsets:
        rows.append([label, values['n']] + [
            values[name]['median_abs_error'] for name in names])
        covers.append([label] + [values[name]['coverage_68']
                                 for name in names])
    return [{'title': 'Held-out median absolute errors (theta_e '
                      'fractional; centroid in pixels)',
             'header': header, 'rows': rows},
            {'title': '68 % interval coverage (target 0.64-0.72)',
             'header': cover, 'rows': covers}]


#: The recipe of each shipped lens preset.
RECIPES = {'lens-finder': LensFinderRecipe(),
           'lens-parameters': LensParametersRecipe()}
