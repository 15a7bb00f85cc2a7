# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Reliability of the registry: a plugin whose hook result fails while it is
read is reported and skipped; the built-in estimators stay available.
"""

from collections.abc import Mapping
from pathlib import Path

import pytest

from astrodl_plugins import get_estimator, list_estimators, registry
from astrodl_plugins.cli import main
from astrodl_plugins.core import store
from astrodl_plugins.exceptions import PluginWarning
from astrodl_plugins.tests import dummy_plugin

DUMMY = 'astrodl_plugins.tests.dummy_plugin'
BUILTIN_NAMES = ['dummy-constant', 'dummy-preset']


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Dummy built-in plugin, no external plugins, fresh registry."""
    monkeypatch.setattr(registry, 'BUILTIN_PLUGINS', (DUMMY,))
    monkeypatch.setenv(registry.DISABLE_EXTERNAL_ENV, '1')
    registry._reset_registry()
    yield
    registry._reset_registry()


def _failing_generator():
    yield dummy_plugin.DummyConstant
    raise RuntimeError('generator broke')


class _FailingIterable:
    def __iter__(self):
        raise OSError('iteration broke')


class _FailingMapping(Mapping):
    def __getitem__(self, key):
        raise KeyError(key)

    def __iter__(self):
        raise RuntimeError('mapping broke')

    def __len__(self):
        return 1


class _BrokenMeta(type):
    @property
    def task(cls):
        raise AttributeError('task broke')


class _BrokenTask(dummy_plugin.DummyConstant, metaclass=_BrokenMeta):
    name = 'broken-task'


class _Unprintable:
    def __str__(self):
        raise ValueError('str broke')


class _BrokenDescription(dummy_plugin.DummyConstant):
    name = 'broken-description'
    description = _Unprintable()


class _BadRepr:
    def __repr__(self):
        raise RuntimeError('repr broke')


class _BrokenPath:
    def __fspath__(self):
        raise RuntimeError('fspath broke')


def _estimators_plugin(result):
    class Plugin:
        @registry.hookimpl
        def astrodl_register_estimators(self):
            return result() if callable(result) else result

    return Plugin()


def _presets_plugin(result):
    class Plugin:
        @registry.hookimpl
        def astrodl_register_estimators(self):
            return []

        @registry.hookimpl
        def astrodl_register_presets(self):
            return result

    return Plugin()


# (id, hook result, warning pattern); the plugin is registered as 'bad'
BAD_ESTIMATORS = [
    ('generator-fails', _failing_generator,
     r"plugin 'bad' raised an exception in astrodl_register_estimators.*"
     r'generator broke'),
    ('iterable-fails', _FailingIterable(),
     r"plugin 'bad' raised .*OSError\('iteration broke'\)"),
    ('none', None,
     r"plugin 'bad' returned None from astrodl_register_estimators instead "
     r'of a list'),
    ('str', 'dummy-constant',
     r"plugin 'bad' returned 'dummy-constant' .*instead of a list"),
    ('dict', {'x': dummy_plugin.DummyConstant},
     r"plugin 'bad' returned \{'x'.*instead of a list"),
    ('unrepresentable', _BadRepr(),
     r"plugin 'bad' returned <_BadRepr object with a failing repr> from "
     r'astrodl_register_estimators'),
    ('not-a-class', [42],
     r"plugin 'bad' registered 42, which is not a subclass"),
    ('task-raises', [_BrokenTask],
     r"plugin 'bad' registered .*_BrokenTask.*cannot be read.*task broke"),
    ('description-unprintable', [_BrokenDescription],
     r"plugin 'bad' registered .*_BrokenDescription.*cannot be read"
     r'.*str broke'),
]


@pytest.mark.parametrize('result, match', [case[1:] for case in BAD_ESTIMATORS],
                         ids=[case[0] for case in BAD_ESTIMATORS])
def test_bad_estimator_hook_is_isolated(result, match, capsys):
    registry.get_plugin_manager().register(_estimators_plugin(result),
                                           name='bad')
    with pytest.warns(PluginWarning, match=match):
        table = list_estimators()
    assert list(table['name']) == BUILTIN_NAMES
    # Cached: no second warning, and the built-ins load.
    assert isinstance(get_estimator('dummy-constant'),
                      dummy_plugin.DummyConstant)
    assert get_estimator('dummy-preset').preset == 'dummy-default'
    assert main(['list']) == 0
    assert 'dummy-constant' in capsys.readouterr().out


# (id, hook result, warning pattern)
BAD_PRESETS = [
    ('mapping-fails', _FailingMapping(),
     r"plugin 'bad' raised an exception in astrodl_register_presets.*"
     r'mapping broke'),
    ('list', ['dummy-default'],
     r"plugin 'bad' returned \['dummy-default'\] from "
     r'astrodl_register_presets instead of a dict'),
    ('path-fails', {'bad-preset': _BrokenPath()},
     r"plugin 'bad' registered preset 'bad-preset' with directory"),
    ('name-not-str', {3: 'somewhere'},
     r"plugin 'bad' registered preset 3 with directory 'somewhere'"),
]


@pytest.mark.parametrize('result, match', [case[1:] for case in BAD_PRESETS],
                         ids=[case[0] for case in BAD_PRESETS])
def test_bad_preset_hook_is_isolated(result, match):
    registry.get_plugin_manager().register(_presets_plugin(result),
                                           name='bad')
    with pytest.warns(PluginWarning, match=match):
        directory = registry.get_preset_directory('dummy-default')
    assert directory == Path(dummy_plugin.PRESET_DIRECTORY)
    assert registry.get_preset_directory('bad-preset') is None


def test_good_classes_of_a_plugin_survive_one_bad_class():
    class Good(dummy_plugin.DummyConstant):
        name = 'good-after-bad'

    plugin = _estimators_plugin([_BrokenTask, Good])
    registry.get_plugin_manager().register(plugin, name='bad')
    with pytest.warns(PluginWarning, match='task broke'):
        names = list(list_estimators()['name'])
    assert names == ['dummy-constant', 'dummy-preset', 'good-after-bad']


def test_long_results_are_shortened_in_warnings():
    result = 'x' * 1000
    registry.get_plugin_manager().register(_estimators_plugin(result),
                                           name='bad')
    with pytest.warns(PluginWarning) as record:
        list_estimators()
    assert len(str(record[0].message)) < 400


class TestEstimatorFinder:
    """``from_preset`` resolves config classes among the registered ones."""

    def test_registered_classes(self):
        classes = store.registered_estimators()
        assert dummy_plugin.DummyConstant in classes
        assert dummy_plugin.DummyPreset in classes

    def test_broken_plugin_does_not_break_the_finder(self):
        registry.get_plugin_manager().register(
            _estimators_plugin(_failing_generator), name='bad')
        with pytest.warns(PluginWarning, match='generator broke'):
            classes = store.registered_estimators()
        assert dummy_plugin.DummyConstant in classes


class TestPresetNames:
    """A plugin's preset is found by name, not in the current directory."""

    def test_plugin_preset_beats_local_directory(self, tmp_path,
                                                  monkeypatch):
        plugin_dir = tmp_path / 'plugin'
        plugin_dir.mkdir()
        (plugin_dir / 'manifest.json').write_text('{}')
        registry.get_plugin_manager().register(
            _presets_plugin({'my-preset': plugin_dir}), name='presets')
        work = tmp_path / 'work'
        (work / 'my-preset').mkdir(parents=True)
        monkeypatch.chdir(work)
        location = store.locate_preset('my-preset')
        assert location == store.PresetLocation(plugin_dir, 'my-preset',
                                                'plugin')

    def test_plugin_preset_directory_missing(self):
        registry.get_plugin_manager().register(
            _presets_plugin({'gone-preset': 'no/such/directory'}),
            name='presets')
        with pytest.raises(FileNotFoundError,
                           match=r"preset 'gone-preset' is registered by a "
                                 r"plugin with the directory "
                                 r"'no/such/directory', which does not exist"):
            store.find_preset('gone-preset')
