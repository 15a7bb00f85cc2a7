# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Segmentation images in and out: checks, positions, parent mapping."""

import warnings

import numpy as np

from ..exceptions import AstrodlUserWarning

__all__ = ['check_segmentation', 'labels_at', 'deblended_segmentation',
           'set_parent_map']


def check_segmentation(segmentation_image, shape, labels=None,
                       name='segmentation_image'):
    """
    Validate a segmentation image (photutils or integer array).

    Returns
    -------
    segm : `~photutils.segmentation.SegmentationImage` or None
        None when it has no source (with a warning).
    labels : `~numpy.ndarray`
        The labels to deblend (all by default), sorted.
    """
    from photutils.segmentation import SegmentationImage

    if isinstance(segmentation_image, SegmentationImage):
        array = segmentation_image.data
    else:
        array = np.asarray(segmentation_image)
        if array.dtype.kind == 'f':
            if not np.all(np.isfinite(array)) or np.any(array % 1):
                msg = (f'{name} must hold integer labels; got an array of '
                       f'{array.dtype} with non-integer values')
                raise ValueError(msg)
            array = array.astype(np.int64)
        elif array.dtype.kind not in 'iu':
            msg = (f'{name} must be a photutils SegmentationImage or an '
                   f'integer array, got dtype {array.dtype}')
            raise TypeError(msg)
    if array.shape != tuple(shape):
        msg = (f'{name} has shape {array.shape}, but the data have shape '
               f'{tuple(shape)}')
        raise ValueError(msg)
    if np.any(array < 0):
        msg = f'{name} has negative labels; labels must be >= 0'
        raise ValueError(msg)
    if not np.any(array):
        warnings.warn(f'{name} has no source (all pixels are 0): nothing to '
                      'deblend', AstrodlUserWarning, stacklevel=3)
        return None, np.array([], np.int64)
    segm = (segmentation_image
            if isinstance(segmentation_image, SegmentationImage)
            else SegmentationImage(array.astype(np.int64)))
    present = segm.labels
    if labels is None:
        return segm, np.asarray(present)
    labels = np.atleast_1d(np.asarray(labels))
    if labels.dtype.kind not in 'iu':
        msg = f'labels must be integers, got dtype {labels.dtype}'
        raise ValueError(msg)
    missing = np.setdiff1d(labels, present)
    if missing.size:
        msg = (f'labels {missing.tolist()} are not in {name} (it has '
               f'{len(present)} labels between {present.min()} and '
               f'{present.max()})')
        raise ValueError(msg)
    return segm, np.unique(labels)


def labels_at(segm, positions):
    """
    The labels of the segments under pixel positions.

    Parameters
    ----------
    segm : `~photutils.segmentation.SegmentationImage`
    positions : array
        ``(N, 2)`` pixel x, y (see
        `~astrodl_plugins.core.sources.locate_sources` for other forms).

    Returns
    -------
    labels : `~numpy.ndarray`

    Raises
    ------
    ValueError
        A position outside the image or on a pixel of no segment.
    """
    xy = np.array(positions, dtype=np.float64, ndmin=2)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) == 0:
        msg = f'positions must have shape (N, 2), got {xy.shape}'
        raise ValueError(msg)
    ny, nx = segm.shape
    col = np.floor(xy[:, 0] + 0.5)
    row = np.floor(xy[:, 1] + 0.5)
    inside = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
    labels = np.zeros(len(xy), np.int64)
    labels[inside] = segm.data[row[inside].astype(int),
                               col[inside].astype(int)]
    if not np.all(labels > 0):
        bad = np.flatnonzero(labels <= 0)
        msg = (f'positions {bad[:10].tolist()} (0-based) are outside the '
               'image or on no segment of segmentation_image')
        raise ValueError(msg)
    return labels


def deblended_segmentation(label_image, parents):
    """
    A `~photutils.segmentation.SegmentationImage` of deblended children
    that knows their parents, as photutils' ``deblend_sources`` returns.

    Parameters
    ----------
    label_image : `~numpy.ndarray`
        Children labelled ``1..N``.
    parents : array of int
        The parent label of each child, in child-label order.

    Notes
    -----
    The parent map is set by `set_parent_map`.
    """
    from photutils.segmentation import SegmentationImage

    segm = SegmentationImage(label_image)
    children = {}
    for label, parent in enumerate(np.asarray(parents).tolist(), start=1):
        children.setdefault(parent, []).append(label)
    return set_parent_map(segm, {parent: np.array(labels, label_image.dtype)
                                 for parent, labels in children.items()
                                 if len(labels) > 1})


def set_parent_map(segm, children):
    """
    Give a `~photutils.segmentation.SegmentationImage` photutils' parent
    map of a deblending, as its ``deblend_sources`` does.

    Parameters
    ----------
    segm : `~photutils.segmentation.SegmentationImage`
        The deblended segmentation image (changed in place).
    children : dict
        Input (parent) label -> array of the labels of its children, for
        the parents that were split.

    Returns
    -------
    segm : `~photutils.segmentation.SegmentationImage`
        The same object.

    Notes
    -----
    photutils fills ``deblended_labels``, ``deblended_label_to_parent`` and
    ``parent_to_deblended_labels`` from the private attribute
    ``_deblend_label_map`` that its ``deblend_sources`` sets; there is no
    public setter (photutils 3.0). This is the only place in the package
    that writes it.
    """
    segm._deblend_label_map = dict(children)
    return segm
