# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the model store: save, from_preset, sha256 manifests, safe load."""

import json

import numpy as np
import pytest

from astrodl_plugins.core import store
from astrodl_plugins.core.base import BaseEstimator
from astrodl_plugins.core.stamps import SourceStampEstimator
from astrodl_plugins.core.store import load_keras_model
from astrodl_plugins.core.tests.tiny import (
    STAMP,
    TinyStamp,
    blob_stamps,
    copy_saved,
    make_tiny_stamp,
)
from astrodl_plugins.exceptions import ModelIntegrityError, NotFittedError

# The models saved here are loaded unverified, on purpose: the warning is
# tested in test_store_reliability.py.
pytestmark = pytest.mark.filterwarnings(
    'ignore::astrodl_plugins.core.store.UnverifiedPresetWarning')


def stamps(n=3, seed=0):
    return blob_stamps(n, seed=seed)[0]


def assert_tables_equal(first, second):
    assert first.colnames == second.colnames
    for name in first.colnames:
        np.testing.assert_array_equal(np.asarray(first[name]),
                                      np.asarray(second[name]), err_msg=name)
        assert getattr(first[name], 'unit', None) == \
            getattr(second[name], 'unit', None)


@pytest.fixture(scope='module')
def estimator():
    estimator = make_tiny_stamp(dense=8)
    estimator.error_scale_ = {'flux': 1.25}
    return estimator


@pytest.fixture(scope='module')
def saved(estimator, tmp_path_factory):
    return estimator.save(tmp_path_factory.mktemp('store') / 'tiny')


class TestSave:
    def test_files(self, saved):
        assert sorted(p.name for p in saved.iterdir()) == [
            'config.json', 'manifest.json', 'model.keras']
        manifest = json.loads((saved / 'manifest.json').read_text())
        for name in ('model.keras', 'config.json'):
            assert manifest['sha256'][name] == store.sha256(saved / name)

    def test_config(self, saved):
        config = json.loads((saved / 'config.json').read_text())
        assert config['class'] == 'astrodl_plugins.core.tests.tiny.stamps.TinyStamp'
        assert config['name'] == 'tiny-stamp'
        assert config['version'] == '0.1'
        assert config['params'] == {'stamp_size': STAMP, 'widths': [4, 8],
                                    'dense': 8, 'dropout': 0.2}
        assert config['state'] == {'error_scale': {'flux': 1.25}}
        assert config['card']['valid_ranges']['psf_fwhm'] == [1.0, 6.0]

    def test_non_empty_directory(self, estimator, tmp_path):
        (tmp_path / 'other.txt').write_text('keep me')
        with pytest.raises(FileExistsError, match='overwrite=True'):
            estimator.save(tmp_path)
        assert (tmp_path / 'other.txt').read_text() == 'keep me'
        assert not (tmp_path / 'model.keras').exists()

    def test_overwrite(self, estimator, tmp_path):
        estimator.save(tmp_path / 'a')
        estimator.save(tmp_path / 'a', overwrite=True)
        assert isinstance(TinyStamp.from_preset(tmp_path / 'a'), TinyStamp)

    def test_empty_existing_directory(self, estimator, tmp_path):
        estimator.save(tmp_path)
        assert (tmp_path / 'manifest.json').exists()

    def test_unfitted(self, tmp_path):
        with pytest.raises(NotFittedError, match='no trained model'):
            TinyStamp().save(tmp_path / 'x')

    def test_h5_directory_refused(self, estimator, tmp_path):
        with pytest.raises(ValueError, match=r'HDF5.*\.keras'):
            estimator.save(tmp_path / 'model.h5')


class TestFromPreset:
    def test_round_trip(self, estimator, saved):
        loaded = TinyStamp.from_preset(saved)
        assert type(loaded) is TinyStamp
        assert loaded.get_params() == estimator.get_params()
        assert loaded.widths == (4, 8)
        assert loaded.error_scale_ == {'flux': 1.25}
        assert loaded.card_ == estimator.card_
        assert loaded.model_sha256_ == store.sha256(saved / 'model.keras')
        kwargs = dict(n_samples=8, seed=7, psf_fwhm=3.0,
                      quantiles=(0.16, 0.84))
        before = estimator.predict_stamps(stamps(), **kwargs)
        after = loaded.predict_stamps(stamps(), **kwargs)
        assert after.meta['model_sha256'] == loaded.model_sha256_
        assert_tables_equal(before, after)

    def test_round_trip_string_path(self, saved):
        loaded = TinyStamp.from_preset(str(saved))
        assert loaded.stamp_size == STAMP

    def test_base_class_loads_subclass(self, saved):
        assert type(BaseEstimator.from_preset(saved)) is TinyStamp
        assert type(SourceStampEstimator.from_preset(saved)) is TinyStamp

    def test_wrong_class(self, saved):
        class Other(SourceStampEstimator):
            pass

        with pytest.raises(TypeError, match='holds a TinyStamp, not a '
                                            'Other'):
            Other.from_preset(saved)

    @pytest.mark.parametrize('name', ['model.keras', 'config.json'])
    def test_tampered_file(self, saved, tmp_path, name):
        target = copy_saved(saved, tmp_path)
        content = bytearray((target / name).read_bytes())
        content[len(content) // 2] ^= 0x01
        (target / name).write_bytes(bytes(content))
        with pytest.raises(ModelIntegrityError,
                           match=rf"{name}' does not match its manifest"):
            TinyStamp.from_preset(target)

    def test_model_integrity_error_is_value_error(self):
        assert issubclass(ModelIntegrityError, ValueError)

    def test_missing_manifest(self, saved, tmp_path):
        target = copy_saved(saved, tmp_path)
        (target / 'manifest.json').unlink()
        with pytest.raises(ModelIntegrityError, match='no manifest.json'):
            TinyStamp.from_preset(target)

    def test_missing_model(self, saved, tmp_path):
        target = copy_saved(saved, tmp_path)
        (target / 'model.keras').unlink()
        with pytest.raises(ModelIntegrityError,
                           match='model.keras.*missing or not in the '
                                 'manifest'):
            TinyStamp.from_preset(target)

    @pytest.mark.parametrize('suffix', ['.h5', '.hdf5', '.H5'])
    def test_h5_refused(self, tmp_path, suffix):
        path = tmp_path / f'weights{suffix}'
        path.write_bytes(b'not really hdf5')
        with pytest.raises(ValueError, match=r'HDF5 weight file.*\.keras'):
            TinyStamp.from_preset(path)
        with pytest.raises(ValueError, match=r'HDF5 weight file.*\.keras'):
            load_keras_model(path)

    def test_load_keras_model_other_suffix(self, tmp_path):
        path = tmp_path / 'weights.pkl'
        path.write_bytes(b'x')
        with pytest.raises(ValueError, match=r'only \.keras model files'):
            load_keras_model(path)

    def test_load_keras_model(self, estimator, saved):
        model = load_keras_model(saved / 'model.keras')
        assert model.name == 'tiny_stamp'
        assert [t.name for t in model.inputs] == ['image', 'psf_fwhm']
        assert model.count_params() == estimator.model_.count_params()

    def test_unknown_preset(self):
        with pytest.raises(ValueError,
                           match=r"preset 'no-such-preset' is neither a "
                                 r'directory nor a known preset; shipped '
                                 r'presets: \['):
            TinyStamp.from_preset('no-such-preset')


class TestPresetFinder:
    def test_plugin_preset(self, saved):
        name = 'astrodl-core-test-tiny-preset'
        calls = []

        def finder(preset):
            calls.append(preset)
            return saved if preset == name else None

        store.register_preset_finder(finder)
        store.register_preset_finder(finder)
        loaded = TinyStamp.from_preset(name)
        assert type(loaded) is TinyStamp
        # Registered twice, asked once.
        assert calls == [name]
        assert store.find_preset(name) == saved
        # Directories and shipped presets do not ask the finders.
        assert store.find_preset(saved) == saved
        shipped = sorted(store.MODELS_DIR.glob('*/manifest.json'))
        if shipped:
            directory = shipped[0].parent
            assert store.find_preset(directory.name) == directory
        assert calls == [name, name]

    def test_finder_returning_none(self):
        def finder(preset):
            return None

        store.register_preset_finder(finder)
        with pytest.raises(ValueError, match="'astrodl-core-test-nothing' is "
                                             'neither a directory'):
            store.find_preset('astrodl-core-test-nothing')


class TestNotFitted:
    def test_predict_stamps(self):
        with pytest.raises(NotFittedError,
                           match=r'from_preset\(None\) or call fit'):
            TinyStamp().predict_stamps(stamps(), psf_fwhm=3.0)

    def test_predict(self):
        with pytest.raises(NotFittedError, match='TinyStamp has no '
                                                 'trained model'):
            TinyStamp().predict(np.ones((40, 40)), positions=[(20, 20)],
                                psf_fwhm=3.0)

    def test_is_value_and_attribute_error(self):
        assert issubclass(NotFittedError, ValueError)
        assert issubclass(NotFittedError, AttributeError)
