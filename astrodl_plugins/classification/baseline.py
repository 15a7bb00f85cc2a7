# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
A classical star/galaxy separator measured with photutils.

The way CLASS_STAR-like separators work: a source's light concentration
compared with the PSF's. For each stamp the centroid is refined with
`photutils.centroids.centroid_sources`, the fluxes in two circular
apertures (radii 0.6 and 2 PSF FWHM) are measured with
`photutils.aperture.aperture_photometry`, and their ratio is divided by the
same ratio for the PSF (a noiseless Moffat of the known FWHM and beta).
Stars score ~1, resolved galaxies less.
"""

import numpy as np

__all__ = ['psf_concentration_score']

_R_INNER, _R_OUTER = 0.6, 2.0


def _mosaic(stamps):
    """Tile ``(n, s, s)`` stamps into one image; returns it and the centres."""
    n, size = stamps.shape[:2]
    n_side = int(np.ceil(np.sqrt(n)))
    image = np.zeros((n_side * size, n_side * size))
    row, col = np.divmod(np.arange(n), n_side)
    for k in range(n):
        image[row[k] * size:(row[k] + 1) * size,
              col[k] * size:(col[k] + 1) * size] = stamps[k]
    center = (size - 1) / 2
    return image, col * size + center, row * size + center


def _psf_concentration(fwhm, beta, size):
    from ..simulate.common import require_galsim
    galsim = require_galsim()
    from photutils.aperture import CircularAperture, aperture_photometry

    ratios = np.empty(len(fwhm))
    center = (size - 1) / 2
    for k, (f, b) in enumerate(zip(fwhm, beta)):
        image = galsim.Moffat(beta=b, fwhm=f).drawImage(
            nx=size, ny=size, scale=1.0).array
        flux = [aperture_photometry(image, CircularAperture(
            (center, center), r=radius * f))['aperture_sum'][0]
                for radius in (_R_INNER, _R_OUTER)]
        ratios[k] = flux[0] / flux[1]
    return ratios


def psf_concentration_score(stamps, psf_fwhm, psf_beta=3.5):
    """
    Concentration of each source relative to the PSF's (higher: more star-like).

    Parameters
    ----------
    stamps : array
        ``(n, size, size)`` background-subtracted stamps centred (to a
        pixel) on the sources, one band.
    psf_fwhm : float or array
        PSF FWHM, pixels.
    psf_beta : float or array, optional
        Moffat beta of the PSF.

    Returns
    -------
    score : `~numpy.ndarray`
        ``(n,)``: ``[F(0.6 FWHM) / F(2 FWHM)]`` of the source over the
        PSF's; NaN where the outer flux is not positive.
    """
    from photutils.aperture import CircularAperture, aperture_photometry
    from photutils.centroids import centroid_com, centroid_sources

    stamps = np.nan_to_num(np.asarray(stamps, np.float64))
    n, size = stamps.shape[:2]
    fwhm = np.broadcast_to(np.asarray(psf_fwhm, np.float64), (n,))
    beta = np.broadcast_to(np.asarray(psf_beta, np.float64), (n,))
    image, x, y = _mosaic(stamps)
    x, y = centroid_sources(image, x, y, box_size=5,
                            centroid_func=centroid_com)
    flux = []
    for radius in (_R_INNER, _R_OUTER):
        values = np.empty(n)
        # One aperture radius per distinct FWHM: photometry in groups.
        for f in np.unique(np.round(fwhm, 3)):
            select = np.round(fwhm, 3) == f
            apertures = CircularAperture(np.column_stack([x[select],
                                                          y[select]]),
                                         r=radius * f)
            values[select] = aperture_photometry(image,
                                                 apertures)['aperture_sum']
        flux.append(values)
    with np.errstate(invalid='ignore', divide='ignore'):
        ratio = np.where(flux[1] > 0, flux[0] / flux[1], np.nan)
    return ratio / _psf_concentration(fwhm, beta, size)
