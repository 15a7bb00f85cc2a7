# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the plugin registry, with real (temporary) plugin distributions."""

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest

import astrodl_plugins
from astrodl_plugins import get_estimator, list_estimators, registry
from astrodl_plugins.exceptions import PluginWarning
from astrodl_plugins.tests import dummy_plugin
from astrodl_plugins.tests.plugin_helpers import pip_install, write_project

DUMMY = 'astrodl_plugins.tests.dummy_plugin'

# distribution -> (module, entry point, version, module source)
DISTRIBUTIONS = {
    'astrodl-good': ('astrodl_good', 'good', '0.3.1', """
        from astrodl_plugins import hookimpl
        from astrodl_plugins.core import SourceStampEstimator

        class GoodEstimator(SourceStampEstimator):
            name = 'good-estimator'
            task = 'detection'
            description = 'Registered by an external plugin.'

        @hookimpl
        def astrodl_register_estimators():
            return [GoodEstimator]

        @hookimpl
        def astrodl_register_presets():
            return {'good-default': 'good-weights'}
        """),
    'astrodl-broken': ('astrodl_broken', 'broken', '0.1', """
        import astrodl_missing_dependency_for_tests  # noqa: F401
        """),
    'astrodl-raising': ('astrodl_raising', 'raising', '0.1', """
        from astrodl_plugins import hookimpl

        @hookimpl
        def astrodl_register_estimators():
            raise RuntimeError('hook exploded')
        """),
    'astrodl-dupe': ('astrodl_dupe', 'dupe', '0.1', """
        from astrodl_plugins import hookimpl
        from astrodl_plugins.core import SourceStampEstimator

        class Impostor(SourceStampEstimator):
            name = 'dummy-constant'

        @hookimpl
        def astrodl_register_estimators():
            return [Impostor]

        @hookimpl
        def astrodl_register_presets():
            return {'dummy-default': 'impostor-weights'}
        """),
    'astrodl-invalid': ('astrodl_invalid', 'invalid', '0.1', """
        from astrodl_plugins import hookimpl
        from astrodl_plugins.core import SourceStampEstimator

        class NotAnEstimator:
            name = 'not-an-estimator'

        class Nameless(SourceStampEstimator):
            pass

        class Valid(SourceStampEstimator):
            name = 'invalid-but-valid'

        @hookimpl
        def astrodl_register_estimators():
            return [NotAnEstimator, Nameless, Valid]
        """),
    'astrodl-nohook': ('astrodl_nohook', 'nohook', '0.1', """
        from astrodl_plugins import hookimpl

        @hookimpl
        def astrodl_register_presets():
            return {}
        """),
}
PLUGIN_MODULES = [module for module, *_ in DISTRIBUTIONS.values()]


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Dummy built-in plugin, no external-plugin switch, fresh registry."""
    monkeypatch.setattr(registry, 'BUILTIN_PLUGINS', (DUMMY,))
    monkeypatch.delenv(registry.DISABLE_EXTERNAL_ENV, raising=False)
    registry._reset_registry()
    yield
    registry._reset_registry()
    for module in PLUGIN_MODULES:
        sys.modules.pop(module, None)


@pytest.fixture(scope='module')
def installed_site(tmp_path_factory):
    """Install all test distributions with a single pip run."""
    root = tmp_path_factory.mktemp('plugin-projects')
    projects = [write_project(root, dist, module, source, entry_point,
                              version=version)
                for dist, (module, entry_point, version, source)
                in DISTRIBUTIONS.items()]
    site = root / 'site'
    pip_install(projects, site)
    return site


@pytest.fixture
def use_distributions(installed_site, tmp_path, monkeypatch):
    """
    Make only some of the installed distributions visible.

    Copies their modules and ``.dist-info`` metadata into a fresh directory
    that is put in front of ``sys.path``.
    """
    def use(*distributions):
        site = tmp_path / 'site'
        site.mkdir()
        for dist in distributions:
            module = DISTRIBUTIONS[dist][0]
            shutil.copy(installed_site / f'{module}.py', site)
            for info in installed_site.glob(f'{module}-*.dist-info'):
                shutil.copytree(info, site / info.name)
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        registry._reset_registry()
        return site

    return use


class TestListEstimators:

    def test_columns_and_rows(self):
        table = list_estimators()
        assert table.colnames == ['name', 'task', 'plugin', 'version',
                                  'description']
        assert list(table['name']) == ['dummy-constant', 'dummy-preset']
        row = table[0]
        assert row['task'] == 'regression'
        assert row['plugin'] == DUMMY
        assert row['version'] == '1.0'
        assert row['description'] == 'Always predicts the same value.'

    def test_missing_attributes_are_empty_or_distribution_version(self):
        row = list_estimators()[1]
        # version None: the version of the providing distribution is used.
        assert row['version'] == astrodl_plugins.__version__
        assert row['description'] == ''

    def test_empty_registry(self, monkeypatch):
        monkeypatch.setattr(registry, 'BUILTIN_PLUGINS', ())
        monkeypatch.setenv(registry.DISABLE_EXTERNAL_ENV, '1')
        table = list_estimators()
        assert len(table) == 0
        assert table.colnames == ['name', 'task', 'plugin', 'version',
                                  'description']


class TestGetEstimator:

    def test_default_parameters(self):
        estimator = get_estimator('dummy-constant')
        assert isinstance(estimator, dummy_plugin.DummyConstant)
        assert estimator.value == 0.0

    def test_keywords_go_to_constructor(self):
        assert get_estimator('dummy-constant', value=3.0).value == 3.0
        estimator = get_estimator('dummy-preset', preset='other')
        assert estimator.preset == 'other'

    def test_default_preset(self):
        assert get_estimator('dummy-preset').preset == 'dummy-default'

    def test_preset_loads_through_from_preset(self, monkeypatch):
        calls = []
        monkeypatch.setattr(dummy_plugin.DummyConstant, 'from_preset',
                            classmethod(lambda cls, preset: calls.append(
                                preset) or cls(value=7.0)))
        assert get_estimator('dummy-constant', preset='mine').value == 7.0
        assert calls == ['mine']

    def test_preset_and_keywords_refused(self):
        with pytest.raises(TypeError, match='either preset= or constructor'):
            get_estimator('dummy-constant', preset='mine', value=1.0)

    def test_unknown_name_lists_available(self):
        match = (r"Unknown estimator 'foo'\. Available estimators: "
                 r"'dummy-constant', 'dummy-preset'\.")
        with pytest.raises(ValueError, match=match):
            get_estimator('foo')

    def test_unknown_name_empty_registry(self, monkeypatch):
        monkeypatch.setattr(registry, 'BUILTIN_PLUGINS', ())
        monkeypatch.setenv(registry.DISABLE_EXTERNAL_ENV, 'yes')
        match = ("No estimators are registered. External plugins are "
                 "disabled by ASTRODL_PLUGINS_DISABLE_EXTERNAL")
        with pytest.raises(ValueError, match=match):
            get_estimator('foo')

    def test_name_must_be_str(self):
        with pytest.raises(TypeError, match='name must be a str, got 3'):
            get_estimator(3)


class TestPluginManager:

    def test_created_once(self):
        manager = registry.get_plugin_manager()
        assert isinstance(manager, pluggy.PluginManager)
        assert manager.project_name == 'astrodl_plugins'
        assert registry.get_plugin_manager() is manager
        assert manager.get_plugin(DUMMY) is dummy_plugin
        registry._reset_registry()
        assert registry.get_plugin_manager() is not manager

    def test_builtin_import_failure_is_an_error(self, monkeypatch):
        missing = 'astrodl_plugins.tests.no_such_plugin'
        monkeypatch.setattr(registry, 'BUILTIN_PLUGINS', (missing,))
        with pytest.raises(ImportError, match=f'{missing!r} failed'):
            list_estimators()

    def test_manual_registration_refreshes_cache(self):
        assert 'late' not in list_estimators()['name']

        class Late(dummy_plugin.DummyConstant):
            name = 'late'

        class LatePlugin:
            @registry.hookimpl
            def astrodl_register_estimators(self):
                return [Late]

        registry.get_plugin_manager().register(LatePlugin(), name='late')
        assert get_estimator('late').name == 'late'
        assert list_estimators()['plugin'][2] == 'late'

    def test_hook_raising_warns(self):
        class Raising:
            @registry.hookimpl
            def astrodl_register_estimators(self):
                raise KeyError('oops')

        registry.get_plugin_manager().register(Raising(), name='raising')
        with pytest.warns(PluginWarning, match="'raising' raised .*KeyError"):
            names = list_estimators()['name']
        assert list(names) == ['dummy-constant', 'dummy-preset']


class TestPresets:

    def test_registered_preset(self):
        directory = registry.get_preset_directory('dummy-default')
        assert directory == Path(dummy_plugin.PRESET_DIRECTORY)

    def test_unknown_preset(self):
        assert registry.get_preset_directory('nope') is None

    def test_name_must_be_str(self):
        with pytest.raises(TypeError, match='name must be a str'):
            registry.get_preset_directory(None)


class TestExternalPlugins:

    def test_external_estimator(self, use_distributions):
        use_distributions('astrodl-good')
        table = list_estimators()
        row = table[list(table['name']).index('good-estimator')]
        assert row['plugin'] == 'good'
        assert row['task'] == 'detection'
        assert row['version'] == '0.3.1'  # distribution version
        assert type(get_estimator('good-estimator')).__name__ == (
            'GoodEstimator')
        assert registry.get_preset_directory('good-default') == Path(
            'good-weights')

    def test_broken_entry_point_warns_and_others_load(self,
                                                      use_distributions):
        use_distributions('astrodl-good', 'astrodl-broken')
        match = (r"plugin 'broken' from distribution 'astrodl-broken' failed "
                 r"to load: ModuleNotFoundError")
        with pytest.warns(PluginWarning, match=match):
            names = list(list_estimators()['name'])
        assert 'good-estimator' in names
        assert 'dummy-constant' in names

    def test_raising_hook_warns_and_others_load(self, use_distributions):
        use_distributions('astrodl-good', 'astrodl-raising')
        match = (r"plugin 'raising' from distribution 'astrodl-raising' .*"
                 r"raised an exception in astrodl_register_estimators.*"
                 r"hook exploded")
        with pytest.warns(PluginWarning, match=match):
            names = list(list_estimators()['name'])
        assert 'good-estimator' in names

    def test_duplicate_name_warns_and_keeps_first(self, use_distributions):
        use_distributions('astrodl-dupe')
        match = (rf"Estimator name 'dummy-constant' is registered by "
                 rf"built-in plugin '{DUMMY}' and by plugin 'dupe' from "
                 rf"distribution 'astrodl-dupe'.*keeping the one from "
                 rf"'{DUMMY}'")
        with pytest.warns(PluginWarning, match=match):
            table = list_estimators()
        assert list(table['name']) == ['dummy-constant', 'dummy-preset']
        assert table['plugin'][0] == DUMMY
        assert type(get_estimator('dummy-constant')) is (
            dummy_plugin.DummyConstant)

    def test_duplicate_preset_warns_and_keeps_first(self, use_distributions):
        use_distributions('astrodl-dupe')
        match = (rf"Preset name 'dummy-default' is registered by built-in "
                 rf"plugin '{DUMMY}' and by plugin 'dupe'")
        with pytest.warns(PluginWarning, match=match):
            directory = registry.get_preset_directory('dummy-default')
        assert directory == Path(dummy_plugin.PRESET_DIRECTORY)

    def test_invalid_registrations_warn(self, use_distributions):
        use_distributions('astrodl-invalid')
        with pytest.warns(PluginWarning) as record:
            names = list(list_estimators()['name'])
        messages = [str(warning.message) for warning in record]
        assert len(messages) == 2
        assert "plugin 'invalid' from distribution 'astrodl-invalid'" in (
            messages[0])
        assert 'NotAnEstimator' in messages[0]
        assert 'not a subclass of astrodl_plugins.core.BaseEstimator' in (
            messages[0])
        assert "'Nameless' with name None" in messages[1]
        assert 'invalid-but-valid' in names
        assert 'not-an-estimator' not in names

    def test_missing_required_hook_warns(self, use_distributions):
        use_distributions('astrodl-nohook')
        match = ("plugin 'nohook' .* does not implement the required hook "
                 "astrodl_register_estimators")
        with pytest.warns(PluginWarning, match=match):
            registry.get_plugin_manager()

    @pytest.mark.parametrize('value', ['1', 'true', 'YES', ' True '])
    def test_environment_variable_disables(self, use_distributions,
                                           monkeypatch, value):
        use_distributions('astrodl-good', 'astrodl-broken')
        monkeypatch.setenv(registry.DISABLE_EXTERNAL_ENV, value)
        names = list(list_estimators()['name'])  # and no warning
        assert names == ['dummy-constant', 'dummy-preset']
        manager = registry.get_plugin_manager()
        assert manager.get_plugin('good') is None

    @pytest.mark.parametrize('value', ['0', 'false', ''])
    def test_false_environment_variable(self, use_distributions,
                                        monkeypatch, value):
        use_distributions('astrodl-good')
        monkeypatch.setenv(registry.DISABLE_EXTERNAL_ENV, value)
        assert 'good-estimator' in list_estimators()['name']


class TestPackageImport:

    def test_no_deep_learning_backend_imported(self):
        code = ('import sys, astrodl_plugins; '
                'print(sorted({"keras", "tensorflow"} & set(sys.modules)))')
        package_parent = str(Path(astrodl_plugins.__file__).parents[1])
        pythonpath = os.environ.get('PYTHONPATH')
        env = dict(os.environ, PYTHONPATH=(
            package_parent if not pythonpath
            else os.pathsep.join([package_parent, pythonpath])))
        result = subprocess.run([sys.executable, '-c', code],
                                capture_output=True, text=True, env=env,
                                timeout=120, check=True)
        assert result.stdout.strip() == '[]'

    def test_public_api(self):
        assert set(astrodl_plugins.__all__) >= {
            '__version__', 'hookimpl', 'list_estimators', 'get_estimator'}
        assert astrodl_plugins.hookimpl is registry.hookimpl
        assert isinstance(astrodl_plugins.__version__, str)
