# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Source centres in segments, from the deblender's detector U-Net.

The detector turns a crop around each segment into a heat map of source
centres; its local maxima above the threshold inside the segment are the
centres. Crops come in seven sizes (32 to 256 pixels); a segment larger
than 256 pixels is covered by overlapping 256-pixel tiles whose peaks are
kept only away from the tile edges, so there are no seams. Only crops are
ever held in memory. A PSF wider than the training range is handled by
binning each crop by an odd factor.

The heat map of a crop is the mean of the detector's maps of the crop and
of the crop turned by 180 degrees about the segment's centre (the centre
of its bounding box; of the tile for a tiled segment). The network is not
exactly equivariant (it was trained with rotations, which makes it so
only approximately); the mean is, so a segment that is symmetric under
that turn (two equal sources) gets symmetric centres. Crops and binning
grids are placed relative to the segment, never to the image, so that
equal segments at different places get the same centres.

Masked and non-finite pixels never make a centre. The detector sees them
filled smoothly from the usable pixels around them (`fill_unusable`): a
hole filled with zeros has edges, which the detector takes for sources.
A peak is kept only when most of the 3 x 3 pixels about it are usable, so
a centre inside a masked region is not a centre, while one next to a
single bad pixel or column still is.
"""

from collections import namedtuple

import numpy as np

from .network import detector_inputs

__all__ = ['CropJob', 'cut_window', 'fill_unusable', 'crop_jobs',
           'find_centres']

_CROP_SIZES = (32, 48, 64, 96, 128, 192, 256)
_MARGIN = 8
_TILE_OVERLAP = 32
_PIXELS_PER_BATCH = 1 << 20

#: One detector crop: the segment ``label``; ``y0``, ``x0`` the first
#: (unbinned) pixel of the crop's window; ``size`` the crop's side in
#: binned pixels (the window is ``size * factor`` pixels); ``core``
#: ``(ylo, yhi, xlo, xhi)``, the (unbinned) region whose peaks are kept
#: (the cores of a segment's tiles partition its box); ``turn``
#: ``(dy, dx)``, how much further the window of the crop's turned twin
#: starts (0 or ``factor`` pixels per axis).
CropJob = namedtuple('CropJob', ['label', 'y0', 'x0', 'size', 'core', 'turn'])


def cut_window(data, y0, x0, size, fill):
    """``data[y0:y0+size, x0:x0+size]`` padded with ``fill`` off the edge."""
    from astropy.nddata import extract_array

    center = (y0 + size // 2, x0 + size // 2)
    return extract_array(data, (size, size), center, mode='partial',
                         fill_value=fill)


def fill_unusable(window, inside=None):
    """
    A copy of ``window`` whose non-finite pixels are filled smoothly from
    the finite ones about them.

    Each hole is filled by normalized convolution: the Gaussian-weighted
    mean of the finite pixels, with the smallest of the widths 1, 2, 4,
    ... 64 pixels that reaches it. A window with no finite pixel is all
    zeros.

    Parameters
    ----------
    window : `~numpy.ndarray`
        2-D data, NaN (or inf) where unusable.
    inside : `~numpy.ndarray`, optional
        Boolean, where the window lies inside the image: only those
        non-finite pixels are filled (the others are kept as they are).

    Returns
    -------
    filled : `~numpy.ndarray`
    """
    from scipy import ndimage

    window = np.asarray(window, np.float64)
    bad = ~np.isfinite(window)
    todo = bad if inside is None else bad & inside
    if not todo.any():
        return window
    out = window.copy()
    good = ~bad
    if not good.any():
        out[todo] = 0.0
        return out
    weights = good.astype(np.float64)
    values = np.where(good, window, 0.0)
    for width in (1, 2, 4, 8, 16, 32, 64):
        total = ndimage.gaussian_filter(weights, width, mode='constant')
        reached = todo & (total > 1e-3)
        if reached.any():
            smooth = ndimage.gaussian_filter(values, width, mode='constant')
            out[reached] = smooth[reached] / total[reached]
            todo = todo & ~reached
        if not todo.any():
            break
    out[todo] = 0.0
    return out


def _centred_start(start, stop, length, factor):
    """
    First pixel of a window of ``length`` pixels centred on the pixels
    ``start:stop``, and how much further its turned twin starts.

    A turn by 180 degrees about the centre ``c = (start + stop - 1) / 2``
    maps the window onto one that starts at ``2c - first - length + 1``.
    That is the window itself when ``c`` is a half-integer; otherwise the
    window is placed half a binned pixel early, so that its twin starts
    exactly one binned pixel (``factor`` pixels, an odd number) later and
    both lie on the same binning grid.
    """
    rest = start + stop - length
    if rest % 2 == 0:
        return rest // 2, 0
    return (rest - factor) // 2, factor


def _axis_windows(start, stop, length, factor):
    """
    Windows along one axis over the pixels ``start:stop`` and their margin:
    one centred window, or overlapping tiles (turned about their own
    centres). Each is ``(first, core_lo, core_hi, turn)``.
    """
    margin = _MARGIN * factor
    lo, hi = start - margin, stop + margin
    if hi - lo <= length:
        first, turn = _centred_start(start, stop, length, factor)
        return [(first, start, stop, turn)]
    overlap = _TILE_OVERLAP * factor
    half = overlap // 2
    # The last tile ends at the margin's end, to the binning grid of the
    # others.
    last = lo + (hi - length - lo) // factor * factor
    starts = sorted(set(list(range(lo, hi - length, length - overlap))
                        + [last]))
    # A peak belongs to the tile where it is at least half the overlap
    # from the (inner) tile edges.
    windows = []
    for i, first in enumerate(starts):
        core_lo = start if i == 0 else max(first + half,
                                           starts[i - 1] + length - half)
        core_hi = stop if i == len(starts) - 1 else first + length - half
        windows.append((first, core_lo, core_hi, 0))
    return windows


def crop_jobs(slices, labels, factor=1):
    """
    The detector crops of segments: one crop of the smallest size that
    holds a segment and its margin, or overlapping 256-pixel tiles.

    Parameters
    ----------
    slices : dict
        ``(y slice, x slice)`` of each segment's box, by label.
    labels : iterable of int
        The segments.
    factor : int, optional
        Binning factor of the crops (odd); sizes and margins are in
        binned pixels.

    Returns
    -------
    jobs : list of `CropJob`
    """
    if factor < 1 or factor % 2 == 0:
        msg = f'factor must be an odd integer >= 1, got {factor!r}'
        raise ValueError(msg)
    jobs = []
    for label in labels:
        sy, sx = slices[label]
        extent = max(sy.stop - sy.start, sx.stop - sx.start)
        need = -(-extent // factor) + 2 * _MARGIN
        size = next((s for s in _CROP_SIZES if s >= need), _CROP_SIZES[-1])
        length = size * factor
        for y0, ylo, yhi, dy in _axis_windows(sy.start, sy.stop, length,
                                              factor):
            for x0, xlo, xhi, dx in _axis_windows(sx.start, sx.stop, length,
                                                  factor):
                jobs.append(CropJob(label, y0, x0, size,
                                    (ylo, yhi, xlo, xhi), (dy, dx)))
    return jobs


def _bin(array, factor):
    """Sum of the ``factor x factor`` blocks of a square array."""
    n = array.shape[0] // factor
    return array.reshape(n, factor, n, factor).sum(axis=(1, 3))


def _detector_crop(data, sigma, y0, x0, size, factor):
    """The detector's input over a window, binned by ``factor``."""
    length = size * factor
    # Off the image: zeros, as in training; unusable pixels inside it:
    # filled from their neighbours (zeros would make edges).
    window = fill_unusable(cut_window(data, y0, x0, length, 0.0))
    if np.ndim(sigma) == 2:
        # The filled pixels need a noise too (off the image, the zeros
        # give a zero input whatever it is).
        noise = fill_unusable(cut_window(sigma, y0, x0, length, np.nan))
        if factor > 1:
            # A block with a pixel of unknown noise has unknown noise.
            noise = np.sqrt(_bin(noise ** 2, factor))
    else:
        noise = sigma * factor
    if factor > 1:
        window = _bin(np.nan_to_num(window), factor)
    return detector_inputs(window, noise)


def _mean_with_twin(heat, twin, shift_y, shift_x):
    """
    Mean of a crop's heat map and its turned twin's (turned back), which
    lies ``shift`` binned pixels further; the first row or column, outside
    the twin, keeps the crop's own value.
    """
    size = heat.shape[0]
    out = heat.copy()
    out[shift_y:, shift_x:] = 0.5 * (heat[shift_y:, shift_x:]
                                     + twin[:size - shift_y, :size - shift_x])
    return out


def _local_peaks(image, threshold):
    """
    (row, column) of the 3x3 local maxima above ``threshold``, brightest
    first (stable); none in a flat image of more than one pixel (which
    `~photutils.detection.find_peaks` refuses with a warning).
    """
    import warnings

    from photutils.detection import find_peaks
    from photutils.utils.exceptions import NoDetectionsWarning

    if image.size == 1:
        return np.argwhere(image > threshold)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NoDetectionsWarning)
        table = find_peaks(image, threshold, box_size=3)
    if table is None:
        return np.empty((0, 2), int)
    order = np.argsort(-np.asarray(table['peak_value']), kind='stable')
    return np.column_stack([np.asarray(table['y_peak'])[order],
                            np.asarray(table['x_peak'])[order]])


def find_centres(detector, data, sigma, segm_data, slices, labels, *,
                 threshold, factor=1, progress=None):
    """
    Source centres in each segment, from the detector's heat map.

    Parameters
    ----------
    factor : int, optional
        Bin the crops by this (odd) factor before detection (a PSF wider
        than the training range); centres are returned in unbinned pixels.

    Returns
    -------
    x, y : `~numpy.ndarray`
        Sub-pixel centres (0-based pixels).
    parent : `~numpy.ndarray`
        The segment label of each centre.
    """
    import keras
    from scipy.special import expit

    data = np.asarray(data)
    jobs = crop_jobs(slices, labels, factor)
    xs, ys, parents = [], [], []
    by_size = {}
    for job in jobs:
        by_size.setdefault(job.size, []).append(job)
    ny, nx = segm_data.shape
    for size, group in by_size.items():
        per_batch = max(1, _PIXELS_PER_BATCH // (2 * size * size))
        for start in range(0, len(group), per_batch):
            batch = group[start:start + per_batch]
            n = len(batch)
            crops = np.empty((2 * n, size, size, 1), np.float32)
            for i, job in enumerate(batch):
                dy, dx = job.turn
                crops[i, ..., 0] = _detector_crop(data, sigma, job.y0,
                                                  job.x0, size, factor)
                crops[n + i, ..., 0] = _detector_crop(
                    data, sigma, job.y0 + dy, job.x0 + dx, size,
                    factor)[::-1, ::-1]
            # An eager call: crops come in several shapes, and a compiled
            # predict function would be retraced for each (with warnings).
            heat = expit(keras.ops.convert_to_numpy(
                detector(crops, training=False))[..., 0])
            for i, job in enumerate(batch):
                dy, dx = job.turn
                mean = _mean_with_twin(heat[i], heat[n + i][::-1, ::-1],
                                       dy // factor, dx // factor)
                peaks = _local_peaks(mean, threshold)
                ylo, yhi, xlo, xhi = job.core
                for py, px in peaks:
                    # The centre of binned pixel k is at pixel
                    # k * factor + (factor - 1) / 2 of the window.
                    gy = job.y0 + py * factor + factor // 2
                    gx = job.x0 + px * factor + factor // 2
                    if not (ylo <= gy < yhi and xlo <= gx < xhi):
                        continue
                    dpy, dpx = _subpixel(mean, py, px)
                    x = gx + dpx * factor
                    y = gy + dpy * factor
                    iy = min(max(int(np.floor(y + 0.5)), 0), ny - 1)
                    ix = min(max(int(np.floor(x + 0.5)), 0), nx - 1)
                    if (segm_data[iy, ix] != job.label
                            or not _mostly_usable(data, iy, ix)):
                        continue
                    xs.append(x)
                    ys.append(y)
                    parents.append(job.label)
            if progress is not None:
                progress(n)
    return (np.array(xs, np.float64), np.array(ys, np.float64),
            np.array(parents, np.int64))


def _mostly_usable(data, iy, ix):
    """Whether most of the 3 x 3 pixels about ``(iy, ix)`` are finite."""
    patch = data[max(iy - 1, 0):iy + 2, max(ix - 1, 0):ix + 2]
    return 2 * np.count_nonzero(np.isfinite(patch)) > patch.size


def _subpixel(heat, py, px):
    """Offset of the heat-weighted centroid of the 3x3 pixels at a peak."""
    ny, nx = heat.shape
    ylo, yhi = max(py - 1, 0), min(py + 2, ny)
    xlo, xhi = max(px - 1, 0), min(px + 2, nx)
    patch = heat[ylo:yhi, xlo:xhi]
    total = patch.sum()
    if total <= 0:
        return 0.0, 0.0
    yy, xx = np.mgrid[ylo:yhi, xlo:xhi]
    return (float((patch * (yy - py)).sum() / total),
            float((patch * (xx - px)).sum() / total))
