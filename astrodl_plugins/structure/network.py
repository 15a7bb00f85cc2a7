# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Network, input scaling and target encoding of the galaxy-structure model.

Everything here is shared by training and prediction, so the two cannot
drift apart.
"""

import numpy as np

__all__ = []

#: Outputs of the estimator, in table order.
OUTPUT_NAMES = ('sersic_n', 'r_eff', 'axis_ratio', 'position_angle', 'flux')

#: What the network predicts (each with a mean and a log-variance).
TARGET_NAMES = ('log_sersic_n', 'log_r_eff', 'axis_ratio', 'g1', 'g2',
                'log_flux_ratio')

_BORDER = 6
_CORE = 6
_PSF_SCALE = 5.0


def stamp_scales(stamps):
    """
    Robust noise level and central peak of each stamp.

    Parameters
    ----------
    stamps : `~numpy.ndarray`
        Shape ``(n, ny, nx)``; non-finite pixels are ignored.

    Returns
    -------
    sigma, norm : `~numpy.ndarray`
        Noise (MAD of the outer frame) and normalisation (the larger of the
        3x3-smoothed peak within 6 pix of the centre and ``sigma``).
    """
    stamps = np.asarray(stamps, dtype=np.float32)
    n, ny, nx = stamps.shape
    frame = np.ones((ny, nx), bool)
    frame[_BORDER:ny - _BORDER, _BORDER:nx - _BORDER] = False
    border = stamps[:, frame]
    with np.errstate(all='ignore'):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            # np.median is vectorized; nanmedian loops over rows with NaN.
            median = np.median if np.isfinite(border).all() else np.nanmedian
            med = median(border, axis=1, keepdims=True)
            sigma = 1.4826 * median(np.abs(border - med), axis=1)
            cy, cx = ny // 2, nx // 2
            core = stamps[:, cy - _CORE - 1:cy + _CORE + 1,
                          cx - _CORE - 1:cx + _CORE + 1]
            core = np.nan_to_num(core)
            smooth = sum(core[:, i:i + 2 * _CORE, j:j + 2 * _CORE]
                         for i in range(3) for j in range(3)) / 9.0
            peak = smooth.reshape(n, -1).max(axis=1)
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, 0.0)
    tiny = np.float32(1e-30)
    sigma = np.maximum(sigma, np.maximum(np.abs(peak) * 1e-4, tiny))
    norm = np.maximum(peak, sigma)
    return sigma.astype(np.float32), norm.astype(np.float32)


def stamp_features(stamps, chunk=8192):
    """
    The network's image input: two channels per stamp.

    Channel 0 is the stamp over its central peak (shape information at
    every S/N); channel 1 is ``arcsinh(stamp / sigma) / 10`` (faint
    wings and the noise level). Non-finite pixels become 0.

    Returns
    -------
    features : `~numpy.ndarray`
        Shape ``(n, ny, nx, 2)``, float32.
    norm : `~numpy.ndarray`
        The normalisation of each stamp (flux unit of the input).
    sigma : `~numpy.ndarray`
        The noise of each stamp (MAD of its outer frame).
    """
    stamps = np.asarray(stamps, dtype=np.float32)
    n = len(stamps)
    features = np.empty(stamps.shape + (2,), np.float32)
    norms = np.empty(n, np.float32)
    sigmas = np.empty(n, np.float32)
    for start in range(0, n, chunk):
        part = stamps[start:start + chunk]
        sigma, norm = stamp_scales(part)
        sigmas[start:start + chunk] = sigma
        part = np.nan_to_num(part, nan=0.0, posinf=0.0, neginf=0.0)
        features[start:start + chunk, ..., 0] = part / norm[:, None, None]
        features[start:start + chunk, ..., 1] = np.arcsinh(
            part / sigma[:, None, None]) / 10.0
        norms[start:start + chunk] = norm
    return features, norms, sigmas


def psf_feature(psf_fwhm):
    """The network's PSF input: FWHM in pixels over 5, shape (n, 1)."""
    return (np.asarray(psf_fwhm, np.float32) / _PSF_SCALE).reshape(-1, 1)


def stamp_snr(stamps, errors=None, radius=8):
    """
    Matched-filter S/N estimate in the central disc: sqrt(sum (I/s)^2 - N).

    Parameters
    ----------
    stamps : `~numpy.ndarray`
        Shape ``(n, ny, nx)``.
    errors : `~numpy.ndarray`, optional
        The uncertainty ``s`` of each pixel (or anything that broadcasts
        to the stamps); default: the MAD noise of each stamp's outer frame
        (`stamp_scales`).
    radius : float, optional
        Radius of the central disc, pixels.

    Returns
    -------
    snr : `~numpy.ndarray`
        Shape ``(n,)``.
    """
    size = stamps.shape[-1]
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disc = np.hypot(xx, yy) <= radius
    if errors is None:
        sigma, _ = stamp_scales(stamps)
        errors = sigma[:, None, None]
    with np.errstate(all='ignore'):
        ratio = np.where(disc, stamps / errors, 0.0)
        chi2 = np.nansum(ratio ** 2, axis=(1, 2)) - disc.sum()
    return np.sqrt(np.clip(chi2, 0.0, None))


def prepare_inputs(stamps, truth, psf_fwhm):
    """
    Network inputs and raw targets (before standardization) of labelled
    stamps.
    """
    features, norm, _ = stamp_features(stamps)
    return [features, psf_feature(psf_fwhm)], encode_targets(truth, norm)


def target_statistics(raw_targets):
    """Mean and standard deviation used to standardize each target."""
    mean = raw_targets.mean(axis=0)
    std = np.maximum(raw_targets.std(axis=0), 1e-6)
    return mean.astype(float).tolist(), std.astype(float).tolist()


def destandardize(raw, target_mean, target_std):
    """
    ``(n, T, 2 k)`` network outputs -> means and aleatoric variances of
    the raw targets, each ``(n, T, k)`` (log-variances clipped as in the
    loss).
    """
    k = len(TARGET_NAMES)
    std = np.asarray(target_std)
    mean = raw[..., :k] * std + np.asarray(target_mean)
    variance = np.exp(np.clip(raw[..., k:], -12, 8)) * std ** 2
    return mean, variance


def encode_targets(truth, norm):
    """
    Physical truth -> network targets (before standardization).

    Parameters
    ----------
    truth : mapping
        ``sersic_n``, ``r_eff`` (pix), ``axis_ratio``, ``position_angle``
        (deg from +x, counter-clockwise), ``flux``.
    norm : `~numpy.ndarray`
        Stamp normalisation from `stamp_features`.
    """
    q = np.asarray(truth['axis_ratio'], np.float64)
    beta = np.deg2rad(2.0 * np.asarray(truth['position_angle'], np.float64))
    ellipticity = (1.0 - q) / (1.0 + q)
    flux = np.asarray(truth['flux'], np.float64)
    ratio = np.maximum(flux / np.asarray(norm, np.float64), 1e-6)
    return np.stack([
        np.log(np.asarray(truth['sersic_n'], np.float64)),
        np.log(np.asarray(truth['r_eff'], np.float64)),
        q,
        ellipticity * np.cos(beta),
        ellipticity * np.sin(beta),
        np.log(ratio),
    ], axis=-1).astype(np.float32)


def dihedral_targets(targets, k, flip):
    """
    Transform raw targets for images rotated by ``k`` quarter turns and
    mirrored along x (see `~astrodl_plugins.core.dihedral.apply_dihedral`).

    A quarter turn changes the position angle by 90 deg (2 PA by 180 deg:
    g1, g2 change sign); a mirror along x maps PA -> 180 - PA (g2 changes
    sign). Everything else is invariant.
    """
    out = np.array(targets, copy=True)
    odd = (np.asarray(k) % 2) == 1
    out[odd, 3] *= -1.0
    out[odd, 4] *= -1.0
    out[np.asarray(flip, bool), 4] *= -1.0
    return out


def decode_samples(mean, variance, norm, rng=None):
    """
    Network-space MC draws -> physical draws of each output.

    Parameters
    ----------
    mean, variance : `~numpy.ndarray`
        Shape ``(n, T, 6)``: de-standardized means and aleatoric variances.
    norm : `~numpy.ndarray`
        Shape ``(n,)``.
    rng : `numpy.random.Generator`, optional
        If given, each MC draw is also perturbed by its aleatoric Gaussian
        (predictive draws, used for quantiles).

    Returns
    -------
    draws : dict of `~numpy.ndarray`
        ``(n, T)`` arrays, pixel units, angles in degrees from +x.
    """
    values = mean
    if rng is not None:
        values = mean + rng.standard_normal(mean.shape) * np.sqrt(variance)
    g1, g2 = values[..., 3], values[..., 4]
    return {
        'sersic_n': _exp(values[..., 0]),
        'r_eff': _exp(values[..., 1]),
        'axis_ratio': np.clip(values[..., 2], 0.0, 1.0),
        'position_angle': np.rad2deg(0.5 * np.arctan2(g2, g1)) % 180.0,
        'flux': _exp(values[..., 5]) * np.asarray(norm)[:, None],
    }


#: Largest |log| decoded: far outside any trained value (the range check
#: flags it), yet finite in float64 (a wild output never overflows).
MAX_LOG = 50.0


def _exp(log_value):
    """``exp`` of a log-space output, its argument clipped to ``MAX_LOG``."""
    return np.exp(np.clip(log_value, -MAX_LOG, MAX_LOG))


def aleatoric_variances(mean, variance, norm):
    """
    Aleatoric variance of each physical output (delta method), ``(n, T)``.
    """
    g1, g2 = mean[..., 3], mean[..., 4]
    e2 = np.maximum(g1 ** 2 + g2 ** 2, 1e-8)
    # PA = 0.5 atan2(g2, g1): dPA = 0.5 (g1 dg2 - g2 dg1) / e^2 (radians).
    var_pa = 0.25 * (g1 ** 2 * variance[..., 4]
                     + g2 ** 2 * variance[..., 3]) / e2 ** 2
    flux = _exp(mean[..., 5]) * np.asarray(norm)[:, None]
    # Near round shapes the linearization blows up: cap at the standard
    # deviation of an angle uniform over 180 deg (no information).
    var_pa_deg = np.minimum(np.rad2deg(np.sqrt(var_pa)) ** 2, 180.0 ** 2 / 12)
    return {
        'sersic_n': _exp(mean[..., 0]) ** 2 * variance[..., 0],
        'r_eff': _exp(mean[..., 1]) ** 2 * variance[..., 1],
        'axis_ratio': variance[..., 2],
        'position_angle': var_pa_deg,
        'flux': flux ** 2 * variance[..., 5],
    }


def build_network(stamp_size=64, widths=(32, 64, 128), dense=256,
                  dropout=0.1, n_targets=len(TARGET_NAMES)):
    """
    The galaxy-structure CNN (Keras 3 layers, any backend).

    A stride-2 stem, three conv blocks with BatchNormalization, a dense
    layer, then the MC part: `~astrodl_plugins.core.MCDropout` before
    each later dense layer. The PSF FWHM joins after the first dropout.
    The output holds ``n_targets`` means then ``n_targets``
    log-variances, in float32.
    """
    import keras
    from keras import layers

    from astrodl_plugins.core.mc import MCDropout

    image = keras.Input((stamp_size, stamp_size, 2), name='image')
    psf = keras.Input((1,), name='psf_fwhm')
    x = layers.Conv2D(widths[0], 4, strides=2, padding='same',
                      use_bias=False, name='stem_conv')(image)
    x = layers.BatchNormalization(name='stem_bn')(x)
    x = layers.ReLU(name='stem_relu')(x)
    for block, width in enumerate(widths):
        if block:
            x = layers.MaxPooling2D(name=f'block{block}_pool')(x)
        for i in range(2):
            x = layers.Conv2D(width, 3, padding='same', use_bias=False,
                              name=f'block{block}_conv{i}')(x)
            x = layers.BatchNormalization(name=f'block{block}_bn{i}')(x)
            x = layers.ReLU(name=f'block{block}_relu{i}')(x)
    x = layers.MaxPooling2D(name='final_pool')(x)
    x = layers.Flatten(name='flatten')(x)
    x = layers.Dense(dense, activation='relu', name='features')(x)
    x = MCDropout(dropout, name='mc_dropout_0')(x)
    x = layers.Concatenate(name='with_psf')([x, psf])
    x = layers.Dense(dense, activation='relu', name='head_dense_0')(x)
    x = MCDropout(dropout, name='mc_dropout_1')(x)
    x = layers.Dense(dense // 2, activation='relu', name='head_dense_1')(x)
    out = layers.Dense(2 * n_targets, dtype='float32', name='mean_log_var')(x)
    return keras.Model([image, psf], out, name='galaxy_structure')
