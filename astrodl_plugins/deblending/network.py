# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The deblender's two U-Nets and their input scaling.

* The *detector* is fully convolutional: image in, a heat map of source
  centres out (one sigmoid channel). It runs on crops of any size that is
  a multiple of 4.
* The *extractor* sees a stamp centred on one detected source, with a
  marker at the source's sub-pixel centre, and predicts that source's own
  noise-free image (Boucaud et al. 2020). Its last block sits behind an
  `~astrodl_plugins.core.MCDropout` layer, so the MC-dropout engine runs
  the encoder and decoder once and only that block once per draw.
"""

import numpy as np

__all__ = ['build_detector', 'build_extractor', 'detector_inputs',
           'extractor_inputs', 'heatmap', 'detector_task', 'extractor_task',
           'MARKER_SIGMA', 'HEAT_SIGMA']

#: Width (pixels) of the Gaussian marking the target in the extractor input.
MARKER_SIGMA = 1.0
#: Width (pixels) of the Gaussian blobs of the detector's target heat map.
HEAT_SIGMA = 1.0
_ASINH_SOFTENING = 3.0


def _block(layers, x, width):
    for _ in range(2):
        x = layers.Conv2D(width, 3, padding='same', use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation('relu')(x)
    return x


def _unet(layers, x, widths, dropout=None):
    """Encoder-decoder with skips; ``dropout`` before the last block."""
    from ..core.mc import MCDropout

    skips = []
    for width in widths[:-1]:
        x = _block(layers, x, width)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = _block(layers, x, widths[-1])
    for width, skip in zip(widths[-2::-1], skips[::-1]):
        x = layers.UpSampling2D(2)(x)
        x = layers.Concatenate()([x, skip])
        if dropout is not None and skip is skips[0]:
            x = MCDropout(dropout)(x)
        x = _block(layers, x, width)
    return x


def build_detector(widths=(8, 16, 32)):
    """The centre detector: ``(None, None, 1)`` -> heat map logits."""
    import keras
    from keras import layers

    image = keras.Input((None, None, 1), name='image')
    x = _unet(layers, image, widths)
    logits = layers.Conv2D(1, 1, name='heat_logits')(x)
    return keras.Model(image, logits, name='detector')


def build_extractor(stamp_size=48, widths=(16, 32, 64), dropout=0.2):
    """The per-source extractor: ``(size, size, 3)`` -> model image."""
    import keras
    from keras import layers

    stamps = keras.Input((stamp_size, stamp_size, 3), name='stamps')
    x = _unet(layers, stamps, widths, dropout=dropout)
    model = layers.Conv2D(1, 1, name='model')(x)
    model = layers.Flatten()(model)
    return keras.Model(stamps, model, name='extractor')


def detector_inputs(data, sigma):
    """Scaled detector input: ``asinh(data / (3 sigma))``, NaN -> 0."""
    scaled = np.arcsinh(np.asarray(data, np.float32)
                        / (_ASINH_SOFTENING * np.asarray(sigma, np.float32)))
    return np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0)


def stamp_scale(stamps, sigma):
    """
    The scale of each stamp: the mean of its central 3x3 pixels, at least
    3 sigma. The extractor's input and output are in units of it.
    """
    size = stamps.shape[1]
    c = size // 2
    core = np.asarray(stamps[:, c - 1:c + 2, c - 1:c + 2], np.float64)
    known = np.isfinite(core)
    count = known.sum(axis=(1, 2))
    # The mean of the finite pixels; 0 where there is none.
    core = np.where(known, core, 0.0).sum(axis=(1, 2)) / np.maximum(count, 1)
    return np.maximum(core, 3.0 * np.asarray(sigma, np.float64))


def _marker(x, y, size):
    grid = np.arange(size, dtype=np.float32)
    gx = np.exp(-0.5 * ((grid[None, :] - np.asarray(x)[:, None])
                        / MARKER_SIGMA) ** 2)
    gy = np.exp(-0.5 * ((grid[None, :] - np.asarray(y)[:, None])
                        / MARKER_SIGMA) ** 2)
    return gy[:, :, None] * gx[:, None, :]


def extractor_inputs(stamps, sigma, x, y):
    """
    The extractor's input channels, and the scale of each stamp.

    Parameters
    ----------
    stamps : `~numpy.ndarray`
        ``(n, size, size)`` data centred (to the pixel) on each target.
    sigma : `~numpy.ndarray`
        Background noise per stamp.
    x, y : `~numpy.ndarray`
        The target's centre in stamp pixels.

    Returns
    -------
    inputs : `~numpy.ndarray`
        ``(n, size, size, 3)``: data over the scale, the asinh-scaled
        signal-to-noise, the marker.
    scale : `~numpy.ndarray`
        ``(n,)``; the network's output times it is in data units.

    Raises
    ------
    ValueError
        A ``sigma`` that is not finite and positive.
    """
    stamps = np.asarray(stamps, np.float32)
    n, size = stamps.shape[:2]
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), (n,))
    if not np.all(np.isfinite(sigma) & (sigma > 0)):
        # The stamps are divided by a scale of at least 3 sigma.
        msg = (f'sigma must be finite and > 0 for every stamp, got '
               f'{sigma[~(np.isfinite(sigma) & (sigma > 0))][:5].tolist()}')
        raise ValueError(msg)
    scale = stamp_scale(stamps, sigma)
    out = np.empty((n, size, size, 3), np.float32)
    out[..., 0] = np.nan_to_num(stamps / scale[:, None, None].astype(
        np.float32))
    out[..., 1] = detector_inputs(stamps, sigma[:, None, None]) / 4.0
    out[..., 2] = _marker(x, y, size)
    return out, scale


def heatmap(x, y, shape):
    """Target heat map: the maximum of unit Gaussians at ``(x, y)``."""
    ny, nx = shape
    gx = np.arange(nx, dtype=np.float32)
    gy = np.arange(ny, dtype=np.float32)
    out = np.zeros(shape, np.float32)
    for xi, yi in zip(np.atleast_1d(x), np.atleast_1d(y)):
        if not (np.isfinite(xi) and np.isfinite(yi)):
            continue
        blob = (np.exp(-0.5 * ((gy[:, None] - yi) / HEAT_SIGMA) ** 2)
                * np.exp(-0.5 * ((gx[None, :] - xi) / HEAT_SIGMA) ** 2))
        np.maximum(out, blob, out=out)
    return out


# -- training (the hooks of Deblender.fit) -----------------------------------

def _stamp_heatmaps(truth, size):
    """Heat-map targets of the stamps: every member inside each stamp."""
    out = np.empty((len(truth), size, size, 1), np.float32)
    xs = np.column_stack([np.asarray(truth['x']),
                          np.asarray(truth['others_x'])])
    ys = np.column_stack([np.asarray(truth['y']),
                          np.asarray(truth['others_y'])])
    for i in range(len(truth)):
        out[i, ..., 0] = heatmap(xs[i], ys[i], (size, size))
    return out


def _dihedral_pair(inputs, targets, rng, augment=True):
    """The same random rotation/flip of inputs and (image) targets."""
    from ..training.augment import random_dihedral

    if not augment:
        return inputs, targets
    n_in = inputs.shape[-1]
    both, _, _ = random_dihedral(np.concatenate([inputs, targets], -1), rng)
    return both[..., :n_in], both[..., n_in:]


def _detector_loss(y_true, y_pred):
    """Binary cross-entropy with the centres (a few pixels) weighted up."""
    import keras

    bce = keras.ops.binary_crossentropy(y_true, y_pred, from_logits=True)
    return keras.ops.mean((1.0 + 20.0 * y_true) * bce)


def detector_task(estimator, train, validation, *, augment=True):
    """The `~astrodl_plugins.training.mixin.TrainingTask` of the detector."""
    from ..training.mixin import TrainingTask

    def arrays(split):
        stamps, truth, _ = split
        sigma = np.asarray(truth['noise_sigma'])[:, None, None]
        return ([detector_inputs(stamps, sigma)[..., None]],
                _stamp_heatmaps(truth, stamps.shape[1]))

    def prepare(inputs, targets, rng):
        x, y = _dihedral_pair(inputs[0], targets, rng, augment)
        return [x], y

    return TrainingTask(
        'detector', lambda: build_detector(tuple(estimator.detector_widths)),
        arrays(train), arrays(validation), _detector_loss, prepare=prepare,
        epochs=10, batch_size=64, patience=4, learning_rate=3e-3)


def _extractor_arrays(split, rng, jitter):
    """Extractor inputs (marker jittered by ``jitter`` px) and targets."""
    stamps, truth, models = split
    x = np.asarray(truth['x']) + rng.normal(0, jitter, len(truth))
    y = np.asarray(truth['y']) + rng.normal(0, jitter, len(truth))
    inputs, scale = extractor_inputs(stamps, np.asarray(truth['noise_sigma']),
                                     x, y)
    targets = (models / scale[:, None, None])[..., None].astype(np.float32)
    return [inputs], targets


def extractor_task(estimator, train, validation, *, augment=True, seed=0):
    """The `~astrodl_plugins.training.mixin.TrainingTask` of the extractor."""
    import keras

    from ..training.mixin import TrainingTask

    rng = np.random.default_rng(seed)
    size = estimator.stamp_size

    def prepare(inputs, targets, batch_rng):
        x, y = _dihedral_pair(inputs[0], targets, batch_rng, augment)
        return [x], y.reshape(len(y), size * size)

    def prepare_validation(inputs, targets, batch_rng):
        return inputs, targets.reshape(len(targets), size * size)

    # Markers are jittered by the detector's typical centring error.
    return TrainingTask(
        'model', lambda: build_extractor(size, tuple(estimator.widths),
                                         estimator.dropout),
        _extractor_arrays(train, rng, 0.3),
        _extractor_arrays(validation, rng, 0.3),
        keras.losses.MeanSquaredError(), prepare=prepare,
        prepare_validation=prepare_validation, epochs=12, batch_size=64,
        patience=4, learning_rate=2e-3)
