# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The *source stamps* family: one row per source, measured on a stamp.

``galaxy-structure``, ``star-galaxy`` and ``galaxy-morphology`` are
fill-ins of `SourceStampEstimator`.
"""

import warnings

import numpy as np
from astropy import units as u

from ..exceptions import AstrodlUserWarning
from .base import BaseEstimator
from .context import PredictContext
from .dihedral import dihedral_views
from .flags import SourceFlags
from .inputs import read_bands, read_image, split_mask
from .psf import estimate_image_psf, psf_given, psf_origin, resolve_psf_fwhm
from .sources import (
    Sources,
    block_image,
    cut_stamps,
    locate_sources,
    sampling_factors,
)
from .table import build_table, source_columns

__all__ = ['SourceStampEstimator']

class SourceStampEstimator(BaseEstimator):
    """
    Base class of estimators that measure sources on stamps cut from images.

    `predict` reads the image(s) (unit, mask, uncertainty, WCS), locates
    the sources (segmentation image or positions), cuts a stamp around
    each, resolves the PSF, then calls the hooks below; `predict_stamps`
    enters the same pipeline with stamps already cut.

    Hooks (in call order):

    ``_usable(stamps)``
        Rows with enough good pixels to measure (default: half the central
        6x6 pixels finite). The others are NaN rows flagged ``UNUSABLE``.
    ``_prepare(stamps, errors, context)`` **required**
        Stamps of the usable rows (``(n, size, size)``, or
        ``(n, size, size, bands)`` for multi-band estimators; NaN at bad
        pixels) and their uncertainty stamps (or `None`) -> the list of
        network inputs. Per-row values needed later go in ``context.aux``.
        With ``tta=True`` the family feeds the eight orientations of the
        first input (`~astrodl_plugins.core.dihedral.dihedral_views`).
    ``_decode(raw, context, rng)`` **required**
        ``(n, T, k)`` network outputs -> `~astrodl_plugins.core.base.Draws`
        in model units (with ``tta``, ``n`` is ``8 n`` views to pool with
        `~astrodl_plugins.core.dihedral.pool_views`).
    Optional hooks
        ``_to_output_units``, ``_output_units``, ``_error_scale``,
        ``_range_quantities``, ``_extra_columns`` and ``_extra_meta``; see
        `~astrodl_plugins.core.base.BaseEstimator`.
    ``_companions(options)``
        Other estimators to run on the same sources with the same
        keywords, as ``[(estimator, merge)]``; ``merge(table,
        companion_table)`` returns the table with the companion's columns
        (and flags) added. Called, and so checked, before any work;
        default none. ``lens-parameters`` runs ``lens-finder`` this way
        (its ``finder`` option).

    Class attributes of the family: ``stamp_size`` (side of the square
    stamp, pixels), ``bands`` (band names of a multi-band estimator; empty
    for one image), ``default_band``, ``psf`` (``'required'``: the PSF FWHM
    must be given or in ``meta['PSF_FWHM']``; ``'estimate'``: estimated
    from the image's own point sources when not given
    (`~astrodl_plugins.core.psf.estimate_image_psf`; an uncertain estimate
    flags every row ``PSF_UNCERTAIN``); `None`: not used) and
    ``supports_tta``.
    """

    family = 'source stamps'
    flag_names = ('MASKED', 'EDGE', 'OUT_OF_RANGE', 'UNUSABLE', 'UNFAMILIAR',
                  'PSF_UNCERTAIN')
    stamp_size = 64
    bands = ()
    default_band = None
    psf = None
    supports_tta = False
    #: Outputs in pixels and their power of length (``{'r_eff': 1}``):
    #: multiplied back by ``rescale ** power`` on a block-summed stamp.
    pixel_outputs = {}

    def predict(self, data, *, segmentation_image=None, positions=None,
                psf_fwhm=None, bands=None, n_samples=50, seed=None,
                batch_size=64, device='auto', quantiles=None,
                progress_bar=False, pixel_scale=None, return_samples=False,
                uncertainty_parts=False, tta=False, rescale=True, **options):
        """
        Measure every source of an image, with MC-dropout uncertainties.

        Parameters
        ----------
        data : `~astropy.nddata.NDData`, `~astropy.units.Quantity`, array or list
            Background-subtracted 2-D image. Unit, mask, uncertainty and
            WCS are honoured. Multi-band estimators take one image per band
            (all on one pixel grid) or a cube ``(band, y, x)``.
        segmentation_image : `~photutils.segmentation.SegmentationImage`, optional
            One row per label; the ``label`` column equals photutils' label,
            so the table joins ``SourceCatalog.to_table()``.
        positions : array, `~astropy.table.Table` or SkyCoord, optional
            ``(N, 2)`` pixel x, y, a table with ``x_centroid`` and
            ``y_centroid``, or sky positions (needs a WCS).
        psf_fwhm : float or `~astropy.units.Quantity`, optional
            PSF FWHM (pixels, or an angle with a known pixel scale) of the
            (reference) image. Default: ``data.meta['PSF_FWHM']``; an
            estimator with ``psf = 'estimate'`` otherwise estimates it from
            the image's own isolated point sources, never from the sources
            asked about (with a warning; see
            `~astrodl_plugins.core.psf.estimate_image_psf`).
        bands : sequence of str, optional
            Multi-band estimators: the band of each image. Default: the
            reference band for a single image, else each image's
            ``meta['BAND']`` or ``meta['FILTER']``.
        n_samples : int, optional
            MC-dropout draws; ``0`` is one deterministic pass, dropout off.
        seed : int, optional
            Seed of the dropout masks and quantile draws: the same seed
            gives the same table. `None` draws one (stored in the meta).
        batch_size : int, optional
            Sources per batch; memory grows as ``batch_size * n_samples``.
        device : str, optional
            ``'auto'``, ``'cpu'``, ``'gpu'`` or ``'gpu:N'``.
        quantiles : sequence of float, optional
            Quantiles of each output's predictive distribution, e.g.
            ``(0.16, 0.84)`` gives ``<name>_q16`` and ``<name>_q84``.
        progress_bar : bool, optional
            Show a `tqdm` progress bar.
        pixel_scale : `~astropy.units.Quantity`, optional
            Angle per pixel when the data have no celestial WCS.
        return_samples : bool, optional
            Also return the MC draws of each output (dict of ``(N, T)``
            Quantities, plain arrays where the output is dimensionless).
        uncertainty_parts : bool, optional
            Add ``<name>_err_epistemic`` (MC-dropout spread) and
            ``<name>_err_aleatoric`` (predicted noise) columns, before the
            calibration scale that ``<name>_err`` includes.
        tta : bool, optional
            Test-time augmentation (estimators with ``supports_tta``): pool
            the draws over the eight rotations and flips of each stamp
            (8 times the cost).
        rescale : bool, optional
            Measure a source whose footprint does not fit the stamp, or
            whose PSF is broader than the trained range, on the image
            block-summed by an integer factor (column ``rescale``; see the
            docs' "Size-aware stamps"). `False`: native sampling always.
        **options
            The estimator's own keywords (its ``predict_options``).

        Returns
        -------
        table : `~astropy.table.QTable`
            ``label``, ``x_centroid``, ``y_centroid``, ``sky_centroid``
            (with a WCS), each output with ``_err`` (and quantiles), the
            estimator's extra columns, ``rescale`` and ``flag`` (bits in
            ``table.meta['flags']``).
        """
        context = self._context(n_samples, seed, batch_size, device,
                                quantiles, progress_bar, uncertainty_parts,
                                tta, options)
        companions = self._companions(context.options)
        self._read(data, bands, pixel_scale, context)
        context.sources = locate_sources(
            context.image, segmentation_image=segmentation_image,
            positions=positions)
        context.flags = np.zeros(len(context.sources.x), np.int32)
        self._resolve_psf(psf_fwhm, context, estimate=True)
        context.rescale = self._sampling(context, bool(rescale))
        stamps, errors = self._cut(context)
        result = self._finish(stamps, errors, context, return_samples,
                              leading=self._leading_columns(context))
        return _with_companions(result, companions, lambda other: (
            other.predict(data, segmentation_image=segmentation_image,
                          positions=positions, psf_fwhm=psf_fwhm,
                          bands=bands, n_samples=n_samples,
                          seed=context.seed, batch_size=batch_size,
                          device=device, pixel_scale=pixel_scale,
                          rescale=rescale)))

    def predict_stamps(self, stamps, *, psf_fwhm=None, bands=None,
                       n_samples=50, seed=None, batch_size=64, device='auto',
                       quantiles=None, return_samples=False,
                       uncertainty_parts=False, tta=False, **options):
        """
        Measure sources already cut into centred stamps (pixel units).

        The training, calibration and benchmark code use this; so can a
        user with their own stamps. Keywords as in `predict`; ``psf_fwhm``
        (pixels, one value or one per stamp) is needed by estimators that
        use the PSF.

        Parameters
        ----------
        stamps : array
            ``(N, stamp_size, stamp_size)``, or ``(N, stamp_size,
            stamp_size, B)`` for multi-band estimators; NaN marks bad
            pixels.

        Returns
        -------
        table : `~astropy.table.QTable`
            As `predict` without positions; lengths in pixels, angles from
            +x counter-clockwise.
        """
        context = self._context(n_samples, seed, batch_size, device,
                                quantiles, False, uncertainty_parts, tta,
                                options)
        companions = self._companions(context.options)
        given = stamps
        stamps = self._given_stamps(stamps, psf_fwhm, bands, context)
        result = self._finish(stamps, None, context, return_samples,
                              leading={'label': context.sources.label})
        return _with_companions(result, companions, lambda other: (
            other.predict_stamps(given, psf_fwhm=psf_fwhm, bands=bands,
                                 n_samples=n_samples, seed=context.seed,
                                 batch_size=batch_size, device=device)))

    def network_features(self, stamps, *, psf_fwhm=None, bands=None,
                         batch_size=256):
        """
        The network's features of stamps (for `fit_familiarity`).

        Parameters
        ----------
        stamps : array
            As for `predict_stamps`.
        psf_fwhm : float or array, optional
            PSF FWHM in pixels (estimators that use the PSF).
        bands : sequence of str, optional
            Band of each channel (multi-band estimators).
        batch_size : int, optional
            Stamps per network batch.

        Returns
        -------
        features : `~numpy.ndarray` or None
            ``(n_usable, d)`` trunk outputs (`None` when the network
            cannot be split at its first MC-dropout layer).
        usable : `~numpy.ndarray`
            Which stamps were usable.
        """
        context = self._context(0, 0, batch_size, 'cpu', None, False, False,
                                False, {})
        stamps = self._given_stamps(stamps, psf_fwhm, bands, context)
        context.usable = self._usable(stamps)
        inputs = self._prepare(stamps[context.usable], None, context)
        features = self.mc_engine().features(inputs, batch_size=batch_size)
        if features is not None:
            features = features.reshape(len(features), -1)
        return features, context.usable

    # -- hooks with defaults -------------------------------------------------

    def _companions(self, options):
        """
        ``[(estimator, merge)]`` to run on the same sources (default none;
        see the class docstring).
        """
        return []

    def _usable(self, stamps):
        """
        Rows with at least half the central 6x6 pixels finite (in some
        band, for multi-band stamps).
        """
        good = np.isfinite(_core(stamps)).mean(axis=(1, 2)) >= 0.5
        return good.any(axis=-1) if good.ndim == 2 else good

    def _prepare(self, stamps, errors, context):
        """Stamps of the usable rows -> network inputs (required hook)."""
        msg = f'{type(self).__name__} must implement _prepare'
        raise NotImplementedError(msg)

    # -- the pipeline ----------------------------------------------------------

    def _context(self, n_samples, seed, batch_size, device, quantiles,
                 progress_bar, uncertainty_parts, tta, options):
        from .device import resolve_device

        self._check_fitted()
        options = self._options(options)
        if tta and not self.supports_tta:
            msg = f'{type(self).__name__} does not support tta=True'
            raise ValueError(msg)
        options['tta'] = bool(tta)
        n_samples, batch_size, quantiles, seed = self._check_predict_args(
            n_samples, batch_size, quantiles, seed)
        return PredictContext(options, n_samples, seed, batch_size,
                              resolve_device(device), quantiles,
                              progress_bar=progress_bar,
                              uncertainty_parts=uncertainty_parts)

    def _read(self, data, bands, pixel_scale, context):
        """The image(s), the bands and the reference image."""
        if not self.bands:
            if bands is not None:
                msg = (f'{type(self).__name__} measures one image: bands= '
                       'is not used')
                raise ValueError(msg)
            context.image = read_image(data, pixel_scale=pixel_scale)
            context.images = [context.image]
            return
        images, bands = read_bands(
            data, bands=bands, known_bands=self.bands,
            default_band=self.default_band, pixel_scale=pixel_scale)
        context.images, context.bands = images, bands
        # The reference band, else the first of the estimator's bands
        # given (never the list order: it must not change the answer).
        reference = (self.default_band if self.default_band in bands
                     else next(band for band in self.bands if band in bands))
        context.image = images[bands.index(reference)]

    def _sampling(self, context, rescale):
        """
        Block-sum factor of each row (`sampling_factors`): footprint in
        the stamp, PSF within the trained range; the PSF FWHM is divided
        by it.
        """
        n = len(context.sources.x)
        if not rescale:
            return np.ones(n, np.int64)
        psf_range = (self.valid_ranges.get('psf_fwhm')
                     if self.psf is not None else None)
        if psf_range is not None:
            # The range as the OUT_OF_RANGE check reads it (its margins).
            low_margin, high_margin = self.range_margins.get(
                'psf_fwhm', (0.0, 0.0))
            psf_range = (psf_range[0] * (1 - (low_margin or 0.0)),
                         psf_range[1] * (1 + (high_margin or 0.0)))
        factors = sampling_factors(context.sources.extent, context.psf_fwhm,
                                   self.stamp_size, psf_range)
        if context.psf_fwhm is not None:
            context.psf_fwhm = context.psf_fwhm / factors
        return factors

    def _cut(self, context):
        """
        Stamps (band axis last for multi-band) and uncertainty stamps, each
        row cut from the image block-summed by its factor
        (``context.rescale``).
        """
        sources = context.sources
        factors = context.rescale
        n = len(sources.x)
        shape = ((n, self.stamp_size, self.stamp_size, len(context.images))
                 if self.bands else (n, self.stamp_size, self.stamp_size))
        stamps = np.empty(shape, np.float32)
        # Uncertainty stamps only when every image has an uncertainty.
        has_errors = all(image.error is not None for image in context.images)
        errors = np.empty(shape, np.float32) if has_errors else None
        flags = np.zeros(n, np.int32)
        stack = ((lambda parts: np.stack(parts, axis=-1)) if self.bands
                 else (lambda parts: parts[0]))
        for factor in np.unique(factors):
            rows = np.flatnonzero(factors == factor)
            scaled = Sources(sources.label[rows],
                             (sources.x[rows] + 0.5) / factor - 0.5,
                             (sources.y[rows] + 0.5) / factor - 0.5)
            cuts = [cut_stamps(block_image(image, int(factor)), scaled,
                               self.stamp_size) for image in context.images]
            flags[rows] = np.bitwise_or.reduce([flag for _, _, flag in cuts])
            stamps[rows] = stack([stamp for stamp, _, _ in cuts])
            if has_errors:
                errors[rows] = stack([error for _, error, _ in cuts])
        context.flags = context.flags | flags
        return stamps, errors

    def _resolve_psf(self, psf_fwhm, context, *, estimate):
        """PSF FWHM per row, in pixels (``context.psf_fwhm``)."""
        if self.psf is None:
            return
        n = len(context.sources.x)
        image = context.image
        context.psf_source = psf_origin(psf_fwhm, image) or ''
        if (estimate and self.psf == 'estimate'
                and not psf_given(psf_fwhm, image)):
            # From the image's own point sources, never from the targets.
            found = estimate_image_psf(image)
            psf_fwhm = found.fwhm
            context.psf_source = f'{found.description}: {found.fwhm:.3g} pix'
            if found.uncertain:
                context.flags |= SourceFlags.PSF_UNCERTAIN
            warnings.warn(f'psf_fwhm not given: {context.psf_source}; pass '
                          'psf_fwhm= for reliable results',
                          AstrodlUserWarning, stacklevel=3)
        context.psf_fwhm = resolve_psf_fwhm(psf_fwhm, image, n)

    def _given_stamps(self, stamps, psf_fwhm, bands, context):
        """
        Stamps given directly: checked (`_stamp_array`), one source at the
        centre of each, ``MASKED`` where a pixel is not finite, the PSF.
        """
        stamps, context.bands = self._stamp_array(stamps, bands)
        n = len(stamps)
        center = np.full(n, (self.stamp_size - 1) / 2)
        context.sources = Sources(np.arange(1, n + 1), center, center)
        finite = np.isfinite(stamps).all(axis=tuple(range(1, stamps.ndim)))
        context.flags = np.where(finite, 0, SourceFlags.MASKED).astype(
            np.int32)
        context.rescale = np.ones(n, np.int64)
        self._resolve_psf(psf_fwhm, context, estimate=False)
        return stamps

    def _stamp_array(self, stamps, bands=None):
        """
        Check stamps given directly (`predict_stamps`, ``fit``): a float32
        array, with a band axis last for multi-band estimators, and the
        band of each channel.
        """
        size = self.stamp_size
        stamps = _float_stamps(stamps)
        if not self.bands:
            if stamps.ndim != 3 or stamps.shape[1:] != (size, size):
                msg = (f'stamps must have shape (N, {size}, {size}), got '
                       f'{stamps.shape}')
                raise ValueError(msg)
            return stamps, ()
        if stamps.ndim == 3:
            stamps = stamps[..., None]
        if stamps.ndim != 4 or stamps.shape[1:3] != (size, size):
            msg = (f'stamps must have shape (N, {size}, {size}[, bands]), '
                   f'got {stamps.shape}')
            raise ValueError(msg)
        n_bands = stamps.shape[-1]
        if bands is None:
            bands = ((self.default_band,) if n_bands == 1
                     else self.bands[:n_bands])
        bands = tuple(bands)
        if len(bands) != n_bands or not set(bands) <= set(self.bands):
            msg = (f'bands {bands} do not match the {n_bands} channels or '
                   f'are not among {self.bands}')
            raise ValueError(msg)
        return stamps, bands

    def _finish(self, stamps, errors, context, return_samples, leading):
        usable = self._usable(stamps)
        context.usable = usable
        inputs = self._prepare(stamps[usable],
                               None if errors is None else errors[usable],
                               context)
        context.inputs = (dihedral_views(inputs) if context.options['tta']
                          else inputs)
        columns, flags, draws = self._measure(context)
        ood = columns.pop('ood_score', None)
        columns['rescale'] = context.rescale
        if ood is not None:
            columns['ood_score'] = ood
        table = build_table(leading, columns, flags, self._meta(context))
        if return_samples:
            return table, draws
        return table

    def _from_model_pixels(self, draws, context):
        """Pixel outputs of rows measured block-summed, back to native pixels."""
        factors = context.rescale[context.usable].astype(np.float64)
        if not self.pixel_outputs or np.all(factors == 1):
            return draws
        values, aleatoric, predictive = (dict(part) for part in draws)
        for name, power in self.pixel_outputs.items():
            scale = factors[:, None] ** power
            values[name] = values[name] * scale
            predictive[name] = predictive[name] * scale
            aleatoric[name] = aleatoric[name] * scale ** 2
        return type(draws)(values, aleatoric, predictive)

    def _leading_columns(self, context):
        return source_columns(context.sources, context.image.wcs)


def _with_companions(result, companions, run):
    """
    The table of ``result`` (or of ``(table, draws)``) with each
    companion's columns merged in; ``run(estimator)`` predicts with it.
    """
    if not companions:
        return result
    table = result[0] if isinstance(result, tuple) else result
    for estimator, merge in companions:
        table = merge(table, run(estimator))
    return (table, result[1]) if isinstance(result, tuple) else table


def _float_stamps(stamps):
    """
    Stamps given directly as a float32 array (a copy): masked pixels of a
    NumPy masked array or an astropy ``Masked`` array become NaN.
    """
    values, mask = split_mask(stamps)
    if isinstance(values, u.Quantity):
        values = values.value
    try:
        array = np.asarray(values)
    except ValueError:
        msg = 'stamps must be an array (N, size, size): ragged lists given'
        raise ValueError(msg) from None
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number) or (
            np.issubdtype(array.dtype, np.complexfloating)):
        msg = f'stamps must be real numbers, got dtype {array.dtype}'
        raise TypeError(msg)
    array = np.array(array, dtype=np.float32, ndmin=3)
    if mask is not None:
        array[np.broadcast_to(np.array(mask, bool, ndmin=3),
                              array.shape)] = np.nan
    return array


def _core(stamps):
    """The central 6x6 pixels of each stamp (all bands)."""
    size = stamps.shape[1]
    return stamps[:, size // 2 - 3:size // 2 + 3, size // 2 - 3:size // 2 + 3]
