# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The recipe that produces the shipped ``spec-redshift`` preset.

``astrodl train spec-redshift --n-train N --seed S --output DIR``
simulates N galaxy spectra with the Euclid-NISP-like setup
(`~astrodl_plugins.simulate.spectra.simulate_spectrum_arrays`,
``setup='nisp'``: 1.20-1.90 micron, R 250-450, z 0.9-1.8, continuum S/N
per pixel 1-50; seed S), N/5 for validation (S + 1) and N/5 held out
(S + 2); fits the network with random masked chunks as augmentation;
fits the softmax temperature on the validation spectra; measures
sigma_NMAD, the outlier fraction and the coverage of the 68 % intervals on
the held-out spectra, given to ``predict`` as NDData (resampled as a
user's would be), overall and by continuum S/N and emission-line S/N;
fits the familiarity model and measures how many simulated stars and
quasars it flags.
"""

import numpy as np

from ..training.recipe import Recipe
from .estimator import SpecRedshift

__all__ = ['SpecRedshiftRecipe', 'RECIPES', 'simulate_galaxies']

_SIMULATOR = ('astrodl_plugins.simulate.spectra, setup {setup!r} (CWW '
              'template mixtures with Calzetti dust, emission lines in '
              'physical ratios, stellar absorption lines; Gaussian and '
              'Poisson-like noise, sky residuals, cosmic rays, bad pixels '
              'and gaps)')


def simulate_galaxies(n, *, seed, setup='nisp'):
    """``(flux, ivar, mask, truth)`` of ``n`` simulated galaxy spectra."""
    from ..simulate.spectra import simulate_spectrum_arrays

    _, flux, ivar, mask, truth = simulate_spectrum_arrays(
        n, seed=seed, setup=setup, kinds=('galaxy',))
    return flux.astype(np.float32), ivar.astype(np.float32), mask, truth


class SpecRedshiftRecipe(Recipe):
    """The ``'spec-redshift'`` preset (NISP-like)."""

    name = 'spec-redshift'
    setup = 'nisp'
    reference = ('Stivaktakis et al. 2019, IEEE TNNLS 31, 460 '
                 '(arXiv:1809.09622)')
    n_train = 40_000
    n_validation = 5_000
    n_test = 5_000
    epochs = 30
    patience = 5

    @property
    def simulator_name(self):
        """What made the data (model card)."""
        return _SIMULATOR.format(setup=self.setup)

    def simulate(self, n, seed, cache_dir=None):
        """``n`` simulated galaxy spectra."""
        from ..training.cache import cached_simulation

        return cached_simulation(simulate_galaxies, n, seed,
                                 cache_dir=cache_dir, setup=self.setup)

    def make_estimator(self):
        """A new estimator on the setup's grid and redshift range."""
        from ..simulate.spectra import SPECTRAL_SETUPS

        spec = SPECTRAL_SETUPS[self.setup]
        low, high = spec['z_range']
        return SpecRedshift(wavelength_min=spec['wavelength_range'][0],
                            log_step=spec['log_step'],
                            n_pixels=spec['n_pixels'], z_min=low,
                            z_step=0.001,
                            n_bins=int(round((high - low) / 0.001)))

    def valid_ranges(self):
        """The simulator's ranges."""
        from ..simulate.spectra import SPECTRAL_SETUPS

        spec = SPECTRAL_SETUPS[self.setup]
        return {'z': list(spec['z_range']),
                'wavelength': list(spec['wavelength_range']),
                'resolving_power': list(spec['resolving_power']),
                'snr': [1.0, 50.0]}

    def fit_stage(self, estimator, train, validation, **kwargs):
        """``estimator.fit`` on the spectra and their true redshifts."""
        kwargs.setdefault('patience', self.patience)
        flux, ivar, mask, truth = train
        vflux, vivar, vmask, vtruth = validation
        return estimator.fit(flux, truth['z'], ivar, mask,
                             validation_data=(vflux, vtruth['z'], vivar,
                                              vmask), **kwargs)

    def familiarity_features(self, estimator, data):
        """Network features of simulated galaxy spectra (one class)."""
        from .estimator import network_input

        flux, ivar, mask, _ = data
        return estimator.mc_engine().features(
            [network_input(flux, ivar, mask)]), None

    def evaluate(self, estimator, validation, test, *, seed):
        """Temperature on ``validation``; metrics on ``test``."""
        from .evaluate import calibrate_temperature, evaluate_redshifts

        self._seed = seed
        calibration = calibrate_temperature(estimator, validation, seed=seed)
        metrics, tables, self._test_table = evaluate_redshifts(
            estimator, test, seed=seed)
        return {'calibration': calibration, 'metrics': metrics,
                'tables': tables,
                'figures': {
                    'pred_vs_true.png': 'Held-out z against the truth, and '
                                        'dz / (1 + z) against continuum S/N',
                    'posteriors.png': 'Posteriors of held-out spectra'}}

    def add_familiarity(self, estimator, fit_data, held_out_data, *,
                        source, quantile=0.99):
        """
        The familiarity model, then the fractions of simulated stars and
        quasars (seed ``seed + 3``) it flags ``UNFAMILIAR``.
        """
        from .evaluate import ood_rates

        done = super().add_familiarity(estimator, fit_data, held_out_data,
                                       source=source, quantile=quantile)
        if done:
            estimator.card_.setdefault('metrics', {}).update(
                ood_rates(estimator, setup=self.setup,
                          seed=getattr(self, '_seed', 1) + 3))
        return done

    def plot(self, estimator, directory, validation, test, *, seed):
        """The card's figures."""
        from .evaluate import plot_posteriors, plot_pred_vs_true

        plot_pred_vs_true(self._test_table, test[3],
                          directory / 'pred_vs_true.png')
        plot_posteriors(estimator, self._test_table, test[3],
                        directory / 'posteriors.png')

    def training_data_card(self, estimator, sets, seed):
        """Spectra of each set."""
        card = super().training_data_card(estimator, sets, seed)
        card['setup'] = self.setup
        card['kinds'] = 'galaxy'
        return card


RECIPES = {'spec-redshift': SpecRedshiftRecipe()}
