# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The PSF FWHM of an image: given, from its meta, or estimated."""

import warnings

import numpy as np
from astropy import units as u

__all__ = ['resolve_psf_fwhm', 'estimate_psf_fwhm']


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
    """
    source = 'psf_fwhm'
    meta = {} if image is None else image.meta
    pixel_scale = None if image is None else image.pixel_scale
    if psf_fwhm is None:
        for key in ('PSF_FWHM', 'psf_fwhm', 'FWHM'):
            if key in meta:
                psf_fwhm, source = meta[key], f'data.meta[{key!r}]'
                break
    if psf_fwhm is None:
        msg = ('psf_fwhm is required: the FWHM of the PSF, in pixels or '
               "as an angle (or set data.meta['PSF_FWHM'] in pixels)")
        raise ValueError(msg)
    value = u.Quantity(psf_fwhm)
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
    pixels = np.broadcast_to(np.asarray(value.value, np.float64), (n,))
    if not np.all(np.isfinite(pixels) & (pixels > 0)):
        msg = f'{source} must be positive and finite, got {psf_fwhm!r}'
        raise ValueError(msg)
    return pixels.copy()


def estimate_psf_fwhm(image, sources, *, max_sources=200):
    """
    Estimate the PSF FWHM (pixels) from the most compact bright sources.

    Fits a circular Gaussian (`photutils.psf.fit_fwhm`) at the positions of
    the brightest sources and returns the 20th percentile of the fitted
    FWHMs, which is set by the stars (the most compact sources) when the
    field has some, as SExtractor's ``SEEING_FWHM`` would be.

    Parameters
    ----------
    image : `~astrodl_plugins.core.inputs.ImageData`
        The image.
    sources : `~astrodl_plugins.core.sources.Sources`
        Where the sources are.
    max_sources : int, optional
        At most this many of the brightest sources are fitted.

    Returns
    -------
    fwhm : float
        Pixels.
    """
    from photutils.psf import fit_fwhm

    data = np.where(image.mask, 0.0, image.data)
    ny, nx = data.shape
    x = np.clip(np.round(sources.x).astype(int), 0, nx - 1)
    y = np.clip(np.round(sources.y).astype(int), 0, ny - 1)
    inside = (x > 6) & (x < nx - 7) & (y > 6) & (y < ny - 7)
    order = np.argsort(-data[y, x] * inside)[:max_sources]
    order = order[inside[order]]
    if order.size == 0:
        msg = ('cannot estimate the PSF FWHM: no source away from the image '
               'edges; give psf_fwhm')
        raise ValueError(msg)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        fwhm = fit_fwhm(data, xypos=np.column_stack([sources.x[order],
                                                     sources.y[order]]),
                        fit_shape=11, mask=image.mask)
    fwhm = np.asarray(fwhm, np.float64)
    fwhm = fwhm[np.isfinite(fwhm) & (fwhm > 0.5) & (fwhm < 30)]
    if fwhm.size == 0:
        msg = 'cannot estimate the PSF FWHM from the sources; give psf_fwhm'
        raise ValueError(msg)
    return float(np.percentile(fwhm, 20))
