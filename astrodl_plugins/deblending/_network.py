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
           'extractor_inputs', 'heatmap', 'MARKER_SIGMA', 'HEAT_SIGMA']

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
    core = np.nanmean(stamps[:, c - 1:c + 2, c - 1:c + 2], axis=(1, 2))
    core = np.nan_to_num(core, nan=0.0)
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
    """
    stamps = np.asarray(stamps, np.float32)
    n, size = stamps.shape[:2]
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), (n,))
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
