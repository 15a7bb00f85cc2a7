# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Background subtraction and detection with photutils (demo and CLI)."""

import inspect
import warnings

import numpy as np
from astropy.convolution import convolve
from astropy.nddata import CCDData

__all__ = ['subtract_background_and_detect', 'photutils_deblend_sources']


def subtract_background_and_detect(ccd, *, box_size=64, n_sigma=1.5,
                                   n_pixels=10, kernel_fwhm=3.0,
                                   deblend=False):
    """
    Subtract a `~photutils.background.Background2D` and detect sources.

    The background is estimated twice: the second time with the dilated
    sources of a first detection masked, so that galaxy wings do not bias
    it.

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
    deblend : bool, optional
        Split blended sources with photutils' `~photutils.segmentation.deblend_sources`
        (crowded fields).

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
    # Native-endian float64: FITS arrays are big-endian, which photutils'
    # background statistics do not handle.
    image = np.asarray(ccd.data, dtype=np.float64)
    bad = ~np.isfinite(image)
    mask = bad if mask is None else (mask | bad)
    size = 2 * int(round(1.5 * kernel_fwhm)) + 1
    kernel = make_2dgaussian_kernel(kernel_fwhm, size=size)

    def subtract_and_detect(background_mask):
        kwargs = {'mask': background_mask, 'filter_size': (3, 3),
                  'bkg_estimator': MedianBackground()}
        try:
            background = Background2D(image, box_size, **kwargs)
        except ValueError:
            # Crowded fields: sigma clipping and masks leave no box with
            # 90 % good pixels; accept boxes with half.
            background = Background2D(image, box_size, exclude_percentile=50,
                                      **kwargs)
        data = np.where(mask, np.nan, image - background.background)
        with warnings.catch_warnings():
            # NaN (masked) pixels are interpolated by convolve: wanted.
            warnings.simplefilter('ignore')
            convolved = convolve(data, kernel)
        segm = detect_sources(convolved, n_sigma * background.background_rms,
                              n_pixels, mask=mask)
        return data, convolved, segm

    data, convolved, segm = subtract_and_detect(mask)
    if segm is not None:
        # Galaxy wings bias an unmasked background high, which shrinks
        # the measured sizes and fluxes: mask the (dilated) sources and
        # estimate the background again.
        sources = segm.make_source_mask(size=2 * int(box_size // 6) + 1)
        try:
            data, convolved, segm = subtract_and_detect(mask | sources)
        except ValueError:
            # Crowded fields: the dilated sources cover (almost) every
            # background box; keep the first, unmasked estimate.
            pass
    if segm is not None and deblend:
        segm = photutils_deblend_sources(convolved, segm, n_pixels)
    subtracted = CCDData(data, unit=ccd.unit, mask=mask, wcs=ccd.wcs,
                         uncertainty=ccd.uncertainty, meta=dict(ccd.meta))
    if segm is None:
        return subtracted, None, None
    catalog = SourceCatalog(np.where(mask, 0.0, data), segm,
                            convolved_data=convolved, mask=mask,
                            wcs=ccd.wcs)
    return subtracted, segm, catalog


def photutils_deblend_sources(convolved, segmentation_image, n_pixels):
    """
    Run photutils' `~photutils.segmentation.deblend_sources` quietly.

    Its defaults, no progress bar (where photutils still has the option)
    and no warnings.
    """
    from photutils.segmentation import deblend_sources

    kwargs = {}
    if 'progress_bar' in inspect.signature(deblend_sources).parameters:
        kwargs['progress_bar'] = False
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return deblend_sources(convolved, segmentation_image, n_pixels,
                               **kwargs)
