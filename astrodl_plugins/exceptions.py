# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Exceptions and warnings of astrodl_plugins."""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = ['AstrodlUserWarning', 'PluginWarning', 'ModelIntegrityError',
           'DeviceNotAvailableError', 'NotFittedError']


class AstrodlUserWarning(AstropyUserWarning):
    """Base warning of astrodl_plugins."""


class PluginWarning(AstrodlUserWarning):
    """A plugin failed to load or registered a name that already exists."""


class ModelIntegrityError(ValueError):
    """A weight file does not match its sha256 manifest entry."""


class DeviceNotAvailableError(ValueError):
    """The requested device (e.g. ``'gpu'``) is not visible to the backend."""


class NotFittedError(ValueError, AttributeError):
    """The estimator has no model yet: load a preset or call ``fit``."""
