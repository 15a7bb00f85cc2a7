# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Source centres in segments, from the deblender's detector U-Net.

The detector turns a crop around each segment into a heat map of source
centres; its local maxima above the threshold inside the segment are the
centres. Crops come in seven sizes (32 to 256 pixels); a segment larger
than 256 pixels is covered by overlapping 256-pixel tiles whose peaks are
kept only away from the tile edges, so there are no seams. Only crops are
ever held in memory. A PSF wider than the training range is handled by
binning the image first.
"""

import numpy as np

from .network import detector_inputs

__all__ = ['cut_window', 'crop_jobs', 'find_centres']

_CROP_SIZES = (32, 48, 64, 96, 128, 192, 256)
_MARGIN = 8
_TILE_OVERLAP = 32
_PIXELS_PER_BATCH = 1 << 20


def cut_window(data, y0, x0, size, fill):
    """``data[y0:y0+size, x0:x0+size]`` padded with ``fill`` off the edge."""
    from astropy.nddata import extract_array

    center = (y0 + size // 2, x0 + size // 2)
    return extract_array(data, (size, size), center, mode='partial',
                         fill_value=fill)


def _tile_starts(sl, size):
    """First pixels of the overlapping tiles along one axis of a box."""
    lo, hi = sl.start - _MARGIN, sl.stop + _MARGIN
    if hi - lo <= size:
        return [(sl.start + sl.stop) // 2 - size // 2]
    starts = list(range(lo, hi - size, size - _TILE_OVERLAP))
    return sorted(set(starts + [hi - size]))


def crop_jobs(slices, labels):
    """
    The detector crops of segments: one crop of the smallest size that
    holds a segment and its margin, or overlapping 256-pixel tiles.

    Parameters
    ----------
    slices : dict
        ``(y slice, x slice)`` of each segment's box, by label.
    labels : iterable of int
        The segments.

    Returns
    -------
    jobs : list of tuple
        ``(label, y0, x0, size, core)``: the crop's first pixel and side,
        and ``core`` ``(ylo, yhi, xlo, xhi)``, the region whose peaks are
        kept (the cores of a segment's tiles partition its box).
    """
    jobs = []
    for label in labels:
        sy, sx = slices[label]
        h = sy.stop - sy.start + 2 * _MARGIN
        w = sx.stop - sx.start + 2 * _MARGIN
        need = max(h, w)
        size = next((s for s in _CROP_SIZES if s >= need), None)
        if size is not None:
            cy = (sy.start + sy.stop) // 2
            cx = (sx.start + sx.stop) // 2
            jobs.append((label, cy - size // 2, cx - size // 2, size,
                         (sy.start, sy.stop, sx.start, sx.stop)))
            continue
        # Tiles over a large segment; a peak belongs to the tile where it
        # is at least half the overlap from the (inner) tile edges.
        size = _CROP_SIZES[-1]
        half = _TILE_OVERLAP // 2
        y_starts = _tile_starts(sy, size)
        x_starts = _tile_starts(sx, size)
        for iy, ty in enumerate(y_starts):
            for ix, tx in enumerate(x_starts):
                ylo = sy.start if iy == 0 else ty + half
                yhi = sy.stop if iy == len(y_starts) - 1 else ty + size - half
                xlo = sx.start if ix == 0 else tx + half
                xhi = sx.stop if ix == len(x_starts) - 1 else tx + size - half
                if iy > 0:
                    ylo = max(ylo, y_starts[iy - 1] + size - half)
                if ix > 0:
                    xlo = max(xlo, x_starts[ix - 1] + size - half)
                jobs.append((label, ty, tx, size, (ylo, yhi, xlo, xhi)))
    return jobs


def _binned(data, sigma, slices, factor):
    """Data, noise and segment boxes on a grid binned by ``factor``."""
    from astropy.nddata import block_reduce

    data = block_reduce(np.nan_to_num(data), factor, func=np.sum)
    if np.ndim(sigma) == 2:
        sigma = np.sqrt(block_reduce(np.nan_to_num(sigma) ** 2, factor,
                                     func=np.sum))
    else:
        sigma = sigma * factor
    slices = {label: (slice(sy.start // factor, -(-sy.stop // factor)),
                      slice(sx.start // factor, -(-sx.stop // factor)))
              for label, (sy, sx) in slices.items()}
    return data, sigma, slices


def find_centres(detector, data, sigma, segm_data, slices, labels, *,
                 threshold, factor=1, progress=None):
    """
    Source centres in each segment, from the detector's heat map.

    Parameters
    ----------
    factor : int, optional
        Bin the image by this factor before detection (a PSF wider than
        the training range); centres are returned in unbinned pixels.

    Returns
    -------
    x, y : `~numpy.ndarray`
        Sub-pixel centres (0-based pixels).
    parent : `~numpy.ndarray`
        The segment label of each centre.
    """
    import keras
    from scipy.special import expit
    from skimage.feature import peak_local_max

    data = np.asarray(data)
    if factor > 1:
        data, sigma, slices = _binned(data, sigma, slices, factor)
    jobs = crop_jobs(slices, labels)
    xs, ys, parents = [], [], []
    by_size = {}
    for job in jobs:
        by_size.setdefault(job[3], []).append(job)
    sigma_map = np.ndim(sigma) == 2
    ny, nx = segm_data.shape
    for size, group in by_size.items():
        per_batch = max(1, _PIXELS_PER_BATCH // (size * size))
        for start in range(0, len(group), per_batch):
            batch = group[start:start + per_batch]
            crops = np.empty((len(batch), size, size, 1), np.float32)
            for i, (_, y0, x0, _, _) in enumerate(batch):
                window = cut_window(data, y0, x0, size, 0.0)
                noise = (cut_window(sigma, y0, x0, size, np.nan)
                         if sigma_map else sigma)
                crops[i, ..., 0] = detector_inputs(window, noise)
            # An eager call: crops come in several shapes, and a compiled
            # predict function would be retraced for each (with warnings).
            heat = expit(keras.ops.convert_to_numpy(
                detector(crops, training=False))[..., 0])
            for i, (label, y0, x0, _, core) in enumerate(batch):
                peaks = peak_local_max(heat[i], min_distance=1,
                                       threshold_abs=threshold,
                                       exclude_border=False)
                for py, px in peaks:
                    gy, gx = py + y0, px + x0
                    if not (core[0] <= gy < core[1]
                            and core[2] <= gx < core[3]):
                        continue
                    dy, dx = _subpixel(heat[i], py, px)
                    # Back to unbinned pixels (centre of a binned pixel k
                    # is at (k + 0.5) * factor - 0.5).
                    x = (gx + dx + 0.5) * factor - 0.5
                    y = (gy + dy + 0.5) * factor - 0.5
                    iy = min(max(int(np.floor(y + 0.5)), 0), ny - 1)
                    ix = min(max(int(np.floor(x + 0.5)), 0), nx - 1)
                    if segm_data[iy, ix] != label:
                        continue
                    xs.append(x)
                    ys.append(y)
                    parents.append(label)
            if progress is not None:
                progress(len(batch))
    return (np.array(xs, np.float64), np.array(ys, np.float64),
            np.array(parents, np.int64))


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
