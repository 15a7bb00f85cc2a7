# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Concurrent calls give the serial answer; the MC engine refuses what it
cannot honour (seeds, quantiles from too few draws, memory) and never
returns a non-finite value unflagged.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from astropy.table import QTable

import astrodl_plugins as adl
from astrodl_plugins.core import mc
from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.core.tests.tiny import (
    CENTERS,
    STAMP_KWARGS,
    assert_same_tables,
    make_ccd,
)

N_THREADS = 4


def _kwargs(**changes):
    return {**STAMP_KWARGS, **changes}


def _concurrent(call, n=N_THREADS):
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(call) for _ in range(n)]
        return [future.result() for future in futures]


@pytest.fixture(scope='module')
def field():
    return make_ccd()


class TestThreads:
    """Four threads running the same call = the serial table, bit for bit."""

    @pytest.mark.parametrize('name', ['galaxy-structure', 'star-galaxy'])
    def test_shipped_estimator(self, name, field):
        estimator = adl.get_estimator(name)

        def call():
            return estimator.predict(field, positions=CENTERS, n_samples=8,
                                     seed=3, psf_fwhm=3.0)

        serial = call()
        for table in _concurrent(call):
            assert_same_tables(serial, table)

    def test_deterministic_call_next_to_sampling_calls(self, field):
        # n_samples=0 switches dropout off: it must neither leak into the
        # sampling calls nor be switched on by them.
        estimator = adl.get_estimator('galaxy-structure')

        def sampling():
            return estimator.predict(field, positions=CENTERS, n_samples=8,
                                     seed=5, psf_fwhm=3.0)

        def deterministic():
            return estimator.predict(field, positions=CENTERS, n_samples=0,
                                     seed=5, psf_fwhm=3.0)

        serial = (sampling(), deterministic())
        with ThreadPoolExecutor(N_THREADS) as pool:
            futures = [pool.submit(sampling if i % 2 else deterministic)
                       for i in range(2 * N_THREADS)]
            tables = [future.result() for future in futures]
        for i, table in enumerate(tables):
            assert_same_tables(serial[0] if i % 2 else serial[1], table)

    def test_tiny_estimator_different_seeds(self, tiny_stamp, field):
        # Calls with different seeds interleave without swapping masks.
        def call(seed):
            return tiny_stamp.predict(field, positions=CENTERS,
                                      **_kwargs(seed=seed))

        serial = [call(seed) for seed in range(N_THREADS)]
        with ThreadPoolExecutor(N_THREADS) as pool:
            tables = list(pool.map(call, range(N_THREADS)))
        for expected, table in zip(serial, tables):
            assert_same_tables(expected, table)


class TestSeeds:
    @pytest.mark.parametrize('seed', [-1, 2**32, 2**70, 1.5, True, '3'])
    def test_refused(self, tiny_stamp, field, seed):
        with pytest.raises(ValueError, match='seed'):
            tiny_stamp.predict(field, positions=CENTERS, **_kwargs(seed=seed))

    def test_largest_seed_differs_from_zero(self, tiny_stamp, field):
        low = tiny_stamp.predict(field, positions=CENTERS, **_kwargs(seed=0))
        high = tiny_stamp.predict(field, positions=CENTERS,
                                  **_kwargs(seed=2**32 - 1))
        assert not np.array_equal(np.asarray(low['flux']),
                                  np.asarray(high['flux']))


class TestQuantiles:
    @pytest.mark.parametrize(('n_samples', 'quantiles', 'needed'), [
        (0, (0.16, 0.84), 6), (1, (0.16, 0.84), 6), (2, (0.16, 0.84), 6),
        (5, (0.16, 0.84), 6), (2, 0.5, 3), (35, (0.025, 0.975), 36)])
    def test_too_few_draws_refused(self, tiny_stamp, field, n_samples,
                                   quantiles, needed):
        kwargs = {**STAMP_KWARGS, 'n_samples': n_samples}
        with pytest.raises(ValueError, match=f'n_samples >= {needed} '):
            tiny_stamp.predict(field, positions=CENTERS,
                               quantiles=quantiles, **kwargs)

    def test_enough_draws_bracket_the_mean(self, tiny_stamp, field):
        kwargs = {**STAMP_KWARGS, 'n_samples': 6}
        table = tiny_stamp.predict(field, positions=CENTERS,
                                   quantiles=(0.16, 0.84), **kwargs)
        assert np.all(table['flux_q16'] <= table['flux_q84'])

    @pytest.mark.parametrize('quantiles', ['abc', 'q16', [0.5, 'x'], {}])
    def test_not_numbers(self, tiny_stamp, field, quantiles):
        with pytest.raises(ValueError, match='quantiles'):
            tiny_stamp.predict(field, positions=CENTERS, quantiles=quantiles,
                               **STAMP_KWARGS)


class TestMemory:
    def test_refused_before_sampling(self, tiny_stamp, field):
        kwargs = {**STAMP_KWARGS, 'n_samples': 10**8}
        with pytest.raises(ValueError, match='n_samples.*memory budget'):
            tiny_stamp.predict(field, positions=CENTERS, **kwargs)

    def test_budget_is_configurable(self, tiny_stamp, field):
        kwargs = {**STAMP_KWARGS, 'n_samples': 50}
        with mc.conf.set_temp('memory_budget', 1e-9):
            with pytest.raises(ValueError, match='memory budget'):
                tiny_stamp.predict(field, positions=CENTERS, **kwargs)

    def test_chunked_draws_same_distribution(self, tiny_stamp, field):
        # Draws beyond conf.max_rows run in chunks: same shapes, same
        # deterministic answer per seed, and statistically the same draws.
        kwargs = {**STAMP_KWARGS, 'n_samples': 40}
        whole, whole_draws = tiny_stamp.predict(
            field, positions=CENTERS, return_samples=True, **kwargs)
        with mc.conf.set_temp('max_rows', 7):
            chunked, draws = tiny_stamp.predict(
                field, positions=CENTERS, return_samples=True, **kwargs)
            again, _ = tiny_stamp.predict(
                field, positions=CENTERS, return_samples=True, **kwargs)
        assert_same_tables(chunked, again)
        assert draws['flux'].shape == whole_draws['flux'].shape
        # Independent masks in every chunk: the draws are not repeated.
        assert len(np.unique(np.asarray(draws['flux'][0]))) > 30
        np.testing.assert_allclose(chunked['flux'], whole['flux'],
                                   rtol=0.5)


class TestNonFinite:
    def test_overflowing_output_flagged(self, tiny_stamp, field,
                                        monkeypatch):
        # A network output that overflows gives a flagged row, not a
        # silent inf.
        original = type(tiny_stamp)._decode

        def overflow(self, raw, context, rng):
            draws = original(self, raw, context, rng)
            draws.values['flux'][0] = np.inf
            return draws

        monkeypatch.setattr(type(tiny_stamp), '_decode', overflow)
        table = tiny_stamp.predict(field, positions=CENTERS, **STAMP_KWARGS)
        assert not np.isfinite(table['flux'][0])
        assert table['flag'][0] & SourceFlags.UNUSABLE
        assert isinstance(table, QTable)

    def test_structure_log_outputs_never_overflow(self):
        from astrodl_plugins.structure import network as net

        mean = np.full((2, 3, 6), 1e4)
        mean[1] = -1e4
        draws = net.decode_samples(mean, np.ones_like(mean), np.ones(2))
        for name, value in draws.items():
            assert np.all(np.isfinite(value)), name
