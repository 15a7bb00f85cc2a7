# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Settings and assertions shared by the tests of the tiny estimators."""

import numpy as np

__all__ = ['STAMP_OUTPUTS', 'STAMP_KWARGS', 'assert_same_outputs',
           'copy_saved']

#: Output names of `TinyStamp`.
STAMP_OUTPUTS = ('flux', 'size')
#: MC settings of the source-stamp tests.
STAMP_KWARGS = dict(n_samples=6, seed=3)


def assert_same_outputs(first, second, names=STAMP_OUTPUTS, **kwargs):
    """Columns ``<name>`` and ``<name>_err`` of two tables agree."""
    for name in names:
        for column in (name, f'{name}_err'):
            np.testing.assert_allclose(
                np.asarray(first[column]), np.asarray(second[column]),
                err_msg=column, **kwargs)


def copy_saved(saved, tmp_path):
    """A copy of a saved estimator directory, to tamper with."""
    target = tmp_path / 'copy'
    target.mkdir()
    for path in saved.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target
