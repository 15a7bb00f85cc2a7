# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Reliability of the model store: preset names versus paths, shipped presets
verified against the digests kept in the code, no import on behalf of a
config, clear errors for damaged files, atomic saves.
"""

import json
import sys
import warnings
import zipfile
from pathlib import Path

import keras
import pytest

from astrodl_plugins.core import store
from astrodl_plugins.core._preset_hashes import PRESET_SHA256
from astrodl_plugins.core.base import BaseEstimator
from astrodl_plugins.core.store import (
    ModelFileError,
    UnverifiedPresetWarning,
    load_keras_model,
    write_saved,
)
from astrodl_plugins.core.tests.tiny import (
    TinyStamp,
    blob_stamps,
    copy_saved,
    make_tiny_stamp,
)
from astrodl_plugins.exceptions import AstrodlUserWarning, ModelIntegrityError
from astrodl_plugins.structure.estimator import GalaxyStructure

UNVERIFIED = pytest.mark.filterwarnings(
    'ignore::astrodl_plugins.core.store.UnverifiedPresetWarning')
PREDICT = dict(n_samples=4, seed=1, psf_fwhm=3.0)


@pytest.fixture(scope='module')
def estimator():
    return make_tiny_stamp(dense=8)


@pytest.fixture(scope='module')
def saved(estimator, tmp_path_factory):
    return estimator.save(tmp_path_factory.mktemp('reliability') / 'tiny')


def rewrite_manifest(directory):
    """Recompute the manifest, as someone who replaced a file would."""
    manifest = json.loads((directory / 'manifest.json').read_text())
    manifest['sha256'] = {name: store.sha256(directory / name)
                          for name in manifest['sha256']}
    (directory / 'manifest.json').write_text(json.dumps(manifest))


@pytest.fixture
def shipped(saved, tmp_path, monkeypatch):
    """A fake shipped preset 'tiny-shipped' in a fake models directory."""
    models = (tmp_path / 'models').resolve()
    models.mkdir()
    directory = models / 'tiny-shipped'
    directory.mkdir()
    for path in saved.iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(store, 'MODELS_DIR', models)
    monkeypatch.setattr(store, 'PRESET_SHA256',
                        {'tiny-shipped': store.preset_hashes(models)[
                            'tiny-shipped']})
    return directory


def no_warnings(function, *args):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        result = function(*args)
    assert [str(w.message) for w in record] == []
    return result


class TestNamesAndPaths:
    """Issue: an empty folder or a saved model shadowed a shipped preset."""

    def test_empty_folder_does_not_shadow(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        (tmp_path / 'galaxy-structure').mkdir()
        saved = store.read_preset('galaxy-structure')
        assert saved.directory == store.MODELS_DIR / 'galaxy-structure'
        assert saved.meta == {
            'preset': 'galaxy-structure',
            'preset_path': str(store.MODELS_DIR / 'galaxy-structure'),
            'preset_source': 'shipped', 'preset_verified': True}

    def test_saved_model_does_not_shadow(self, saved, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        copy_saved(saved, tmp_path).rename(tmp_path / 'galaxy-structure')
        shipped = store.MODELS_DIR / 'galaxy-structure'
        assert store.find_preset('galaxy-structure') == shipped
        local = tmp_path / 'galaxy-structure'
        assert store.find_preset('./galaxy-structure') == Path(
            './galaxy-structure')
        assert store.find_preset(Path('galaxy-structure')).resolve() == local
        location = store.locate_preset('./galaxy-structure')
        assert (location.name, location.source) == (None, 'directory')

    def test_loads_the_shipped_preset(self, saved, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        copy_saved(saved, tmp_path).rename(tmp_path / 'galaxy-structure')
        loaded = no_warnings(GalaxyStructure.from_preset, 'galaxy-structure')
        assert type(loaded) is GalaxyStructure
        assert loaded.preset_info_['preset_source'] == 'shipped'
        assert loaded.preset_info_['preset_verified'] is True
        with pytest.warns(UnverifiedPresetWarning, match='galaxy-structure'):
            local = TinyStamp.from_preset('./galaxy-structure')
        assert type(local) is TinyStamp

    def test_unknown_name_hints_at_local_directory(self, tmp_path,
                                                   monkeypatch):
        monkeypatch.chdir(tmp_path)
        (tmp_path / 'my-model').mkdir()
        with pytest.raises(ValueError, match=r"preset 'my-model' is neither.*"
                                             r"pass '\./my-model'"):
            store.find_preset('my-model')

    def test_shipped_directory_given_as_path_is_verified(self):
        directory = store.MODELS_DIR / 'star-galaxy'
        meta = store.read_preset(directory).meta
        assert meta['preset'] == 'star-galaxy'
        assert meta['preset_source'] == 'shipped'
        assert meta['preset_verified'] is True


class TestShippedHashes:
    """The digests of the shipped presets are kept in the code."""

    def test_hash_module_matches_shipped_files(self):
        assert store.preset_hashes() == PRESET_SHA256
        assert sorted(PRESET_SHA256) == sorted(
            p.parent.name for p in store.MODELS_DIR.glob('*/manifest.json'))

    def test_regenerated_module_is_identical(self, tmp_path):
        target = tmp_path / '_preset_hashes.py'
        hashes = store.update_preset_hashes(path=target)
        assert hashes == PRESET_SHA256
        module = Path(store.__file__).with_name('_preset_hashes.py')
        assert target.read_text() == module.read_text()
        namespace = {}
        exec(target.read_text(), namespace)
        assert namespace['PRESET_SHA256'] == PRESET_SHA256

    def test_verified_shipped_preset(self, shipped):
        estimator = no_warnings(TinyStamp.from_preset, 'tiny-shipped')
        table = estimator.predict_stamps(blob_stamps(2)[0], **PREDICT)
        assert table.meta['preset'] == 'tiny-shipped'
        assert table.meta['preset_path'] == str(shipped)
        assert table.meta['preset_source'] == 'shipped'
        assert table.meta['preset_verified'] is True

    @pytest.mark.parametrize('name', ['model.keras', 'config.json'])
    def test_replaced_file_with_recomputed_manifest(self, shipped, name):
        content = bytearray((shipped / name).read_bytes())
        content[len(content) // 2] ^= 0x01
        (shipped / name).write_bytes(bytes(content))
        rewrite_manifest(shipped)
        with pytest.raises(ModelIntegrityError,
                           match=rf"{name}' of a shipped preset does not "
                                 r'match the sha256 recorded in the package'):
            TinyStamp.from_preset('tiny-shipped')

    def test_extra_file_in_manifest(self, shipped):
        manifest = json.loads((shipped / 'manifest.json').read_text())
        (shipped / 'other.keras').write_bytes(
            (shipped / 'model.keras').read_bytes())
        manifest['extra_models'] = ['other.keras']
        manifest['sha256']['other.keras'] = store.sha256(
            shipped / 'other.keras')
        (shipped / 'manifest.json').write_text(json.dumps(manifest))
        with pytest.raises(ModelIntegrityError,
                           match=r"manifest.json' lists .*other\.keras.*"
                                 r'recorded'):
            store.read_preset('tiny-shipped')

    def test_shipped_without_record_warns(self, shipped, monkeypatch):
        monkeypatch.setattr(store, 'PRESET_SHA256', {})
        with pytest.warns(UnverifiedPresetWarning,
                          match=r"shipped preset 'tiny-shipped' has no "
                                r'sha256 recorded.*update_preset_hashes'):
            estimator = TinyStamp.from_preset('tiny-shipped')
        assert estimator.preset_info_['preset_verified'] is False


class TestUnverified:

    def test_warning_class(self):
        assert issubclass(UnverifiedPresetWarning, AstrodlUserWarning)

    def test_directory_meta_and_warning(self, saved):
        with pytest.warns(UnverifiedPresetWarning,
                          match=rf"loaded from '{saved}' is not a shipped"):
            estimator = TinyStamp.from_preset(saved)
        table = estimator.predict_stamps(blob_stamps(2)[0], **PREDICT)
        assert table.meta['preset'] is None
        assert table.meta['preset_path'] == str(saved.resolve())
        assert table.meta['preset_source'] == 'directory'
        assert table.meta['preset_verified'] is False

    def test_plugin_preset(self, saved):
        name = 'astrodl-reliability-plugin-preset'
        store.register_preset_finder(
            lambda preset: saved if preset == name else None)
        with pytest.warns(UnverifiedPresetWarning, match=repr(name)):
            estimator = TinyStamp.from_preset(name)
        assert store.preset_meta(estimator) == {
            'preset': name, 'preset_path': str(saved.resolve()),
            'preset_source': 'plugin', 'preset_verified': False}

    @UNVERIFIED
    def test_refitted_model_is_not_the_preset(self, saved):
        estimator = TinyStamp.from_preset(saved)
        assert store.preset_meta(estimator)
        estimator.model_sha256_ = None  # what fit does
        table = estimator.predict_stamps(blob_stamps(2)[0], **PREDICT)
        assert 'preset' not in table.meta
        assert 'preset_verified' not in table.meta

    def test_fresh_estimator_has_no_preset_meta(self, estimator):
        table = estimator.predict_stamps(blob_stamps(2)[0], **PREDICT)
        assert 'preset_source' not in table.meta


class TestClassResolution:
    """A config's class path never makes the package import a module."""

    def _with_class(self, saved, tmp_path, path):
        target = copy_saved(saved, tmp_path)
        config = json.loads((target / 'config.json').read_text())
        config['class'] = path
        (target / 'config.json').write_text(json.dumps(config))
        rewrite_manifest(target)
        return target

    def test_module_is_not_imported(self, saved, tmp_path, monkeypatch):
        module = 'astrodl_reliability_probe_module'
        (tmp_path / f'{module}.py').write_text(
            'raise RuntimeError("imported")\n')
        monkeypatch.syspath_prepend(str(tmp_path))
        target = self._with_class(saved, tmp_path, f'{module}.Evil')
        with pytest.raises(ValueError,
                           match=rf"cannot import estimator class "
                                 rf"'{module}\.Evil' named in '.*config\.json'"
                                 r'.*neither a registered estimator class'):
            BaseEstimator.from_preset(target)
        assert module not in sys.modules

    def test_non_estimator_class(self, saved, tmp_path):
        target = self._with_class(saved, tmp_path, 'subprocess.Popen')
        with pytest.raises(ValueError, match=r"'subprocess\.Popen'"):
            BaseEstimator.from_preset(target)

    @UNVERIFIED
    def test_defined_class_still_loads(self, saved):
        assert type(BaseEstimator.from_preset(saved)) is TinyStamp

    def test_registered_classes_are_candidates(self):
        classes = store.registered_estimators()
        assert GalaxyStructure in classes


def _damaged(saved, tmp_path, change):
    target = copy_saved(saved, tmp_path)
    change(target)
    return target


def _write(name, content, recompute=True):
    def change(target):
        data = content if isinstance(content, bytes) else content.encode()
        (target / name).write_bytes(data)
        if recompute:
            rewrite_manifest(target)
    return change


def _manifest(**entries):
    def change(target):
        manifest = json.loads((target / 'manifest.json').read_text())
        manifest.update(entries)
        (target / 'manifest.json').write_text(json.dumps(manifest))
    return change


def _remove(name):
    return lambda target: (target / name).unlink()


def _not_a_zip(target):
    _write('model.keras', b'PK but not really a zip archive')(target)


def _zip_without_config(target):
    with zipfile.ZipFile(target / 'model.keras', 'w') as archive:
        archive.writestr('metadata.json', '{}')
    rewrite_manifest(target)


def _config(text):
    return _write('config.json', text)


# (id, change of the saved copy, exception, message pattern)
DAMAGED = [
    ('manifest-not-json', _write('manifest.json', '{"sha256": ', False),
     ModelFileError, r"manifest\.json' is not a valid manifest \(not JSON"),
    ('manifest-empty', _write('manifest.json', '', False),
     ModelFileError, r"manifest\.json' is not a valid manifest"),
    ('manifest-binary', _write('manifest.json', b'\xff\xfe\x00', False),
     ModelFileError, r"manifest\.json' is not a valid manifest"),
    ('manifest-list', _write('manifest.json', '[]', False),
     ModelFileError, r"manifest\.json'.*JSON object is expected, got list"),
    ('manifest-sha256-list', _manifest(sha256=['model.keras']),
     ModelFileError, r"manifest\.json'.*\"sha256\" must map file names"),
    ('manifest-extra-traversal', _manifest(extra_models=['../other.keras']),
     ModelFileError, r"manifest\.json'.*\"extra_models\" must list"),
    ('manifest-extra-str', _manifest(extra_models='other.keras'),
     ModelFileError, r"manifest\.json'.*\"extra_models\""),
    ('manifest-missing', _remove('manifest.json'),
     ModelIntegrityError, r"has no manifest\.json"),
    ('config-not-json', _config('{"class": '),
     ModelFileError, r"config\.json' is not a valid estimator config"),
    ('config-list', _config('[1, 2]'),
     ModelFileError, r"config\.json'.*JSON object is expected"),
    ('config-no-class', _config('{"params": {}}'),
     ModelFileError, r"config\.json'.*no \"class\" string"),
    ('config-class-not-str', _config('{"class": 3}'),
     ModelFileError, r"config\.json'.*no \"class\" string, got 3"),
    ('model-zero-bytes', _write('model.keras', b''),
     ModelFileError, r"model\.keras' is empty \(0 bytes\)"),
    ('model-not-zip', _not_a_zip,
     ModelFileError, r"model\.keras' is not a \.keras zip archive"),
    ('model-zip-without-config', _zip_without_config,
     ModelFileError, r"model\.keras' cannot be loaded by Keras"),
    ('model-missing', _remove('model.keras'),
     ModelIntegrityError, r"model\.keras' is missing"),
]


@UNVERIFIED
@pytest.mark.parametrize('change, error, match',
                         [case[1:] for case in DAMAGED],
                         ids=[case[0] for case in DAMAGED])
def test_damaged_saved_estimator(saved, tmp_path, change, error, match):
    target = _damaged(saved, tmp_path, change)
    with pytest.raises(error, match=match):
        TinyStamp.from_preset(target)


# (id, preset argument (tmp_path -> value), exception, message pattern)
BAD_PRESETS = [
    ('int', lambda tmp: 3, TypeError,
     r'preset must be a str .*got 3 of type int'),
    ('bytes', lambda tmp: b'galaxy-structure', TypeError,
     r'preset must be a str'),
    ('empty', lambda tmp: ' ', ValueError, r'preset must be .*empty str'),
    ('unknown-name', lambda tmp: 'no-such-preset', ValueError,
     r"preset 'no-such-preset' is neither a directory nor a known preset"),
    ('missing-path', lambda tmp: tmp / 'nothing', FileNotFoundError,
     r"preset directory '.*nothing' does not exist"),
    ('missing-str-path', lambda tmp: f'{tmp}/nothing', FileNotFoundError,
     r"preset directory '.*nothing' does not exist"),
    ('file', lambda tmp: _touch(tmp / 'weights.keras'), NotADirectoryError,
     r"preset '.*weights\.keras' is a file"),
    ('hdf5', lambda tmp: _touch(tmp / 'weights.h5'), ValueError,
     r"'.*weights\.h5' is an HDF5 weight file"),
    ('hdf5-name', lambda tmp: 'weights.hdf5', ValueError,
     r"'weights\.hdf5' is an HDF5 weight file"),
]


def _touch(path):
    path.write_bytes(b'x')
    return path


@pytest.mark.parametrize('make, error, match',
                         [case[1:] for case in BAD_PRESETS],
                         ids=[case[0] for case in BAD_PRESETS])
def test_bad_preset_argument(tmp_path, make, error, match):
    with pytest.raises(error, match=match):
        TinyStamp.from_preset(make(tmp_path))


class TestLoadKerasModel:

    def test_missing(self, tmp_path):
        with pytest.raises(FileNotFoundError,
                           match=r"model file '.*absent\.keras' does not "
                                 r'exist'):
            load_keras_model(tmp_path / 'absent.keras')

    def test_unregistered_layer(self, tmp_path):
        @keras.saving.register_keras_serializable(package='astrodl_test')
        class Doubler(keras.layers.Layer):
            def call(self, inputs):
                return 2 * inputs

        inputs = keras.Input((3,))
        model = keras.Model(inputs, Doubler(name='doubling')(inputs))
        path = tmp_path / 'custom.keras'
        model.save(path)
        keras.saving.get_custom_objects().pop('astrodl_test>Doubler')
        with pytest.raises(ModelFileError,
                           match=r"'.*custom\.keras' uses the layer class "
                                 r"'Doubler' \(layer 'doubling'\), which is "
                                 r'not registered with Keras'):
            load_keras_model(path)

    def test_is_value_error(self):
        assert issubclass(ModelFileError, ModelIntegrityError)
        assert issubclass(ModelFileError, ValueError)


class _FailingModel:
    """Writes part of a file, then fails, like a full disk."""

    def save(self, path):
        Path(path).write_bytes(b'PK partial')
        raise OSError('No space left on device')


class TestAtomicWrite:

    def _leftovers(self, parent):
        return sorted(p.name for p in parent.iterdir()
                      if '.partial-' in p.name or '.old-' in p.name)

    def test_failure_leaves_nothing(self, tmp_path):
        with pytest.raises(OSError, match='No space left'):
            write_saved(tmp_path / 'new', _FailingModel(), {'class': 'x'})
        assert sorted(p.name for p in tmp_path.iterdir()) == []

    def test_failure_keeps_old_estimator(self, saved, estimator, tmp_path):
        target = copy_saved(saved, tmp_path)
        before = {p.name: p.read_bytes() for p in target.iterdir()}
        with pytest.raises(TypeError, match='not JSON serializable'):
            write_saved(target, estimator.model_, {'class': object()},
                        overwrite=True)
        with pytest.raises(OSError, match='No space left'):
            write_saved(target, _FailingModel(), {}, overwrite=True)
        assert {p.name: p.read_bytes() for p in target.iterdir()} == before
        assert self._leftovers(tmp_path) == []

    def test_failed_rename_restores_old(self, saved, estimator, tmp_path,
                                        monkeypatch):
        target = copy_saved(saved, tmp_path)
        before = {p.name: p.read_bytes() for p in target.iterdir()}
        rename = Path.rename
        calls = []

        def failing_rename(self, other):
            calls.append(Path(other).name)
            if len(calls) == 2:
                raise PermissionError('rename refused')
            return rename(self, other)

        monkeypatch.setattr(Path, 'rename', failing_rename)
        with pytest.raises(PermissionError, match='rename refused'):
            estimator.save(target, overwrite=True)
        monkeypatch.undo()
        assert {p.name: p.read_bytes() for p in target.iterdir()} == before
        assert self._leftovers(tmp_path) == []

    @UNVERIFIED
    def test_overwrite_keeps_figures_drops_stale_networks(self, saved,
                                                          estimator,
                                                          tmp_path):
        target = copy_saved(saved, tmp_path)
        (target / 'history.png').write_bytes(b'figure')
        (target / 'stale.keras').write_bytes(b'old network')
        estimator.save(target, overwrite=True)
        assert sorted(p.name for p in target.iterdir()) == [
            'config.json', 'history.png', 'manifest.json', 'model.keras']
        assert (target / 'history.png').read_bytes() == b'figure'
        assert type(TinyStamp.from_preset(target)) is TinyStamp
        assert self._leftovers(tmp_path) == []

    def test_save_into_file_refused(self, estimator, tmp_path):
        path = _touch(tmp_path / 'model')
        with pytest.raises(NotADirectoryError,
                           match=r"directory '.*model' is a file"):
            estimator.save(path)

    def test_relative_current_directory(self, estimator, tmp_path,
                                        monkeypatch):
        monkeypatch.chdir(tmp_path)
        (tmp_path / 'run').mkdir()
        monkeypatch.chdir(tmp_path / 'run')
        assert estimator.save('.') == Path('.')
        assert (tmp_path / 'run' / 'manifest.json').is_file()
