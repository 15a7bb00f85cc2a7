# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The recipe that produces the shipped galaxy-structure preset.

``astrodl train galaxy-structure --n-train N --seed S --output DIR`` runs
`RECIPE`: simulate the training (seed S), validation (S + 1) and held-out
test (S + 2) sets; fit with augmentation and early stopping (stage 1 at
learning rate 1e-3, then a stage 2 from the best weights at 3e-4: the
validation loss of stage 1 is noisy at its high learning rate, so its
early stopping can fire while the model still improves); calibrate the
``_err`` scales on the validation set; measure the held-out metrics; save
the estimator with its model card and history plot.
"""

from ..simulate.structure import GALAXY_STRUCTURE_RANGES
from ..training.recipe import Recipe
from .estimator import GalaxyStructure
from .evaluate import calibrate_errors, evaluate_structure

__all__ = ['GalaxyStructureRecipe', 'RECIPE', 'train_galaxy_structure']

#: The model card's ``conventions``.
CONVENTIONS = {
    'r_eff': 'half-light radius along the semi-major axis',
    'position_angle': 'deg; east of north with a celestial WCS, '
                      'else counter-clockwise from +x',
}


class GalaxyStructureRecipe(Recipe):
    """
    How the ``galaxy-structure`` preset is made (see
    `~astrodl_plugins.training.recipe.Recipe` for ``run``'s keywords).
    """

    name = 'galaxy-structure'
    reference = 'Tuccillo et al. 2018, MNRAS 475, 894'
    simulator_name = ('astrodl_plugins.simulate.simulate_galaxy_stamps '
                      '(GalSim Sersic * Moffat PSF, sky + Poisson + read '
                      'noise, 30 % with a neighbour)')
    n_train = 100_000
    n_validation = 12_000
    n_test = 10_000
    epochs = 24
    refine_epochs = 8
    refine_learning_rate = 3e-4

    def simulate(self, n, seed, cache_dir=None):
        """``(stamps, truth)`` of ``n`` simulated galaxies."""
        from ..simulate.structure import simulate_galaxy_stamps
        from ..training.cache import cached_simulation

        return cached_simulation(simulate_galaxy_stamps, n, seed,
                                 cache_dir=cache_dir)

    def make_estimator(self):
        """A new `~astrodl_plugins.structure.GalaxyStructure`."""
        return GalaxyStructure()

    def valid_ranges(self):
        """The simulator's ranges (pixels)."""
        return dict(GALAXY_STRUCTURE_RANGES)

    def familiarity_features(self, estimator, data):
        """Features of the simulated stamps (no classes)."""
        stamps, truth = data
        features, _ = estimator.network_features(stamps,
                                                 psf_fwhm=truth['psf_fwhm'])
        return features, None

    def evaluate(self, estimator, validation, test, *, seed):
        """
        ``_err`` scales from the validation set (without and with
        test-time augmentation; set on the estimator), metrics on the test
        set, and the conventions.
        """
        card = {
            'error_scale': calibrate_errors(estimator, *validation,
                                            seed=seed),
            'error_scale_tta': calibrate_errors(estimator, *validation,
                                                seed=seed, n_samples=10,
                                                tta=True),
        }
        if test is not None:
            card['metrics'] = evaluate_structure(estimator, *test, seed=seed)
            card['metrics_tta'] = evaluate_structure(
                estimator, *test, seed=seed, n_samples=10, tta=True)
        card['conventions'] = dict(CONVENTIONS)
        return card


#: The recipe of the shipped preset (run by ``astrodl train``).
RECIPE = GalaxyStructureRecipe()


def train_galaxy_structure(**kwargs):
    """
    Simulate, train, calibrate, evaluate and save galaxy-structure.

    Same as ``RECIPE.run(**kwargs)``
    (`~astrodl_plugins.training.recipe.Recipe.run`): ``output`` is
    required; defaults ``n_train=100_000``, ``seed=1``,
    ``n_validation=12_000``, ``n_test=10_000``, ``epochs=24``,
    ``refine_epochs=8``, ``refine_learning_rate=3e-4``.

    Returns
    -------
    estimator : `~astrodl_plugins.structure.GalaxyStructure`
    """
    return RECIPE.run(**kwargs)
