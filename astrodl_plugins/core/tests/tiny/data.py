# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A small simulated image, stamps and series for the tiny estimators."""

import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable
from astropy.wcs import WCS
from photutils.segmentation import SegmentationImage

__all__ = ['SHAPE', 'CENTERS', 'LABELS', 'SCALE', 'STAMP', 'make_wcs',
           'image_data', 'make_ccd', 'make_segmentation', 'blob_stamps',
           'level_series']

SHAPE = (80, 100)
#: Pixel x, y of the sources of `image_data`.
CENTERS = np.array([(30.0, 30.0), (70.0, 50.0), (24.0, 60.0)])
#: Labels of the sources in `make_segmentation`.
LABELS = [2, 5, 9]
#: Arcsec per pixel of `make_wcs`.
SCALE = 0.2
#: Stamp side of `TinyStamp`.
STAMP = 16


def make_wcs(scale_arcsec=SCALE):
    """A TAN WCS with square pixels of ``scale_arcsec``."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [50.0, 40.0]
    return wcs


def image_data(centers=CENTERS, shape=SHAPE, amplitude=100.0, seed=0):
    """Unit-noise image with elongated Gaussian blobs at ``centers``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    data = rng.normal(0.0, 1.0, shape)
    for x, y in centers:
        data += amplitude * np.exp(-((xx - x) ** 2 + 0.6 * (yy - y) ** 2)
                                   / 8.0)
    return data


def make_ccd(wcs=True, meta=True, data=None):
    """`image_data` as CCDData (electron/s, unit uncertainty, PSF meta)."""
    data = image_data() if data is None else data
    return CCDData(data, unit='electron/s',
                   wcs=make_wcs() if wcs else None,
                   uncertainty=StdDevUncertainty(np.ones(data.shape)),
                   mask=np.zeros(data.shape, bool),
                   meta={'PSF_FWHM': 3.0} if meta else {})


def make_segmentation(centers=CENTERS, labels=LABELS, shape=SHAPE,
                      radius=5):
    """Discs of ``radius`` labelled ``labels`` around ``centers``."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    segm = np.zeros(shape, int)
    for (x, y), label in zip(centers, labels):
        segm[np.hypot(xx - x, yy - y) <= radius] = label
    return SegmentationImage(segm)


def blob_stamps(n, size=STAMP, bands=1, seed=0):
    """
    ``n`` noisy round Gaussian stamps and their truth (``flux`` and
    ``size`` = Gaussian sigma, pixels): a training set for `TinyStamp`.
    """
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(1.0, 3.0, n)
    amplitude = rng.uniform(20.0, 200.0, n)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    radius2 = xx ** 2 + yy ** 2
    profile = np.exp(-radius2[None] / (2 * sigma[:, None, None] ** 2))
    stamps = amplitude[:, None, None] * profile
    stamps = stamps[..., None] * np.linspace(1.0, 0.5, bands)
    stamps = stamps + rng.normal(0.0, 1.0, stamps.shape)
    if bands == 1:
        stamps = stamps[..., 0]
    flux = 2 * np.pi * sigma ** 2 * amplitude
    truth = QTable({'flux': flux, 'size': sigma,
                    'psf_fwhm': rng.uniform(2.0, 4.0, n)})
    return stamps.astype(np.float32), truth


def level_series(n, length=24, seed=0):
    """``n`` noisy constant series and their ``level`` and ``spread``."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(-2.0, 2.0, n)
    spread = rng.uniform(0.05, 0.5, n)
    values = level[:, None] + spread[:, None] * rng.normal(size=(n, length))
    return values.astype(np.float32), QTable({'level': level,
                                              'spread': spread})
