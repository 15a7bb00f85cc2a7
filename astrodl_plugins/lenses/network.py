# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The residual network of the lens estimators and the lens-parameter targets.

Both estimators read multi-band stamps exactly as the source classifiers
do (``astrodl_plugins.classification.network``: bands in ``g, r, i`` order,
absent bands zeroed with a presence flag, one common scale so the colours
survive, ``asinh`` compression, the PSF FWHM as a condition); only the
trunk differs: a ResNet (He et al. 2016) as in CMU DeepLens (Lanusse et
al. 2018), whose skip connections keep the thin, faint arcs that a plain
stack of convolutions and poolings washes out.
"""

import numpy as np

__all__ = ['build_resnet', 'with_residuals', 'colour_residual',
           'finder_channels', 'PARAMETER_NAMES',
           'TARGET_NAMES', 'encode_targets', 'decode_targets',
           'dihedral_targets']

#: Outputs of ``lens-parameters`` in table order.
PARAMETER_NAMES = ('theta_e', 'e1', 'e2', 'gamma1', 'gamma2', 'x_centroid',
                   'y_centroid')
#: What the parameter network predicts (a mean and a log-variance each):
#: log Einstein radius (pixels), the SIE ellipticity, the external shear
#: and the lens centre's offset from the stamp centre (pixels).
TARGET_NAMES = ('log_theta_e', 'e1', 'e2', 'gamma1', 'gamma2', 'dx', 'dy')


def build_resnet(stamp_size, n_outputs, *, n_bands=3, channels=None,
                 widths=(16, 32, 64), blocks=(1, 2, 2), dense=128,
                 dropout=0.25, name='resnet'):
    """
    A residual CNN with an MC-dropout dense head.

    Inputs: ``stamps`` ``(stamp_size, stamp_size, n_bands)`` and
    ``conditions`` (``n_bands`` presence flags and the scaled log PSF
    FWHM), as the classifiers' ``build_classifier``.
    The trunk is a 3x3 stem then, per stage, ``blocks[s]`` pre-activation
    residual blocks of ``widths[s]`` filters (the first of each later
    stage with stride 2 and a projected skip). Output: ``n_outputs``
    linear units. ``channels`` (default ``n_bands``) is the number of image
    channels (``2 * n_bands`` with `with_residuals`).
    """
    import keras
    from keras import layers

    from ..core.mc import MCDropout

    channels = n_bands if channels is None else channels
    stamps = keras.Input((stamp_size, stamp_size, channels), name='stamps')
    conditions = keras.Input((n_bands + 1,), name='conditions')
    x = layers.Conv2D(widths[0], 3, padding='same', use_bias=False,
                      name='stem_conv')(stamps)
    for stage, (width, count) in enumerate(zip(widths, blocks)):
        for block in range(count):
            stride = 2 if stage > 0 and block == 0 else 1
            prefix = f'stage{stage}_block{block}'
            y = layers.BatchNormalization(name=f'{prefix}_bn1')(x)
            y = layers.Activation('relu')(y)
            shortcut = x
            if stride != 1 or x.shape[-1] != width:
                shortcut = layers.Conv2D(width, 1, strides=stride,
                                         use_bias=False,
                                         name=f'{prefix}_proj')(y)
            y = layers.Conv2D(width, 3, strides=stride, padding='same',
                              use_bias=False, name=f'{prefix}_conv1')(y)
            y = layers.BatchNormalization(name=f'{prefix}_bn2')(y)
            y = layers.Activation('relu')(y)
            y = layers.Conv2D(width, 3, padding='same', use_bias=False,
                              name=f'{prefix}_conv2')(y)
            x = layers.Add()([shortcut, y])
    x = layers.BatchNormalization(name='head_bn')(x)
    x = layers.Activation('relu')(x)
    # Pool to 6x6 or so: position information stays (the lens centre).
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Concatenate()([x, conditions])
    x = layers.Dense(dense, activation='relu')(x)
    x = MCDropout(dropout)(x)
    x = layers.Dense(dense, activation='relu')(x)
    x = MCDropout(dropout)(x)
    outputs = layers.Dense(n_outputs, name='outputs')(x)
    return keras.Model([stamps, conditions], outputs, name=name)


def with_residuals(x, box=4):
    """
    Scaled stamps with their point-symmetric residuals as extra channels.

    The smooth light of a deflector is nearly point-symmetric about its
    centre; arcs, counter-images off the axis, knots and companions are
    not. Each band of each stamp minus itself turned by 180 degrees about
    the light-weighted centroid of the central ``2 box + 1`` pixels
    (bilinear, sub-pixel) keeps what a lens adds and removes most of the
    lens light -- the lens-light subtraction many finders make first,
    without fitting a model. Training computes them on each augmented
    (turned, flipped) batch, as prediction does on each view, because the
    centroid's window is not symmetric under every turn of an even-sized
    stamp.

    Parameters
    ----------
    x : `~numpy.ndarray`
        ``(n, size, size, bands)`` scaled stamps.
    box : int, optional
        Half-side of the central box of the centroid, pixels.

    Returns
    -------
    `~numpy.ndarray`
        ``(n, size, size, 2 bands)``: the stamps, then the residuals.
    """
    from scipy.ndimage import map_coordinates

    x = np.asarray(x, np.float32)
    n, size, _, bands = x.shape
    middle = size // 2
    window = slice(middle - box - 1, middle + box)
    core = np.clip(x[:, window, window].sum(axis=-1), 0.0, None)
    yy, xx = np.mgrid[window, window].astype(np.float64)
    weight = core.sum(axis=(1, 2))
    safe = np.where(weight > 0, weight, 1.0)
    centre = (size - 1) / 2
    cy = np.where(weight > 0, (core * yy).sum(axis=(1, 2)) / safe, centre)
    cx = np.where(weight > 0, (core * xx).sum(axis=(1, 2)) / safe, centre)
    gy, gx, gb = np.meshgrid(np.arange(size), np.arange(size),
                             np.arange(bands), indexing='ij')
    residuals = np.empty_like(x)
    for i in range(n):
        turned = map_coordinates(x[i], [2 * cy[i] - gy, 2 * cx[i] - gx, gb],
                                 order=1, mode='constant', cval=0.0)
        residuals[i] = x[i] - turned
    return np.concatenate([x, residuals], axis=-1)


def colour_residual(x, box=2):
    """
    The bluest band minus the reddest, scaled to cancel the central light.

    The colour-difference image of RingFinder (Gavazzi et al. 2014): an
    early-type deflector has nearly one colour, so the bluest band minus
    the reddest scaled by their ratio in the central ``2 box + 1`` pixels
    removes its light, and the blue arcs of a lensed star-forming source
    stay, even where they are buried in the deflector's light. A stamp
    with fewer than two bands (the others zero) gets zeros.

    Parameters
    ----------
    x : `~numpy.ndarray`
        ``(n, size, size, bands)`` scaled stamps, bands from blue to red,
        absent bands zero.
    box : int, optional
        Half-side of the central box that sets the scale, pixels.

    Returns
    -------
    `~numpy.ndarray`
        ``(n, size, size, 1)``.
    """
    x = np.asarray(x, np.float32)
    n, size, _, bands = x.shape
    out = np.zeros((n, size, size, 1), np.float32)
    present = np.any(x != 0, axis=(1, 2))
    middle = size // 2
    window = slice(middle - box - 1, middle + box)
    for i in np.flatnonzero(present.sum(axis=1) >= 2):
        chosen = np.flatnonzero(present[i])
        blue, red = x[i, :, :, chosen[0]], x[i, :, :, chosen[-1]]
        core_red = red[window, window]
        power = float(np.sum(core_red ** 2))
        ratio = (float(np.sum(blue[window, window] * core_red)) / power
                 if power > 0 else 0.0)
        out[i, :, :, 0] = blue - max(ratio, 0.0) * red
    return out


def finder_channels(x, colour=True):
    """
    The lens finder's input channels: the stamps, their point-symmetric
    residuals (`with_residuals`) and, if ``colour``, the colour-difference
    image (`colour_residual`).
    """
    channels = with_residuals(x)
    if colour:
        channels = np.concatenate([channels, colour_residual(x)], axis=-1)
    return channels


def encode_targets(theta_e, e1, e2, gamma1, gamma2, dx, dy):
    """Truth (pixels) -> ``(n, 7)`` raw targets in `TARGET_NAMES` order."""
    return np.stack([np.log(np.asarray(theta_e, np.float64)), e1, e2,
                     gamma1, gamma2, dx, dy], axis=-1).astype(np.float32)


def decode_targets(raw):
    """
    ``(..., 7)`` raw targets -> dict of ``theta_e`` (pixels), ``e1``,
    ``e2``, ``gamma1``, ``gamma2``, ``dx``, ``dy``.
    """
    raw = np.asarray(raw, np.float64)
    out = {name: raw[..., k] for k, name in enumerate(TARGET_NAMES)}
    out['theta_e'] = np.exp(np.clip(out.pop('log_theta_e'), -10.0, 10.0))
    return out


def dihedral_targets(targets, k, flip):
    """
    Raw targets for stamps turned by ``k`` quarter turns and mirrored
    along x (`~astrodl_plugins.core.dihedral.apply_dihedral`).

    A quarter turn is clockwise by 90 deg: a spin-2 quantity (``e1, e2``
    and ``gamma1, gamma2``) changes sign, an offset ``(dx, dy)`` becomes
    ``(dy, -dx)``; the mirror maps ``x -> -x``: ``e2``, ``gamma2`` and
    ``dx`` change sign. The Einstein radius is invariant.
    """
    out = np.array(targets, copy=True)
    k = np.asarray(k) % 4
    flip = np.broadcast_to(np.asarray(flip, bool), k.shape)
    odd = (k % 2) == 1
    out[odd, 1:5] *= -1.0
    dx, dy = out[:, 5].copy(), out[:, 6].copy()
    for turn in range(1, 4):
        select = k == turn
        for _ in range(turn):
            dx[select], dy[select] = dy[select], -dx[select]
    dx[flip] *= -1.0
    out[flip, 2] *= -1.0
    out[flip, 4] *= -1.0
    out[:, 5], out[:, 6] = dx, dy
    return out
