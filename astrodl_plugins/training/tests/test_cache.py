# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""cached_simulation: simulated sets cached by (simulator, size, seed)."""

import sys

import numpy as np
from astropy import units as u
from astropy.table import QTable

from astrodl_plugins.training.cache import cached_simulation

CALLS = []


def fake_stamps(n, seed=0, scale=1.0):
    """One array and a truth table, deterministic given the seed."""
    CALLS.append(('fake_stamps', n, seed, scale))
    rng = np.random.default_rng(seed)
    images = (scale * rng.normal(size=(n, 4, 4))).astype(np.float32)
    truth = QTable({'flux': rng.uniform(1, 2, n) * u.Jy,
                    'name': [f's{i}' for i in range(n)]})
    return images, truth


def fake_blends(n, seed=0):
    """Several arrays (blends, members, masks) and a truth table."""
    CALLS.append(('fake_blends', n, seed))
    rng = np.random.default_rng(seed)
    blends = rng.normal(size=(n, 4, 4))
    members = rng.normal(size=(n, 2, 4, 4)).astype(np.float32)
    masks = rng.random((n, 4, 4)) > 0.5
    return blends, members, masks, QTable({'n_members': np.full(n, 2)})


def assert_truth_equal(first, second):
    assert first.colnames == second.colnames
    for name in first.colnames:
        assert np.all(first[name] == second[name]), name


class TestCachedSimulation:
    def test_no_cache(self, tmp_path):
        CALLS.clear()
        first = cached_simulation(fake_stamps, 3, 1)
        second = cached_simulation(fake_stamps, 3, 1)
        assert len(CALLS) == 2
        np.testing.assert_array_equal(first[0], second[0])
        assert list(tmp_path.iterdir()) == []

    def test_single_array_round_trip(self, tmp_path):
        CALLS.clear()
        images, truth = cached_simulation(fake_stamps, 5, 2,
                                          cache_dir=tmp_path / 'cache')
        assert len(CALLS) == 1
        suffixes = sorted(p.suffix for p in (tmp_path / 'cache').iterdir())
        assert suffixes == ['.ecsv', '.npy']
        again_images, again_truth = cached_simulation(
            fake_stamps, 5, 2, cache_dir=tmp_path / 'cache')
        assert len(CALLS) == 1
        np.testing.assert_array_equal(again_images, images)
        assert again_images.dtype == np.float32
        assert_truth_equal(again_truth, truth)
        assert again_truth['flux'].unit == u.Jy
        assert isinstance(again_truth, QTable)

    def test_several_arrays_round_trip(self, tmp_path):
        CALLS.clear()
        fresh = cached_simulation(fake_blends, 4, 3, cache_dir=tmp_path)
        assert len(fresh) == 4
        suffixes = sorted(p.suffix for p in tmp_path.iterdir())
        assert suffixes == ['.ecsv', '.npz']
        cached = cached_simulation(fake_blends, 4, 3, cache_dir=tmp_path)
        assert len(CALLS) == 1
        assert len(cached) == 4
        for new, old in zip(cached[:3], fresh[:3]):
            np.testing.assert_array_equal(new, old)
            assert new.dtype == old.dtype
            assert new.shape == old.shape
        assert_truth_equal(cached[3], fresh[3])

    def test_key(self, tmp_path):
        CALLS.clear()
        base = cached_simulation(fake_stamps, 4, 0, cache_dir=tmp_path)
        other_seed = cached_simulation(fake_stamps, 4, 1, cache_dir=tmp_path)
        other_size = cached_simulation(fake_stamps, 5, 0, cache_dir=tmp_path)
        other_kwarg = cached_simulation(fake_stamps, 4, 0, cache_dir=tmp_path,
                                        scale=2.0)
        assert len(CALLS) == 4
        assert len(list(tmp_path.glob('*.npy'))) == 4
        assert not np.array_equal(base[0], other_seed[0])
        assert len(other_size[0]) == 5
        np.testing.assert_allclose(other_kwarg[0], 2 * base[0], rtol=1e-6)
        # Each is found again.
        cached_simulation(fake_stamps, 4, 0, cache_dir=tmp_path, scale=2.0)
        cached_simulation(fake_stamps, 4, 1, cache_dir=tmp_path)
        assert len(CALLS) == 4

    def test_simulators_do_not_share_files(self, tmp_path):
        CALLS.clear()
        cached_simulation(fake_stamps, 3, 0, cache_dir=tmp_path)
        blends = cached_simulation(fake_blends, 3, 0, cache_dir=tmp_path)
        assert len(CALLS) == 2
        assert len(blends) == 4
        names = sorted(p.name.split('-')[0] for p in tmp_path.iterdir())
        assert names == ['fake_blends', 'fake_blends', 'fake_stamps',
                         'fake_stamps']


def test_changed_simulator_code_misses_the_cache(tmp_path, monkeypatch):
    """A simulator whose source changes is simulated again."""
    import importlib

    package = tmp_path / 'fake_simulators'
    package.mkdir()
    code = ('import numpy as np\n'
            'from astropy.table import QTable\n'
            'def simulate(n, seed=0):\n'
            '    return np.full((n, 2), {value}), QTable({{"a": [1] * n}})\n')
    (package / '__init__.py').write_text('')
    (package / 'sim.py').write_text(code.format(value=1.0))
    # No bytecode: a rewrite within the same second would load stale code.
    monkeypatch.setattr(sys, 'dont_write_bytecode', True)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module('fake_simulators.sim')
    first, _ = cached_simulation(module.simulate, 3, 0,
                                 cache_dir=tmp_path / 'cache')
    # A helper beside it changes: the key changes too.
    (package / 'helper.py').write_text('VALUE = 2\n')
    (package / 'sim.py').write_text(code.format(value=20.0))
    module = importlib.reload(module)
    second, _ = cached_simulation(module.simulate, 3, 0,
                                  cache_dir=tmp_path / 'cache')
    assert first[0, 0] == 1.0 and second[0, 0] == 20.0
    assert len(list((tmp_path / 'cache').glob('*.npy'))) == 2
    # Unchanged, it is found again.
    again, _ = cached_simulation(module.simulate, 3, 0,
                                 cache_dir=tmp_path / 'cache')
    np.testing.assert_array_equal(again, second)
