# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
``fit``, written once for every estimator (scikit-learn's mixin habit).

An estimator class combines a family of `astrodl_plugins.core` with
`TrainableMixin` and writes two hooks:

``_training_data(X, y, ...)``
    Checks the labelled data and returns a tuple of arrays or tables that
    share their first axis (one row per training example).
``_training_tasks(train, validation, *, new, augment, seed)``
    One `TrainingTask` per network to fit, in order: how to build it,
    its inputs and targets, loss and batch preparation. When ``new`` (no
    fitted model yet) it may set fitted state such as target statistics.

and optionally ``_freeze(network, freeze)`` for fine-tuning.
"""

import inspect
from dataclasses import dataclass

import numpy as np

__all__ = ['TrainableMixin', 'TrainingTask']


@dataclass
class TrainingTask:
    """
    How to fit one network of an estimator.

    Attributes
    ----------
    network : str
        Name in the estimator's ``networks``: the task fits ``<network>_``.
    build : callable
        ``build()`` returns a new Keras model (used when training from
        scratch).
    train, validation : tuple
        ``(inputs, targets)``: a list of input arrays and a target array.
    loss : `keras.losses.Loss` or callable
        The loss.
    prepare, prepare_validation : callable, optional
        ``prepare(inputs, targets, rng) -> (inputs, targets)`` per batch.
    epochs, batch_size, patience : int
        Defaults of this network (``fit``'s keywords override them).
    learning_rate : float
        Initial learning rate from scratch; fine-tuning uses a tenth.
    """

    network: str
    build: object
    train: tuple
    validation: tuple
    loss: object
    prepare: object = None
    prepare_validation: object = None
    epochs: int = 20
    batch_size: int = 256
    patience: int = 5
    learning_rate: float = 1e-3


class TrainableMixin:
    """Adds `fit` to an estimator that writes the training hooks."""

    def fit(self, X, y, *args, validation_data=None,
            validation_fraction=0.1, epochs=None, batch_size=None,
            learning_rate=None, patience=None, freeze=None, augment=True,
            seed=0, verbose=0, **fit_params):
        """
        Train from scratch, or fine-tune the loaded model(s), on labelled data.

        Parameters
        ----------
        X : array
            The training inputs (e.g. stamps centred on the sources).
        y : array or `~astropy.table.Table`
            The labels (see the estimator's ``_training_data``).
        *args
            Further per-example training arrays of the estimator.
        validation_data : tuple, optional
            ``(X, y, ...)`` for early stopping; default: a random
            ``validation_fraction`` of the training data. Keywords in
            ``fit_params`` that are not per-example arrays apply to it too.
        validation_fraction : float, optional
            Fraction held out when ``validation_data`` is not given.
        epochs, batch_size, patience : int, optional
            Maximum epochs, mini-batch size and early-stopping patience
            (default: the estimator's, per network).
        learning_rate : float, optional
            Initial learning rate (default: the estimator's from scratch, a
            tenth of it when fine-tuning).
        freeze : optional
            Layers kept fixed while fine-tuning (see the estimator's
            ``fit`` notes); `None` trains every layer.
        augment : bool, optional
            Random augmentation (rotations and flips) of the batches.
        seed : int, optional
            Seed of the initialization, split and augmentation.
        verbose : int, optional
            Keras verbosity.
        **fit_params
            The estimator's training keywords (e.g. ``psf_fwhm``).

        Returns
        -------
        self
        """
        import keras

        from .fit import fit_network

        data = self._training_data(X, y, *args, **fit_params)
        n = len(data[0])
        if validation_data is None:
            rng = np.random.default_rng(seed)
            order = rng.permutation(n)
            n_val = max(1, int(round(validation_fraction * n)))
            validation = _take(data, order[:n_val])
            train = _take(data, order[n_val:])
        else:
            bound = inspect.signature(self._training_data).bind_partial(
                *validation_data).arguments
            shared = {key: value for key, value in fit_params.items()
                      if key not in bound and not _per_example(value, n)}
            validation = self._training_data(*validation_data, **shared)
            train = data
        new = not self._is_fitted()
        if new:
            keras.utils.set_random_seed(seed)
        histories = {}
        networks = {}
        for task in self._training_tasks(train, validation, new=new,
                                         augment=augment, seed=seed):
            if new:
                keras.utils.set_random_seed(seed)
                network = task.build()
            else:
                network = getattr(self, f'{task.network}_')
            # Checked before anything is trained or stored.
            self._freeze(network, freeze)
            rate = learning_rate or (task.learning_rate if new
                                     else task.learning_rate / 10)
            try:
                histories[task.network] = fit_network(
                    network, task.train, task.validation, loss=task.loss,
                    epochs=epochs or task.epochs,
                    batch_size=batch_size or task.batch_size,
                    learning_rate=rate, patience=patience or task.patience,
                    seed=seed, prepare=task.prepare,
                    prepare_validation=task.prepare_validation,
                    verbose=verbose)
            finally:
                for layer in network.layers:
                    layer.trainable = True
            networks[task.network] = network
        # The estimator changes only once every network is trained.
        for name, network in networks.items():
            setattr(self, f'{name}_', network)
        self.history_ = (histories if len(histories) > 1
                         else next(iter(histories.values())))
        self._forget_engines()
        self.model_sha256_ = None
        return self

    def _training_data(self, X, y, *args, **fit_params):
        """Checked training arrays sharing their first axis (required hook)."""
        msg = f'{type(self).__name__} must implement _training_data'
        raise NotImplementedError(msg)

    def _training_tasks(self, train, validation, *, new, augment, seed):
        """The `TrainingTask` of each network to fit (required hook)."""
        msg = f'{type(self).__name__} must implement _training_tasks'
        raise NotImplementedError(msg)

    def _freeze(self, network, freeze):
        """Mark layers not trainable for fine-tuning; default: none allowed."""
        if freeze is not None:
            msg = (f'{type(self).__name__} does not support freeze; got '
                   f'{freeze!r}')
            raise ValueError(msg)


def _take(data, rows):
    return tuple(item[rows] for item in data)


def _per_example(value, n):
    """Whether a keyword is an array with one value per training example."""
    return np.ndim(value) >= 1 and not isinstance(value, (str, tuple)) \
        and len(value) == n
