# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""photutils-shaped entry points: `deblend_sources_dl`, `SourceFinderDL`."""

import warnings

import numpy as np

__all__ = ['deblend_sources_dl', 'SourceFinderDL']

_CACHE = {}


def _deblender(preset):
    from .estimator import Deblender

    if not isinstance(preset, str):
        return preset
    if preset not in _CACHE:
        _CACHE[preset] = Deblender.from_preset(preset)
    return _CACHE[preset]


#: photutils 3.0's defaults of the multi-thresholding keywords, which the
#: networks accept but have no use for.
PHOTUTILS_DEFAULTS = {'n_levels': 32, 'contrast': 0.001, 'mode': 'exponential',
                      'connectivity': 8, 'n_processes': 1}


def deblend_sources_dl(data, segmentation_image, n_pixels, *, labels=None,
                       n_levels=32, contrast=0.001, mode='exponential',
                       connectivity=8, relabel=True, n_processes=1,
                       progress_bar=True, psf_fwhm=None, preset='deblender',
                       batch_size=64, device='auto'):
    """
    Deblend overlapping sources with the ``deblender`` U-Nets.

    A drop-in for photutils' `~photutils.segmentation.deblend_sources`
    (photutils 3.0): the same arguments and keywords with the same
    defaults, and a `~photutils.segmentation.SegmentationImage` back whose
    children tile their parent's footprint, labelled as photutils labels
    them (the segments not split keep their label, the children of a
    split one come after the largest input label; with ``relabel`` all
    are then renumbered ``1..N`` in that order), with photutils'
    ``deblended_labels``, ``deblended_label_to_parent`` and
    ``parent_to_deblended_labels``.

    ``relabel``, ``progress_bar``, ``labels`` and ``n_pixels`` are
    honoured, and ``contrast=1`` deblends nothing (a copy of the input
    comes back, as in photutils). ``n_levels``, ``contrast``, ``mode``,
    ``connectivity`` and ``n_processes`` are checked as photutils checks
    them, but have no meaning for the networks (there are no thresholds,
    the children are assigned pixel by pixel inside their parent, and one
    process runs the networks): a value other than photutils' default
    gives an `~astropy.utils.exceptions.AstropyUserWarning` that it has no
    effect.

    Parameters
    ----------
    data : `~astropy.nddata.NDData`, `~astropy.units.Quantity` or array
        The background-subtracted image. Unlike photutils, give the data
        themselves, not the convolved image: the networks were trained on
        unsmoothed pixels. An NDData's mask and uncertainty are used.
    segmentation_image : `~photutils.segmentation.SegmentationImage`
        The detection, e.g. from `~photutils.segmentation.detect_sources`
        (an integer array is accepted too).
    n_pixels : int
        Minimum number of connected pixels of a child.
    labels : int or array of int, optional
        The labels to deblend (default all); the others are kept as they
        are.
    n_levels : int, optional
        photutils' number of thresholds (>= 1); no effect.
    contrast : float, optional
        photutils' minimum flux fraction of a child, in [0, 1]; ``1``
        deblends nothing, any other value has no effect.
    mode : {'exponential', 'linear', 'sinh'}, optional
        photutils' spacing of the thresholds; no effect.
    connectivity : {8, 4}, optional
        photutils' pixel connectivity of a child; no effect (a child can
        touch the rest of itself by a corner only).
    relabel : bool, optional
        Renumber the labels ``1..N``; otherwise the segments not split
        keep their input label and the children are numbered from the
        input's largest label plus one.
    n_processes : int or None, optional
        photutils' number of processes (>= 1, or None for one per CPU);
        no effect.
    progress_bar : bool, optional
        Show a `tqdm` progress bar.
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

    Returns
    -------
    segment_image : `~photutils.segmentation.SegmentationImage` or None
        None, with a warning, when the segmentation image is empty.

    Raises
    ------
    ValueError
        ``n_levels`` below 1, ``contrast`` outside [0, 1], an unknown
        ``mode``, a ``connectivity`` other than 4 or 8, or ``n_processes``
        below 1; and the deblender's own checks (``n_pixels``, shapes,
        labels).
    """
    _check_photutils_keywords(n_levels=n_levels, contrast=contrast,
                              mode=mode, connectivity=connectivity,
                              n_processes=n_processes)
    if contrast == 1:
        # photutils: no deblending, the input comes back as it is.
        labels, relabel = [], False
    result = _deblender(preset).deblend(
        data, segmentation_image, n_pixels, labels=labels, n_samples=0,
        seed=0, batch_size=batch_size, device=device,
        progress_bar=progress_bar, psf_fwhm=psf_fwhm, fluxes=False)
    if result.segmentation_image is None:
        return None
    return _photutils_labels(result.segmentation_image.data,
                            result.parent_labels, relabel=relabel)


def _photutils_labels(children, parents, *, relabel=True):
    """
    Number children as photutils' `~photutils.segmentation.deblend_sources`
    does, with its parent map.

    Parameters
    ----------
    children : `~numpy.ndarray`
        Label image of the children, labelled ``1..N`` in the order of
        their parents (the children of a parent consecutive).
    parents : array of int
        The input label of each child, in child-label order; every input
        label appears at least once.
    relabel : bool, optional
        Renumber the labels ``1..N`` (photutils' ``relabel``).

    Returns
    -------
    segment_image : `~photutils.segmentation.SegmentationImage`
        The segments not split keep their input label, the children of a
        split one are numbered from the largest input label plus one (the
        parents in increasing order); with ``relabel`` all labels are then
        renumbered ``1..N`` in that order.
    """
    from photutils.segmentation import SegmentationImage

    from ..core.segmentation import set_parent_map

    parents = np.asarray(parents, np.int64)
    unique, counts = np.unique(parents, return_counts=True)
    split = np.isin(parents, unique[counts > 1])
    new = parents.copy()
    new[split] = parents.max() + 1 + np.arange(int(split.sum()))
    if relabel:
        new = np.searchsorted(np.unique(new), new) + 1
    dtype = np.promote_types(children.dtype,
                             np.min_scalar_type(int(new.max(initial=0))))
    lookup = np.zeros(len(parents) + 1, dtype)
    lookup[1:] = new
    return set_parent_map(
        SegmentationImage(lookup[children]),
        {int(parent): new[parents == parent].astype(dtype)
         for parent in unique[counts > 1]})


def _is_integer(value):
    """Whether a value is an integer (not a bool)."""
    return (isinstance(value, (int, np.integer))
            and not isinstance(value, bool))


def _check_photutils_keywords(**keywords):
    """
    Check photutils' multi-thresholding keywords as photutils does; warn
    about those given a value other than its default (they have no
    effect).
    """
    from ..exceptions import AstrodlUserWarning

    n_levels = keywords['n_levels']
    if not _is_integer(n_levels) or n_levels < 1:
        msg = f'n_levels must be an integer >= 1, got {n_levels!r}'
        raise ValueError(msg)
    contrast = keywords['contrast']
    if (isinstance(contrast, bool) or not isinstance(
            contrast, (int, float, np.integer, np.floating))
            or not 0 <= contrast <= 1):
        msg = f'contrast must be >= 0 and <= 1, got {contrast!r}'
        raise ValueError(msg)
    mode = keywords['mode']
    if not isinstance(mode, str) or mode not in ('exponential', 'linear',
                                                 'sinh'):
        msg = ("mode must be 'exponential', 'linear', or 'sinh', got "
               f'{mode!r}')
        raise ValueError(msg)
    connectivity = keywords['connectivity']
    if not _is_integer(connectivity) or connectivity not in (4, 8):
        msg = (f'Invalid connectivity={connectivity!r}. Options are 4 or '
               '8.')
        raise ValueError(msg)
    n_processes = keywords['n_processes']
    if n_processes is not None and (not _is_integer(n_processes)
                                    or n_processes < 1):
        msg = (f'n_processes must be an integer >= 1 or None, got '
               f'{n_processes!r}')
        raise ValueError(msg)
    for name, value in keywords.items():
        if name == 'contrast' and value == 1:
            continue  # honoured: no deblending
        if value != PHOTUTILS_DEFAULTS[name] or value is None:
            msg = (f'{name}={value!r} has no effect on deblend_sources_dl: '
                   f"it is a setting of photutils' multi-thresholding "
                   f'deblender (default {PHOTUTILS_DEFAULTS[name]!r})')
            warnings.warn(msg, AstrodlUserWarning, stacklevel=3)



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
