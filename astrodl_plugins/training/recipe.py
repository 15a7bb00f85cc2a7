# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The skeleton every training recipe fills in: how a shipped preset is made.

A recipe simulates a training set (seed ``seed``), a validation set
(``seed + 1``) and a held-out test set (``seed + 2``); fits the estimator,
optionally in a second stage from the best weights at a lower learning
rate; calibrates and evaluates it on the validation and test sets; writes
the model card; saves the preset with its figures. ``astrodl train NAME``
runs the estimator package's ``recipe.RECIPE``.
"""

import time
from pathlib import Path

__all__ = ['Recipe', 'join_histories']


class Recipe:
    """
    Base class of the training recipes (one per shipped preset).

    Subclasses set the class attributes and write `simulate`,
    `make_estimator` and `evaluate`; `fit_stage`, `training_data_card`
    and `plot` have defaults.

    Attributes
    ----------
    name : str
        Estimator (and preset) name.
    reference : str
        The paper the design follows (model card).
    simulator_name : str
        What made the data (model card).
    n_train, n_validation, n_test : int
        Default set sizes.
    epochs, refine_epochs : int
        Default maximum epochs of the first and second stage (0: none).
    refine_learning_rate : float
        Initial learning rate of the second stage.
    """

    name = None
    reference = ''
    simulator_name = ''
    n_train = 10_000
    n_validation = 2_000
    n_test = 2_000
    epochs = 20
    refine_epochs = 0
    refine_learning_rate = 3e-4

    def simulate(self, n, seed, cache_dir=None):
        """The simulated set of ``n`` examples for ``seed`` (required)."""
        raise NotImplementedError

    def make_estimator(self):
        """A new, unfitted estimator (required)."""
        raise NotImplementedError

    def valid_ranges(self):
        """The simulator's ranges, for the card's ``valid_ranges``."""
        return {}

    def fit_stage(self, estimator, train, validation, **kwargs):
        """One training stage; default ``estimator.fit(*train, ...)``."""
        return estimator.fit(*train, validation_data=validation, **kwargs)

    def evaluate(self, estimator, validation, test, *, seed):
        """
        Calibrate on ``validation``, measure on ``test``: the card entries
        (``metrics``, ``tables``, ``figures``...) (required).
        """
        raise NotImplementedError

    def plot(self, estimator, directory, validation, test, *, seed):
        """Write the card's figures into ``directory`` (default: none)."""

    def familiarity_features(self, estimator, data):
        """
        ``(features, labels)`` of a simulated set for the familiarity model
        (``labels`` may be `None`); a recipe without one leaves this
        method as it is.
        """
        return None

    def add_familiarity(self, estimator, fit_data, held_out_data, *,
                        source, quantile=0.99):
        """
        Fit the estimator's familiarity model (``ood_score``) on the
        features of ``fit_data``, calibrated on ``held_out_data`` (both
        simulated sets); the card records it, with ``source`` (how the
        sets were made).

        Returns
        -------
        done : bool
            False when the recipe has no ``familiarity_features``.
        """
        if type(self).familiarity_features is Recipe.familiarity_features:
            return False
        features, labels = self.familiarity_features(estimator, fit_data)
        if features is None:
            return False
        held_out, _ = self.familiarity_features(estimator, held_out_data)
        estimator.fit_familiarity(features, labels, held_out=held_out,
                                  quantile=quantile)
        card = dict(getattr(estimator, 'card_', {}))
        card['familiarity'] = {
            'method': 'Mahalanobis distance of the network features (the '
                      'input of the first MC-dropout layer) to the '
                      'class-conditional Gaussians of simulated training '
                      'data, in 32 principal components plus the residual '
                      '(Lee et al. 2018)',
            **source, 'n_fit': len(features),
            'n_calibration': len(held_out), 'quantile': quantile,
            'threshold': estimator.familiarity_.threshold,
        }
        estimator.card_ = card
        return True

    def familiarity_from_simulations(self, estimator, *, seed, n=6000,
                                     cache_dir=None):
        """
        `add_familiarity` for a preset that exists (``astrodl
        familiarity``): ``n`` new simulated examples of seed ``seed + 1``
        to fit, ``n // 2`` of seed ``seed + 2`` to calibrate.
        """
        if type(self).familiarity_features is Recipe.familiarity_features:
            return False
        source = {'command': (f'astrodl familiarity {self.name} --seed '
                              f'{seed} --n {n} --output DIR'),
                  'fit_seed': seed + 1, 'calibration_seed': seed + 2}
        return self.add_familiarity(
            estimator, self.simulate(n, seed + 1, cache_dir),
            self.simulate(n // 2, seed + 2, cache_dir), source=source)

    def training_data_card(self, estimator, sets, seed):
        """The card's ``training_data`` entry."""
        train, validation, test = sets
        card = {'simulator': self.simulator_name,
                'n_train': len(train[0]), 'train_seed': seed,
                'n_validation': len(validation[0]),
                'validation_seed': seed + 1}
        if test is not None:
            card.update(n_test=len(test[0]), test_seed=seed + 2)
        if hasattr(estimator, 'stamp_size'):
            card['stamp_size'] = estimator.stamp_size
        return card

    def run(self, *, output, n_train=None, seed=1, n_validation=None,
            n_test=None, epochs=None, refine_epochs=None,
            refine_learning_rate=None, cache_dir=None, overwrite=False,
            verbose=2, **fit_kwargs):
        """
        Simulate, train, calibrate, evaluate and save the preset.

        Parameters
        ----------
        output : path-like
            Directory of the saved preset (refused if it exists and is not
            empty, unless ``overwrite``; checked before training).
        n_train, n_validation, n_test : int, optional
            Set sizes (default: the recipe's).
        seed : int, optional
            Training set ``seed``, validation ``seed + 1``, test
            ``seed + 2``; also the weights and augmentation.
        epochs, refine_epochs : int, optional
            Maximum epochs of the two stages (default: the recipe's).
        refine_learning_rate : float, optional
            Initial learning rate of the second stage.
        cache_dir : path-like, optional
            Keep the simulated sets there and reuse them.
        overwrite : bool, optional
            Replace an existing output directory.
        verbose : int, optional
            Keras verbosity.
        **fit_kwargs
            Further keywords of the first stage's ``fit``.

        Returns
        -------
        estimator
            The trained estimator, saved in ``output``.
        """
        from ..core.store import check_output_directory
        from .fit import plot_history

        output = check_output_directory(output, overwrite)
        n_train = self.n_train if n_train is None else n_train
        n_validation = (self.n_validation if n_validation is None
                        else n_validation)
        n_test = self.n_test if n_test is None else n_test
        epochs = epochs or self.epochs
        refine_epochs = (self.refine_epochs if refine_epochs is None
                         else refine_epochs)
        refine_rate = refine_learning_rate or self.refine_learning_rate
        train = self.simulate(n_train, seed, cache_dir)
        validation = self.simulate(n_validation, seed + 1, cache_dir)
        test = self.simulate(n_test, seed + 2, cache_dir) if n_test else None
        start = time.perf_counter()
        estimator = self.make_estimator()
        self.fit_stage(estimator, train, validation, epochs=epochs,
                       seed=seed, verbose=verbose, **fit_kwargs)
        if refine_epochs:
            stage1 = estimator.history_
            self.fit_stage(estimator, train, validation,
                           epochs=refine_epochs, patience=refine_epochs,
                           learning_rate=refine_rate, seed=seed,
                           verbose=verbose)
            estimator.history_ = join_histories(stage1, estimator.history_)
        seconds = time.perf_counter() - start
        history = estimator.history_
        card = {
            'title': self.name,
            'summary': estimator.description,
            'reference': self.reference,
            'command': _command(self.name, n_train, seed, epochs,
                                refine_epochs),
            'seed': seed,
            'training_data': self.training_data_card(
                estimator, (train, validation, test), seed),
            'valid_ranges': {key: list(value) if isinstance(value, tuple)
                             else value
                             for key, value in self.valid_ranges().items()},
            'training': _training_summary(history, seconds),
        }
        # The evaluation runs with the card's ranges (range flags).
        estimator.card_ = card
        card.update(self.evaluate(estimator, validation, test, seed=seed))
        # Fitted on the validation set, calibrated on the held-out test
        # set: the sets this run already simulated.
        held_out = validation if test is None else test
        self.add_familiarity(estimator, validation, held_out, source={
            'fit': f'validation set (seed {seed + 1})',
            'calibration': ('validation set' if test is None
                            else f'test set (seed {seed + 2})')})
        directory = Path(estimator.save(output, overwrite=overwrite))
        for name, network_history in _histories(history):
            plot_history(network_history, directory / name,
                         title=self.name)
        self.plot(estimator, directory, validation, test, seed=seed)
        return estimator


def _command(name, n_train, seed, epochs, refine_epochs):
    """The ``astrodl train`` command line that reproduces a preset."""
    command = f'astrodl train {name} --n-train {n_train} --seed {seed}'
    if epochs is not None:
        command += f' --epochs {epochs}'
    return command + f' --refine-epochs {refine_epochs} --output DIR'


def join_histories(stage1, stage2):
    """Histories of two training stages, joined (per network for several)."""
    if 'loss' not in stage1:
        return {key: join_histories(stage1[key], stage2[key]) for key in stage1}
    joined = {key: stage1[key] + stage2[key] for key in stage1
              if key in stage2}
    joined['stage1_epochs'] = len(stage1['loss'])
    return joined


def _histories(history):
    """(file name, history) of each network's loss curves."""
    if 'loss' in history:
        return [('history.png', history)]
    return [(f'history_{name}.png', value) for name, value in history.items()]


def _training_summary(history, seconds):
    import numpy as np

    out = {}
    for name, value in ([(None, history)] if 'loss' in history
                        else history.items()):
        summary = {
            'epochs_run': len(value['loss']),
            'stage1_epochs': value.get('stage1_epochs', len(value['loss'])),
            'best_val_loss': float(np.min(value['val_loss'])),
        }
        if name is None:
            out = summary
        else:
            out[name] = summary
    out['seconds'] = seconds
    return out
