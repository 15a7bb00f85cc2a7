# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""BaseEstimator: parameters, config, save/load, ranges, flags, MC engine."""

import json

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata.bitmask import bitfield_to_boolean_mask

from astrodl_plugins.core import store
from astrodl_plugins.core.base import BaseEstimator, Draws
from astrodl_plugins.core.flags import FLAG_NAMES, SourceFlags, flag_descriptions
from astrodl_plugins.core.mc import MCDropoutEngine
from astrodl_plugins.core.series import SeriesEstimator
from astrodl_plugins.core.stamps import SourceStampEstimator
from astrodl_plugins.core.table import quantile_name, summarize_draws
from astrodl_plugins.core.tests.tiny import (
    TinySeries,
    TinySeriesPair,
    TinyStamp,
    build_series_network,
    copy_saved,
    level_series,
    make_tiny_series,
    make_tiny_stamp,
)
from astrodl_plugins.exceptions import ModelIntegrityError, NotFittedError


class Wrapper(BaseEstimator):
    """An estimator with an estimator as a parameter (nested params)."""

    def __init__(self, inner=None, scale=1.0, names=('a', 'b')):
        self.inner = inner
        self.scale = scale
        self.names = names


class TestParams:
    def test_get_params(self):
        estimator = TinyStamp(dense=8)
        assert estimator.get_params() == {'stamp_size': 16, 'widths': (4, 8),
                                          'dense': 8, 'dropout': 0.2}

    def test_deep(self):
        wrapper = Wrapper(inner=TinyStamp(dense=8), scale=2.0)
        deep = wrapper.get_params(deep=True)
        assert deep['scale'] == 2.0
        assert deep['inner__dense'] == 8
        assert deep['inner__widths'] == (4, 8)
        assert isinstance(deep['inner'], TinyStamp)
        shallow = wrapper.get_params(deep=False)
        assert set(shallow) == {'inner', 'scale', 'names'}

    def test_deep_class_not_expanded(self):
        # A class (not an instance) has get_params too: not nested.
        assert Wrapper(inner=TinyStamp).get_params() == {
            'inner': TinyStamp, 'scale': 1.0, 'names': ('a', 'b')}

    def test_set_params(self):
        estimator = TinyStamp()
        assert estimator.set_params(dense=4, dropout=0.1) is estimator
        assert (estimator.dense, estimator.dropout) == (4, 0.1)

    def test_set_nested(self):
        inner = TinyStamp()
        wrapper = Wrapper(inner=inner)
        wrapper.set_params(inner__dense=4, inner__dropout=0.3, scale=3.0)
        assert wrapper.inner is inner
        assert (inner.dense, inner.dropout, wrapper.scale) == (4, 0.3, 3.0)
        assert wrapper.get_params()['inner__dense'] == 4

    def test_set_unknown(self):
        with pytest.raises(ValueError, match=r"'bogus' is not a parameter of "
                                             r'TinyStamp; valid: \['):
            TinyStamp().set_params(bogus=1)

    def test_set_unknown_nested(self):
        wrapper = Wrapper(inner=TinyStamp())
        with pytest.raises(ValueError, match="'bogus' is not a parameter of "
                                             'TinyStamp'):
            wrapper.set_params(inner__bogus=1)
        with pytest.raises(ValueError, match="'outer' is not a parameter of "
                                             'Wrapper'):
            wrapper.set_params(outer__dense=1)


class TestRepr:
    def test_defaults(self):
        assert repr(TinyStamp()) == 'TinyStamp()'
        assert repr(TinySeries()) == 'TinySeries()'

    def test_changed(self):
        assert repr(TinyStamp(dense=8, dropout=0.5)) == \
            'TinyStamp(dense=8, dropout=0.5)'

    def test_same_value_other_type(self):
        # A list is not the default tuple.
        assert repr(TinyStamp(widths=[4, 8])) == 'TinyStamp(widths=[4, 8])'

    def test_nested(self):
        wrapper = Wrapper(inner=TinyStamp(dense=8))
        assert repr(wrapper) == 'Wrapper(inner=TinyStamp(dense=8))'

    def test_array_parameter(self):
        assert repr(Wrapper(names=np.array([1, 2]))) == \
            'Wrapper(names=array([1, 2]))'


class TestConfig:
    def test_get_config(self):
        estimator = make_tiny_stamp(dense=8)
        estimator.error_scale_ = {'flux': 1.5}
        config = estimator.get_config()
        assert config['class'] == \
            'astrodl_plugins.core.tests.tiny.stamps.TinyStamp'
        assert config['name'] == 'tiny-stamp'
        assert config['version'] == '0.1'
        assert config['params'] == {'stamp_size': 16, 'widths': [4, 8],
                                    'dense': 8, 'dropout': 0.2}
        assert config['state'] == {'error_scale': {'flux': 1.5}}
        assert config['card']['valid_ranges']['psf_fwhm'] == [1.0, 6.0]
        json.dumps(config)

    def test_from_config(self, tmp_path):
        estimator = make_tiny_stamp(dense=8)
        estimator.error_scale_ = {'flux': 1.5}
        config = json.loads(json.dumps(estimator.get_config()))
        clone = TinyStamp.from_config(config)
        assert type(clone) is TinyStamp
        assert clone.get_params() == estimator.get_params()
        assert clone.widths == (4, 8)
        assert clone.error_scale_ == {'flux': 1.5}
        assert clone.card_ == estimator.card_
        with pytest.raises(NotFittedError):
            clone.save(tmp_path / 'x')

    def test_unfitted_config(self):
        config = TinySeries().get_config()
        assert config['state'] == {}
        assert config['card'] == {}


class TestValidRanges:
    def test_from_card(self):
        estimator = TinyStamp()
        estimator.card_ = {'valid_ranges': {
            'size': [1.0, 2.0], 'psf_fwhm': (2.0, 5.0), 'note': 'pixels',
            'band': ['g', 'r', 'i']}}
        # Only (low, high) pairs are ranges.
        assert estimator.valid_ranges == {'size': (1.0, 2.0),
                                          'psf_fwhm': (2.0, 5.0)}

    def test_no_card(self):
        assert TinyStamp().valid_ranges == {}
        estimator = TinyStamp()
        estimator.card_ = {'summary': 'no ranges'}
        assert estimator.valid_ranges == {}

    def test_range_flags_only_declared(self, tiny_series, monkeypatch):
        # valid_ranges keys that are not in range_margins are not checked.
        monkeypatch.setattr(tiny_series, 'card_', {'valid_ranges': {
            'level': [100.0, 200.0], 'n_points': [4, 100]}})
        table = tiny_series.predict(np.ones((2, 10)), n_samples=2, seed=0)
        np.testing.assert_array_equal(table['flag'], 0)


class TestFlags:
    def test_bits(self):
        assert [int(getattr(SourceFlags, name)) for name in FLAG_NAMES] == \
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]

    def test_descriptions(self):
        descriptions = flag_descriptions()
        assert list(descriptions) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
        assert descriptions[2] == 'stamp cut by the image edge'
        assert flag_descriptions(('UNUSABLE', 'MASKED')) == {
            1: descriptions[1], 8: descriptions[8]}
        assert all(isinstance(key, int) for key in descriptions)

    def test_unknown_name(self):
        with pytest.raises(AttributeError):
            flag_descriptions(('NOT_A_FLAG',))

    def test_astropy_bitmask(self):
        flags = np.array([0, 2, 6, 8])
        mask = bitfield_to_boolean_mask(flags, ignore_flags='~EDGE,UNUSABLE',
                                        flag_name_map=SourceFlags)
        np.testing.assert_array_equal(mask, [False, True, True, True])

    def test_estimators_declare_flags(self):
        for cls in (TinyStamp, TinySeries):
            assert set(cls.flag_names) <= set(FLAG_NAMES)


@pytest.fixture(scope='module')
def pair():
    estimator = make_tiny_series(TinySeriesPair, dense=8)
    estimator.card_['summary'] = 'two networks'
    return estimator


@pytest.fixture(scope='module')
def saved(pair, tmp_path_factory):
    return pair.save(tmp_path_factory.mktemp('pair') / 'preset')


class TestSaveLoadTwoNetworks:
    def test_files(self, saved):
        assert sorted(p.name for p in saved.iterdir()) == [
            'config.json', 'manifest.json', 'model.keras', 'other.keras']
        manifest = json.loads((saved / 'manifest.json').read_text())
        assert manifest['extra_models'] == ['other.keras']
        for name in ('model.keras', 'config.json', 'other.keras'):
            assert manifest['sha256'][name] == store.sha256(saved / name)

    def test_round_trip(self, pair, saved):
        loaded = TinySeriesPair.from_preset(saved)
        assert type(loaded) is TinySeriesPair
        assert loaded.get_params() == pair.get_params()
        assert loaded.card_ == pair.card_
        assert loaded.valid_ranges == {'n_points': (4, 1000)}
        assert loaded.other_.name == 'tiny_spread'
        assert loaded.model_sha256_ == store.sha256(saved / 'model.keras')
        data = level_series(4)[0]
        kwargs = dict(n_samples=5, seed=2, quantiles=(0.5,))
        before = pair.predict(data, **kwargs)
        after = loaded.predict(data, **kwargs)
        assert before.colnames == after.colnames
        assert 'spread' in after.colnames
        for name in before.colnames:
            np.testing.assert_array_equal(before[name], after[name],
                                          err_msg=name)
        assert after.meta['model_sha256'] == loaded.model_sha256_

    def test_base_classes_load_it(self, saved):
        assert type(BaseEstimator.from_preset(saved)) is TinySeriesPair
        assert type(SeriesEstimator.from_preset(saved)) is TinySeriesPair

    def test_wrong_family(self, saved):
        with pytest.raises(TypeError, match='holds a TinySeriesPair, not a '
                                            'SourceStampEstimator'):
            SourceStampEstimator.from_preset(saved)

    def test_tampered_extra(self, saved, tmp_path):
        target = copy_saved(saved, tmp_path)
        content = bytearray((target / 'other.keras').read_bytes())
        content[len(content) // 2] ^= 0x01
        (target / 'other.keras').write_bytes(bytes(content))
        with pytest.raises(ModelIntegrityError,
                           match="other.keras' does not match its manifest"):
            TinySeriesPair.from_preset(target)

    def test_missing_extra(self, saved, tmp_path):
        target = copy_saved(saved, tmp_path)
        (target / 'other.keras').unlink()
        with pytest.raises(ModelIntegrityError, match='missing or not in the '
                                                      'manifest'):
            TinySeriesPair.from_preset(target)

    def test_not_in_manifest(self, saved):
        with pytest.raises(ModelIntegrityError,
                           match="has no extra model 'third'"):
            store.read_extra_model(saved, 'third')

    def test_one_network_missing(self, tmp_path):
        estimator = make_tiny_series(TinySeriesPair)
        estimator.other_ = None
        with pytest.raises(NotFittedError, match='TinySeriesPair has no '
                                                 'trained other network'):
            estimator.save(tmp_path / 'x')
        with pytest.raises(NotFittedError, match='no trained other network'):
            estimator.predict(np.ones((2, 5)))

    def test_unimportable_class(self, saved, tmp_path):
        target = copy_saved(saved, tmp_path)
        config = json.loads((target / 'config.json').read_text())
        config['class'] = 'astrodl_plugins.core.tests.tiny.NoSuchClass'
        (target / 'config.json').write_text(json.dumps(config))
        manifest = json.loads((target / 'manifest.json').read_text())
        manifest['sha256']['config.json'] = store.sha256(
            target / 'config.json')
        (target / 'manifest.json').write_text(json.dumps(manifest))
        with pytest.raises(ValueError, match='cannot import estimator class '
                                             "'astrodl_plugins.core.tests."
                                             "tiny.NoSuchClass'"):
            BaseEstimator.from_preset(target)


class TestMCEngine:
    def test_cached_per_network(self):
        estimator = make_tiny_series(TinySeriesPair)
        engine = estimator.mc_engine()
        assert isinstance(engine, MCDropoutEngine)
        assert estimator.mc_engine('model') is engine
        other = estimator.mc_engine('other')
        assert other is not engine
        assert estimator.mc_engine('other') is other

    def test_new_network_new_engine(self):
        estimator = make_tiny_series()
        engine = estimator.mc_engine()
        estimator.model_ = estimator.build()
        assert estimator.mc_engine() is not engine

    def test_engine_samples_the_network(self):
        estimator = make_tiny_series()
        inputs = [np.ones((3, estimator.length), np.float32)]
        draws = estimator.mc_engine().sample(inputs, 4, seed=0)
        assert draws.shape == (3, 4, 2)
        np.testing.assert_array_equal(
            draws, estimator.mc_engine().sample(inputs, 4, seed=0))

    def test_unknown_network(self):
        with pytest.raises(AttributeError):
            make_tiny_series().mc_engine('third')


class TestHooks:
    def test_required_prepare(self):
        class Bare(SourceStampEstimator):
            name = 'bare'

        estimator = Bare()
        estimator.model_ = object()
        with pytest.raises(NotImplementedError, match='Bare must implement '
                                                      '_prepare'):
            estimator.predict_stamps(np.ones((1, 64, 64)))

    def test_required_decode(self):
        class NoDecode(SeriesEstimator):
            name = 'no-decode'

            def _prepare(self, series, context):
                return [np.stack([s.values for s in series]).astype(
                    np.float32)]

        estimator = NoDecode()
        estimator.model_ = build_series_network(4, 4, 0.1)
        with pytest.raises(NotImplementedError, match='NoDecode must '
                                                      'implement _decode'):
            estimator.predict(np.ones((2, 4)), n_samples=2, seed=0)

    def test_draws(self):
        draws = Draws({'a': 1}, {'a': 2}, {'a': 3})
        assert (draws.values, draws.aleatoric, draws.predictive) == (
            {'a': 1}, {'a': 2}, {'a': 3})

    def test_predict_options(self):
        class WithOptions(TinySeries):
            predict_options = {'window': 3}

            def _extra_meta(self, context):
                return {'window': context.options['window']}

        estimator = make_tiny_series(WithOptions)
        data = np.ones((2, 6))
        assert estimator.predict(data, n_samples=1, seed=0).meta[
            'window'] == 3
        assert estimator.predict(data, n_samples=1, seed=0, window=5).meta[
            'window'] == 5
        with pytest.raises(TypeError, match=r"\['other'\]; its own keywords "
                                            r"are \['window'\]"):
            estimator.predict(data, other=1)


class TestSummaries:
    def test_quantile_name(self):
        assert quantile_name('r', 0.16) == 'r_q16'
        assert quantile_name('r', 0.025) == 'r_q2p5'
        assert quantile_name('r', 0.5) == 'r_q50'

    def test_circular(self):
        draws = {'angle': np.array([[179.0, 1.0, 3.0, 177.0]])}
        zero = {'angle': np.zeros((1, 4))}
        columns, _ = summarize_draws(draws, zero, units={'angle': u.deg},
                                     periods={'angle': 180.0},
                                     quantiles=(0.5,), predictive=draws)
        mean = columns['angle'].value[0]
        assert min(mean, 180 - mean) < 1e-6
        assert columns['angle_err'].value[0] == pytest.approx(2.24, abs=0.02)
        median = columns['angle_q50'].value[0]
        assert min(median, 180 - median) < 2.0 + 1e-9

    def test_error_scale_per_source(self):
        draws = {'x': np.array([[0.0, 2.0], [0.0, 2.0]])}
        variance = {'x': np.zeros((2, 2))}
        columns, parts = summarize_draws(
            draws, variance, units={'x': u.m},
            error_scale={'x': np.array([1.0, 3.0])})
        np.testing.assert_allclose(columns['x_err'].value, [1.0, 3.0])
        np.testing.assert_allclose(parts['x_epistemic'], [1.0, 1.0])
        assert columns['x'].unit == u.m
