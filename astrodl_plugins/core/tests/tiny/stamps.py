# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tiny source-stamp estimators: flux and size of a stamp."""

import keras
import numpy as np
from astropy import units as u

from astrodl_plugins.core.base import Draws
from astrodl_plugins.core.dihedral import pool_views
from astrodl_plugins.core.stamps import SourceStampEstimator
from astrodl_plugins.training.augment import random_dihedral
from astrodl_plugins.training.losses import GaussianBetaNLL
from astrodl_plugins.training.mixin import TrainableMixin, TrainingTask

from .data import STAMP
from .networks import build_stamp_network, clipped_log_var, gaussian_draws

__all__ = ['stamp_features', 'TinyStamp', 'TinyStampNoPSF',
           'TinyStampEstimatePSF', 'TinyMultiBand', 'make_tiny_stamp']


def stamp_features(stamps):
    """
    ``(n, s, s, c)`` stamps -> features scaled by the central peak (NaN
    -> 0) and that peak.
    """
    size = stamps.shape[1]
    core = stamps[:, size // 2 - 2:size // 2 + 2, size // 2 - 2:size // 2 + 2]
    peak = np.nan_to_num(core).max(axis=(1, 2, 3), initial=0.0)
    norm = np.maximum(peak, 1e-6).astype(np.float32)
    features = np.nan_to_num(stamps / norm[:, None, None, None])
    return features.astype(np.float32), norm


class TinyStamp(TrainableMixin, SourceStampEstimator):
    """
    Flux and size (Gaussian sigma) of a source from a tiny CNN.

    Parameters
    ----------
    stamp_size : int
        Stamp side, pixels.
    widths : tuple of int
        Filters of the conv blocks.
    dense : int
        Units of the dense layers.
    dropout : float
        MC-dropout rate.
    """

    name = 'tiny-stamp'
    task = 'regression'
    version = '0.1'
    description = 'flux and size of a source (test estimator)'
    output_names = ('flux', 'size')
    psf = 'required'
    supports_tta = True
    range_margins = {'size': (0.1, 0.1), 'psf_fwhm': (0.05, 0.05)}

    def __init__(self, stamp_size=STAMP, widths=(4, 8), dense=16,
                 dropout=0.2):
        self.stamp_size = stamp_size
        self.widths = widths
        self.dense = dense
        self.dropout = dropout

    def build(self):
        """A new (untrained) network for the parameters."""
        return build_stamp_network(self.stamp_size, len(self.bands) or 1,
                                   self.widths, self.dense, self.dropout,
                                   with_psf=self.psf is not None)

    def _get_state(self):
        return {'error_scale': dict(getattr(self, 'error_scale_', {}))}

    def _set_state(self, state):
        self.error_scale_ = state.get('error_scale', {})

    # -- predict hooks

    def _channels(self, stamps, bands):
        """Stamps with the channels of the model's bands."""
        if not self.bands:
            return stamps[..., None]
        out = np.zeros(stamps.shape[:3] + (len(self.bands),), np.float32)
        for j, band in enumerate(bands):
            out[..., self.bands.index(band)] = stamps[..., j]
        return out

    def _inputs(self, stamps, psf, bands):
        features, norm = stamp_features(self._channels(stamps, bands))
        inputs = [features]
        if self.psf is not None:
            inputs.append((np.asarray(psf, np.float32) / 5.0)[:, None])
        return inputs, norm

    def _prepare(self, stamps, errors, context):
        psf = (None if context.psf_fwhm is None
               else context.psf_fwhm[context.usable])
        inputs, norm = self._inputs(stamps, psf, context.bands)
        context.aux['norm'] = norm
        if psf is not None:
            context.aux['psf_fwhm'] = psf
        return inputs

    def _decode(self, raw, context, rng):
        if context.options['tta']:
            raw = pool_views(raw)
        norm = context.aux['norm'][:, None]
        flux = norm * np.exp(np.clip(raw[..., 0], -10.0, 10.0))
        size = np.exp(np.clip(raw[..., 1], -5.0, 5.0))
        log_var = clipped_log_var(raw[..., 2:])
        variance = {'flux': flux ** 2 * np.exp(log_var[..., 0]),
                    'size': size ** 2 * np.exp(log_var[..., 1])}
        return gaussian_draws({'flux': flux, 'size': size}, variance, rng)

    def _to_output_units(self, draws, context):
        scale = _arcsec_per_pixel(context.image)
        if scale is None:
            return draws
        values, aleatoric, predictive = (dict(part) for part in draws)
        values['size'] = values['size'] * scale
        predictive['size'] = predictive['size'] * scale
        aleatoric['size'] = aleatoric['size'] * scale ** 2
        return Draws(values, aleatoric, predictive)

    def _output_units(self, context):
        image = context.image
        unit = None if image is None else image.unit
        return {'flux': unit or u.dimensionless_unscaled,
                'size': (u.pix if _arcsec_per_pixel(image) is None
                         else u.arcsec)}

    def _error_scale(self, context):
        return dict(getattr(self, 'error_scale_', {}))

    def _extra_meta(self, context):
        return {'size_unit': str(self._output_units(context)['size'])}

    # -- fit hooks

    def _training_data(self, stamps, labels, psf_fwhm=None):
        stamps = np.asarray(stamps, np.float32)
        if self.psf is not None and psf_fwhm is None:
            if 'psf_fwhm' not in labels.colnames:
                msg = 'psf_fwhm is required: give it or a psf_fwhm column'
                raise ValueError(msg)
            psf_fwhm = labels['psf_fwhm']
        psf = np.broadcast_to(np.asarray(
            0.0 if psf_fwhm is None else psf_fwhm, np.float64),
            (len(stamps),)).copy()
        targets = np.column_stack([np.asarray(labels['flux'], np.float64),
                                   np.asarray(labels['size'], np.float64)])
        return stamps, targets, psf

    def _training_tasks(self, train, validation, *, new, augment, seed):
        bands = self.bands

        def encode(stamps, targets, psf):
            inputs, norm = self._inputs(stamps, psf, bands)
            encoded = np.column_stack([np.log(targets[:, 0] / norm),
                                       np.log(targets[:, 1])])
            return inputs, encoded.astype(np.float32)

        def prepare(inputs, targets, rng):
            if augment:
                image, _, _ = random_dihedral(inputs[0], rng)
                inputs = [image, *inputs[1:]]
            return inputs, targets

        if new:
            self.error_scale_ = {}
        return [TrainingTask('model', self.build, encode(*train),
                             encode(*validation), loss=GaussianBetaNLL(0.5),
                             prepare=prepare, epochs=2, batch_size=32,
                             patience=2, learning_rate=3e-3)]


class TinyStampNoPSF(TinyStamp):
    """`TinyStamp` without the PSF input (``psf = None``)."""

    name = 'tiny-stamp-nopsf'
    psf = None
    supports_tta = False
    range_margins = {'size': (0.1, 0.1)}


class TinyStampEstimatePSF(TinyStamp):
    """`TinyStamp` that estimates the PSF when not given (``'estimate'``)."""

    name = 'tiny-stamp-estimate'
    psf = 'estimate'


class TinyMultiBand(TinyStamp):
    """`TinyStamp` on g, r, i images (reference band r)."""

    name = 'tiny-multiband'
    bands = ('g', 'r', 'i')
    default_band = 'r'


def _arcsec_per_pixel(image):
    if image is None or image.pixel_scale is None:
        return None
    return image.pixel_scale.to_value(u.arcsec / u.pix)


def make_tiny_stamp(cls=TinyStamp, seed=0, **params):
    """An untrained tiny stamp estimator with a wide card."""
    keras.utils.set_random_seed(seed)
    estimator = cls(**params)
    estimator.model_ = estimator.build()
    estimator.error_scale_ = {}
    estimator.card_ = {'valid_ranges': {'size': [1e-3, 1e3],
                                        'psf_fwhm': [1.0, 6.0]}}
    return estimator
