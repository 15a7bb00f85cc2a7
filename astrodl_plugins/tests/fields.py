# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
A small field every shipped estimator can measure, made with astropy and
photutils only (no GalSim): for tests that run in a fresh interpreter.
"""

import numpy as np

__all__ = ['POSITIONS', 'small_field', 'small_light_curve', 'where',
           'data_for']

#: Pixel positions of the star and of the blended pair's brighter galaxy.
POSITIONS = np.array([[39.5, 47.5], [119.5, 47.5]])


def small_field():
    """
    A 96x160 `~astropy.nddata.CCDData` (electron, 0.2 arcsec/pix TAN WCS,
    unit uncertainty of 2, ``meta['PSF_FWHM'] = 3``): a star and a blended
    pair of galaxies, and its `~photutils.segmentation.SegmentationImage`.
    """
    from astropy import units as u
    from astropy.modeling.functional_models import Moffat2D
    from astropy.nddata import CCDData, StdDevUncertainty
    from astropy.wcs import WCS
    from photutils.segmentation import SegmentationImage

    rng = np.random.default_rng(0)
    y, x = np.mgrid[:96, :160]
    data = np.zeros((96, 160))
    for x0, y0, gamma in ((39.5, 47.5, 2.0), (119.5, 47.5, 4.0),
                          (126.5, 50.5, 3.0)):
        data += Moffat2D(200.0, x0, y0, gamma, 3.0)(x, y)
    data += rng.normal(0.0, 2.0, data.shape)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [30.0, -10.0]
    wcs.wcs.crpix = [80, 48]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    ccd = CCDData(data.astype(np.float32), unit=u.electron, wcs=wcs,
                  uncertainty=StdDevUncertainty(np.full(data.shape, 2.0)),
                  meta={'PSF_FWHM': 3.0})
    segm_data = np.zeros(data.shape, np.int32)
    segm_data[35:60, 27:52] = 1
    segm_data[35:64, 107:140] = 2
    return ccd, SegmentationImage(segm_data)


def small_light_curve():
    """
    A TESS-like 27-day `~astropy.timeseries.TimeSeries` (30-min cadence,
    electron/s, TDB times) with a 2500 ppm box transit every 3.7 days.
    """
    from astropy import units as u
    from astropy.time import Time
    from astropy.timeseries import TimeSeries

    rng = np.random.default_rng(0)
    days = np.arange(0.0, 27.4, 30.0 / 1440.0)
    flux = 1.0 + rng.normal(0.0, 3e-4, len(days))
    phase = (days - 1.3 + 1.85) % 3.7 - 1.85
    flux[np.abs(phase) < 1.5 / 24.0] -= 2.5e-3
    series = TimeSeries(time=Time(2459000.0 + days, format='jd',
                                  scale='tdb'))
    series['flux'] = flux * 1e4 * u.electron / u.s
    return series


def where(estimator, segm):
    """The sources to measure: segments for the deblender, else positions."""
    if estimator.family == '1-d':
        return {}
    if estimator.task == 'deblending':
        return {'segmentation_image': segm}
    return {'positions': POSITIONS}


def small_spectrum(estimator):
    """
    A spectrum on ``estimator``'s wavelength grid (no simulator needed): a
    flat continuum with H-alpha and [NII] in emission at z = 1.3, noise,
    as `~astropy.nddata.NDData` with its ``meta['spectral_axis']``.
    """
    from astropy import units as u
    from astropy.nddata import NDData, StdDevUncertainty

    wavelength, _ = estimator.wavelength_grid()
    rng = np.random.default_rng(0)
    flux = np.ones(len(wavelength))
    for rest, strength in ((6564.6, 2.0), (6585.3, 0.6), (6549.9, 0.2)):
        centre = rest * 2.3
        sigma = centre / 400 / 2.355
        flux += strength * np.exp(-0.5 * ((wavelength - centre) / sigma)
                                  ** 2)
    flux += rng.normal(0.0, 0.05, len(wavelength))
    unit = u.erg / u.s / u.cm ** 2 / u.AA
    return NDData(flux * 1e-17, unit=unit,
                  uncertainty=StdDevUncertainty(np.full(len(flux), 5e-19)),
                  meta={'spectral_axis': wavelength * u.AA})


def data_for(estimator, ccd):
    """
    What an estimator measures: the image, or for the 1-D family a
    spectrum (estimators with a wavelength grid) or a light curve.
    """
    if estimator.family != '1-d':
        return ccd
    if hasattr(estimator, 'wavelength_grid'):
        return small_spectrum(estimator)
    return small_light_curve()
