# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The ``deblender`` estimator: U-Net deblending of photutils segments."""

import numpy as np

from ..core.estimator import Estimator
from ..core.inputs import FLAGS, read_image

__all__ = ['Deblender']

#: Flag bits of the deblender's table (those of `FLAGS` plus one).
DEBLEND_FLAGS = dict(FLAGS)
DEBLEND_FLAGS[16] = ('no centre detected in the segment: one child, at the '
                     'segment centroid')


class Deblender(Estimator):
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
    """

    name = 'deblender'
    task = 'deblending'
    version = '1.0'
    description = ('U-Net deblending of photutils segments: children, '
                   'per-source models and fluxes (Boucaud+20)')
    default_preset = 'deblender'
    output_names = ('flux',)

    def __init__(self, stamp_size=48, widths=(16, 32, 64),
                 detector_widths=(8, 16, 32), dropout=0.2):
        self.stamp_size = stamp_size
        self.widths = widths
        self.detector_widths = detector_widths
        self.dropout = dropout

    # -- state -------------------------------------------------------------

    def _get_state(self):
        return {'threshold': getattr(self, 'threshold_', 0.3),
                'flux_error_scale': getattr(self, 'flux_error_scale_', 1.0)}

    def _set_state(self, state):
        self.threshold_ = float(state.get('threshold', 0.3))
        self.flux_error_scale_ = float(state.get('flux_error_scale', 1.0))

    def _extra_models(self):
        return {'detector': self.detector_}

    def _load_extra_models(self, directory):
        from ..core.store import read_extra_model

        self.detector_ = read_extra_model(directory, 'detector')

    def _check_fitted(self):
        super()._check_fitted()
        if getattr(self, 'detector_', None) is None:
            from ..exceptions import NotFittedError

            msg = 'Deblender has no detector network: load a preset or fit'
            raise NotFittedError(msg)

    # -- deblending ----------------------------------------------------------

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
            or else estimated from the brightest segments with
            `photutils.psf.fit_fwhm`. When it is wider than the networks
            were trained on (5 pixels), the centres are detected on the
            image binned by ``ceil(psf_fwhm / 4)``.
        fluxes : bool, optional
            Measure fluxes (runs the extractor on every source); `False`
            gives the segmentation only, from one deterministic pass, as
            `deblend_sources_dl` does. With fluxes, the segmentation comes
            from the mean of the MC draws of the models, so a few pixels
            (and rarely a small child) can differ from the deterministic
            one.

        Returns
        -------
        result : `~astrodl_plugins.deblending.DeblendResult`
            ``segmentation_image`` (children labelled 1..N, photutils'
            ``deblended_label_to_parent`` mapping set), ``parent_labels``,
            ``table`` (with ``fluxes``) and ``model_images``.
        """
        import keras

        from ..core.device import resolve_device
        from .core import DeblendResult, check_segmentation, deblend_image

        self._check_fitted()
        n_samples, batch_size, quantiles, seed = self._check_predict_args(
            n_samples, batch_size, quantiles, seed)
        n_pixels = _check_n_pixels(n_pixels)
        image = read_image(data, pixel_scale=pixel_scale)
        segm, labels = check_segmentation(segmentation_image, image.shape,
                                          labels)
        if segm is None:
            table = (self._table(image, [], quantiles, seed, n_samples,
                                 device) if fluxes else None)
            return DeblendResult(None, np.array([], np.int64), table)
        device_name = resolve_device(device)
        if not fluxes:
            # The segmentation alone needs one deterministic pass.
            n_samples = 0
        fwhm = _psf_fwhm(psf_fwhm, image, segm)
        factor = _binning(fwhm)
        with keras.device(device_name):
            rows, segm_data = deblend_image(
                self, image, segm, labels, n_pixels, n_samples=n_samples,
                seed=seed, batch_size=batch_size, fluxes=fluxes,
                factor=factor, progress_bar=progress_bar)
        segm_out = _segmentation_image(segm_data, rows)
        parents = np.array([row['parent'] for row in rows], np.int64)
        result = DeblendResult(segm_out, parents, wcs=image.wcs,
                               unit=image.unit)
        result.psf_fwhm = fwhm
        result.binning = factor
        if fluxes:
            measured = [row for row in rows if 'flux_draws' in row]
            result.table = self._table(image, measured, quantiles, seed,
                                       n_samples, device_name)
            result.table.meta['psf_fwhm'] = fwhm
            result.table.meta['detection_binning'] = factor
            if measured:
                result._models = np.stack([row['model'] for row in measured])
                result._origins = [row['origin'] for row in measured]
                result._model_labels = [row['label'] for row in measured]
        return result

    def predict(self, data, *, segmentation_image=None, positions=None,
                n_samples=20, seed=None, batch_size=64, device='auto',
                quantiles=None, progress_bar=False, pixel_scale=None,
                return_samples=False, uncertainty_parts=False, n_pixels=5,
                labels=None):
        """
        Deblend and measure: one row per child of the deblended segments.

        The table has ``label`` (the child's label in the deblended
        segmentation, see `deblend`), ``x_centroid``, ``y_centroid`` (the
        detected centre), ``sky_centroid`` (with a WCS), ``parent_label``
        (the input label, so the table joins
        ``SourceCatalog(...).to_table()`` of the input segmentation on
        it), ``flux`` and ``flux_err``
        (MC dropout and pixel noise, calibrated), ``n_children`` and
        ``flag``. Keywords as in `deblend`; ``positions`` is not
        supported (deblending needs segments).
        """
        if positions is not None:
            msg = ('positions are not supported by the deblender: give a '
                   'segmentation_image')
            raise ValueError(msg)
        if segmentation_image is None:
            msg = ('segmentation_image is required: the deblender splits the '
                   'segments of a photutils SegmentationImage')
            raise ValueError(msg)
        if return_samples or uncertainty_parts:
            msg = ('return_samples and uncertainty_parts are not supported '
                   'by the deblender')
            raise ValueError(msg)
        return self.deblend(data, segmentation_image, n_pixels,
                            labels=labels, n_samples=n_samples, seed=seed,
                            batch_size=batch_size, device=device,
                            quantiles=quantiles, progress_bar=progress_bar,
                            pixel_scale=pixel_scale).table

    def predict_stamps(self, stamps, **kwargs):
        """Not available: deblending needs an image and its segments."""
        msg = ('the deblender works on an image and its segmentation image: '
               'use predict, deblend or deblend_sources_dl')
        raise NotImplementedError(msg)

    def _table(self, image, rows, quantiles, seed, n_samples, device_name):
        from astropy import units as u

        from ..core.table import build_table, summarize_draws

        unit = image.unit if image.unit is not None else u.dimensionless_unscaled
        n = len(rows)
        n_draws = max(n_samples, 1)
        draws = np.array([row['flux_draws'] for row in rows]).reshape(
            n, n_draws)
        noise = np.array([row['flux_noise_var'] for row in rows])
        noise = np.broadcast_to(noise.reshape(n, 1), (n, n_draws))
        rng = np.random.default_rng(seed)
        predictive = draws + rng.normal(size=draws.shape) * np.sqrt(noise)
        columns, _ = summarize_draws(
            {'flux': draws}, {'flux': noise}, units={'flux': unit},
            error_scale={'flux': self.flux_error_scale_},
            quantiles=quantiles, predictive={'flux': predictive})
        x = np.array([row['x'] for row in rows], np.float64)
        y = np.array([row['y'] for row in rows], np.float64)
        leading = {'label': np.array([row['label'] for row in rows],
                                     np.int64),
                   'x_centroid': x * u.pix, 'y_centroid': y * u.pix}
        if image.wcs is not None and getattr(image.wcs, 'has_celestial',
                                             False):
            leading['sky_centroid'] = image.wcs.pixel_to_world(x, y)
        leading['parent_label'] = np.array([row['parent'] for row in rows],
                                           np.int64)
        columns['n_children'] = np.array([row['n_children'] for row in rows],
                                         np.int64)
        flags = np.array([_row_flag(row, image, self.stamp_size)
                          for row in rows], np.int32)
        meta = self._meta(image, n_samples, seed, device_name, quantiles,
                          {})
        meta['flags'] = dict(DEBLEND_FLAGS)
        meta['threshold'] = self.threshold_
        return build_table(leading, columns, flags, meta)


#: Widest PSF FWHM (pixels) in the training blends.
_TRAINED_MAX_FWHM = 5.0


def _psf_fwhm(psf_fwhm, image, segm):
    """The PSF FWHM in pixels: given, from the meta, or estimated."""
    from ..core.inputs import Sources, estimate_psf_fwhm, resolve_psf_fwhm

    if psf_fwhm is not None or any(key in image.meta for key in (
            'PSF_FWHM', 'psf_fwhm', 'FWHM')):
        return float(resolve_psf_fwhm(psf_fwhm, image, 1)[0])
    # The 200 largest segments, at the centres of their boxes (fit_fwhm
    # fits the centre): much cheaper than photutils centroids of all.
    largest = np.argsort(segm.areas)[::-1][:200]
    boxes = [segm.slices[i] for i in largest]
    sources = Sources(segm.labels[largest],
                      np.array([(b[1].start + b[1].stop - 1) / 2
                                for b in boxes]),
                      np.array([(b[0].start + b[0].stop - 1) / 2
                                for b in boxes]))
    try:
        return estimate_psf_fwhm(image, sources, max_sources=50)
    except ValueError:
        return None


def _binning(fwhm):
    """Binning that brings a wide PSF back into the trained range."""
    if fwhm is None or fwhm <= 1.2 * _TRAINED_MAX_FWHM:
        return 1
    return int(np.ceil(fwhm / 4.0))


def _check_n_pixels(n_pixels):
    if isinstance(n_pixels, bool) or not isinstance(
            n_pixels, (int, np.integer)) or n_pixels < 1:
        msg = f'n_pixels must be an integer >= 1, got {n_pixels!r}'
        raise ValueError(msg)
    return int(n_pixels)


def _row_flag(row, image, size):
    flag = 0 if row['detected'] else 16
    x0, y0 = row['origin']
    ny, nx = image.shape
    ylo, yhi = max(y0, 0), min(y0 + size, ny)
    xlo, xhi = max(x0, 0), min(x0 + size, nx)
    if (yhi - ylo) * (xhi - xlo) < size * size:
        flag |= 2
    if yhi > ylo and xhi > xlo and image.mask[ylo:yhi, xlo:xhi].any():
        flag |= 1
    return flag


def _segmentation_image(segm_data, rows):
    """A SegmentationImage with photutils' child -> parent mapping."""
    from photutils.segmentation import SegmentationImage

    segm = SegmentationImage(segm_data)
    children = {}
    for row in rows:
        children.setdefault(row['parent'], []).append(row['label'])
    # photutils' deblend_sources records the split parents the same way;
    # its deblended_labels, deblended_label_to_parent and
    # parent_to_deblended_labels read it.
    segm._deblend_label_map = {parent: np.array(labels, segm_data.dtype)
                               for parent, labels in children.items()
                               if len(labels) > 1}
    return segm
