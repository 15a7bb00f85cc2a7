# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A tiny image-to-image estimator: one object per segment."""

import keras
import numpy as np
from astropy import units as u
from astropy.nddata.utils import extract_array

from astrodl_plugins.core.image import ImageOutput, ImageToImageEstimator

from .networks import build_segment_network, clipped_log_var

__all__ = ['TinySegments', 'make_tiny_segments']


class TinySegments(ImageToImageEstimator):
    """
    One object per segment at its centroid (the input segments,
    relabelled ``1..N``); ``flux`` is the segment's sum times a correction
    drawn by the MC engine; the model image is the segment's pixels.

    Parameters
    ----------
    stamp_size : int
        Side of the model stamps.
    dropout : float
        MC-dropout rate.
    """

    name = 'tiny-segments'
    task = 'deblending'
    version = '0.1'
    description = 'one object per segment (test estimator)'
    output_names = ('flux',)
    row_columns = {'area': np.int64}

    def __init__(self, stamp_size=12, dropout=0.2):
        self.stamp_size = stamp_size
        self.dropout = dropout

    def _process(self, segm, labels, context, measure):
        parents = np.asarray(segm.labels, np.int64)
        label_image = np.zeros(segm.shape, np.int32)
        for child, parent in enumerate(parents, start=1):
            label_image[segm.data == parent] = child
        meta = {'n_segments': len(parents), 'psf_fwhm': context.psf_fwhm}
        if not measure:
            return ImageOutput(label_image, parents, meta=meta)
        image = context.image
        data = np.where(image.mask, 0.0, image.data)
        children = np.flatnonzero(np.isin(parents, labels)) + 1
        size = self.stamp_size
        xs, ys, sums, areas, models, origins = [], [], [], [], [], []
        for child in children:
            inside = label_image == child
            rows, cols = np.nonzero(inside)
            x, y = cols.mean(), rows.mean()
            center = (int(np.floor(y + 0.5)), int(np.floor(x + 0.5)))
            stamp = extract_array(np.where(inside, data, 0.0), (size, size),
                                  center, mode='partial', fill_value=0.0)
            xs.append(x)
            ys.append(y)
            sums.append(data[inside].sum())
            areas.append(inside.sum())
            models.append(stamp)
            origins.append((center[1] - size // 2, center[0] - size // 2))
        models = np.array(models, np.float64).reshape(-1, size, size)
        peak = np.maximum(np.abs(models).max(axis=(1, 2), initial=0.0),
                          1e-6)
        features = (models / peak[:, None, None])[..., None].astype(
            np.float32)
        raw = self._sample([features], context)
        total = np.array(sums)[:, None]
        values = {'flux': total * (1.0 + 0.1 * np.tanh(raw[..., 0]))}
        aleatoric = {'flux': (0.05 * total) ** 2
                     * np.exp(clipped_log_var(raw[..., 1]))}
        return ImageOutput(
            label_image, parents, labels=children, x=np.array(xs),
            y=np.array(ys), values=values, aleatoric=aleatoric,
            flags=np.zeros(len(children), np.int32),
            columns={'area': np.array(areas, np.int64) * u.pix ** 2},
            models=models, origins=np.array(origins).reshape(-1, 2),
            meta=meta)

    def _output_units(self, context):
        return {'flux': context.image.unit or u.dimensionless_unscaled}


def make_tiny_segments(seed=0, **params):
    """An untrained `TinySegments`."""
    keras.utils.set_random_seed(seed)
    estimator = TinySegments(**params)
    estimator.model_ = build_segment_network(estimator.stamp_size,
                                             estimator.dropout)
    return estimator
