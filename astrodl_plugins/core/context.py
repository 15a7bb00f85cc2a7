# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The typed state of one ``predict`` call, handed from hook to hook."""

from dataclasses import dataclass, field

import numpy as np

__all__ = ['PredictContext']


@dataclass
class PredictContext:
    """
    What one ``predict`` call knows, filled in as the pipeline runs.

    The family's ``predict`` creates it from the call's arguments; its
    reading step sets the images and sources; the estimator's ``_prepare``
    sets ``inputs`` and may add per-source arrays to ``aux``; ``_decode``
    and the other hooks read it. A context belongs to one call, so
    concurrent calls never share one.

    Attributes
    ----------
    options : dict
        The estimator's own keywords (``predict_options``), defaults
        filled in.
    n_samples, seed, batch_size : int
        MC-dropout settings (``seed`` already drawn when `None` was given).
    device : str
        Keras device name (``'cpu:0'``, ``'gpu:0'``).
    quantiles : tuple of float or None
        Quantiles asked for.
    progress_bar, uncertainty_parts : bool
        As given to ``predict``.
    image : `~astrodl_plugins.core.inputs.ImageData` or None
        The (reference) image; `None` for stamps or 1-D inputs given
        directly.
    images : list of `~astrodl_plugins.core.inputs.ImageData`
        One image per band (multi-band estimators), else ``[image]``.
    bands : tuple of str
        Band of each image, or of each stamp channel.
    series : list of `~astrodl_plugins.core.series.Series`
        The 1-D inputs (1-D family).
    index : `~numpy.ndarray` or None
        Position in ``series`` of the input of each row (1-D family).
    sources : `~astrodl_plugins.core.sources.Sources` or None
        Labels and pixel centroids of the rows.
    psf_fwhm : `~numpy.ndarray` or None
        PSF FWHM in pixels, one per row.
    psf_source : str
        Where ``psf_fwhm`` came from (for the table meta).
    flags : `~numpy.ndarray`
        ``flag`` bits gathered so far, one per row.
    usable : `~numpy.ndarray`
        Boolean, one per row: the rows the network measures.
    inputs : list of `~numpy.ndarray`
        The network inputs of the usable rows (set by ``_prepare``).
    aux : dict
        Per-usable-row arrays computed by ``_prepare`` for the later hooks;
        an entry named like a ``valid_ranges`` key is range-checked.
    features : `~numpy.ndarray` or None
        The network's features of the usable rows (the trunk's output),
        collected while sampling when the estimator has a familiarity model.
    rescale : `~numpy.ndarray` or None
        Block-sum factor of each row's stamp (stamp family; 1: native).
    """

    options: dict
    n_samples: int
    seed: int
    batch_size: int
    device: str
    quantiles: tuple | None = None
    progress_bar: bool = False
    uncertainty_parts: bool = False
    image: object | None = None
    images: list = field(default_factory=list)
    bands: tuple = ()
    series: list = field(default_factory=list)
    index: np.ndarray | None = None
    sources: object | None = None
    psf_fwhm: np.ndarray | None = None
    psf_source: str = ''
    flags: np.ndarray | None = None
    usable: np.ndarray | None = None
    inputs: list | None = None
    aux: dict = field(default_factory=dict)
    features: np.ndarray | None = None
    rescale: np.ndarray | None = None
