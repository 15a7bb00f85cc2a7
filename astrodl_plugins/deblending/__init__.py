# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Deep-learning deblending that plugs into photutils segmentation.

`deblend_sources_dl` has the call shape of photutils'
`~photutils.segmentation.deblend_sources`, `SourceFinderDL` that of
`~photutils.segmentation.SourceFinder`, and the ``deblender`` estimator
(`Deblender`) adds per-source model images and fluxes with MC-dropout
uncertainties.
"""

from .estimator import Deblender, DeblendResult
from .finder import SourceFinderDL, deblend_sources_dl

__all__ = ['Deblender', 'DeblendResult', 'SourceFinderDL',
           'deblend_sources_dl']
