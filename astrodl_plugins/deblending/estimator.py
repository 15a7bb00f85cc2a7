# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The ``deblender`` estimator: U-Net deblending of photutils segments."""

import numpy as np

from ..core.flags import SourceFlags
from ..core.image import (
    ImageOutput,
    ImageResult,
    ImageToImageEstimator,
    pool_feature_maps,
)
from ..training.mixin import TrainableMixin

__all__ = ['Deblender', 'DeblendResult']


class DeblendResult(ImageResult):
    """
    What `Deblender.deblend` returns: an
    `~astrodl_plugins.core.image.ImageResult` whose segmentation holds the
    children of the deblended segments (labelled ``1..N``).

    Attributes
    ----------
    psf_fwhm : float or None
        The PSF FWHM used (pixels), None if it could not be estimated.
    binning : int
        The binning of the image for the centre detection (1: none).
    """

    @property
    def psf_fwhm(self):
        """The PSF FWHM used (pixels), or `None`."""
        return self.meta.get('psf_fwhm')

    @property
    def binning(self):
        """Binning of the image for the centre detection (1: none)."""
        return self.meta.get('detection_binning', 1)


class Deblender(TrainableMixin, ImageToImageEstimator):
    """
    Split blended sources of a segmentation image with two U-Nets.

    A detector U-Net finds the source centres in each segment; an
    extractor U-Net predicts each source's own image from a stamp centred
    on it (Boucaud et al. 2020), with MC dropout in its last block. The
    segment's pixels go to the source whose model is brightest there; the
    data inside the segment are shared among the sources in proportion to
    their models, which gives the fluxes. See :ref:`deblending` for the
    design and its measured performance against photutils.

    Use `astrodl_plugins.deblending.deblend_sources_dl` for the photutils
    call shape (a `~photutils.segmentation.SegmentationImage` out); use
    `predict` for fluxes with MC-dropout uncertainties, and `deblend` for
    everything (table, segmentation, model images).

    With a familiarity model (the shipped preset has one; see
    `network_features`), every child gets an ``ood_score`` and, above 1,
    the ``UNFAMILIAR`` flag: its stamp looks to the extractor unlike the
    simulated blends it was trained on.

    Parameters
    ----------
    stamp_size : int, optional
        Side of the extractor's stamps, pixels.
    widths : tuple of int, optional
        Filters per level of the extractor U-Net.
    detector_widths : tuple of int, optional
        Filters per level of the detector U-Net.
    dropout : float, optional
        MC-dropout rate of the extractor's last block.

    Attributes
    ----------
    model_, detector_ : `keras.Model`
        The extractor and the centre detector.
    threshold_ : float
        Detection threshold of the centre heat map.
    flux_error_scale_ : float
        Calibration factor of ``flux_err``.
    familiarity_ : `~astrodl_plugins.core.familiarity.Familiarity`
        The out-of-distribution model (``ood_score``), when fitted.
    """

    name = 'deblender'
    task = 'deblending'
    version = '1.0'
    description = ('U-Net deblending of photutils segments: children, '
                   'per-source models and fluxes (Boucaud+20)')
    default_preset = 'deblender'
    output_names = ('flux',)
    networks = ('model', 'detector')
    predict_options = {'n_pixels': 5}
    flag_names = ('MASKED', 'EDGE', 'OUT_OF_RANGE', 'UNUSABLE', 'NO_CENTRE',
                  'UNFAMILIAR')
    row_columns = {'n_children': 'int64'}
    psf = 'estimate'
    result_class = DeblendResult

    def __init__(self, stamp_size=48, widths=(16, 32, 64),
                 detector_widths=(8, 16, 32), dropout=0.2):
        self.stamp_size = stamp_size
        self.widths = widths
        self.detector_widths = detector_widths
        self.dropout = dropout

    def deblend(self, data, segmentation_image, n_pixels=5, *, labels=None,
                n_samples=20, seed=None, batch_size=64, device='auto',
                quantiles=None, progress_bar=False, pixel_scale=None,
                psf_fwhm=None, fluxes=True):
        """
        Deblend the segments of an image; table, segmentation and models.

        Parameters
        ----------
        data : `~astropy.nddata.NDData`, `~astropy.units.Quantity` or array
            Background-subtracted image (not the convolved one). Unit,
            mask, uncertainty (the noise per pixel) and WCS are honoured.
        segmentation_image : `~photutils.segmentation.SegmentationImage`
            The detection (e.g. from `~photutils.segmentation.detect_sources`),
            or an integer array of the same shape as ``data``.
        n_pixels : int, optional
            Minimum number of pixels of a child, as in photutils.
        labels : int or array of int, optional
            The parents to deblend (default all); the others are copied.
            An empty list deblends nothing, as in photutils: every segment
            is copied (relabelled ``1..N``) and the table is empty.
        n_samples : int, optional
            MC-dropout draws of the extractor; ``0`` is one deterministic
            pass (no epistemic part in ``flux_err``).
        seed : int, optional
            Seed of the dropout masks (stored in the table meta).
        batch_size : int, optional
            Sources per extractor batch.
        device : str, optional
            ``'auto'``, ``'cpu'``, ``'gpu'`` or ``'gpu:N'``.
        quantiles : sequence of float, optional
            Quantiles of the flux, e.g. ``(0.16, 0.84)``.
        progress_bar : bool, optional
            Show a `tqdm` progress bar.
        pixel_scale : `~astropy.units.Quantity`, optional
            Angle per pixel when there is no celestial WCS.
        psf_fwhm : float or `~astropy.units.Quantity`, optional
            PSF FWHM (pixels or an angle). Default: ``data.meta['PSF_FWHM']``,
            or else estimated from the image's isolated point sources
            (`~astrodl_plugins.core.psf.estimate_image_psf`). When it is
            wider than the networks were trained on (the preset's
            ``valid_ranges``), the centres are detected on the image binned
            by the smallest odd factor of at least ``psf_fwhm / 4``.
        fluxes : bool, optional
            Measure fluxes (runs the extractor on every source); `False`
            gives the segmentation only, from one deterministic pass, as
            `deblend_sources_dl` does. With fluxes, the segmentation comes
            from the mean of the MC draws of the models, so a few pixels
            (and rarely a small child) can differ from the deterministic
            one.

        Returns
        -------
        result : `DeblendResult`
            ``segmentation_image`` (children labelled 1..N, photutils'
            ``deblended_label_to_parent`` mapping set), ``parent_labels``,
            ``table`` (with ``fluxes``), ``model_images``, ``psf_fwhm``
            and ``binning``.
        """
        return self.process(
            data, segmentation_image, labels=labels, psf_fwhm=psf_fwhm,
            n_samples=n_samples, seed=seed, batch_size=batch_size,
            device=device, quantiles=quantiles, progress_bar=progress_bar,
            pixel_scale=pixel_scale, measure=fluxes, n_pixels=n_pixels)

    def process(self, data, segmentation_image=None, *, labels=None,
                **kwargs):
        """
        `~astrodl_plugins.core.image.ImageToImageEstimator.process`, where
        an empty ``labels`` (``[]``) deblends nothing, as photutils'
        `~photutils.segmentation.deblend_sources` does with it.
        """
        if labels is not None and np.size(labels) == 0:
            labels = np.zeros(0, np.int64)
        return super().process(data, segmentation_image, labels=labels,
                               **kwargs)

    def network_features(self, stamps, noise_sigma, x, y, *,
                         batch_size=256):
        """
        The extractor's features of source-centred stamps (for
        `fit_familiarity`): what ``ood_score`` measures for each child.

        The familiarity model reads the extractor, not the detector: the
        extractor sees one stamp per child, centred on it (the crop the
        child's model and flux come from), while the detector sees a crop
        of the whole segment, shared by its children and of one of seven
        sizes. The extractor's MC-dropout layer also splits it where its
        features are computed anyway while drawing; the detector has none.
        Of that layer's input, the decoder's channels are averaged over
        annuli about the child (see ``_pool_features``).

        Parameters
        ----------
        stamps : array
            ``(n, stamp_size, stamp_size)`` data, each centred (to the
            pixel: pixel ``stamp_size // 2``) on a source.
        noise_sigma : float or array
            Background noise per pixel of each stamp.
        x, y : array
            The source's centre in stamp pixels (the marker).
        batch_size : int, optional
            Stamps per network batch.

        Returns
        -------
        features : `~numpy.ndarray` or None
            ``(n, d)``; `None` when the extractor cannot be split at its
            MC-dropout layer.
        """
        from .network import extractor_inputs

        self._check_fitted()
        stamps = self._checked_stamps(stamps)
        n = len(stamps)
        sigma = np.broadcast_to(np.asarray(noise_sigma, np.float64), (n,))
        x = np.broadcast_to(np.asarray(x, np.float64), (n,))
        y = np.broadcast_to(np.asarray(y, np.float64), (n,))
        engine = self.mc_engine()
        out = []
        for start in range(0, max(n, 1), batch_size):
            chunk = slice(start, start + batch_size)
            inputs, _ = extractor_inputs(stamps[chunk], sigma[chunk],
                                         x[chunk], y[chunk])
            maps = engine.features([inputs], batch_size=batch_size)
            if maps is None:
                return None
            out.append(self._pool_features(maps))
        return np.concatenate(out)

    def fit_familiarity(self, features, labels=None, held_out=None, *,
                        n_components=128, quantile=0.99):
        """
        `~astrodl_plugins.core.base.BaseEstimator.fit_familiarity`, with
        128 principal axes by default rather than 32 (the shipped
        extractor has 160 features).

        With 32 axes the isotropic residual hides most of what sets
        unfamiliar stamps apart. For the same 1 % of held-out simulations
        flagged, 32 axes flag 17 % of simulated blend members with
        ``r_eff`` of 10-24 pixels (128 axes: 37 %) and none of the
        children of the shared M13 frame, whose PSF (about 8 pixels) is
        wider than any trained (128 axes: 94 %).
        """
        return super().fit_familiarity(features, labels, held_out,
                                       n_components=n_components,
                                       quantile=quantile)

    # -- state -------------------------------------------------------------

    def _get_state(self):
        return {'threshold': getattr(self, 'threshold_', 0.3),
                'flux_error_scale': getattr(self, 'flux_error_scale_', 1.0)}

    def _set_state(self, state):
        self.threshold_ = float(state.get('threshold', 0.3))
        self.flux_error_scale_ = float(state.get('flux_error_scale', 1.0))

    # -- hooks of the image-to-image family ------------------------------------

    def _check_options(self, options):
        n_pixels = options['n_pixels']
        if isinstance(n_pixels, bool) or not isinstance(
                n_pixels, (int, np.integer)) or n_pixels < 1:
            msg = f'n_pixels must be an integer >= 1, got {n_pixels!r}'
            raise ValueError(msg)
        options['n_pixels'] = int(n_pixels)

    def _binning(self, fwhm):
        """
        Binning that brings a PSF wider than the trained range back in:
        the smallest odd factor of at least ``fwhm / 4`` (odd, so that a
        binning grid can be centred on any segment).
        """
        trained_max = self.valid_ranges.get('psf_fwhm', (None, None))[1]
        if fwhm is None or trained_max is None or fwhm <= 1.2 * trained_max:
            return 1
        factor = int(np.ceil(fwhm / 4.0))
        return factor + 1 - factor % 2

    def _process(self, segm, labels, context, measure):
        import keras

        from .pipeline import deblend_image

        factor = self._binning(context.psf_fwhm)
        # The children's familiarity is that of their extractor stamps
        # (see network_features).
        pool = (self._pool_features
                if measure and self._familiarity() is not None else None)
        with keras.device(context.device):
            rows, label_image = deblend_image(
                self.detector_, self.mc_engine(), context.image, segm,
                labels, context.options['n_pixels'],
                threshold=self.threshold_, stamp_size=self.stamp_size,
                n_samples=context.n_samples, seed=context.seed,
                batch_size=context.batch_size, fluxes=measure, factor=factor,
                progress_bar=context.progress_bar, pool_features=pool)
        parents = np.array([row['parent'] for row in rows], np.int64)
        output = ImageOutput(label_image, parents,
                             meta={'psf_fwhm': context.psf_fwhm,
                                   'detection_binning': factor})
        measured = [row for row in rows if 'flux_draws' in row]
        if not measure:
            return output
        n = len(measured)
        draws = np.array([row['flux_draws'] for row in measured]).reshape(
            n, max(context.n_samples, 1))
        noise = np.array([row['flux_noise_var'] for row in measured])
        output.labels = np.array([row['label'] for row in measured],
                                 np.int64)
        output.x = np.array([row['x'] for row in measured], np.float64)
        output.y = np.array([row['y'] for row in measured], np.float64)
        output.values = {'flux': draws}
        output.aleatoric = {'flux': np.broadcast_to(noise.reshape(n, 1),
                                                    draws.shape)}
        output.flags = np.array([_row_flags(row) for row in measured],
                                np.int32)
        output.columns = {'n_children': np.array(
            [row['n_children'] for row in measured], np.int64)}
        if measured:
            output.models = np.stack([row['model'] for row in measured])
            output.origins = np.array([row['origin'] for row in measured],
                                      np.int64)
            output.features = _row_features(measured)
        return output

    def _pool_features(self, maps):
        """
        The extractor's features of its stamps: the decoder's channels of
        the MC-dropout layer's input, averaged over annuli about the child
        (`~astrodl_plugins.core.pool_feature_maps`).

        That input joins the decoder's upsampled features (what the
        network made of the whole stamp) to those of the first block,
        passed on by the skip connection (3 x 3 filters that mostly
        describe the pixel noise). These last ``widths[0]`` channels are
        left out: with them, noiseless images look unfamiliar for want of
        noise (photutils' test pair of round Gaussians, inside the
        trained range, scores 1.1; without them 0.8 and 0.9).
        """
        return pool_feature_maps(np.asarray(maps)[..., :-self.widths[0]])

    def _output_units(self, context):
        from astropy import units as u

        unit = context.image.unit
        return {'flux': unit if unit is not None else u.dimensionless_unscaled}

    def _error_scale(self, context):
        return {'flux': self.flux_error_scale_}

    def _extra_meta(self, context):
        return {'threshold': self.threshold_}

    # -- training ----------------------------------------------------------

    def _checked_stamps(self, stamps):
        """Stamps given directly, as float32 ``(N, stamp_size, stamp_size)``."""
        stamps = np.asarray(stamps, np.float32)
        size = self.stamp_size
        if stamps.ndim != 3 or stamps.shape[1:] != (size, size):
            msg = (f'stamps must have shape (N, {size}, {size}), got '
                   f'{stamps.shape}')
            raise ValueError(msg)
        return stamps

    def _training_data(self, stamps, truth, models):
        """
        Blend stamps, their truth table (``x``, ``y``, ``others_x``,
        ``others_y``, ``noise_sigma``) and each member's noise-free model
        (as `~astrodl_plugins.simulate.simulate_blend_stamps` returns them).
        """
        stamps = self._checked_stamps(stamps)
        models = np.asarray(models, np.float32)
        if models.shape != stamps.shape or len(truth) != len(stamps):
            msg = (f'models {models.shape} and truth ({len(truth)} rows) '
                   f'must match the stamps {stamps.shape}')
            raise ValueError(msg)
        return stamps, truth, models

    def _training_tasks(self, train, validation, *, new, augment, seed):
        from .network import detector_task, extractor_task

        if new:
            self.threshold_ = 0.3
            self.flux_error_scale_ = 1.0
        return [detector_task(self, train, validation, augment=augment),
                extractor_task(self, train, validation, augment=augment,
                               seed=seed)]


def _row_flags(row):
    """Bits of a child: ``NO_CENTRE``, and ``UNUSABLE`` (NaN fluxes)."""
    flags = 0 if row['detected'] else int(SourceFlags.NO_CENTRE)
    if not row.get('usable', True):
        flags |= int(SourceFlags.UNUSABLE)
    return flags


def _row_features(rows):
    """
    ``(n, d)`` extractor features of the children, NaN for the children
    of unusable segments (not run through the extractor); `None` without
    features.
    """
    known = [row['features'] for row in rows
             if row.get('features') is not None]
    if not known or any('features' not in row for row in rows):
        return None
    missing = np.full(np.shape(known[0]), np.nan)
    return np.stack([missing if row['features'] is None else row['features']
                     for row in rows])
