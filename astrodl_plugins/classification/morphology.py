# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The galaxy-morphology classifier (Huertas-Company et al. 2015)."""

from ..simulate.sources import MORPHOLOGY_CLASSES, MORPHOLOGY_RANGES
from .base import SourceClassifier

__all__ = ['GalaxyMorphology']


class GalaxyMorphology(SourceClassifier):
    """
    Visual-like morphology (CANDELS scheme) from a CNN with MC dropout.

    Classes: ``spheroid``, ``disk``, ``irregular``, ``point_source`` and
    ``unclassifiable`` (too faint, an artefact, or cut by the detector
    edge), after Huertas-Company et al. (2015), with the rotation and flip
    augmentation of Dieleman et al. (2015) in training and optionally at
    prediction (``tta=True``). Returns ``p_<class>`` with ``_err`` for each
    class, ``class``, ``entropy`` and ``mutual_information``. Works with
    any subset of the bands ``g``, ``r``, ``i``.

    The shipped preset ``'galaxy-morphology'`` was trained by
    ``astrodl train galaxy-morphology`` on GalSim simulations (see its
    model card): PSF FWHM 1.5-5 pix, galaxies with half-light radii of
    0.8-3.5 PSF FWHM and S/N 20-1000. Sources whose PSF is outside that
    range are flagged (bit 4).

    Parameters
    ----------
    stamp_size : int, optional
        Side of the square stamp around each source, pixels.
    widths : tuple of int, optional
        Filters of the convolutional blocks.
    dense : int, optional
        Units of the dense layers.
    dropout : float, optional
        MC-dropout rate.
    scaling : {'flux', 'noise'}, optional
        How stamps are scaled for the network (see
        ``classification._network.network_inputs``); default ``'flux'``.

    Examples
    --------
    >>> import astrodl_plugins as adl
    >>> est = adl.get_estimator('galaxy-morphology')
    >>> est.classes
    ('spheroid', 'disk', 'irregular', 'point_source', 'unclassifiable')
    """

    name = 'galaxy-morphology'
    version = '1.0'
    description = ('Spheroid / disk / irregular / point source / '
                   'unclassifiable from 1-3 bands, calibrated MC-dropout '
                   'probabilities (Huertas-Company et al. 2015)')
    default_preset = 'galaxy-morphology'
    classes = MORPHOLOGY_CLASSES
    ranges = MORPHOLOGY_RANGES

    def __init__(self, stamp_size=48, widths=(16, 32, 64), dense=128,
                 dropout=0.25, scaling='flux'):
        super().__init__(stamp_size=stamp_size, widths=widths, dense=dense,
                         dropout=dropout, scaling=scaling)
