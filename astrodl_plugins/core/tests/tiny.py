# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Tiny test estimators of the three input families, and a small image.

They exercise the core without the built-in estimator packages: the
networks have a few hundred weights, so an untrained one is built in a
fraction of a second (enough for shapes, flags, seeds, units and errors)
and a one- or two-epoch ``fit`` on synthetic data takes a second or two.

* `TinyStamp` (`SourceStampEstimator` + `TrainableMixin`): ``flux`` and
  ``size`` of a stamp, PSF required, ``OUT_OF_RANGE`` through
  ``range_margins``, ``supports_tta``. `TinyStampNoPSF` ignores the PSF;
  `TinyMultiBand` reads the bands g, r, i (reference band r).
* `TinySeries` (`SeriesEstimator` + `TrainableMixin`): the mean ``level``
  of a 1-D series. `TinySeriesPair` adds a second network (``other``,
  a ``spread`` column): two networks saved and fitted.
* `TinySegments` (`ImageToImageEstimator`): one object per segment, at
  its centroid; ``flux`` from the MC engine; the segment's pixels as the
  model image.
"""

import keras
import numpy as np
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.nddata.utils import extract_array
from astropy.table import QTable
from astropy.wcs import WCS
from keras import layers
from photutils.segmentation import SegmentationImage

from astrodl_plugins.core.base import Draws
from astrodl_plugins.core.dihedral import pool_views
from astrodl_plugins.core.image import ImageOutput, ImageToImageEstimator
from astrodl_plugins.core.mc import MCDropout
from astrodl_plugins.core.series import SeriesEstimator
from astrodl_plugins.core.stamps import SourceStampEstimator
from astrodl_plugins.training.augment import random_dihedral
from astrodl_plugins.training.losses import GaussianBetaNLL
from astrodl_plugins.training.mixin import TrainableMixin, TrainingTask

# -- a small simulated image ---------------------------------------------

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


# -- networks --------------------------------------------------------------

def _mean_logvar_head(x, dense, dropout, n_out=4):
    x = layers.Dense(dense, activation='relu', name='dense1')(x)
    x = MCDropout(dropout, name='mc1')(x)
    return layers.Dense(n_out, name='out')(x)


def build_stamp_network(stamp_size, channels, widths, dense, dropout,
                        with_psf=True):
    """Conv blocks, MC dropout; 2 means and 2 log-variances."""
    image = keras.Input((stamp_size, stamp_size, channels), name='image')
    x = image
    for i, width in enumerate(widths):
        x = layers.Conv2D(width, 3, padding='same', activation='relu',
                          name=f'block{i}_conv')(x)
        x = layers.MaxPooling2D(2, name=f'block{i}_pool')(x)
    x = layers.Flatten(name='flatten')(x)
    x = layers.Dense(dense, activation='relu', name='dense0')(x)
    x = MCDropout(dropout, name='mc0')(x)
    inputs = [image]
    if with_psf:
        psf = keras.Input((1,), name='psf_fwhm')
        inputs.append(psf)
        x = layers.Concatenate(name='concat')([x, psf])
    out = _mean_logvar_head(x, dense, dropout)
    return keras.Model(inputs, out, name='tiny_stamp')


def build_series_network(length, dense, dropout, name='tiny_series'):
    """Dense layers with MC dropout; a mean and a log-variance."""
    series = keras.Input((length,), name='series')
    x = layers.Dense(dense, activation='relu', name='dense0')(series)
    x = MCDropout(dropout, name='mc0')(x)
    out = _mean_logvar_head(x, dense, dropout, n_out=2)
    return keras.Model(series, out, name=name)


def build_segment_network(stamp_size, dropout):
    """A conv layer, MC dropout; a flux correction and a log-variance."""
    image = keras.Input((stamp_size, stamp_size, 1), name='image')
    x = layers.Conv2D(4, 3, activation='relu', name='conv')(image)
    x = layers.Flatten(name='flatten')(x)
    x = layers.Dense(8, activation='relu', name='dense0')(x)
    x = MCDropout(dropout, name='mc0')(x)
    out = layers.Dense(2, name='out')(x)
    return keras.Model(image, out, name='tiny_segments')


def _gaussian_draws(mean, variance, rng):
    """`Draws` with predictive draws = mean + N(0, variance)."""
    predictive = {key: value + rng.normal(size=value.shape)
                  * np.sqrt(variance[key]) for key, value in mean.items()}
    return Draws(mean, variance, predictive)


def _log_var(raw):
    return np.clip(raw, -8.0, 4.0)


# -- the source-stamp family -------------------------------------------------

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
        log_var = _log_var(raw[..., 2:])
        variance = {'flux': flux ** 2 * np.exp(log_var[..., 0]),
                    'size': size ** 2 * np.exp(log_var[..., 1])}
        return _gaussian_draws({'flux': flux, 'size': size}, variance, rng)

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


class TinyMultiBand(TinyStamp):
    """`TinyStamp` on g, r, i images (reference band r)."""

    name = 'tiny-multiband'
    bands = ('g', 'r', 'i')
    default_band = 'r'


def _arcsec_per_pixel(image):
    if image is None or image.pixel_scale is None:
        return None
    return image.pixel_scale.to_value(u.arcsec / u.pix)


# -- the 1-D family ------------------------------------------------------------

class TinySeries(TrainableMixin, SeriesEstimator):
    """
    Mean level of a 1-D series from a tiny dense network.

    The good values are resampled onto ``length`` points and scaled by
    their largest absolute value. ``context.aux['n_points']`` (good values)
    is range-checked against the card's ``valid_ranges``.

    Parameters
    ----------
    length : int
        Points of the network's input.
    dense : int
        Units of the dense layers.
    dropout : float
        MC-dropout rate.
    """

    name = 'tiny-series'
    task = 'regression'
    version = '0.1'
    description = 'mean level of a series (test estimator)'
    output_names = ('level',)
    min_points = 3
    range_margins = {'n_points': (0.0, None)}

    def __init__(self, length=24, dense=16, dropout=0.2):
        self.length = length
        self.dense = dense
        self.dropout = dropout

    def _resample(self, values, mask=None):
        """Good values on ``length`` points, scaled; and the scales."""
        rows, scales = [], []
        for i, row in enumerate(values):
            good = np.asarray(row, np.float64)
            if mask is not None:
                good = good[~mask[i]]
            grid = np.linspace(0.0, 1.0, self.length)
            resampled = np.interp(grid, np.linspace(0.0, 1.0, len(good)),
                                  good)
            scale = max(np.abs(good).max(), 1e-6)
            rows.append(resampled / scale)
            scales.append(scale)
        return (np.array(rows, np.float32).reshape(-1, self.length),
                np.array(scales))

    def _prepare(self, series, context):
        features, scales = self._resample([s.values for s in series],
                                          [s.mask for s in series])
        context.aux['scale'] = scales
        context.aux['n_points'] = np.array(
            [np.count_nonzero(~s.mask) for s in series], np.float64)
        return [features]

    def _decode(self, raw, context, rng):
        scale = context.aux['scale'][:, None]
        level = scale * raw[..., 0]
        variance = scale ** 2 * np.exp(_log_var(raw[..., 1]))
        return _gaussian_draws({'level': level}, {'level': variance}, rng)

    def _training_data(self, values, labels):
        values = np.asarray(values, np.float32)
        return values, np.asarray(labels['level'], np.float64)

    def _task(self, network, target, train, validation, build):
        def encode(values, level):
            features, scales = self._resample(values)
            return [features], (target(values, level) / scales)[:, None]

        return TrainingTask(network, build, encode(*train),
                            encode(*validation), loss=GaussianBetaNLL(0.0),
                            epochs=2, batch_size=16, patience=2,
                            learning_rate=1e-2)

    def _training_tasks(self, train, validation, *, new, augment, seed):
        return [self._task('model', lambda values, level: level, train,
                           validation, self.build)]

    def build(self):
        """A new (untrained) ``model`` network."""
        return build_series_network(self.length, self.dense, self.dropout)


class TinySeriesPair(TinySeries):
    """
    `TinySeries` with a second network, ``other``: the ``spread`` column
    (one deterministic pass).
    """

    name = 'tiny-series-pair'
    networks = ('model', 'other')

    def build_other(self):
        """A new (untrained) ``other`` network."""
        return build_series_network(self.length, self.dense, self.dropout,
                                    name='tiny_spread')

    def _extra_columns(self, columns, draws, context):
        raw = self.mc_engine('other').sample(context.inputs, 0,
                                             seed=context.seed)
        spread = np.full(len(context.usable), np.nan)
        spread[context.usable] = context.aux['scale'] * np.abs(raw[:, 0, 0])
        return {**columns, 'spread': spread}

    def _training_tasks(self, train, validation, *, new, augment, seed):
        def spread(values, level):
            return values.std(axis=1)

        return [*super()._training_tasks(train, validation, new=new,
                                         augment=augment, seed=seed),
                self._task('other', spread, train, validation,
                           self.build_other)]


# -- the image-to-image family ---------------------------------------------

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
                     * np.exp(_log_var(raw[..., 1]))}
        return ImageOutput(
            label_image, parents, labels=children, x=np.array(xs),
            y=np.array(ys), values=values, aleatoric=aleatoric,
            flags=np.zeros(len(children), np.int32),
            columns={'area': np.array(areas, np.int64) * u.pix ** 2},
            models=models, origins=np.array(origins).reshape(-1, 2),
            meta=meta)

    def _output_units(self, context):
        return {'flux': context.image.unit or u.dimensionless_unscaled}


# -- factories ---------------------------------------------------------------

def tiny_stamp(cls=TinyStamp, seed=0, **params):
    """An untrained tiny stamp estimator with a wide card."""
    keras.utils.set_random_seed(seed)
    estimator = cls(**params)
    estimator.model_ = estimator.build()
    estimator.error_scale_ = {}
    estimator.card_ = {'valid_ranges': {'size': [1e-3, 1e3],
                                        'psf_fwhm': [1.0, 6.0]}}
    return estimator


def tiny_series(cls=TinySeries, seed=0, **params):
    """An untrained tiny series estimator (one or two networks)."""
    keras.utils.set_random_seed(seed)
    estimator = cls(**params)
    estimator.model_ = estimator.build()
    if 'other' in cls.networks:
        estimator.other_ = estimator.build_other()
    estimator.card_ = {'valid_ranges': {'n_points': [4, 1000]}}
    return estimator


def tiny_segments(seed=0, **params):
    """An untrained `TinySegments`."""
    keras.utils.set_random_seed(seed)
    estimator = TinySegments(**params)
    estimator.model_ = build_segment_network(estimator.stamp_size,
                                             estimator.dropout)
    return estimator
