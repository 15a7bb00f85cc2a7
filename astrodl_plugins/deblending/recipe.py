# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The recipe that produces the shipped ``deblender`` preset.

``astrodl train deblender --n-train N --seed S --output DIR`` runs
`RECIPE`: simulate ``N`` training blends (seed S; 2-4 members, plus 15 %
isolated sources so that the detector learns not to split) and 2000
validation blends (S + 1), each cut into one stamp per member; fit the
centre detector, then the extractor, with augmentation and early
stopping; on blend fields of 1024 x 1024 pixels, choose the detector
threshold and calibrate ``flux_err`` (validation fields, seeds
``1000 * (S + 1) + k``), then measure the held-out metrics against
photutils (test fields, seeds ``1000 * (S + 2) + k``); fit the
familiarity model (``ood_score``) on the extractor's features of the
validation stamps (also its calibration: there are no held-out stamps);
save the estimator with its model card, the two training histories and an
example figure. ``astrodl familiarity deblender --seed S --n N`` refits
the familiarity model of a preset on ``N`` new blends (seed S + 1),
calibrated on ``N // 2`` others (seed S + 2).

There is no held-out set of stamps (``n_test = 0``): the test fields are
the held-out test. By default each network keeps its own maximum number of
epochs (detector 10, extractor 12); ``epochs=`` sets both.
"""

import numpy as np

from ..simulate.blends import BLEND_RANGES
from ..training.recipe import Recipe
from .estimator import Deblender
from .evaluate import evaluate_deblender, field_seeds, plot_example

__all__ = ['DeblenderRecipe', 'RECIPE', 'train_deblender']

#: The model card's ``conventions``.
CONVENTIONS = {
    'flux': 'data units; the data inside the parent segment shared in '
            'proportion to the models, plus the model wings beyond it',
    'separation': 'to the nearest other member, in the larger r_eff '
                  '(stars: half the PSF FWHM)',
    'detection': 'photutils detect_sources on the image smoothed by a '
                 '3-pixel FWHM Gaussian, 1.5 sigma, 5 pixels',
}

#: The model card's description of the familiarity features.
_FEATURES = ('the input of the extractor\'s MC-dropout layer for each '
             'child\'s stamp, its decoder channels averaged over annuli '
             'about the child (r < 2, 2-4, 4-8, 8-16, >= 16 pixels); fitted '
             'on simulated blend stamps (one per member), markers jittered '
             'by 0.3 pixel')
#: Standard deviation (pixels) of the marker jitter of the fit, as in
#: training: the detector's typical centring error.
_MARKER_JITTER = 0.3

#: What each training history shows (the card's figure captions).
_NETWORKS = {'detector': 'the centre detector',
             'model': 'the extractor (per-source models)'}


class DeblenderRecipe(Recipe):
    """
    How the ``deblender`` preset is made (see
    `~astrodl_plugins.training.recipe.Recipe` for ``run``'s keywords;
    ``n_train`` and ``n_validation`` count blends).

    Parameters
    ----------
    n_fields : int, optional
        Blend fields of 1024 x 1024 pixels for the threshold and the
        calibration, and as many for the held-out test.
    """

    name = 'deblender'
    reference = 'Boucaud et al. 2020, MNRAS 491, 2481'
    simulator_name = ('astrodl_plugins.simulate.simulate_blend_stamps '
                      '(GalSim blends of 2-4 Sersic galaxies and stars * '
                      'Moffat PSF, 15 % isolated sources, sky + Poisson + '
                      'read noise; one stamp per member)')
    n_train = 12_000
    n_validation = 2_000
    n_test = 0
    # None: each network keeps its own default (detector 10, extractor 12).
    epochs = None
    refine_epochs = 0
    #: MC-dropout draws of the calibration and the test.
    n_samples = 20

    def __init__(self, *, n_fields=4):
        self.n_fields = n_fields

    def simulate(self, n, seed, cache_dir=None):
        """``(stamps, truth, models)`` of ``n`` blends, in `fit`'s order."""
        from ..simulate.blends import simulate_blend_stamps
        from ..training.cache import cached_simulation

        stamps, models, truth = cached_simulation(
            simulate_blend_stamps, n, seed, cache_dir=cache_dir,
            single_fraction=0.15)
        return stamps, truth, models

    def make_estimator(self):
        """A new `~astrodl_plugins.deblending.Deblender`."""
        return Deblender()

    def valid_ranges(self):
        """The blend simulator's ranges (pixels)."""
        return dict(BLEND_RANGES)

    def familiarity_features(self, estimator, data):
        """
        The extractor's features of simulated blend stamps (no classes),
        the marker jittered as in training (the detector's centring
        error; fixed seed).
        """
        stamps, truth, _ = data
        rng = np.random.default_rng(0)
        jitter = rng.normal(0.0, _MARKER_JITTER, (2, len(truth)))
        features = estimator.network_features(
            stamps, np.asarray(truth['noise_sigma']),
            np.asarray(truth['x']) + jitter[0],
            np.asarray(truth['y']) + jitter[1])
        return features, None

    def add_familiarity(self, estimator, fit_data, held_out_data, *,
                        source, quantile=0.99):
        """The base's, with the card saying which features are used."""
        done = super().add_familiarity(estimator, fit_data, held_out_data,
                                       source=source, quantile=quantile)
        if done:
            n_axes = len(estimator.familiarity_.components)
            estimator.card_['familiarity'].update(
                method=('Mahalanobis distance of the extractor\'s features '
                        'to their Gaussian on simulated blend stamps, in '
                        f'{n_axes} principal components plus the residual '
                        '(Lee et al. 2018)'),
                features=_FEATURES)
        return done

    def training_data_card(self, estimator, sets, seed):
        """The skeleton's entry (member stamps), plus blends and fields."""
        card = super().training_data_card(estimator, sets, seed)
        train, validation, _ = sets
        validation_fields, test_fields = field_seeds(seed, self.n_fields)
        card.update(
            blends=len(np.unique(np.asarray(train[1]['blend']))),
            validation_blends=len(np.unique(np.asarray(
                validation[1]['blend']))),
            validation_field_seeds=validation_fields,
            test_field_seeds=test_fields)
        return card

    def evaluate(self, estimator, validation, test, *, seed):
        """
        Threshold and ``flux_err`` scale from the validation fields (set on
        the estimator), held-out metrics on the test fields, conventions
        and the figures' captions.
        """
        card = evaluate_deblender(estimator, seed=seed,
                                  n_fields=self.n_fields,
                                  n_samples=self.n_samples)
        card['conventions'] = dict(CONVENTIONS)
        figures = {f'history_{name}.png':
                   f'Training history of {_NETWORKS.get(name, name)}.'
                   for name in estimator.history_}
        figures['example.png'] = ('A held-out blend field: data, photutils '
                                  'children, ours, and the data minus our '
                                  'models.')
        card['figures'] = figures
        return card

    def plot(self, estimator, directory, validation, test, *, seed):
        """``example.png``: the first test field's seed, 224 x 224 pixels."""
        plot_example(estimator, directory / 'example.png',
                     seed=field_seeds(seed, 1)[1][0])


#: The recipe of the shipped preset (run by ``astrodl train``).
RECIPE = DeblenderRecipe()


def train_deblender(*, n_fields=4, **kwargs):
    """
    Simulate, train, calibrate, evaluate and save the deblender.

    Same as ``DeblenderRecipe(n_fields=n_fields).run(**kwargs)``
    (`~astrodl_plugins.training.recipe.Recipe.run`): ``output`` is
    required; defaults ``n_train=12_000`` and ``n_validation=2_000``
    blends, ``seed=1``, each network's own maximum epochs.

    Returns
    -------
    estimator : `~astrodl_plugins.deblending.Deblender`
    """
    return DeblenderRecipe(n_fields=n_fields).run(**kwargs)
