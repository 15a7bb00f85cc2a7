# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The star-galaxy classifier (Kim & Brunner 2016)."""

from ..simulate.sources import STAR_GALAXY_CLASSES, STAR_GALAXY_RANGES
from .base import SourceClassifier

__all__ = ['StarGalaxyClassifier']


class StarGalaxyClassifier(SourceClassifier):
    """
    Star/galaxy separation from multi-band stamps with a CNN and MC dropout.

    Returns ``p_star`` and ``p_galaxy`` (each with ``_err``, the MC-dropout
    spread), ``class``, ``entropy`` and ``mutual_information``. Works with
    any subset of the bands ``g``, ``r``, ``i`` (one band too): the
    network was trained on random band subsets. The probabilities are
    temperature-calibrated on held-out simulations.

    The shipped preset ``'star-galaxy'`` was trained by
    ``astrodl train star-galaxy`` on GalSim simulations (see its model
    card): PSF FWHM 1.5-6 pix, S/N 5-1000 in the reference band,
    galaxies with half-light radii of 0.35-5 PSF FWHM. Sources whose PSF
    is outside that range are flagged (bit 4).

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
    scaling : {'flux', 'noise', 'hybrid'}, optional
        How stamps are scaled for the network (see
        ``classification._network.network_inputs``); default ``'hybrid'``.

    Examples
    --------
    >>> import astrodl_plugins as adl
    >>> est = adl.get_estimator('star-galaxy')
    >>> est.output_names
    ('p_star', 'p_galaxy')
    """

    name = 'star-galaxy'
    version = '1.0'
    description = ('Star/galaxy separation from 1-3 bands (g, r, i) with '
                   'calibrated MC-dropout probabilities (Kim & Brunner 2016)')
    default_preset = 'star-galaxy'
    classes = STAR_GALAXY_CLASSES
    ranges = STAR_GALAXY_RANGES

    def __init__(self, stamp_size=32, widths=(16, 32, 64), dense=128,
                 dropout=0.25, scaling='hybrid'):
        super().__init__(stamp_size=stamp_size, widths=widths, dense=dense,
                         dropout=dropout, scaling=scaling)
