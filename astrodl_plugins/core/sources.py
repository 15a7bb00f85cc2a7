# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Where to measure (segmentation image or positions) and the stamps."""

import warnings
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.nddata.utils import extract_array, overlap_slices
from astropy.table import Table

from .flags import SourceFlags
from .inputs import split_mask

__all__ = ['Sources', 'locate_sources', 'positions_xy', 'cut_stamps',
           'footprint_extents', 'block_image', 'sampling_factors']


@dataclass
class Sources:
    """
    Where to measure: labels, pixel centroids and, where known, the
    footprint's extent (largest side of its segment, pixels).
    """

    label: np.ndarray
    x: np.ndarray
    y: np.ndarray
    extent: np.ndarray | None = None


def locate_sources(image, *, segmentation_image=None, positions=None):
    """
    Labels and centroids from a segmentation image or from positions.

    Parameters
    ----------
    image : `ImageData`
        From `read_image`.
    segmentation_image : `~photutils.segmentation.SegmentationImage`
        One source per label; centroids from
        `~photutils.segmentation.SourceCatalog`.
    positions : array, `~astropy.table.Table` or `~astropy.coordinates.SkyCoord`
        ``(N, 2)`` pixel x, y; a table with ``x_centroid``/``y_centroid``;
        or sky positions (needs a WCS). Labels are 1..N.

    Returns
    -------
    sources : `Sources`
    """
    if (segmentation_image is None) == (positions is None):
        msg = 'give exactly one of segmentation_image and positions'
        raise ValueError(msg)
    if segmentation_image is not None:
        return _from_segmentation(image, segmentation_image)
    xy = positions_xy(image, positions)
    ny, nx = image.shape
    off = ((xy[:, 0] < -0.5) | (xy[:, 0] > nx - 0.5)
           | (xy[:, 1] < -0.5) | (xy[:, 1] > ny - 0.5) | ~np.isfinite(xy).all(1))
    if off.any():
        index = np.flatnonzero(off)
        msg = (f'positions {index[:10].tolist()} (0-based) lie outside the '
               f'{nx}x{ny} image')
        raise ValueError(msg)
    return Sources(np.arange(1, len(xy) + 1), xy[:, 0], xy[:, 1],
                   extent=footprint_extents(image, xy[:, 0], xy[:, 1]))


def positions_xy(image, positions):
    """
    ``(N, 2)`` pixel x, y of positions given as an array, a table with
    ``x_centroid`` and ``y_centroid``, or a SkyCoord (through the WCS).

    Raises
    ------
    TypeError
        ``positions`` of another kind (a string, a dict...).
    ValueError
        An array not of shape ``(N, 2)``, no position, table columns
        missing, masked or not in pixels (an angle: give a SkyCoord), a
        SkyCoord without a celestial WCS, or non-finite positions.
    """
    from astropy.coordinates import SkyCoord

    if isinstance(positions, SkyCoord):
        wcs = image.wcs
        if wcs is None or not getattr(wcs, 'has_celestial', True):
            msg = ('positions is a SkyCoord but the data have no celestial '
                   'WCS: give pixel positions, or data with a WCS')
            raise ValueError(msg)
        x, y = wcs.world_to_pixel(positions)
        xy = np.column_stack([np.atleast_1d(x), np.atleast_1d(y)])
    elif isinstance(positions, Table):
        missing = {'x_centroid', 'y_centroid'} - set(positions.colnames)
        if missing:
            msg = (f'positions table lacks column(s) {sorted(missing)}; '
                   f'it has {positions.colnames}')
            raise ValueError(msg)
        xy = np.column_stack([_pixel_column(positions, 'x_centroid'),
                              _pixel_column(positions, 'y_centroid')])
    else:
        xy = _pixel_array(positions)
    if len(xy) == 0:
        msg = 'positions is empty'
        raise ValueError(msg)
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        msg = (f'positions {np.flatnonzero(bad)[:10].tolist()} (0-based) '
               'are not finite')
        raise ValueError(msg)
    return xy


def _pixel_column(table, name):
    """A table column of pixel coordinates, as float64 (a copy)."""
    column = table[name]
    values, mask = split_mask(column)
    if mask is not None and mask.any():
        msg = (f"positions['{name}'] has masked entries "
               f'{np.flatnonzero(mask)[:10].tolist()}: remove those rows')
        raise ValueError(msg)
    unit = getattr(column, 'unit', None)
    if unit is not None and u.Unit(unit) not in (u.pix,
                                                 u.dimensionless_unscaled):
        unit = u.Unit(unit)
        hint = (': sky positions must come as a SkyCoord (e.g. '
                "positions=table['sky_centroid'])"
                if unit.physical_type == 'angle' else '')
        msg = (f"positions['{name}'] has unit {unit.to_string()!r}; pixel "
               f'coordinates must be in pixels or unitless{hint}')
        raise ValueError(msg)
    return _as_float(u.Quantity(values).value if unit is not None
                     else values, f"positions['{name}']")


def _pixel_array(positions):
    """``(N, 2)`` float64 pixel positions from an array-like."""
    if isinstance(positions, (str, bytes, dict, set)):
        msg = (f'positions must be (N, 2) pixel x, y, a Table with '
               f'x_centroid and y_centroid, or a SkyCoord; got '
               f'{type(positions).__name__} {positions!r:.60}')
        raise TypeError(msg)
    if isinstance(positions, u.Quantity):
        if positions.unit not in (u.pix, u.dimensionless_unscaled):
            msg = (f'positions has unit {positions.unit.to_string()!r}; '
                   'pixel positions must be in pixels or unitless (sky '
                   'positions: give a SkyCoord)')
            raise ValueError(msg)
        positions = positions.value
    values, mask = split_mask(positions)
    if mask is not None and mask.any():
        msg = 'positions has masked entries: remove those rows'
        raise ValueError(msg)
    xy = _as_float(values, 'positions')
    if xy.ndim == 1 and xy.size == 2:
        xy = xy[None]
    if xy.ndim != 2 or xy.shape[1] != 2:
        msg = f'positions must have shape (N, 2), got {xy.shape}'
        raise ValueError(msg)
    return xy


def _as_float(values, where):
    """float64 array of ``values`` (a copy), or a message naming ``where``."""
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        if 'inhomogeneous' in str(error):
            msg = (f'{where} must have shape (N, 2): its rows have '
                   f'different lengths ({values!r:.60})')
            raise ValueError(msg) from None
        msg = (f'{where} must hold numbers (pixel coordinates), got '
               f'{values!r:.60}: {error}')
        raise TypeError(msg) from None
    if np.asarray(values).dtype == bool:
        msg = f'{where} must hold pixel coordinates, got booleans'
        raise TypeError(msg)
    return array


def _from_segmentation(image, segm):
    from photutils.segmentation import SegmentationImage, SourceCatalog

    if not isinstance(segm, SegmentationImage):
        msg = (f'segmentation_image must be a photutils SegmentationImage, '
               f'got {type(segm).__name__}')
        raise TypeError(msg)
    if segm.shape != image.shape:
        msg = (f'segmentation_image has shape {segm.shape}, the data '
               f'{image.shape}')
        raise ValueError(msg)
    data = np.where(image.mask, 0.0, image.data)
    catalog = SourceCatalog(data, segm, mask=image.mask)
    x = np.asarray(catalog.x_centroid, dtype=np.float64)
    y = np.asarray(catalog.y_centroid, dtype=np.float64)
    # A segment whose pixels are all masked has no centroid: use its bbox.
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        bbox_x = np.array([(b.ixmin + b.ixmax - 1) / 2 for b in segm.bbox])
        bbox_y = np.array([(b.iymin + b.iymax - 1) / 2 for b in segm.bbox])
        x[bad], y[bad] = bbox_x[bad], bbox_y[bad]
    extent = np.array([max(b.ixmax - b.ixmin, b.iymax - b.iymin)
                       for b in segm.bbox], np.float64)
    return Sources(np.asarray(segm.labels), x, y, extent=extent)


def footprint_extents(image, x, y, n_sigma=2.0):
    """
    Largest side (pixels) of the footprint of the source at each position:
    the bounding box of its segment in a photutils detection of the whole
    image at ``n_sigma`` times the noise (the uncertainty, else the
    sigma-clipped standard deviation); 0 where no segment covers the
    position.
    """
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import detect_sources
    from photutils.utils.exceptions import NoDetectionsWarning

    good = ~image.mask
    data = np.where(good, image.data, 0.0)
    if image.error is not None:
        threshold = n_sigma * np.where(good, image.error, np.inf)
    else:
        _, _, std = sigma_clipped_stats(image.data[good])
        threshold = n_sigma * std
    extent = np.zeros(len(x))
    if not np.any(np.isfinite(threshold) & (np.asarray(threshold) > 0)):
        return extent
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NoDetectionsWarning)
        segm = detect_sources(data, threshold, 5, mask=image.mask)
    if segm is None:
        return extent
    ny, nx = image.shape
    ix = np.clip(np.floor(np.asarray(x) + 0.5).astype(int), 0, nx - 1)
    iy = np.clip(np.floor(np.asarray(y) + 0.5).astype(int), 0, ny - 1)
    labels = segm.data[iy, ix]
    for i, label in enumerate(labels):
        if label:
            box = segm.bbox[segm.get_index(label)]
            extent[i] = max(box.ixmax - box.ixmin, box.iymax - box.iymin)
    return extent


def sampling_factors(extent, psf_fwhm, stamp_size, psf_range=None):
    """
    Integer block-sum factor of each source so that its footprint fits the
    stamp and its PSF lies within the trained range (see the docs'
    "Size-aware stamps").

    Parameters
    ----------
    extent : array or None
        Largest side of each footprint, pixels (`None`: unknown).
    psf_fwhm : array or None
        PSF FWHM of each source, pixels.
    stamp_size : int
        Side of the network's stamp.
    psf_range : tuple, optional
        The trained PSF FWHM range ``(low, high)``.

    Returns
    -------
    factors : `~numpy.ndarray`
        Integers >= 1.
    """
    n = len(extent) if extent is not None else len(psf_fwhm)
    k = np.ones(n, np.int64)
    if extent is not None:
        k = np.maximum(k, np.ceil(np.asarray(extent, np.float64)
                                  / stamp_size).astype(np.int64))
    if psf_fwhm is not None and psf_range is not None:
        psf = np.asarray(psf_fwhm, np.float64)
        low, high = psf_range
        k_needed = np.maximum(np.ceil(psf / high - 1e-9), 1).astype(np.int64)
        k_allowed = np.maximum(np.floor(psf / low + 1e-9), 1).astype(np.int64)
        k = np.maximum(np.minimum(k, np.maximum(k_allowed, k_needed)),
                       k_needed)
    return k


def block_image(image, factor):
    """
    The image block-summed by ``factor`` (fluxes kept; uncertainties in
    quadrature; a block with a masked pixel is masked; trailing rows and
    columns that do not fill a block are dropped).
    """
    from dataclasses import replace

    from astropy.nddata import block_reduce

    if factor == 1:
        return image
    data = block_reduce(np.where(image.mask, 0.0, image.data), factor)
    mask = block_reduce(image.mask.astype(np.float64), factor) > 0
    error = (None if image.error is None else np.sqrt(block_reduce(
        np.where(image.mask, 0.0, image.error) ** 2, factor)))
    return replace(image, data=data, mask=mask, error=error,
                   wcs=None, pixel_scale=None)


def cut_stamps(image, sources, stamp_size):
    """
    Square stamps centred on the nearest pixel to each source.

    Masked and non-finite pixels, and pixels beyond the image edge, are
    NaN in the stamps.

    Returns
    -------
    stamps : `~numpy.ndarray`
        ``(N, stamp_size, stamp_size)`` float32.
    errors : `~numpy.ndarray` or None
        The matching uncertainty (standard deviation) stamps.
    flags : `~numpy.ndarray`
        ``MASKED`` and ``EDGE`` bits of `~astrodl_plugins.core.flags.SourceFlags`.
    """
    data = np.where(image.mask, np.nan, image.data)
    shape = (stamp_size, stamp_size)
    n = len(sources.x)
    stamps = np.empty((n, stamp_size, stamp_size), np.float32)
    errors = None if image.error is None else np.empty_like(stamps)
    flags = np.zeros(n, np.int32)
    for i, (x, y) in enumerate(zip(sources.x, sources.y)):
        center = (int(np.floor(y + 0.5)), int(np.floor(x + 0.5)))
        stamps[i] = extract_array(data, shape, center, mode='partial',
                                  fill_value=np.nan)
        if errors is not None:
            errors[i] = extract_array(image.error, shape, center,
                                      mode='partial', fill_value=np.nan)
        large, _ = overlap_slices(data.shape, shape, center, mode='partial')
        inside = (large[0].stop - large[0].start) * (large[1].stop
                                                      - large[1].start)
        if inside < stamp_size * stamp_size:
            flags[i] |= SourceFlags.EDGE
        large_mask = image.mask[large]
        if large_mask.any():
            flags[i] |= SourceFlags.MASKED
    return stamps, errors, flags
