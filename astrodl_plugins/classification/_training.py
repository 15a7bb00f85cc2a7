# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Training of the classifiers: band-subset and dihedral augmentation."""

import numpy as np

from ..simulate.sources import BANDS
from ..training.augment import random_dihedral
from . import _network as net

__all__ = ['fit_classifier', 'class_indices']


def class_indices(labels, classes):
    """Class names or indices -> integer indices, checked."""
    labels = np.asarray(labels)
    if labels.dtype.kind in 'US':
        unknown = sorted(set(labels.tolist()) - set(classes))
        if unknown:
            msg = f'labels {unknown} are not classes of the model: {classes}'
            raise ValueError(msg)
        lookup = {name: k for k, name in enumerate(classes)}
        return np.array([lookup[name] for name in labels], np.int64)
    if labels.dtype.kind not in 'iu':
        msg = f'labels must be class names or integers, got {labels.dtype}'
        raise TypeError(msg)
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        msg = f'labels must lie in 0..{len(classes) - 1}'
        raise ValueError(msg)
    return labels.astype(np.int64)


def _as_model_stamps(stamps, bands, default_band, size):
    stamps = np.asarray(stamps, np.float32)
    if stamps.ndim == 3:
        stamps = stamps[..., None]
    if stamps.ndim != 4 or stamps.shape[1:3] != (size, size):
        msg = (f'stamps must have shape (N, {size}, {size}[, bands]), got '
               f'{stamps.shape}')
        raise ValueError(msg)
    if bands is None:
        bands = (default_band,) if stamps.shape[-1] == 1 else \
            BANDS[:stamps.shape[-1]]
    bands = tuple(bands)
    if len(bands) != stamps.shape[-1]:
        msg = f'bands {bands} do not match {stamps.shape[-1]} channels'
        raise ValueError(msg)
    return net.to_model_bands(stamps, bands), bands


def prepared_arrays(stamps, psf_fwhm):
    """Model-band stamps -> the arrays the batch preparation needs."""
    sigma, flux, npix = net.band_statistics(stamps)
    psf = np.broadcast_to(np.asarray(psf_fwhm, np.float32),
                          (len(stamps),)).copy()
    return [stamps, sigma, flux, psf], npix


def fixed_inputs(arrays, npix, present, scaling='flux'):
    """Network inputs for a fixed band-presence array (no augmentation)."""
    stamps, sigma, flux, psf = arrays
    return net.network_inputs(stamps, present, psf, sigma, flux, npix,
                              scaling=scaling)


def fit_classifier(estimator, stamps, labels, *, psf_fwhm, bands=None,
                   validation_data=None, validation_fraction=0.1, epochs=15,
                   batch_size=256, learning_rate=None, patience=3,
                   freeze=None, augment=True, seed=0, verbose=0):
    """Implementation of `SourceClassifier.fit`."""
    import keras

    from ..training.fit import fit_network

    size = estimator.stamp_size
    classes = estimator.classes
    stamps, bands = _as_model_stamps(stamps, bands, estimator.default_band,
                                     size)
    targets = class_indices(labels, classes)
    if len(targets) != len(stamps):
        msg = f'{len(targets)} labels for {len(stamps)} stamps'
        raise ValueError(msg)
    psf = np.broadcast_to(np.asarray(psf_fwhm, np.float32),
                          (len(stamps),)).copy()
    rng = np.random.default_rng(seed)
    if validation_data is None:
        order = rng.permutation(len(stamps))
        n_val = max(1, int(round(validation_fraction * len(stamps))))
        val = order[:n_val]
        train = order[n_val:]
        val_stamps, val_targets, val_psf = stamps[val], targets[val], psf[val]
        stamps, targets, psf = stamps[train], targets[train], psf[train]
        val_bands = bands
    else:
        val_stamps, val_bands = _as_model_stamps(
            validation_data[0], bands, estimator.default_band, size)
        val_targets = class_indices(validation_data[1], classes)
        val_psf = np.broadcast_to(np.asarray(validation_data[2], np.float32),
                                  (len(val_stamps),)).copy()
    all_bands = set(bands) == set(BANDS)
    arrays, npix = prepared_arrays(stamps, psf)
    val_arrays, _ = prepared_arrays(val_stamps, val_psf)
    val_rng = np.random.default_rng(seed + 1)
    val_present = (net.random_band_subsets(val_rng, len(val_stamps))
                   if all_bands else net.presence(val_bands, len(val_stamps)))
    scaling = estimator.scaling
    validation = (fixed_inputs(val_arrays, npix, val_present, scaling),
                  val_targets)
    fixed_present = net.presence(bands, 1)[0]

    def prepare(inputs, batch_targets, batch_rng):
        n = len(batch_targets)
        present = (net.random_band_subsets(batch_rng, n) if all_bands
                   else np.tile(fixed_present, (n, 1)))
        x, conditions = fixed_inputs(inputs, npix, present, scaling)
        if augment:
            x = random_dihedral(x, batch_rng)[0]
        return [x, conditions], batch_targets

    new = getattr(estimator, 'model_', None) is None
    if new:
        keras.utils.set_random_seed(seed)
        estimator.model_ = net.build_classifier(
            size, len(classes), widths=estimator.widths,
            dense=estimator.dense, dropout=estimator.dropout)
        estimator.temperature_ = 1.0
    _freeze(estimator.model_, freeze)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    estimator.history_ = fit_network(
        estimator.model_, (arrays, targets), validation, loss=loss,
        epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate or (1e-3 if new else 1e-4),
        patience=patience, seed=seed, prepare=prepare,
        prepare_validation=None, verbose=verbose)
    for layer in estimator.model_.layers:
        layer.trainable = True
    estimator._engine_cache = None
    estimator.model_sha256_ = None
    return estimator


def _freeze(model, freeze):
    import keras

    if freeze is None:
        return
    convs = [layer for layer in model.layers
             if isinstance(layer, keras.layers.Conv2D)]
    if freeze == 'conv':
        n_blocks = len(convs)
    elif isinstance(freeze, (int, np.integer)) and not isinstance(
            freeze, bool) and freeze >= 0:
        n_blocks = 2 * int(freeze)  # two convolutions per block
    else:
        msg = f"freeze must be None, 'conv' or an integer >= 0, got {freeze!r}"
        raise ValueError(msg)
    last = convs[n_blocks - 1] if n_blocks else None
    if last is None:
        return
    # Everything up to the last frozen convolution's block (its BN too).
    stop = model.layers.index(last) + 2
    for layer in model.layers[:stop]:
        layer.trainable = False
