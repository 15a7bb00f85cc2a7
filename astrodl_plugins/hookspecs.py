# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Hook specifications of the astrodl_plugins plugin system.

A plugin is a module (or any object) whose functions are decorated with
`astrodl_plugins.hookimpl` and named after the hooks below. External
plugins are advertised through the ``astrodl_plugins`` entry-point group;
see :doc:`/plugins`.
"""

import pluggy

__all__ = ['hookspec', 'astrodl_register_estimators',
           'astrodl_register_presets']

#: Marker for the hook specifications of the ``astrodl_plugins`` project.
hookspec = pluggy.HookspecMarker('astrodl_plugins')


@hookspec
def astrodl_register_estimators():
    """
    Return the estimator classes provided by this plugin.

    Every plugin must implement this hook. It is called once per session,
    the first time the registry is queried (for instance by
    `~astrodl_plugins.list_estimators` or `~astrodl_plugins.get_estimator`).

    Returns
    -------
    estimators : list of type
        Subclasses of one of the input families of `astrodl_plugins.core`
        (`~astrodl_plugins.core.SourceStampEstimator`,
        `~astrodl_plugins.core.ImageToImageEstimator`,
        `~astrodl_plugins.core.SeriesEstimator`). Each class must set
        the class attribute ``name`` to a non-empty `str`, the name under
        which `~astrodl_plugins.get_estimator` finds it; it should also set
        ``task``, ``version`` and ``description``, which are shown by
        `~astrodl_plugins.list_estimators`.

    Notes
    -----
    A class that is not a ``BaseEstimator`` subclass or has no name, a name
    that is already taken, or an exception raised by this hook is reported
    with a `~astrodl_plugins.exceptions.PluginWarning` and skipped; the
    estimators of the other plugins stay available. Built-in estimators are
    registered first and therefore win over a plugin that reuses their
    names. The classes are never modified by the registry.
    """


@hookspec
def astrodl_register_presets():
    """
    Return the presets (saved estimators) shipped by this plugin.

    This hook is optional; implement it when the plugin distributes trained
    weights, for instance as package data.

    Returns
    -------
    presets : dict
        Mapping of preset name (`str`) to the directory (`str` or
        path-like) that holds the saved estimator. Preset names are shared
        by all plugins, so prefix them with the estimator name
        (``'hello-peak-default'``). The directories are not checked when
        they are registered, only when a preset is loaded.

    Notes
    -----
    A preset name returned by two plugins is reported with a
    `~astrodl_plugins.exceptions.PluginWarning` and the first registration
    is kept; a hook that raises or returns something other than a mapping
    is reported the same way and ignored.
    """
