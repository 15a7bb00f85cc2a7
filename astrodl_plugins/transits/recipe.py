# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The recipe that produces the shipped ``transit`` preset.

``astrodl train transit --n-train N --seed S --output DIR`` simulates N
light curves (seed S: Kepler long cadence, TESS 2-min and 30-min, with
stellar variability, systematics, planets, eclipsing and blended
binaries; ``astrodl_plugins.simulate.transits``), N/5 for validation
(S + 1) and N/5 held out (S + 2); turns each into the candidates a
search finds (`~astrodl_plugins.transits.examples.candidate_examples`);
fits the vetter with time-mirroring augmentation; fits the temperature
of ``p_planet`` on the validation candidates; measures AUC, the
precision-recall curve, recall at precision 0.99 and the calibration on
the held-out candidates, by kind of false positive and by S/N.
"""

import numpy as np

from ..training.recipe import Recipe
from .estimator import TransitVetter

__all__ = ['TransitRecipe', 'RECIPES', 'simulate_candidates', 'MISSION_MIX']

#: Missions of the simulated light curves and their fractions.
MISSION_MIX = (('kepler-long', 0.5), ('tess-2min', 0.25),
               ('tess-30min', 0.25))

_SIMULATOR = ('astrodl_plugins.simulate.transits (batman transits; '
              'eclipsing and blended binaries; rotation, granulation, '
              'flares, pulsations; momentum dumps, gaps, ramps, quality '
              'flags; Kepler long cadence, TESS 2-min and 30-min), then '
              'the candidates of astrodl_plugins.transits.examples')


def simulate_candidates(n_curves, *, seed, n_processes=None):
    """
    ``(global_views, local_views, scalars, truth)`` of the candidates
    found in ``n_curves`` simulated light curves (`MISSION_MIX`).
    """
    from astropy.table import vstack

    from ..simulate.transits import simulate_light_curve_arrays
    from .examples import candidate_examples

    counts = np.floor(np.array([f for _, f in MISSION_MIX])
                      * n_curves).astype(int)
    counts[0] += n_curves - counts.sum()
    parts = []
    for k, ((mission, _), n) in enumerate(zip(MISSION_MIX, counts)):
        if not n:
            continue
        curves, signals = simulate_light_curve_arrays(
            int(n), seed=seed * 10 + k, mission=mission)
        *arrays, truth = candidate_examples(curves, signals,
                                            n_processes=n_processes)
        truth['mission'] = mission
        truth['curve'] = np.asarray(truth['curve']) + sum(counts[:k]) \
            if len(truth) else truth['curve']
        parts.append((*arrays, truth))
    return (*(np.concatenate([p[i] for p in parts]) for i in range(3)),
            vstack([p[3] for p in parts]))


class TransitRecipe(Recipe):
    """The ``'transit'`` preset."""

    name = 'transit'
    reference = ('Shallue & Vanderburg 2018, AJ 155, 94; Valizadegan et '
                 'al. 2022, ApJ 926, 120')
    simulator_name = _SIMULATOR
    n_train = 8_000
    n_validation = 2_000
    n_test = 2_000
    epochs = 20
    patience = 4

    def simulate(self, n, seed, cache_dir=None):
        """The candidates of ``n`` simulated light curves."""
        from ..training.cache import cached_simulation

        return cached_simulation(simulate_candidates, n, seed,
                                 cache_dir=cache_dir)

    def make_estimator(self):
        """A new vetter with its default parameters."""
        return TransitVetter()

    def valid_ranges(self):
        """Ranges of the simulated candidates (filled in by `evaluate`)."""
        return {'period': [0.5, 30.0], 'depth': [50.0, 500_000.0],
                'duration': [0.3, 16.0]}

    def fit_stage(self, estimator, train, validation, **kwargs):
        """``estimator.fit`` on the candidates' views."""
        kwargs.setdefault('patience', self.patience)
        g, loc, sc, truth = train
        vg, vloc, vsc, vtruth = validation
        return estimator.fit(g, truth['label'], loc, sc,
                             validation_data=(vg, vtruth['label'], vloc, vsc),
                             **kwargs)

    def training_data_card(self, estimator, sets, seed):
        """Light curves and candidates of each set."""
        train, validation, test = sets
        card = {'simulator': self.simulator_name,
                'missions': ', '.join(f'{m} ({f:.0%})'
                                      for m, f in MISSION_MIX),
                'train_seed': seed, 'validation_seed': seed + 1,
                'test_seed': seed + 2}
        for name, data in (('train', train), ('validation', validation),
                           ('test', test)):
            if data is None:
                continue
            labels = np.asarray(data[3]['label'])
            card[f'n_{name}_candidates'] = len(labels)
            card[f'n_{name}_planets'] = int(np.sum(labels == 'planet'))
        return card

    def familiarity_features(self, estimator, data):
        """Trunk features of the candidates, labelled by class."""
        g, loc, sc, truth = data
        features = estimator.mc_engine().features([g[..., None] if g.ndim == 2
                                                   else g, loc, sc])
        return features, np.asarray(truth['label'])

    def evaluate(self, estimator, validation, test, *, seed):
        """Temperature on ``validation``; metrics on ``test``."""
        from .evaluate import calibrate_vetter, evaluate_vetter

        calibration = calibrate_vetter(estimator, validation, seed=seed)
        metrics, tables = evaluate_vetter(estimator, test, seed=seed)
        self._test_scores = metrics.pop('_scores')
        return {'calibration': calibration, 'metrics': metrics,
                'tables': tables,
                'figures': {'pr_curve.png': 'Held-out ROC and '
                                            'precision-recall curves of '
                                            'p_planet',
                            'reliability.png': 'Reliability of p_planet on '
                                               'the held-out candidates'}}

    def plot(self, estimator, directory, validation, test, *, seed):
        """The card's ROC/PR and reliability figures."""
        from .evaluate import plot_curves, plot_reliability

        p, truth = self._test_scores
        plot_curves(p, truth, directory / 'pr_curve.png')
        plot_reliability(p, truth, directory / 'reliability.png')


RECIPES = {'transit': TransitRecipe()}
