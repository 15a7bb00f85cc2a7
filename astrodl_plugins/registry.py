# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The estimator registry: built-in and external plugins.

Plugins implement the hooks of `astrodl_plugins.hookspecs`. The built-in
plugin modules listed in `BUILTIN_PLUGINS` are registered first; external
plugins are then loaded from the ``astrodl_plugins`` entry-point group,
unless the environment variable ``ASTRODL_PLUGINS_DISABLE_EXTERNAL`` is set
to ``1``, ``true`` or ``yes``. A broken external plugin only produces a
`~astrodl_plugins.exceptions.PluginWarning`; a broken built-in plugin is an
error.

The plugin manager is created the first time it is needed; the hooks are
called on the first query and their results are cached until a plugin is
registered or unregistered through `get_plugin_manager`.
"""

import importlib
import importlib.metadata
import os
import threading
import warnings
from collections import namedtuple
from collections.abc import Iterable, Mapping
from pathlib import Path

import pluggy

from . import hookspecs
from .core import store
from .exceptions import PluginWarning

__all__ = ['hookimpl', 'BUILTIN_PLUGINS', 'ENTRY_POINT_GROUP',
           'DISABLE_EXTERNAL_ENV', 'get_plugin_manager', 'list_estimators',
           'get_estimator', 'get_estimator_class', 'estimator_names',
           'get_preset_directory']

#: Marker for hook implementations of the ``astrodl_plugins`` project.
hookimpl = pluggy.HookimplMarker('astrodl_plugins')

#: Modules of the built-in plugins, registered before any external plugin.
BUILTIN_PLUGINS = ('astrodl_plugins.structure._plugin',
                   'astrodl_plugins.classification._plugin',
                   'astrodl_plugins.deblending._plugin',
                   'astrodl_plugins.lenses._plugin',
                   'astrodl_plugins.transits._plugin',
                   'astrodl_plugins.specz._plugin')

#: Entry-point group under which distributions advertise their plugins.
ENTRY_POINT_GROUP = 'astrodl_plugins'

#: Environment variable that, when true, skips the external plugins.
DISABLE_EXTERNAL_ENV = 'ASTRODL_PLUGINS_DISABLE_EXTERNAL'

_PROJECT_NAME = 'astrodl_plugins'
_TRUE_VALUES = frozenset({'1', 'true', 'yes'})
_COLUMNS = ('name', 'task', 'plugin', 'version', 'description')

# Where a plugin comes from: distribution name and version (None when
# unknown, e.g. a plugin registered by hand) and whether it is built in.
_PluginInfo = namedtuple('_PluginInfo', ['distribution', 'version', 'builtin'])
# One registered estimator and its row of list_estimators (read once,
# where a failure is isolated); the class itself is never modified.
_EstimatorRecord = namedtuple('_EstimatorRecord', ['cls', 'plugin', 'row'])
_PresetRecord = namedtuple('_PresetRecord', ['path', 'plugin'])

_lock = threading.RLock()
_state = None


class _State:
    """The plugin manager, where its plugins come from, and hook results."""

    def __init__(self, manager, plugin_info):
        self.manager = manager
        self.plugin_info = plugin_info
        self.cache = {}


def _external_disabled():
    value = os.environ.get(DISABLE_EXTERNAL_ENV, '')
    return value.strip().lower() in _TRUE_VALUES


def _package_version():
    from . import __version__
    return __version__


def _describe(state, plugin_name):
    """Human-readable plugin name for warnings."""
    info = state.plugin_info.get(plugin_name)
    if info is None:
        return f'plugin {plugin_name!r}'
    if info.builtin:
        return f'built-in plugin {plugin_name!r}'
    return (f'plugin {plugin_name!r} from distribution {info.distribution!r}'
            f' {info.version}')


def _check_estimator_hook(manager, plugin_name, plugin, description):
    impls = manager.hook.astrodl_register_estimators.get_hookimpls()
    if not any(impl.plugin is plugin for impl in impls):
        msg = (f'{description} does not implement the required hook '
               f'astrodl_register_estimators; it provides no estimators.')
        warnings.warn(msg, PluginWarning)


def _register_builtins(manager, plugin_info):
    version = _package_version()
    for module_name in BUILTIN_PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            msg = (f'Built-in plugin module {module_name!r} failed to '
                   f'import: {exc!r}')
            raise ImportError(msg) from exc
        manager.register(module, name=module_name)
        plugin_info[module_name] = _PluginInfo(_PROJECT_NAME, version, True)
    # Unknown hook names in a built-in plugin are bugs: raise.
    manager.check_pending()


def _sorted_entry_points():
    def key(entry_point):
        dist = entry_point.dist
        return ('' if dist is None else dist.name.lower(), entry_point.name)

    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return sorted(entry_points, key=key)


def _register_external(manager, plugin_info):
    for entry_point in _sorted_entry_points():
        name = entry_point.name
        dist = entry_point.dist
        dist_name = '<unknown>' if dist is None else dist.name
        dist_version = None if dist is None else dist.version
        description = (f'External plugin {name!r} from distribution '
                       f'{dist_name!r}')
        try:
            plugin = entry_point.load()
        except Exception as exc:
            msg = f'{description} failed to load: {exc!r}'
            warnings.warn(msg, PluginWarning)
            continue
        if manager.has_plugin(name):
            other = plugin_info.get(name)
            other_dist = '<unknown>' if other is None else other.distribution
            msg = (f'{description} was not registered: the plugin name '
                   f'{name!r} is already used by distribution '
                   f'{other_dist!r}.')
            warnings.warn(msg, PluginWarning)
            continue
        if manager.is_registered(plugin):
            msg = (f'{description} was not registered: the same object is '
                   f'already registered as plugin '
                   f'{manager.get_name(plugin)!r}.')
            warnings.warn(msg, PluginWarning)
            continue
        try:
            registered = manager.register(plugin, name=name)
        except Exception as exc:
            msg = f'{description} could not be registered: {exc!r}'
            warnings.warn(msg, PluginWarning)
            continue
        if registered is None:  # blocked
            continue
        plugin_info[name] = _PluginInfo(dist_name, dist_version, False)
        _check_estimator_hook(manager, name, plugin, description)


def _get_state():
    global _state
    with _lock:
        if _state is None:
            manager = pluggy.PluginManager(_PROJECT_NAME)
            manager.add_hookspecs(hookspecs)
            plugin_info = {}
            _register_builtins(manager, plugin_info)
            if not _external_disabled():
                _register_external(manager, plugin_info)
            _state = _State(manager, plugin_info)
        return _state


def get_plugin_manager():
    """
    Return the plugin manager, creating it on first use.

    Creating it imports the built-in plugins and, unless
    ``ASTRODL_PLUGINS_DISABLE_EXTERNAL`` is true, loads the external plugins
    of the ``astrodl_plugins`` entry-point group.

    Returns
    -------
    manager : `pluggy.PluginManager`
        The manager of the ``astrodl_plugins`` project. Plugins registered
        on it later (``get_plugin_manager().register(module)``) are taken
        into account by the next registry query.

    Raises
    ------
    ImportError
        If a built-in plugin module cannot be imported.
    """
    return _get_state().manager


def _reset_registry():
    """
    Forget the plugin manager and its cached results (for tests).

    The next query re-reads the environment and the installed distributions.
    """
    global _state
    with _lock:
        _state = None


class _Refused(Exception):
    """A hook returned something of the wrong type (message: the warning)."""


def _call_each(state, hook_name, consume):
    """
    Call every implementation of a hook separately, inside its own guard.

    Yields ``(plugin_name, result)`` in registration order (built-in plugins
    first), where ``result`` is ``consume(returned)``: the hook's return
    value is read (e.g. a generator run to its end) inside the guard, so
    that an implementation that raises, returns the wrong type or returns
    an iterable that fails while it is read is reported with a
    `~astrodl_plugins.exceptions.PluginWarning` naming the plugin and
    skipped, and the other plugins stay available.
    """
    caller = getattr(state.manager.hook, hook_name)
    order = {name: index for index, (name, _)
             in enumerate(state.manager.list_name_plugin())}
    impls = [impl for impl in caller.get_hookimpls()
             if not (impl.wrapper or impl.hookwrapper)]
    impls.sort(key=lambda impl: order.get(impl.plugin_name, len(order)))
    for impl in impls:
        description = _describe(state, impl.plugin_name)
        try:
            result = consume(impl.function(), description, hook_name)
        except _Refused as exc:
            warnings.warn(str(exc), PluginWarning)
            continue
        except Exception as exc:
            msg = (f'{description} raised an exception in {hook_name}; it is '
                   f'ignored: {exc!r}')
            warnings.warn(msg, PluginWarning)
            continue
        yield impl.plugin_name, result


def _short(value):
    """``repr(value)`` for a warning: at most 200 characters, never raises."""
    try:
        text = repr(value)
    except Exception:
        text = f'<{type(value).__name__} object with a failing repr>'
    return text if len(text) <= 200 else text[:200] + '...'


def _consume_list(result, description, hook_name):
    if (isinstance(result, (str, bytes, Mapping))
            or not isinstance(result, Iterable)):
        msg = (f'{description} returned {_short(result)} from {hook_name} '
               f'instead of a list of estimator classes; it is ignored.')
        raise _Refused(msg)
    return list(result)


def _consume_mapping(result, description, hook_name):
    if not isinstance(result, Mapping):
        msg = (f'{description} returned {_short(result)} from {hook_name} '
               f'instead of a dict; it is ignored.')
        raise _Refused(msg)
    return list(result.items())


def _cached(state, hook_name, collect):
    # The results depend on the registered plugins only.
    key = tuple((name, id(plugin))
                for name, plugin in state.manager.list_name_plugin())
    cached = state.cache.get(hook_name)
    if cached is None or cached[0] != key:
        cached = (key, collect(state))
        state.cache[hook_name] = cached
    return cached[1]


def _estimator_record(state, plugin_name, cls, description):
    """The record of one registered class, or `None` (with a warning)."""
    from .core.base import BaseEstimator

    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        msg = (f'{description} registered {_short(cls)}, which is not a '
               f'subclass of astrodl_plugins.core.BaseEstimator; it is '
               f'ignored.')
        warnings.warn(msg, PluginWarning)
        return None
    name = cls.name
    if not isinstance(name, str) or not name.strip():
        msg = (f'{description} registered estimator class '
               f'{cls.__qualname__!r} with name {_short(name)}; a '
               f'non-empty str is required, so it is ignored.')
        warnings.warn(msg, PluginWarning)
        return None
    info = state.plugin_info.get(plugin_name)
    version = cls.version
    if version is None:
        version = None if info is None else info.version
    # Read now, inside the guard: list_estimators cannot fail later.
    row = (name, _text(cls.task), plugin_name, _text(version),
           _text(cls.description))
    return _EstimatorRecord(cls, plugin_name, row)


def _collect_estimators(state):
    records = {}
    for plugin_name, result in _call_each(state, 'astrodl_register_estimators',
                                          _consume_list):
        description = _describe(state, plugin_name)
        for cls in result:
            try:
                record = _estimator_record(state, plugin_name, cls,
                                           description)
            except Exception as exc:
                msg = (f'{description} registered {_short(cls)}, whose '
                       f'attributes cannot be read; it is ignored: {exc!r}')
                warnings.warn(msg, PluginWarning)
                continue
            if record is None:
                continue
            name = record.row[0]
            first = records.get(name)
            if first is not None:
                if first.cls is not cls:
                    msg = (f'Estimator name {name!r} is registered by '
                           f'{_describe(state, first.plugin)} and by '
                           f'{description}; keeping the one from '
                           f'{first.plugin!r}.')
                    warnings.warn(msg, PluginWarning)
                continue
            records[name] = record
    return records


def _collect_presets(state):
    records = {}
    for plugin_name, result in _call_each(state, 'astrodl_register_presets',
                                          _consume_mapping):
        description = _describe(state, plugin_name)
        for preset, directory in result:
            path = None
            if (isinstance(preset, str) and preset.strip()
                    and isinstance(directory, (str, os.PathLike))):
                try:
                    path = Path(directory)
                except Exception:  # a path-like whose __fspath__ fails
                    path = None
            if path is None:
                msg = (f'{description} registered preset {_short(preset)} '
                       f'with directory {_short(directory)}; a non-empty str '
                       f'name and a str or path-like directory are required, '
                       f'so it is ignored.')
                warnings.warn(msg, PluginWarning)
                continue
            first = records.get(preset)
            if first is not None:
                if first.path != path:
                    msg = (f'Preset name {preset!r} is registered by '
                           f'{_describe(state, first.plugin)} and by '
                           f'{description}; keeping the one from '
                           f'{first.plugin!r}.')
                    warnings.warn(msg, PluginWarning)
                continue
            records[preset] = _PresetRecord(path, plugin_name)
    return records


def _estimator_records():
    with _lock:
        state = _get_state()
        return _cached(state, 'astrodl_register_estimators',
                       _collect_estimators)


def _text(value):
    return '' if value is None else str(value)


def list_estimators():
    """
    List the registered estimators.

    Returns
    -------
    table : `~astropy.table.Table`
        One row per estimator, sorted by name, with the str columns
        ``name``, ``task``, ``plugin`` (the plugin that registered it),
        ``version`` (the estimator's ``version``, or the version of the
        distribution that provides it when the class sets none) and
        ``description``.

    Warns
    -----
    astrodl_plugins.exceptions.PluginWarning
        On the first query, for every plugin that failed to load or
        registered something invalid or a name that is already taken.
    """
    from astropy.table import Table

    records = _estimator_records()
    rows = [records[name].row for name in sorted(records)]
    return Table(rows=rows, names=_COLUMNS, dtype=[str] * len(_COLUMNS))


def estimator_names():
    """
    Names of the registered estimators, sorted (no network is loaded).

    Returns
    -------
    names : list of str
    """
    return sorted(_estimator_records())


def get_estimator_class(name):
    """
    The registered class of an estimator, without loading its networks.

    Parameters
    ----------
    name : str
        Registry name of the estimator (see `list_estimators`).

    Returns
    -------
    cls : type

    Raises
    ------
    ValueError
        ``name`` is not registered (the message lists the names that are).
    """
    records = _estimator_records()
    if name not in records:
        available = ', '.join(repr(known) for known in sorted(records))
        msg = f'Unknown estimator {name!r}. Available estimators: {available}.'
        raise ValueError(msg)
    return records[name].cls


def get_estimator(name, *, preset=None, **kwargs):
    """
    Create a registered estimator.

    Parameters
    ----------
    name : str
        Registry name of the estimator (see `list_estimators`).
    preset : str or path-like, optional
        Load this preset (a registered preset name or a directory written
        by ``save``, e.g. a fine-tuned model) instead of the default one.
    **kwargs
        Passed to the estimator's constructor (an untrained estimator).
        Without keywords the estimator is loaded from its
        ``default_preset`` if it has one, and built with its default
        parameters otherwise.

    Returns
    -------
    estimator : `~astrodl_plugins.core.BaseEstimator`

    Raises
    ------
    TypeError
        If ``name`` is not a str.
    ValueError
        If no estimator is registered under ``name``; the message lists the
        available names.
    """
    if not isinstance(name, str):
        msg = (f'name must be a str, got {name!r} of type '
               f'{type(name).__name__}.')
        raise TypeError(msg)
    records = _estimator_records()
    record = records.get(name)
    if record is None:
        if records:
            available = ', '.join(repr(known) for known in sorted(records))
            msg = (f'Unknown estimator {name!r}. Available estimators: '
                   f'{available}.')
        else:
            msg = f'Unknown estimator {name!r}. No estimators are registered.'
        if _external_disabled():
            msg += (f' External plugins are disabled by '
                    f'{DISABLE_EXTERNAL_ENV}.')
        raise ValueError(msg)
    cls = record.cls
    if preset is not None:
        if kwargs:
            msg = ('give either preset= or constructor keywords, not both: '
                   'a preset holds its own parameters')
            raise TypeError(msg)
        return cls.from_preset(preset)
    if kwargs:
        return cls(**kwargs)
    if cls.default_preset:
        return cls.from_preset(cls.default_preset)
    return cls()


def get_preset_directory(name):
    """
    Return the directory of a preset registered by a plugin.

    Parameters
    ----------
    name : str
        Preset name, as returned by an ``astrodl_register_presets`` hook.

    Returns
    -------
    directory : `~pathlib.Path` or None
        The directory holding the saved estimator, or `None` if no plugin
        registered ``name``.

    Raises
    ------
    TypeError
        If ``name`` is not a str.
    """
    if not isinstance(name, str):
        msg = (f'name must be a str, got {name!r} of type '
               f'{type(name).__name__}.')
        raise TypeError(msg)
    with _lock:
        state = _get_state()
        records = _cached(state, 'astrodl_register_presets', _collect_presets)
    record = records.get(name)
    return None if record is None else record.path


# The model store finds plugin presets through the registry, without
# importing it (the core does not depend on the registry).
store.register_preset_finder(get_preset_directory)


def _registered_classes():
    return [record.cls for record in _estimator_records().values()]


# ``from_preset`` resolves the class of a config among these, never by
# importing the module the config names.
store.register_estimator_finder(_registered_classes)
