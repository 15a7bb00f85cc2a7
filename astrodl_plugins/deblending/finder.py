# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""photutils-shaped entry points: `deblend_sources_dl`, `SourceFinderDL`."""

import warnings

__all__ = ['deblend_sources_dl', 'SourceFinderDL']

_CACHE = {}


def _deblender(preset):
    from .estimator import Deblender

    if not isinstance(preset, str):
        return preset
    if preset not in _CACHE:
        _CACHE[preset] = Deblender.from_preset(preset)
    return _CACHE[preset]


def deblend_sources_dl(data, segmentation_image, n_pixels, *, labels=None,
                       psf_fwhm=None, preset='deblender', batch_size=64,
                       device='auto', progress_bar=False):
    """
    Deblend overlapping sources with the ``deblender`` U-Nets.

    A drop-in for photutils' `~photutils.segmentation.deblend_sources`:
    the same first arguments, a `~photutils.segmentation.SegmentationImage`
    back whose children stay inside their parent's footprint, labelled
    consecutively from 1 (photutils' ``relabel=True``), with photutils'
    ``deblended_labels``, ``deblended_label_to_parent`` and
    ``parent_to_deblended_labels``.

    Parameters
    ----------
    data : `~astropy.nddata.NDData`, `~astropy.units.Quantity` or array
        The background-subtracted image. Unlike photutils, give the data
        themselves, not the convolved image: the networks were trained on
        unsmoothed pixels. An NDData's mask and uncertainty are used.
    segmentation_image : `~photutils.segmentation.SegmentationImage`
        The detection, e.g. from `~photutils.segmentation.detect_sources`.
    n_pixels : int
        Minimum number of connected pixels of a child.
    labels : int or array of int, optional
        The labels to deblend (default all); the others are kept as they
        are.
    psf_fwhm : float or `~astropy.units.Quantity`, optional
        PSF FWHM; estimated from the data by default. A PSF wider than the
        training range (5 pixels) makes the centre detection run on the
        binned image (see `~astrodl_plugins.deblending.Deblender.deblend`).
    preset : str, path or `~astrodl_plugins.deblending.Deblender`, optional
        The trained deblender (loaded once per session).
    batch_size : int, optional
        Sources per network batch.
    device : str, optional
        ``'auto'``, ``'cpu'``, ``'gpu'`` or ``'gpu:N'``.
    progress_bar : bool, optional
        Show a `tqdm` progress bar.

    Returns
    -------
    segment_image : `~photutils.segmentation.SegmentationImage` or None
        None, with a warning, when the segmentation image is empty.
    """
    result = _deblender(preset).deblend(
        data, segmentation_image, n_pixels, labels=labels, n_samples=0,
        seed=0, batch_size=batch_size, device=device,
        progress_bar=progress_bar, psf_fwhm=psf_fwhm, fluxes=False)
    return result.segmentation_image


class SourceFinderDL:
    """
    Detect and deblend sources: photutils' `~photutils.segmentation.SourceFinder`
    with the deblending done by `deblend_sources_dl`.

    Parameters
    ----------
    n_pixels : int
        Minimum number of connected pixels of a source (and of a child).
    connectivity : {4, 8}, optional
        Pixel connectivity of the detection.
    deblend : bool, optional
        Deblend the detected sources.
    preset : str, optional
        The trained deblender.
    progress_bar : bool, optional
        Show a progress bar while deblending.
    """

    def __init__(self, n_pixels, *, connectivity=8, deblend=True,
                 preset='deblender', progress_bar=False):
        self.n_pixels = n_pixels
        self.connectivity = connectivity
        self.deblend = deblend
        self.preset = preset
        self.progress_bar = progress_bar

    def __repr__(self):
        return (f'SourceFinderDL(n_pixels={self.n_pixels!r}, connectivity='
                f'{self.connectivity!r}, deblend={self.deblend!r}, '
                f'preset={self.preset!r})')

    def __call__(self, data, threshold, mask=None, *, convolved_data=None):
        """
        Detect sources above ``threshold`` and deblend them.

        Parameters
        ----------
        data : `~astropy.nddata.NDData`, `~astropy.units.Quantity` or array
            The background-subtracted image (deblended as it is).
        threshold : float or array
            Detection threshold per pixel, as in photutils.
        mask : bool array, optional
            Pixels to ignore.
        convolved_data : array, optional
            Detect on this smoothed image instead of ``data`` (photutils'
            usual practice); deblending still uses ``data``.

        Returns
        -------
        segment_image : `~photutils.segmentation.SegmentationImage` or None
        """
        import numpy as np
        from astropy.nddata import NDData
        from photutils.segmentation import detect_sources

        detect_on = convolved_data
        if detect_on is None:
            detect_on = data.data if isinstance(data, NDData) else data
        with warnings.catch_warnings():
            segm = detect_sources(np.asarray(detect_on), threshold,
                                  self.n_pixels,
                                  connectivity=self.connectivity, mask=mask)
        if segm is None or not self.deblend:
            return segm
        return deblend_sources_dl(data, segm, self.n_pixels,
                                  preset=self.preset,
                                  progress_bar=self.progress_bar)
