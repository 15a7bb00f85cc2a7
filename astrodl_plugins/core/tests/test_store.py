# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the model store: save, from_preset, sha256 manifests, safe load."""

import json

import numpy as np
import pytest

from astrodl_plugins.core import store
from astrodl_plugins.core.store import load_keras_model
from astrodl_plugins.core.tests.helpers import STAMP, tiny_estimator
from astrodl_plugins.exceptions import ModelIntegrityError, NotFittedError
from astrodl_plugins.structure import GalaxyStructure


def stamps(n=3, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:STAMP, :STAMP] - (STAMP - 1) / 2
    galaxy = 50.0 * np.exp(-(xx ** 2 + 0.5 * yy ** 2) / 10.0)
    return (galaxy + rng.normal(0.0, 1.0, (n, STAMP, STAMP))).astype(
        np.float32)


def assert_tables_equal(first, second):
    assert first.colnames == second.colnames
    for name in first.colnames:
        np.testing.assert_array_equal(np.asarray(first[name]),
                                      np.asarray(second[name]), err_msg=name)
        assert getattr(first[name], 'unit', None) == \
            getattr(second[name], 'unit', None)


@pytest.fixture(scope='module')
def estimator():
    return tiny_estimator()


@pytest.fixture(scope='module')
def saved(estimator, tmp_path_factory):
    return estimator.save(tmp_path_factory.mktemp('store') / 'tiny')


def copy_saved(saved, tmp_path):
    target = tmp_path / 'copy'
    target.mkdir()
    for path in saved.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


class TestSave:
    def test_files(self, saved):
        assert sorted(p.name for p in saved.iterdir()) == [
            'config.json', 'manifest.json', 'model.keras']
        manifest = json.loads((saved / 'manifest.json').read_text())
        for name in ('model.keras', 'config.json'):
            assert manifest['sha256'][name] == store.sha256(saved / name)

    def test_config(self, saved):
        config = json.loads((saved / 'config.json').read_text())
        assert config['class'] == \
            'astrodl_plugins.structure.galaxy_structure.GalaxyStructure'
        assert config['name'] == 'galaxy-structure'
        assert config['params'] == {'stamp_size': 32, 'widths': [4, 4, 4],
                                    'dense': 8, 'dropout': 0.1}
        assert config['state']['target_mean'] == [0.0] * 6

    def test_non_empty_directory(self, estimator, tmp_path):
        (tmp_path / 'other.txt').write_text('keep me')
        with pytest.raises(FileExistsError, match='overwrite=True'):
            estimator.save(tmp_path)
        assert (tmp_path / 'other.txt').read_text() == 'keep me'
        assert not (tmp_path / 'model.keras').exists()

    def test_overwrite(self, estimator, tmp_path):
        estimator.save(tmp_path / 'a')
        estimator.save(tmp_path / 'a', overwrite=True)
        assert isinstance(GalaxyStructure.from_preset(tmp_path / 'a'),
                          GalaxyStructure)

    def test_empty_existing_directory(self, estimator, tmp_path):
        estimator.save(tmp_path)
        assert (tmp_path / 'manifest.json').exists()

    def test_unfitted(self, tmp_path):
        with pytest.raises(NotFittedError, match='no trained model'):
            GalaxyStructure().save(tmp_path / 'x')

    def test_h5_directory_refused(self, estimator, tmp_path):
        with pytest.raises(ValueError, match=r'HDF5.*\.keras'):
            estimator.save(tmp_path / 'model.h5')


class TestFromPreset:
    def test_round_trip(self, estimator, saved):
        loaded = GalaxyStructure.from_preset(saved)
        assert type(loaded) is GalaxyStructure
        assert loaded.get_params() == estimator.get_params()
        assert loaded.widths == (4, 4, 4)
        assert loaded.target_mean_ == estimator.target_mean_
        assert loaded.target_std_ == estimator.target_std_
        assert loaded.error_scale_ == {}
        assert loaded.model_sha256_ == store.sha256(saved / 'model.keras')
        kwargs = dict(n_samples=8, seed=7, psf_fwhm=3.0,
                      quantiles=(0.16, 0.84))
        before = estimator.predict_stamps(stamps(), **kwargs)
        after = loaded.predict_stamps(stamps(), **kwargs)
        assert after.meta['model_sha256'] == loaded.model_sha256_
        assert_tables_equal(before, after)

    def test_round_trip_string_path(self, saved):
        loaded = GalaxyStructure.from_preset(str(saved))
        assert loaded.stamp_size == STAMP

    def test_base_class_loads_subclass(self, saved):
        from astrodl_plugins.core import Estimator

        assert type(Estimator.from_preset(saved)) is GalaxyStructure

    def test_wrong_class(self, saved):
        from astrodl_plugins.core import Estimator

        class Other(Estimator):
            pass

        with pytest.raises(TypeError, match='holds a GalaxyStructure, not a '
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
            GalaxyStructure.from_preset(target)

    def test_model_integrity_error_is_value_error(self):
        assert issubclass(ModelIntegrityError, ValueError)

    def test_missing_manifest(self, saved, tmp_path):
        target = copy_saved(saved, tmp_path)
        (target / 'manifest.json').unlink()
        with pytest.raises(ModelIntegrityError, match='no manifest.json'):
            GalaxyStructure.from_preset(target)

    def test_missing_model(self, saved, tmp_path):
        target = copy_saved(saved, tmp_path)
        (target / 'model.keras').unlink()
        with pytest.raises(ModelIntegrityError,
                           match='model.keras.*missing or not in the '
                                 'manifest'):
            GalaxyStructure.from_preset(target)

    @pytest.mark.parametrize('suffix', ['.h5', '.hdf5', '.H5'])
    def test_h5_refused(self, tmp_path, suffix):
        path = tmp_path / f'weights{suffix}'
        path.write_bytes(b'not really hdf5')
        with pytest.raises(ValueError, match=r'HDF5 weight file.*\.keras'):
            GalaxyStructure.from_preset(path)
        with pytest.raises(ValueError, match=r'HDF5 weight file.*\.keras'):
            load_keras_model(path)

    def test_load_keras_model_other_suffix(self, tmp_path):
        path = tmp_path / 'weights.pkl'
        path.write_bytes(b'x')
        with pytest.raises(ValueError, match=r'only \.keras model files'):
            load_keras_model(path)

    def test_load_keras_model(self, saved):
        model = load_keras_model(saved / 'model.keras')
        assert model.name == 'galaxy_structure'
        assert [t.name for t in model.inputs] == ['image', 'psf_fwhm']

    def test_unknown_preset(self):
        with pytest.raises(ValueError,
                           match=r"preset 'no-such-preset' is neither a "
                                 r'directory nor a known preset; shipped '
                                 r'presets: \['):
            GalaxyStructure.from_preset('no-such-preset')


class TestNotFitted:
    def test_predict_stamps(self):
        with pytest.raises(NotFittedError,
                           match=r"from_preset\('galaxy-structure'\) or "
                                 r'call fit'):
            GalaxyStructure(stamp_size=STAMP).predict_stamps(
                stamps(), psf_fwhm=3.0)

    def test_predict(self):
        with pytest.raises(NotFittedError, match='GalaxyStructure has no '
                                                 'trained model'):
            GalaxyStructure(stamp_size=STAMP).predict(
                np.ones((40, 40)), positions=[(20, 20)], psf_fwhm=3.0)

    def test_is_value_and_attribute_error(self):
        assert issubclass(NotFittedError, ValueError)
        assert issubclass(NotFittedError, AttributeError)
