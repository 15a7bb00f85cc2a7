# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Estimator core: the base class and the three input families, the typed
predict context, flag bits, astropy inputs, device dispatch and the model
store. Importing it does not import Keras; the MC-dropout engine
(`astrodl_plugins.core.mc`) does. The core imports nothing from the
registry, the training code or the simulators.

The names below are imported from their modules on first use (PEP 562),
so that ``import astrodl_plugins`` and a command that is refused early
(``astrodl predict`` with a missing file) stay fast.
"""

import importlib

#: Module -> the public names the core re-exports from it (its ``__all__``).
_EXPORTS = {
    'base': ('BaseEstimator', 'Draws'),
    'context': ('PredictContext',),
    'device': ('resolve_device', 'available_gpus'),
    'flags': ('SourceFlags', 'FLAG_NAMES', 'flag_descriptions'),
    'image': ('ImageToImageEstimator', 'ImageOutput', 'ImageResult',
              'pool_feature_maps'),
    'inputs': ('ImageData', 'read_image', 'read_bands', 'check_flux_unit',
               'split_mask', 'uncertainty_std'),
    'psf': ('PSF_KEYS', 'psf_given', 'psf_origin', 'resolve_psf_fwhm',
            'estimate_image_psf', 'PSFEstimate'),
    'series': ('Series', 'read_series', 'SeriesEstimator', 'QUALITY_IGNORED'),
    'sources': ('Sources', 'locate_sources', 'positions_xy', 'cut_stamps',
                'footprint_extents', 'block_image', 'sampling_factors'),
    'stamps': ('SourceStampEstimator',),
}

_MODULE_OF = {name: module for module, names in _EXPORTS.items()
              for name in names}

__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name):
    module = _MODULE_OF.get(name)
    if module is None:
        msg = f'module {__name__!r} has no attribute {name!r}'
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f'.{module}', __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
