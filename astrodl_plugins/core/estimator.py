# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The estimator base class shared by every model (work in progress)."""

__all__ = ['Estimator']


class Estimator:
    """
    Base class of every astrodl_plugins estimator.

    Class attributes read by the plugin registry:

    * ``name``: registry name, short kebab-case noun (``'galaxy-structure'``).
    * ``task``: what it does (``'regression'``, ``'classification'``, ...).
    * ``version``: the estimator's version string.
    * ``description``: one line for `~astrodl_plugins.list_estimators`.
    * ``default_preset``: preset loaded by `~astrodl_plugins.get_estimator`
      (`None`: the estimator is built with its default parameters).
    """

    name = None
    task = None
    version = None
    description = ''
    default_preset = None

    @classmethod
    def from_preset(cls, preset):
        raise NotImplementedError
