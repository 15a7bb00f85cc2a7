# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The shipped presets load and predict under a second Keras backend (JAX,
the ``jax`` extra) and give the TensorFlow backend's tables.

The package computes with ``keras.ops`` only, so one deterministic pass
(``n_samples=0``) must agree across backends to float32 round-off. The
second backend runs in a fresh interpreter: Keras picks its backend once,
at import.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import astrodl_plugins
from astrodl_plugins.tests.fields import small_field, where

PRESETS = ('star-galaxy', 'galaxy-morphology', 'galaxy-structure',
           'deblender')
OTHER_BACKEND = {'tensorflow': 'jax', 'jax': 'tensorflow'}


def predict_presets():
    """
    The numeric columns of each preset's deterministic table, as lists,
    under the backend Keras was imported with (JSON-ready).
    """
    import keras

    ccd, segm = small_field()
    tables = {'backend': keras.backend.backend()}
    for name in PRESETS:
        estimator = astrodl_plugins.get_estimator(name)
        result = estimator.predict(ccd, n_samples=0, seed=0,
                                   **where(estimator, segm))
        table = result[0] if isinstance(result, tuple) else result
        tables[name] = {
            column: np.asarray(table[column]).tolist()
            for column in table.colnames
            if np.asarray(table[column]).dtype.kind in 'biuf'}
    return tables


def _predict_in_subprocess(backend):
    root = Path(astrodl_plugins.__file__).resolve().parent.parent
    script = ('import json, sys; sys.path.insert(0, sys.argv[1]); '
              'from astrodl_plugins.tests.test_backends import '
              'predict_presets; print(json.dumps(predict_presets()))')
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS='cpu',
               TF_CPP_MIN_LOG_LEVEL='2')
    # XLA's optimizing passes cost far more time than they save on a few
    # stamps (compiling each layer's initializer and forward pass dominates
    # the JAX run); the numbers stay within float32 round-off.
    env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '')
                        + ' --xla_backend_optimization_level=0').strip()
    result = subprocess.run(
        [sys.executable, '-c', script, str(root)], env=env,
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


class TestSecondBackend:
    def test_presets_predict_the_same_tables(self):
        import keras

        backend = keras.backend.backend()
        other = OTHER_BACKEND.get(backend)
        if other is None:
            pytest.skip(f'no second backend to compare with {backend!r}')
        for name in (backend, other):
            if importlib.util.find_spec(name) is None:
                pytest.skip(f'{name} is not installed (the "jax" extra)')

        expected = predict_presets()
        actual = _predict_in_subprocess(other)
        assert actual['backend'] == other
        for name in PRESETS:
            assert actual[name].keys() == expected[name].keys(), name
            assert len(expected[name]['label']) >= 1, name
            for column, values in expected[name].items():
                want = np.array(values)
                got = np.array(actual[name][column])
                err_msg = f'{name}: {column} ({backend} vs {other})'
                if want.dtype.kind in 'biu':
                    np.testing.assert_array_equal(got, want, err_msg=err_msg)
                else:
                    np.testing.assert_allclose(got, want, rtol=1e-4,
                                               atol=1e-6, err_msg=err_msg)
