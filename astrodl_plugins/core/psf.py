# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The PSF FWHM of an image: given, from its meta, or estimated from the
image's own point sources (never from the sources being measured).
"""

import warnings
from dataclasses import dataclass

import numpy as np
from astropy import units as u

__all__ = ['PSF_KEYS', 'psf_given', 'psf_origin', 'resolve_psf_fwhm',
           'estimate_image_psf', 'PSFEstimate']

#: Meta keywords read as the PSF FWHM, in order of preference.
PSF_KEYS = ('PSF_FWHM', 'psf_fwhm', 'FWHM')


@dataclass
class PSFEstimate:
    """
    A PSF FWHM estimated from an image (`estimate_image_psf`).

    Attributes
    ----------
    fwhm : float
        Pixels.
    n_stars : int
        Point sources it was measured on.
    spread : float
        Relative scatter of their FWHMs (normalized median absolute
        deviation over the median).
    uncertain : bool
        Too few point sources, or a large scatter (a PSF varying across
        the field, or no clear stellar locus).
    """

    fwhm: float
    n_stars: int
    spread: float
    uncertain: bool

    @property
    def description(self):
        """Where the value came from, for the table meta."""
        return (f'estimated from {self.n_stars} point sources found in the '
                'image')


def psf_given(psf_fwhm, image):
    """Whether a PSF FWHM is given: as a keyword or in ``image.meta``."""
    meta = {} if image is None else image.meta
    return psf_fwhm is not None or any(key in meta for key in PSF_KEYS)


def psf_origin(psf_fwhm, image):
    """Where a given PSF FWHM comes from, for the table meta."""
    if psf_fwhm is not None:
        return 'given (psf_fwhm=)'
    meta = {} if image is None else image.meta
    key = next((key for key in PSF_KEYS if key in meta), None)
    return None if key is None else f'given (data.meta[{key!r}])'


def resolve_psf_fwhm(psf_fwhm, image, n):
    """
    PSF FWHM in pixels, one value per source.

    Parameters
    ----------
    psf_fwhm : float, Quantity, array or None
        Pixels (a number or ``u.pix``) or an angle (needs the pixel scale).
        `None`: ``image.meta['PSF_FWHM']`` (or ``'psf_fwhm'``, ``'FWHM'``).
    image : `~astrodl_plugins.core.inputs.ImageData` or None
        The image read by `~astrodl_plugins.core.inputs.read_image`
        (its meta and pixel scale), or `None` for stamps given directly.
    n : int
        Number of sources.

    Returns
    -------
    fwhm : `~numpy.ndarray`
        ``(n,)`` pixels.

    Raises
    ------
    TypeError
        ``psf_fwhm`` not a number, array or Quantity.
    ValueError
        Missing; not in pixels or an angle (or an angle without a pixel
        scale); neither one value nor one per source; not positive and
        finite.
    """
    source = 'psf_fwhm'
    meta = {} if image is None else image.meta
    pixel_scale = None if image is None else image.pixel_scale
    if psf_fwhm is None:
        for key in PSF_KEYS:
            if key in meta:
                psf_fwhm, source = meta[key], f'data.meta[{key!r}]'
                break
    if psf_fwhm is None:
        msg = ('psf_fwhm is required: the FWHM of the PSF, in pixels or '
               "as an angle (or set data.meta['PSF_FWHM'] in pixels)")
        raise ValueError(msg)
    if isinstance(psf_fwhm, (bool, np.bool_, dict, set)) or (
            np.asarray(psf_fwhm).dtype == bool):
        msg = (f'{source} must be a number, array or Quantity (pixels or '
               f'an angle), got {psf_fwhm!r:.60}')
        raise TypeError(msg)
    try:
        value = u.Quantity(psf_fwhm, dtype=np.float64)
    except (TypeError, ValueError) as error:
        msg = (f'{source} must be a number, array or Quantity (pixels or '
               f'an angle), got {psf_fwhm!r:.60}: {error}')
        raise TypeError(msg) from None
    if value.unit.physical_type == 'angle':
        if pixel_scale is None:
            msg = (f'{source} is an angle ({psf_fwhm}) but the pixel '
                   'scale is unknown: give it in pixels or pass '
                   'pixel_scale')
            raise ValueError(msg)
        value = (value / pixel_scale).to(u.pix)
    elif value.unit not in (u.pix, u.dimensionless_unscaled):
        msg = f'{source} must be in pixels or an angle, got {psf_fwhm!r}'
        raise ValueError(msg)
    values = np.asarray(value.value, np.float64)
    if values.ndim > 1 or values.size not in (1, n):
        wanted = 'one value' if n == 1 else f'one value or one per source ({n})'
        msg = (f'{source} must be {wanted}, got '
               f'{values.size} values (shape {values.shape})')
        raise ValueError(msg)
    pixels = np.broadcast_to(values.reshape(-1), (n,))
    if not np.all(np.isfinite(pixels) & (pixels > 0)):
        msg = f'{source} must be positive and finite, got {psf_fwhm!r}'
        raise ValueError(msg)
    return pixels.copy()


def estimate_image_psf(image, *, max_candidates=300, min_stars=5,
                       max_spread=0.25, min_locus_fraction=0.2):
    """
    Estimate the PSF FWHM from the point sources of the whole image.

    The candidates are found over the whole image, independently of the
    sources a caller asks about (a user who gives the positions of
    galaxies must not get a galaxy-sized PSF): local peaks above 10 times
    the background noise, or 5 or 3 times when there are too few
    (`photutils.detection.find_peaks`), away from the edges, without
    another peak within 8 pixels, not flat-topped (saturated), with a
    signal-to-noise ratio of at least 10 in 5x5 pixels. A
    circular Gaussian is fitted to those with the most flux near their
    peak (`photutils.psf.fit_fwhm`, in a box of about 2.5 FWHM); the
    point sources are the stellar locus, the fits within 30 % of the 10th
    percentile (stars are the most compact sources of a given
    brightness), and the PSF FWHM is their median.

    Parameters
    ----------
    image : `~astrodl_plugins.core.inputs.ImageData`
        The background-subtracted image.
    max_candidates : int, optional
        At most this many of the brightest isolated peaks are fitted.
    min_stars : int, optional
        Fewer point sources make the estimate ``uncertain``.
    max_spread : float, optional
        A larger relative scatter of the stars' FWHMs makes it
        ``uncertain``.
    min_locus_fraction : float, optional
        When fewer of the fitted candidates lie within 30 % of the PSF
        FWHM (no clear stellar locus), the estimate is ``uncertain``.

    Returns
    -------
    estimate : `PSFEstimate`

    Raises
    ------
    ValueError
        No isolated point source could be fitted: give ``psf_fwhm``.
    """
    from astropy.stats import mad_std
    from photutils.detection import find_peaks

    data = np.where(image.mask, 0.0, image.data)
    good = data[~image.mask]
    if good.size > 500_000:
        good = good[:: good.size // 500_000]
    sigma = float(mad_std(good))
    if not np.isfinite(sigma) or sigma <= 0:
        sigma = float(np.std(good)) or 1.0
    for n_sigma in (10, 5, 3):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            peaks = find_peaks(data, n_sigma * sigma, box_size=5,
                               mask=image.mask, border_width=8)
        if peaks is not None and len(peaks) >= min_stars:
            break
    if peaks is None or len(peaks) == 0:
        msg = ('cannot estimate the PSF FWHM: no point source above 3 '
               'sigma in the image; give psf_fwhm')
        raise ValueError(msg)
    x = np.asarray(peaks['x_peak'], np.int64)
    y = np.asarray(peaks['y_peak'], np.int64)
    value = np.asarray(peaks['peak_value'], np.float64)
    # Ranked by the flux near the peak, not the peak: hot pixels and
    # cosmic rays have high peaks and little flux; the 5x5 box must hold a
    # signal-to-noise ratio of 10 at least.
    flux = _box_flux(data, x, y)
    keep = (_isolated(x, y, 8.0) & ~_flat_topped(data, x, y, value)
            & (flux >= 10 * 5 * sigma))
    order = np.argsort(-flux * keep)[:max_candidates]
    order = order[keep[order]]
    if order.size == 0:
        msg = ('cannot estimate the PSF FWHM: no isolated, unsaturated point '
               'source in the image; give psf_fwhm')
        raise ValueError(msg)
    xy = np.column_stack([x[order], y[order]])
    fwhm = _fitted_fwhm(data, xy, 7, image.mask)
    # Wide PSFs need a wider fitting box (about 2.5 FWHM).
    wider = 2 * int(1.25 * np.median(fwhm)) + 1 if fwhm.size else 7
    if wider > 7:
        refit = _fitted_fwhm(data, xy, wider, image.mask)
        fwhm = refit if refit.size else fwhm
    if fwhm.size == 0:
        msg = 'cannot estimate the PSF FWHM from the image; give psf_fwhm'
        raise ValueError(msg)
    stars = fwhm[fwhm <= 1.3 * np.percentile(fwhm, 10)]
    median = float(np.median(stars))
    spread = float(mad_std(stars) / median) if stars.size > 1 else np.inf
    # A stellar locus holds a good part of the candidates; without one
    # (artefacts, a PSF varying across the field) the value is a guess.
    locus = np.mean(np.abs(fwhm / median - 1) <= 0.3)
    uncertain = (stars.size < min_stars or spread > max_spread
                 or locus < min_locus_fraction)
    return PSFEstimate(median, int(stars.size), spread, bool(uncertain))


def _fitted_fwhm(data, xy, fit_shape, mask):
    """Gaussian FWHMs fitted at ``xy``; the failed and absurd fits dropped."""
    from photutils.psf import fit_fwhm

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        fwhm = np.asarray(fit_fwhm(data, xypos=xy, fit_shape=fit_shape,
                                   mask=mask), np.float64)
    return fwhm[np.isfinite(fwhm) & (fwhm > 0.5) & (fwhm < 30)]


def _box_flux(data, x, y, half=2):
    """Sum of the 5x5 pixels around each peak."""
    return np.array([data[max(yi - half, 0):yi + half + 1,
                          max(xi - half, 0):xi + half + 1].sum()
                     for xi, yi in zip(x, y)])


def _isolated(x, y, radius):
    """Peaks without another peak within ``radius`` pixels."""
    isolated = np.ones(len(x), bool)
    for start in range(0, len(x), 1024):
        dx = x[start:start + 1024, None] - x[None]
        dy = y[start:start + 1024, None] - y[None]
        close = (dx ** 2 + dy ** 2) < radius ** 2
        isolated[start:start + 1024] = close.sum(axis=1) <= 1
    return isolated


def _flat_topped(data, x, y, value):
    """Peaks with two or more neighbours at the peak value (saturation)."""
    flat = np.zeros(len(x), bool)
    for i, (xi, yi, vi) in enumerate(zip(x, y, value)):
        box = data[max(yi - 1, 0):yi + 2, max(xi - 1, 0):xi + 2]
        flat[i] = np.count_nonzero(box >= vi) >= 3
    return flat
