# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Settings and assertions shared by the tests of the tiny estimators."""

import numpy as np

__all__ = ['STAMP_OUTPUTS', 'STAMP_KWARGS', 'assert_same_outputs',
           'assert_same_tables', 'copy_saved']

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


#: Meta entries that differ between two calls of the same prediction.
VOLATILE_META = ('date_predicted',)


def assert_same_tables(first, second):
    """
    Two tables are the same, bit for bit: columns, values, units and meta
    (but the `VOLATILE_META` entries).
    """
    assert first.colnames == second.colnames
    for name in first.colnames:
        a, b = np.asarray(first[name]), np.asarray(second[name])
        if a.dtype.kind == 'f':
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert a.tolist() == b.tolist(), name
        assert getattr(first[name], 'unit', None) == getattr(
            second[name], 'unit', None), name
    stable = [{key: value for key, value in table.meta.items()
               if key not in VOLATILE_META} for table in (first, second)]
    assert stable[0] == stable[1]


def copy_saved(saved, tmp_path):
    """A copy of a saved estimator directory, to tamper with."""
    target = tmp_path / 'copy'
    target.mkdir()
    for path in saved.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target
