# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The classifier network and its input scaling, shared by the classifiers.

Inputs are multi-band stamps in the model's band order (`BANDS`); a band
the user did not give is a channel of zeros with its ``present`` flag at
0, and the network is trained on random band subsets so that any subset
works. Each stamp is divided by one flux scale common to all its bands
(the sum of the central aperture fluxes of the present bands), which
keeps the colours, then compressed with ``asinh``.
"""

import numpy as np

__all__ = ['BANDS', 'build_classifier', 'band_statistics', 'network_inputs',
           'input_arrays', 'scaled_inputs', 'present_bands', 'presence',
           'random_band_subsets', 'to_model_bands', 'softmax']

#: The model's bands, in channel order.
BANDS = ('g', 'r', 'i')

#: asinh softening: the stamp is scaled by ``_GAIN / flux`` first.
_GAIN = 500.0
# Band subsets drawn in training, with their probabilities.
_SUBSETS = ((('g', 'r', 'i'), 0.5), (('g', 'r'), 0.05), (('r', 'i'), 0.05),
            (('g', 'i'), 0.05), (('r',), 0.15), (('g',), 0.1),
            (('i',), 0.1))


def build_classifier(stamp_size, n_classes, *, n_bands=len(BANDS),
                     widths=(16, 32, 64), dense=128, dropout=0.25):
    """
    A small VGG-like CNN with MC-dropout in its dense head.

    Inputs: ``stamps`` ``(stamp_size, stamp_size, n_bands)`` and
    ``conditions`` (``n_bands`` presence flags and the scaled log PSF
    FWHM). Output: ``n_classes`` logits.
    """
    import keras
    from keras import layers

    from ..core.mc import MCDropout

    stamps = keras.Input((stamp_size, stamp_size, n_bands), name='stamps')
    conditions = keras.Input((n_bands + 1,), name='conditions')
    x = stamps
    for width in widths:
        for _ in range(2):
            x = layers.Conv2D(width, 3, padding='same', use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation('relu')(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Concatenate()([x, conditions])
    x = layers.Dense(dense, activation='relu')(x)
    x = MCDropout(dropout)(x)
    x = layers.Dense(dense, activation='relu')(x)
    x = MCDropout(dropout)(x)
    logits = layers.Dense(n_classes, name='logits')(x)
    return keras.Model([stamps, conditions], logits)


def _frame(size):
    width = max(3, size // 8)
    frame = np.ones((size, size), bool)
    frame[width:-width, width:-width] = False
    return frame


def _aperture(size):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return np.hypot(xx, yy) <= size / 5


def band_statistics(stamps):
    """
    Noise and central flux of each band of each stamp.

    Parameters
    ----------
    stamps : `~numpy.ndarray`
        ``(n, size, size, n_bands)``, NaN for bad pixels.

    Returns
    -------
    sigma : `~numpy.ndarray`
        ``(n, n_bands)`` robust noise (MAD of the stamp's outer frame).
    flux : `~numpy.ndarray`
        ``(n, n_bands)`` flux in a central aperture of radius size/5.
    npix : int
        Pixels in that aperture.
    """
    import warnings

    size = stamps.shape[1]
    frame = stamps[:, _frame(size)]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        median = np.nanmedian(frame, axis=1)
        sigma = 1.4826 * np.nanmedian(np.abs(frame - median[:, None]),
                                      axis=1)
        whole = 1.4826 * np.nanmedian(
            np.abs(stamps - np.nanmedian(stamps, axis=(1, 2))[:, None, None]),
            axis=(1, 2))
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, whole)
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, 1.0)
    aperture = _aperture(size)
    flux = np.nansum(stamps[:, aperture], axis=1)
    return sigma.astype(np.float32), flux.astype(np.float32), \
        int(aperture.sum())


def network_inputs(stamps, present, psf_fwhm, sigma, flux, npix,
                   scaling='flux'):
    """
    Scaled network inputs from stamps in the model's band order.

    Parameters
    ----------
    stamps : `~numpy.ndarray`
        ``(n, size, size, n_model_bands)``; absent bands are ignored.
    present : `~numpy.ndarray`
        ``(n, n_model_bands)`` 0/1 flags of the bands given.
    psf_fwhm : `~numpy.ndarray`
        ``(n,)`` PSF FWHM in pixels.
    sigma, flux, npix
        From `band_statistics`.
    scaling : {'flux', 'noise'}, optional
        ``'flux'``: divide by the summed central flux of the present bands,
        then ``asinh(500 x) / 3`` (brightness-invariant). ``'noise'``:
        divide by twice the present bands' quadrature-mean noise, then
        ``asinh(x) / 3``: linear up to a few sigma (faint sources keep
        their information), logarithmic in bright cores. ``'hybrid'``:
        ``'noise'`` for faint sources and ``'flux'``'s divisor for those
        brighter than about S/N 200, so that bright sources stay in the
        trained range. All use one divisor for all bands, so the colours
        are kept.

    Returns
    -------
    inputs : list of `~numpy.ndarray`
        ``[stamps, conditions]`` for the network.
    """
    present = np.asarray(present, np.float32)
    if scaling in ('noise', 'hybrid'):
        n_present = np.maximum(present.sum(axis=1), 1.0)
        divisor = 2.0 * np.sqrt(np.sum(present * sigma**2, axis=1)
                                / n_present)
        if scaling == 'hybrid':
            # Bright sources: the flux scale, so that they stay in the
            # trained dynamic range whatever their S/N.
            divisor = np.maximum(divisor, np.sum(flux * present, axis=1)
                                 / _GAIN)
        x = np.arcsinh(stamps / divisor[:, None, None, None]) / 3.0
    elif scaling == 'flux':
        scale = np.sum(flux * present, axis=1)
        floor = 5.0 * np.sqrt(np.sum(present * npix * sigma**2, axis=1))
        scale = np.maximum(scale, floor)
        x = np.arcsinh(stamps * (_GAIN / scale)[:, None, None, None]) / 3.0
    else:
        msg = ("scaling must be 'flux', 'noise' or 'hybrid', got "
               f'{scaling!r}')
        raise ValueError(msg)
    x = np.where(np.isfinite(x), x, 0.0) * present[:, None, None, :]
    log_psf = (np.log(np.asarray(psf_fwhm, np.float32)) - np.log(3.0)) / 0.5
    conditions = np.concatenate([present, log_psf[:, None]], axis=1)
    return [x.astype(np.float32), conditions.astype(np.float32)]


def input_arrays(stamps, psf_fwhm):
    """
    Model-band stamps -> the arrays `scaled_inputs` needs.

    Parameters
    ----------
    stamps : `~numpy.ndarray`
        ``(n, size, size, len(BANDS))``, NaN for bad pixels.
    psf_fwhm : float or array
        PSF FWHM in pixels, one value or one per stamp.

    Returns
    -------
    arrays : list of `~numpy.ndarray`
        ``[stamps, sigma, flux, psf_fwhm]`` (see `band_statistics`), one
        row per stamp.
    npix : int
        Pixels in the central aperture.
    """
    sigma, flux, npix = band_statistics(stamps)
    psf = np.broadcast_to(np.asarray(psf_fwhm, np.float32),
                          (len(stamps),)).copy()
    return [stamps, sigma, flux, psf], npix


def scaled_inputs(arrays, npix, present, scaling='flux'):
    """Network inputs of `input_arrays` for band-presence flags ``present``."""
    stamps, sigma, flux, psf = arrays
    return network_inputs(stamps, present, psf, sigma, flux, npix,
                          scaling=scaling)


def present_bands(stamps, bands):
    """
    ``(n, len(BANDS))`` 0/1: the bands given with at least half the
    central 6x6 pixels finite (a band masked around a source is dropped
    for that source alone).

    Parameters
    ----------
    stamps : `~numpy.ndarray`
        ``(n, size, size, len(bands))``.
    bands : sequence of str
        Band of each channel.
    """
    size = stamps.shape[1]
    core = stamps[:, size // 2 - 3:size // 2 + 3,
                  size // 2 - 3:size // 2 + 3]
    usable = np.isfinite(core).mean(axis=(1, 2)) >= 0.5
    out = np.zeros((len(stamps), len(BANDS)), np.float32)
    for index, band in enumerate(bands):
        out[:, BANDS.index(band)] = usable[:, index]
    return out


def random_band_subsets(rng, n):
    """``(n, len(BANDS))`` presence flags of random band subsets."""
    p = np.array([prob for _, prob in _SUBSETS])
    choice = rng.choice(len(_SUBSETS), size=n, p=p / p.sum())
    table = np.array([[band in subset for band in BANDS]
                      for subset, _ in _SUBSETS], np.float32)
    return table[choice]


def presence(bands, n):
    """Presence flags of a fixed band set, for ``n`` sources."""
    row = np.array([band in bands for band in BANDS], np.float32)
    return np.tile(row, (n, 1))


def to_model_bands(stamps, bands):
    """``(n, size, size, len(bands))`` in ``bands`` order -> `BANDS` order."""
    n, size = stamps.shape[:2]
    out = np.zeros((n, size, size, len(BANDS)), np.float32)
    for index, band in enumerate(bands):
        out[..., BANDS.index(band)] = stamps[..., index]
    return out


def softmax(logits, temperature=1.0):
    """Softmax of ``logits / temperature`` along the last axis."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(-1, keepdims=True)
