# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Training of the galaxy-structure network (used by ``fit``)."""

import numpy as np

from ..training.augment import random_dihedral
from ..training.fit import fit_network
from ..training.losses import GaussianBetaNLL
from ._network import dihedral_targets, encode_targets, psf_feature, stamp_features

__all__ = []


def prepare_inputs(images, truth, psf_fwhm):
    """Network inputs and raw targets of labelled stamps."""
    features, norm, _ = stamp_features(images)
    raw = encode_targets(truth, norm)
    return [features, psf_feature(psf_fwhm)], raw


def target_statistics(raw_targets):
    """Mean and standard deviation used to standardize each target."""
    mean = raw_targets.mean(axis=0)
    std = np.maximum(raw_targets.std(axis=0), 1e-6)
    return mean.astype(float).tolist(), std.astype(float).tolist()


def fit_structure_network(model, train, validation, *, target_mean,
                          target_std, epochs=24, batch_size=256,
                          learning_rate=1e-3, patience=5, seed=0,
                          augment=True, verbose=2):
    """
    Train the galaxy-structure network with dihedral augmentation.

    Parameters
    ----------
    model : `keras.Model`
        From `~astrodl_plugins.structure._network.build_network` (or a
        loaded one, for fine-tuning).
    train, validation : tuple
        ``(inputs, raw_targets)`` from `prepare_inputs`.
    target_mean, target_std : sequence of float
        Standardization of the raw targets.
    augment : bool, optional
        Random rotations by quarter turns and flips (Dieleman et al. 2015)
        with the matching transformation of the targets.

    Returns
    -------
    history : dict
    """
    mean = np.asarray(target_mean, np.float32)
    std = np.asarray(target_std, np.float32)

    def prepare(inputs, targets, rng):
        image, psf = inputs
        if augment:
            image, k, flip = random_dihedral(image, rng)
            targets = dihedral_targets(targets, k, flip)
        return [image, psf], (targets - mean) / std

    def prepare_validation(inputs, targets, rng):
        return inputs, (targets - mean) / std

    return fit_network(model, train, validation, loss=GaussianBetaNLL(0.5),
                       epochs=epochs, batch_size=batch_size,
                       learning_rate=learning_rate, patience=patience,
                       seed=seed, prepare=prepare,
                       prepare_validation=prepare_validation, verbose=verbose)
