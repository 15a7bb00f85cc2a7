# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The *image-to-image* family: networks that map an image (and its
segmentation) to images, with a table of the objects they find.

The ``deblender`` is a fill-in of `ImageToImageEstimator`; clumps and
image restoration are meant to be the next ones.
"""

from dataclasses import dataclass, field

import numpy as np

from .base import BaseEstimator, Draws
from .context import PredictContext
from .flags import SourceFlags, flag_descriptions
from .inputs import read_image
from .psf import estimate_image_psf, psf_given, psf_origin, resolve_psf_fwhm
from .segmentation import check_segmentation, deblended_segmentation, labels_at
from .sources import Sources, positions_xy
from .table import build_table, source_columns

__all__ = ['ImageToImageEstimator', 'ImageOutput', 'ImageResult',
           'pool_feature_maps']

#: Edges (pixels from the stamp's centre) of the annuli over which
#: `pool_feature_maps` averages each feature channel.
FEATURE_RADII = (2, 4, 8, 16)


@dataclass
class ImageOutput:
    """
    What an image-to-image estimator's ``_process`` hook returns.

    Attributes
    ----------
    label_image : `~numpy.ndarray`
        The output segmentation, objects labelled ``1..N``.
    parents : `~numpy.ndarray`
        The input (parent) label of each output label, in label order.
    labels : `~numpy.ndarray`
        Output labels of the measured rows (empty without measurements).
    x, y : `~numpy.ndarray`
        Pixel centroids of the measured rows.
    values, aleatoric : dict
        Per output name, ``(n, T)`` MC draws (model units) and their
        aleatoric variance.
    flags : `~numpy.ndarray`
        Bits the estimator sets per measured row (e.g. ``NO_CENTRE``).
    columns : dict
        Further per-row columns (e.g. ``n_children``), after the outputs.
    models : `~numpy.ndarray` or None
        ``(n, size, size)`` model image of each measured row, in data units.
    origins : `~numpy.ndarray` or None
        ``(n, 2)`` x, y of each model stamp's first pixel in the image.
    meta : dict
        Entries for ``table.meta`` and the result's ``meta``.
    features : `~numpy.ndarray` or None
        ``(n, d)`` network features of each measured row, for the
        familiarity model (``ood_score``); see `ImageToImageEstimator`.
    """

    label_image: np.ndarray
    parents: np.ndarray
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    values: dict = field(default_factory=dict)
    aleatoric: dict = field(default_factory=dict)
    flags: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    columns: dict = field(default_factory=dict)
    models: np.ndarray | None = None
    origins: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    features: np.ndarray | None = None


class ImageResult:
    """
    What `ImageToImageEstimator.process` returns.

    Attributes
    ----------
    segmentation_image : `~photutils.segmentation.SegmentationImage` or None
        The output segmentation (labels ``1..N``; photutils'
        ``deblended_label_to_parent`` mapping set).
    parent_labels : `~numpy.ndarray`
        The input label of each output label, in label order.
    table : `~astropy.table.QTable` or None
        One row per measured object (`None` without measurements).
    draws : dict
        ``(n, T)`` MC draws of each output (Quantities).
    meta : dict
        What the estimator reports about the run (e.g. ``psf_fwhm``).
    """

    def __init__(self, segmentation_image, parent_labels, table=None,
                 draws=None, *, models=None, origins=None, model_labels=(),
                 wcs=None, unit=None, meta=None):
        self.segmentation_image = segmentation_image
        self.parent_labels = np.asarray(parent_labels)
        self.table = table
        self.draws = draws or {}
        self.meta = meta or {}
        self._models = models
        self._origins = [] if origins is None else list(origins)
        self._model_labels = list(model_labels)
        self._wcs = wcs
        self._unit = unit

    def __repr__(self):
        n = 0 if self.segmentation_image is None else (
            self.segmentation_image.n_labels)
        rows = None if self.table is None else len(self.table)
        return f'<{type(self).__name__}: {n} labels, table rows: {rows}>'

    @property
    def model_images(self):
        """
        The model image of each measured object: a list of
        `~astropy.nddata.NDData` stamps (the mean over MC draws, in data
        units), with ``meta`` ``label``, ``parent_label`` and ``origin``
        (x, y of the stamp's first pixel in the image) and a sliced WCS
        when the image has one.
        """
        from astropy.nddata import NDData

        if self._models is None:
            return []
        out = []
        size = self._models.shape[1]
        for model, (x0, y0), label in zip(self._models, self._origins,
                                          self._model_labels):
            wcs = None
            if self._wcs is not None:
                wcs = self._wcs.slice((slice(y0, y0 + size),
                                       slice(x0, x0 + size)))
            out.append(NDData(model, unit=self._unit, wcs=wcs,
                              meta={'label': int(label),
                                    'parent_label': int(
                                        self.parent_labels[label - 1]),
                                    'origin': (int(x0), int(y0))}))
        return out

    def model_image(self, shape):
        """All objects' models added into one array of ``shape``."""
        out = np.zeros(shape, np.float64)
        if self._models is None:
            return out
        size = self._models.shape[1]
        for model, (x0, y0) in zip(self._models, self._origins):
            ylo, xlo = max(y0, 0), max(x0, 0)
            yhi, xhi = min(y0 + size, shape[0]), min(x0 + size, shape[1])
            if yhi > ylo and xhi > xlo:
                out[ylo:yhi, xlo:xhi] += model[ylo - y0:yhi - y0,
                                               xlo - x0:xhi - x0]
        return out


class ImageToImageEstimator(BaseEstimator):
    """
    Base class of estimators that map an image and its segments to images.

    `process` reads the image (unit, mask, uncertainty, WCS), checks the
    segmentation image and selects the segments to work on (all, the
    ``labels`` given, or those under ``positions``), resolves the PSF,
    then calls the estimator's hook; it builds the output segmentation
    (photutils' parent mapping set), the model images, and the table of
    the measured objects with the same summaries, flags and meta as every
    estimator. `predict` returns that table.

    Hooks:

    ``_process(segm, labels, context, measure)`` **required**
        Runs the networks; returns an `ImageOutput`. With
        ``measure=False`` only the segmentation is needed (one
        deterministic pass). ``context.n_samples``, ``seed``,
        ``batch_size`` and ``device`` are the MC settings;
        `~astrodl_plugins.core.base.BaseEstimator.mc_engine` gives the
        engine of each network.
    ``_image_psf(psf_fwhm, image, context)``
        PSF FWHM in pixels (or `None`): the given value, ``meta['PSF_FWHM']``
        or, with ``psf = 'estimate'``, the image's own point sources
        (`~astrodl_plugins.core.psf.estimate_image_psf`).
    ``_pool_features(maps)``
        Feature maps ``(n, ny, nx, c)`` of stamps centred on the objects
        -> ``(n, d)`` vectors; default `pool_feature_maps`.
    ``_output_units``, ``_error_scale``, ``_extra_meta``
        As for every estimator. Each output's predictive draws are its
        draws plus Gaussian noise of the aleatoric variance.

    Out-of-distribution score: when the estimator has a familiarity
    model (`~astrodl_plugins.core.base.BaseEstimator.fit_familiarity`),
    the table gets an ``ood_score`` column and the ``UNFAMILIAR`` bit,
    computed from the ``features`` of `ImageOutput`: the network's
    features (the input of its first MC-dropout layer) for the crop each
    row was measured on. An estimator whose ``_process`` draws through
    ``_sample`` gets them without writing anything; one that runs an MC
    engine itself passes a list as ``features=`` to its ``sample`` and
    returns the rows' features, reduced by ``_pool_features`` when they
    are maps. ``fit_familiarity`` takes the same features of simulated
    training-like inputs.

    Class attributes of the family: ``stamp_size`` (side of the model
    stamps; the ``EDGE`` and ``MASKED`` bits look at that window),
    ``row_columns`` (name -> dtype of the per-object columns that
    ``_process`` adds, e.g. ``n_children``) and ``result_class`` (an
    `ImageResult` subclass).
    """

    family = 'image to image'
    result_class = ImageResult
    row_columns = {}
    psf = None
    stamp_size = 48
    flag_names = ('MASKED', 'EDGE', 'OUT_OF_RANGE', 'UNUSABLE')

    def predict(self, data, *, segmentation_image=None, positions=None,
                labels=None, psf_fwhm=None, n_samples=20, seed=None,
                batch_size=64, device='auto', quantiles=None,
                progress_bar=False, pixel_scale=None, return_samples=False,
                uncertainty_parts=False, **options):
        """
        Process an image and measure its objects: one row per object.

        Parameters are those of `process`; ``return_samples`` also
        returns the MC draws of each output (dict of ``(N, T)``
        Quantities, plain arrays where dimensionless), and
        ``uncertainty_parts`` adds ``<name>_err_epistemic`` and
        ``<name>_err_aleatoric`` columns.

        Returns
        -------
        table : `~astropy.table.QTable`
            ``label`` (the output label), ``x_centroid``, ``y_centroid``
            (plain float64 pixels, as photutils'), ``sky_centroid`` (with
            a WCS), ``parent_label`` (the input label, so the table joins
            ``SourceCatalog(...).to_table()`` of the input segmentation on
            it), each output with ``_err`` (and quantiles; Quantities, or
            plain columns where dimensionless), the estimator's columns
            and ``flag``.
        """
        result = self.process(
            data, segmentation_image, positions=positions, labels=labels,
            psf_fwhm=psf_fwhm, n_samples=n_samples, seed=seed,
            batch_size=batch_size, device=device, quantiles=quantiles,
            progress_bar=progress_bar, pixel_scale=pixel_scale,
            uncertainty_parts=uncertainty_parts, **options)
        if return_samples:
            return result.table, result.draws
        return result.table

    def process(self, data, segmentation_image=None, *, positions=None,
                labels=None, psf_fwhm=None, n_samples=20, seed=None,
                batch_size=64, device='auto', quantiles=None,
                progress_bar=False, pixel_scale=None,
                uncertainty_parts=False, measure=True, **options):
        """
        Run the estimator on an image; segmentation, models and table.

        Parameters
        ----------
        data : `~astropy.nddata.NDData`, `~astropy.units.Quantity` or array
            Background-subtracted image (not a convolved one). Unit, mask,
            uncertainty (the noise per pixel) and WCS are honoured.
        segmentation_image : `~photutils.segmentation.SegmentationImage`
            The segments (e.g. from
            `~photutils.segmentation.detect_sources`), or an integer array
            of the same shape as ``data``.
        positions : array, `~astropy.table.Table` or SkyCoord, optional
            Work on the segments under them: ``(N, 2)`` pixel x, y, a table
            with ``x_centroid``/``y_centroid``, or sky positions (WCS).
        labels : int or array of int, optional
            The segments to work on (default all); the others are copied.
        psf_fwhm : float or `~astropy.units.Quantity`, optional
            PSF FWHM (pixels or an angle); see the estimator for its
            default.
        n_samples : int, optional
            MC-dropout draws; ``0`` is one deterministic pass.
        seed : int, optional
            Seed of the dropout masks (stored in the table meta).
        batch_size : int, optional
            Objects per network batch.
        device : str, optional
            ``'auto'``, ``'cpu'``, ``'gpu'`` or ``'gpu:N'``.
        quantiles : sequence of float, optional
            Quantiles of each output, e.g. ``(0.16, 0.84)``.
        progress_bar : bool, optional
            Show a `tqdm` progress bar.
        pixel_scale : `~astropy.units.Quantity`, optional
            Angle per pixel when there is no celestial WCS.
        uncertainty_parts : bool, optional
            Add the epistemic and aleatoric parts of each ``_err``.
        measure : bool, optional
            Measure the objects (table and model images); `False` gives
            the segmentation alone, from one deterministic pass.
        **options
            The estimator's own keywords (its ``predict_options``).

        Returns
        -------
        result : `ImageResult`
        """
        from .device import resolve_device

        self._check_fitted()
        options = self._options(options)
        n_samples, batch_size, quantiles, seed = self._check_predict_args(
            n_samples, batch_size, quantiles, seed)
        self._check_options(options)
        context = PredictContext(
            options, 0 if not measure else n_samples, seed, batch_size,
            resolve_device(device), quantiles, progress_bar=progress_bar,
            uncertainty_parts=uncertainty_parts)
        image = read_image(data, pixel_scale=pixel_scale)
        context.image, context.images = image, [image]
        if positions is not None:
            if labels is not None:
                msg = 'give at most one of labels and positions'
                raise ValueError(msg)
            if segmentation_image is None:
                msg = 'positions need a segmentation_image to select from'
                raise ValueError(msg)
        if segmentation_image is None:
            msg = (f'segmentation_image is required: {type(self).__name__} '
                   'works on the segments of a photutils SegmentationImage')
            raise ValueError(msg)
        segm, labels = check_segmentation(segmentation_image, image.shape,
                                          labels)
        if segm is not None and positions is not None:
            labels = np.unique(labels_at(segm, positions_xy(image,
                                                            positions)))
        if segm is None:
            # No segment: an empty table with the columns of a full one.
            empty = np.zeros((0, max(context.n_samples, 1)))
            output = ImageOutput(
                np.zeros(image.shape, np.int32), np.zeros(0, np.int64),
                values={name: empty for name in self.output_names},
                aleatoric={name: empty for name in self.output_names},
                columns={name: np.zeros(0, dtype)
                         for name, dtype in self.row_columns.items()})
            return self._result(None, output, context, measure)
        context.psf_fwhm = self._image_psf(psf_fwhm, image, context)
        output = self._process(segm, labels, context, measure)
        return self._result(deblended_segmentation(output.label_image,
                                                   output.parents),
                            output, context, measure)

    # -- hooks with defaults -------------------------------------------------

    def _check_options(self, options):
        """Check the estimator's own keywords (default: nothing to check)."""

    def _image_psf(self, psf_fwhm, image, context):
        """
        PSF FWHM in pixels: given, from the meta, or (``psf =
        'estimate'``) from the image's isolated point sources; `None` when
        it is none of these.
        """
        if psf_given(psf_fwhm, image):
            context.psf_source = psf_origin(psf_fwhm, image)
            return float(resolve_psf_fwhm(psf_fwhm, image, 1)[0])
        if self.psf != 'estimate':
            return None
        try:
            found = estimate_image_psf(image)
        except ValueError as error:
            context.psf_source = f'none ({error})'
            return None
        context.psf_source = f'{found.description}: {found.fwhm:.3g} pix'
        return found.fwhm

    def _process(self, segm, labels, context, measure):
        """Run the networks on the selected segments (required hook)."""
        msg = f'{type(self).__name__} must implement _process'
        raise NotImplementedError(msg)

    def _pool_features(self, maps):
        """
        Feature maps of object-centred stamps -> one vector per stamp
        (default: `pool_feature_maps`).
        """
        return pool_feature_maps(maps)

    def _sample(self, inputs, context, network='model'):
        """
        `~astrodl_plugins.core.base.BaseEstimator._sample` inside
        ``_process``: every row drawn is a measured row (in table order),
        and the features of successive calls (an estimator may draw
        chunk by chunk) are gathered in ``context.features``.
        """
        gathered = context.features
        context.usable = np.ones(len(inputs[0]), bool)
        context.features = None
        raw = super()._sample(inputs, context, network)
        if gathered is not None and context.features is not None:
            context.features = np.concatenate([gathered, context.features])
        return raw

    # -- assembling the result -------------------------------------------------

    def _result(self, segm, output, context, measure):
        image = context.image
        run_meta = dict(output.meta)
        if context.psf_source:
            run_meta['psf_fwhm_source'] = context.psf_source
        if not measure:
            return self.result_class(segm, output.parents, wcs=image.wcs,
                                     unit=image.unit, meta=run_meta)
        n = len(output.labels)
        context.sources = Sources(np.asarray(output.labels, np.int64),
                                  np.asarray(output.x, np.float64),
                                  np.asarray(output.y, np.float64))
        context.features = self._row_features(output, context, n)
        context.usable = np.ones(n, bool)
        context.flags = (np.asarray(output.flags, np.int32)
                         | self._window_flags(output.origins, image, n))
        rng = np.random.default_rng(context.seed)
        predictive = {key: value + rng.normal(size=value.shape)
                      * np.sqrt(output.aleatoric[key])
                      for key, value in output.values.items()}
        draws = Draws(output.values, output.aleatoric, predictive)
        columns, flags, values = self._columns_from_draws(draws, context)
        columns.update(output.columns)
        if 'ood_score' in columns:
            # Last before the flag, as in every family.
            columns['ood_score'] = columns.pop('ood_score')
        meta = self._meta(context)
        meta.update(output.meta)
        leading = source_columns(context.sources, image.wcs)
        leading['parent_label'] = np.asarray(
            output.parents, np.int64)[context.sources.label - 1]
        models = output.models if n else None
        return self.result_class(
            segm, output.parents, build_table(leading, columns, flags, meta),
            values, models=models,
            origins=None if models is None else [
                tuple(int(v) for v in origin) for origin in output.origins],
            model_labels=output.labels, wcs=image.wcs, unit=image.unit,
            meta=run_meta)

    def _row_features(self, output, context, n):
        """
        ``(n, d)`` features of the measured rows for the familiarity model:
        those ``_process`` returned, else those ``_sample`` gathered; `None`
        without a familiarity model.
        """
        if self._familiarity() is None:
            return None
        features = (output.features if output.features is not None
                    else context.features)
        if features is None:
            return None
        features = np.asarray(features, np.float64)
        if len(features) != n:
            msg = (f'{type(self).__name__}._process gave features of '
                   f'{len(features)} rows for {n} measured rows')
            raise ValueError(msg)
        return features.reshape(n, -1)

    def _meta(self, context):
        """
        The base meta; with a familiarity model, ``flags`` describes the
        ``UNFAMILIAR`` bit even when the class does not list it.
        """
        meta = super()._meta(context)
        if (self._familiarity() is not None
                and 'UNFAMILIAR' not in self.flag_names):
            meta['flags'] = flag_descriptions((*self.flag_names,
                                               'UNFAMILIAR'))
        return meta

    def _window_flags(self, origins, image, n):
        """``EDGE`` and ``MASKED`` bits of each model stamp's window."""
        flags = np.zeros(n, np.int32)
        if origins is None:
            return flags
        size = self.stamp_size
        ny, nx = image.shape
        for i, (x0, y0) in enumerate(origins):
            ylo, yhi = max(y0, 0), min(y0 + size, ny)
            xlo, xhi = max(x0, 0), min(x0 + size, nx)
            if (yhi - ylo) * (xhi - xlo) < size * size:
                flags[i] |= SourceFlags.EDGE
            if yhi > ylo and xhi > xlo and image.mask[ylo:yhi,
                                                      xlo:xhi].any():
                flags[i] |= SourceFlags.MASKED
        return flags


def pool_feature_maps(maps, radii=FEATURE_RADII):
    """
    Mean of each feature channel over annuli about the stamps' centre.

    A convolutional network's features of a stamp are a map (for the
    deblender's extractor 48 x 48 pixels by 48 channels): too many numbers
    for a Gaussian model of their distribution, and most of them describe
    where things are rather than what they are. Averaging each channel
    over annuli about the object keeps its radial profile in every channel
    and does not depend on the orientation (the training sets cover every
    orientation).

    Parameters
    ----------
    maps : `~numpy.ndarray`
        ``(n, ny, nx, c)`` feature maps; the object is at pixel
        ``(ny // 2, nx // 2)``, as in the family's stamps.
    radii : sequence of float, optional
        Inner edges (pixels) of the annuli after the central disc; the
        last annulus reaches the corners.

    Returns
    -------
    features : `~numpy.ndarray`
        ``(n, (len(radii) + 1) * c)``: the channel means of the first
        annulus, then of the next...

    Examples
    --------
    >>> import numpy as np
    >>> from astrodl_plugins.core.image import pool_feature_maps
    >>> maps = np.ones((2, 48, 48, 3))
    >>> pool_feature_maps(maps).shape
    (2, 15)
    """
    maps = np.asarray(maps, np.float64)
    if maps.ndim != 4:
        msg = f'maps must be (n, ny, nx, c), got shape {maps.shape}'
        raise ValueError(msg)
    n, ny, nx, c = maps.shape
    yy, xx = np.mgrid[:ny, :nx]
    radius = np.hypot(yy - ny // 2, xx - nx // 2).ravel()
    ring = np.searchsorted(np.asarray(radii, np.float64), radius,
                           side='right')
    weights = np.zeros((len(radii) + 1, ny * nx))
    weights[ring, np.arange(ny * nx)] = 1.0
    counts = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, counts, out=np.zeros_like(weights),
                        where=counts > 0)
    pooled = np.einsum('rp,npc->nrc', weights, maps.reshape(n, ny * nx, c))
    return pooled.reshape(n, (len(radii) + 1) * c)
