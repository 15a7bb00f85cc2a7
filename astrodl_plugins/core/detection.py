# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Background subtraction and detection with photutils (demo and CLI)."""

import warnings

import numpy as np
from astropy.convolution import convolve
from astropy.nddata import CCDData

__all__ = ['subtract_background_and_detect']


def subtract_background_and_detect(ccd, *, box_size=64, n_sigma=1.5,
                                   n_pixels=10, kernel_fwhm=3.0):
    """
    Subtract a `~photutils.background.Background2D` and detect sources.

    Parameters
    ----------
    ccd : `~astropy.nddata.CCDData`
        The image, sky included.
    box_size : int, optional
        Background mesh size, pixels.
    n_sigma : float, optional
        Detection threshold in units of the background RMS.
    n_pixels : int, optional
        Minimum connected pixels of a source.
    kernel_fwhm : float, optional
        FWHM (pixels) of the Gaussian smoothing kernel used for detection.

    Returns
    -------
    subtracted : `~astropy.nddata.CCDData`
        A new CCDData: background-subtracted data with the input's unit,
        mask, uncertainty, WCS and meta.
    segmentation_image : `~photutils.segmentation.SegmentationImage` or None
        None when nothing is detected (with photutils' warning).
    catalog : `~photutils.segmentation.SourceCatalog` or None
    """
    from photutils.background import Background2D, MedianBackground
    from photutils.segmentation import (
        SourceCatalog,
        detect_sources,
        make_2dgaussian_kernel,
    )

    mask = None if ccd.mask is None else np.asarray(ccd.mask, bool)
    bad = ~np.isfinite(ccd.data)
    mask = bad if mask is None else (mask | bad)
    background = Background2D(ccd.data, box_size, mask=mask,
                              filter_size=(3, 3),
                              bkg_estimator=MedianBackground())
    data = np.where(mask, np.nan, ccd.data - background.background)
    subtracted = CCDData(data, unit=ccd.unit, mask=mask, wcs=ccd.wcs,
                         uncertainty=ccd.uncertainty, meta=dict(ccd.meta))
    size = 2 * int(round(1.5 * kernel_fwhm)) + 1
    kernel = make_2dgaussian_kernel(kernel_fwhm, size=size)
    with warnings.catch_warnings():
        # NaN (masked) pixels are interpolated by convolve; that is wanted.
        warnings.simplefilter('ignore')
        convolved = convolve(np.where(mask, np.nan, data), kernel)
    segm = detect_sources(convolved, n_sigma * background.background_rms,
                          n_pixels, mask=mask)
    if segm is None:
        return subtracted, None, None
    catalog = SourceCatalog(np.where(mask, 0.0, data), segm,
                            convolved_data=convolved, mask=mask,
                            wcs=ccd.wcs)
    return subtracted, segm, catalog
