# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Shared machinery of the multi-band source classifiers."""

import warnings

import numpy as np
from astropy import units as u

from ..core.estimator import Estimator
from ..core.inputs import (
    cut_stamps,
    estimate_psf_fwhm,
    locate_sources,
    read_bands,
    resolve_psf_fwhm,
)
from ..exceptions import AstrodlUserWarning
from ..simulate.sources import BANDS
from ..training.augment import apply_dihedral
from . import _network as net
from .metrics import softmax

__all__ = ['SourceClassifier']

#: The eight rotations (quarter turns) and flips of a square stamp.
_DIHEDRAL = tuple((k, flip) for k in range(4) for flip in (False, True))


def _band_usable(stamps):
    """``(n, n_bands)``: at least half the central 6x6 pixels finite."""
    size = stamps.shape[1]
    core = stamps[:, size // 2 - 3:size // 2 + 3,
                  size // 2 - 3:size // 2 + 3]
    return np.isfinite(core).mean(axis=(1, 2)) >= 0.5


class SourceClassifier(Estimator):
    """
    Base class of the multi-band classifiers with MC-dropout probabilities.

    `predict` takes one image per band (or a cube) and returns, for each
    class ``c`` of ``classes``, ``p_<c>`` (the MC-dropout mean of the
    temperature-calibrated softmax) with ``p_<c>_err`` (the spread of the
    draws), then ``class`` (the most probable), ``entropy`` (of the mean
    probabilities, nats) and ``mutual_information`` (its epistemic part:
    entropy of the mean minus mean entropy of the draws; Gal 2016).
    """

    task = 'classification'
    #: Class names, in the network's output order.
    classes = ()
    #: Ranges of validity: ``psf_fwhm`` (pixels, reference band).
    ranges = {}
    #: Band of a single image given without a name.
    default_band = 'r'
    bands = BANDS

    def __init__(self, stamp_size=32, widths=(16, 32, 64), dense=128,
                 dropout=0.25, scaling='flux'):
        self.stamp_size = stamp_size
        self.widths = widths
        self.dense = dense
        self.dropout = dropout
        self.scaling = scaling

    @property
    def output_names(self):
        """Probability columns, ``p_<class>``."""
        return tuple(f'p_{name}' for name in self.classes)

    def predict(self, data, *, bands=None, psf_fwhm=None, tta=False,
                **kwargs):
        """
        Classify every source, with MC-dropout probabilities.

        Parameters
        ----------
        data : image, list of images, or cube
            One background-subtracted 2-D image per band (CCDData, NDData,
            Quantity or array), all on one pixel grid, or an NDData/array
            cube ``(band, y, x)``. Units, masks and WCS are honoured; bands
            in different but convertible units are converted to the
            first band's unit.
        bands : sequence of str, optional
            Band of each image, from ``bands`` (class attribute). Default:
            the reference band for a single image; else each image's
            ``meta['BAND']`` or ``meta['FILTER']``.
        psf_fwhm : float or Quantity, optional
            PSF FWHM in the reference band (pixels, or an angle with a
            known pixel scale). Default: ``meta['PSF_FWHM']``, else
            estimated from the most compact sources (with a warning).
        tta : bool, optional
            Test-time augmentation: pool the draws over the 8 rotations and
            flips of each stamp (8x slower).
        **kwargs
            ``segmentation_image`` or ``positions``, ``n_samples``, ``seed``,
            ``batch_size``, ``device``, ``quantiles``, ``progress_bar``,
            ``pixel_scale``, ``return_samples``, as in
            `~astrodl_plugins.core.Estimator.predict`.

        Returns
        -------
        table : `~astropy.table.QTable`
            ``label``, centroids, ``p_<class>`` with ``p_<class>_err``,
            ``class``, ``entropy``, ``mutual_information`` and ``flag``.
        """
        return super().predict(data, bands=bands, psf_fwhm=psf_fwhm,
                               tta=tta, **kwargs)

    # -- state ---------------------------------------------------------------

    def _get_state(self):
        return {'temperature': float(getattr(self, 'temperature_', 1.0))}

    def _set_state(self, state):
        self.temperature_ = float(state.get('temperature', 1.0))

    # -- reading -------------------------------------------------------------

    def _read_and_cut(self, data, segmentation_image, positions,
                      pixel_scale, kwargs):
        images, bands = read_bands(
            data, bands=kwargs.pop('bands', None), known_bands=self.bands,
            default_band=self.default_band, pixel_scale=pixel_scale)
        reference = images[bands.index(self.default_band)] \
            if self.default_band in bands else images[0]
        sources = locate_sources(reference,
                                 segmentation_image=segmentation_image,
                                 positions=positions)
        stamps, flags = [], np.zeros(len(sources.x), np.int32)
        for image in images:
            stamp, _, flag = cut_stamps(image, sources, self.stamp_size)
            stamps.append(stamp)
            flags |= flag
        kwargs['bands'] = bands
        if kwargs.get('psf_fwhm') is None and not any(
                key in reference.meta for key in ('PSF_FWHM', 'psf_fwhm',
                                                  'FWHM')):
            fwhm = estimate_psf_fwhm(reference, sources)
            warnings.warn(f'psf_fwhm not given: estimated {fwhm:.2f} pix '
                          'from the most compact sources; pass psf_fwhm= '
                          'for reliable classes', AstrodlUserWarning,
                          stacklevel=4)
            kwargs['psf_fwhm'] = fwhm
            kwargs['_psf_source'] = 'estimated from the data'
        return reference, sources, np.stack(stamps, axis=-1), None, flags

    def predict_stamps(self, stamps, *, bands=None, psf_fwhm, tta=False,
                       **kwargs):
        """
        Classify sources already cut into centred stamps.

        Parameters
        ----------
        stamps : array
            ``(N, size, size)`` (one band) or ``(N, size, size, B)``; NaN
            marks bad pixels.
        bands : sequence of str, optional
            Band of each channel (default: the reference band for one).
        psf_fwhm : float or array
            PSF FWHM in pixels (reference band), one value or one per stamp.
        tta : bool, optional
            Test-time augmentation: pool the draws over the 8 rotations
            and flips of each stamp.
        **kwargs
            ``n_samples``, ``seed``, ``batch_size``, ``device``,
            ``quantiles``, ``return_samples``, as in `predict`.

        Returns
        -------
        table : `~astropy.table.QTable`
        """
        return super().predict_stamps(stamps, bands=bands, psf_fwhm=psf_fwhm,
                                      tta=tta, **kwargs)

    def _stamp_array(self, stamps, kwargs):
        stamps = np.array(stamps, dtype=np.float32)
        if stamps.ndim == 3:
            stamps = stamps[..., None]
        size = self.stamp_size
        if stamps.ndim != 4 or stamps.shape[1:3] != (size, size):
            msg = (f'stamps must have shape (N, {size}, {size}[, bands]), '
                   f'got {stamps.shape}')
            raise ValueError(msg)
        bands = kwargs.get('bands')
        if bands is None:
            bands = (self.default_band,) if stamps.shape[-1] == 1 else \
                self.bands[:stamps.shape[-1]]
        bands = tuple(bands)
        if len(bands) != stamps.shape[-1] or not set(bands) <= set(
                self.bands):
            msg = (f'bands {bands} do not match the {stamps.shape[-1]} '
                   f'channels or are not among {self.bands}')
            raise ValueError(msg)
        kwargs['bands'] = bands
        return stamps

    # -- hooks of Estimator.predict -----------------------------------------

    def _prepare(self, stamps, errors, image, sources, usable, *, bands,
                 psf_fwhm=None, tta=False, _psf_source='psf_fwhm'):
        psf = resolve_psf_fwhm(psf_fwhm, image, len(usable))[usable]
        model_stamps = net.to_model_bands(stamps, bands)
        sigma, flux, npix = net.band_statistics(model_stamps)
        # A band masked around a source is dropped for that source alone.
        present = net.presence(bands, len(model_stamps)) * net.to_model_bands(
            _band_usable(stamps)[:, None, None, :].astype(np.float32),
            bands)[:, 0, 0, :]
        inputs = net.network_inputs(model_stamps, present, psf, sigma, flux,
                                    npix, scaling=self.scaling)
        if tta:
            inputs = [np.concatenate([apply_dihedral(inputs[0], k, flip)
                                      for k, flip in _DIHEDRAL]),
                      np.tile(inputs[1], (len(_DIHEDRAL), 1))]
        return {'inputs': inputs, 'psf': psf, 'tta': bool(tta),
                'bands': tuple(bands), 'psf_source': _psf_source}

    def _usable(self, stamps):
        """Sources with usable pixels near their centre in some band."""
        return _band_usable(stamps).any(axis=1)

    def _decode(self, raw, context, rng):
        if context['tta']:
            n = len(raw) // len(_DIHEDRAL)
            raw = raw.reshape(len(_DIHEDRAL), n, *raw.shape[1:])
            raw = np.concatenate(list(raw), axis=1)
        probs = softmax(raw, getattr(self, 'temperature_', 1.0))
        draws = {f'p_{name}': probs[..., k]
                 for k, name in enumerate(self.classes)}
        zeros = {key: np.zeros_like(value) for key, value in draws.items()}
        return draws, zeros, draws

    def _output_units(self, image):
        return {name: u.dimensionless_unscaled for name in self.output_names}

    def _range_flags(self, draws, context):
        low, high = self.ranges.get('psf_fwhm', (0.0, np.inf))
        out = (context['psf'] < low * 0.95) | (context['psf'] > high * 1.05)
        return np.where(out, 4, 0).astype(np.int32)

    def _measure(self, *args, **kwargs):
        columns, flags, draws, context = super()._measure(*args, **kwargs)
        probs = np.stack([draws[name].value for name in self.output_names],
                         axis=-1)
        out = {}
        for name in self.output_names:
            for key in [key for key in columns if key == name
                        or key.startswith(f'{name}_')]:
                out[key] = columns[key]
        mean = probs.mean(axis=1)
        with np.errstate(invalid='ignore', divide='ignore'):
            entropy = -np.sum(np.where(mean > 0, mean * np.log(mean), 0.0),
                              axis=-1)
            each = -np.sum(np.where(probs > 0, probs * np.log(probs), 0.0),
                           axis=-1)
        good = np.isfinite(mean).all(-1)
        best = np.argmax(np.where(np.isfinite(mean), mean, -1), axis=-1)
        out['class'] = np.where(good, np.asarray(self.classes)[best], '')
        out['entropy'] = np.where(good, entropy, np.nan) * u.dimensionless_unscaled
        mutual = np.clip(entropy - each.mean(-1), 0.0, None)
        out['mutual_information'] = (np.where(good, mutual, np.nan)
                                     * u.dimensionless_unscaled)
        return out, flags, draws, context

    def _meta(self, image, n_samples, seed, device_name, quantiles,
              context):
        meta = super()._meta(image, n_samples, seed, device_name, quantiles,
                             context)
        meta['classes'] = list(self.classes)
        meta['bands'] = list(context['bands'])
        meta['psf_fwhm_source'] = context['psf_source']
        meta['tta'] = context['tta']
        meta['temperature'] = float(getattr(self, 'temperature_', 1.0))
        meta['entropy_unit'] = 'nat'
        return meta

    # -- training ------------------------------------------------------------

    def fit(self, stamps, labels, *, psf_fwhm, bands=None,
            validation_data=None, validation_fraction=0.1, epochs=15,
            batch_size=256, learning_rate=None, patience=3, freeze=None,
            augment=True, seed=0, verbose=0):
        """
        Train from scratch, or fine-tune the loaded model, on labelled stamps.

        Parameters
        ----------
        stamps : array
            ``(N, size, size[, B])`` stamps centred on the sources.
        labels : array of int or str
            Class index or class name of each stamp.
        psf_fwhm : float or array
            PSF FWHM (pixels, reference band) of each stamp.
        bands : sequence of str, optional
            Band of each channel (default: the reference band for one).
            From scratch with all bands, training draws random band subsets
            so any subset works at prediction.
        validation_data : tuple, optional
            ``(stamps, labels, psf_fwhm)``; default: a random
            ``validation_fraction`` of the training stamps.
        epochs, batch_size, patience : int, optional
            Maximum epochs, mini-batch size, early-stopping patience.
        learning_rate : float, optional
            Default 1e-3 from scratch, 1e-4 when fine-tuning.
        freeze : None, 'conv' or int, optional
            Fine-tuning: ``'conv'`` freezes every convolutional layer; ``k``
            freezes the first ``k`` convolutional blocks.
        augment : bool, optional
            Random rotations and flips (Dieleman et al. 2015).
        seed : int, optional
            Seed of the initialization, split, augmentation and band subsets.
        verbose : int, optional
            Keras verbosity.

        Returns
        -------
        self
        """
        from ._training import fit_classifier

        return fit_classifier(
            self, stamps, labels, psf_fwhm=psf_fwhm, bands=bands,
            validation_data=validation_data,
            validation_fraction=validation_fraction, epochs=epochs,
            batch_size=batch_size, learning_rate=learning_rate,
            patience=patience, freeze=freeze, augment=augment, seed=seed,
            verbose=verbose)
