# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
A plain install (no ``train`` extra) predicts, deblends and runs the demo:
checked in a fresh interpreter where GalSim, Dask, scikit-image,
lenstronomy and batman cannot be imported.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import astrodl_plugins

SCRIPT = textwrap.dedent('''
    import sys

    for name in ('galsim', 'dask', 'skimage', 'lenstronomy', 'batman'):
        sys.modules[name] = None
    sys.path.insert(0, sys.argv[1])

    import astrodl_plugins as adl
    from astrodl_plugins.deblending import deblend_sources_dl
    from astrodl_plugins.demo import run_demo, select_galaxies
    from astrodl_plugins.tests.fields import data_for, small_field, where

    ccd, segm = small_field()

    names = [row['name'] for row in adl.list_estimators()
             if row['plugin'].startswith('astrodl_plugins')]
    assert len(names) >= 4, names
    for name in names:
        estimator = adl.get_estimator(name)
        result = estimator.predict(data_for(estimator, ccd), n_samples=2,
                                   seed=0, **where(estimator, segm))
        table = result[0] if isinstance(result, tuple) else result
        assert len(table) >= 1, name
        print('predicted', name, len(table))

    deblended = deblend_sources_dl(ccd, segm, n_pixels=5,
                                   progress_bar=False)
    assert deblended.n_labels >= 2
    print('deblended', deblended.n_labels)

    table, summary = run_demo(sys.argv[2], n_samples=6, seed=0,
                              show=lambda line: None)
    assert len(table) > 0 and summary['n_matched'] > 0

    from astrodl_plugins.datasets import load_sample_field
    from astrodl_plugins.core.detection import subtract_background_and_detect
    _, _, catalog = subtract_background_and_detect(load_sample_field()[0])
    assert len(select_galaxies(catalog, psf_fwhm=3.0)) > 0
    print('demo', len(table))

    from astrodl_plugins.simulate import (simulate_galaxy_stamps,
                                          simulate_lens_stamps,
                                          simulate_light_curve_arrays)
    for simulate, what in (
            (lambda: simulate_galaxy_stamps(2, seed=0, n_processes=1),
             'simulate'),
            (lambda: simulate_lens_stamps(2, seed=0, n_processes=1),
             'lens simulation'),
            (lambda: simulate_light_curve_arrays(2, seed=0),
             'light-curve simulation')):
        try:
            simulate()
        except ImportError as error:
            assert 'pip install "astrodl-plugins[train]"' in str(error), error
            print(what, 'refused')
        else:
            raise AssertionError(f'{what} without its extra did not fail')

    import contextlib
    import io

    from astrodl_plugins.cli import main

    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        status = main(['train', 'star-galaxy', '--output', sys.argv[2]
                       + '-model'])
    assert status == 1, status
    assert 'astrodl-plugins[train]' in errors.getvalue(), errors.getvalue()
    print('train refused')
    for name in ('galsim', 'dask', 'skimage', 'lenstronomy', 'batman'):
        assert sys.modules[name] is None, name
''')


def test_predict_deblend_and_demo_without_training_extras(tmp_path):
    root = Path(astrodl_plugins.__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, '-c', SCRIPT, str(root), str(tmp_path / 'demo')],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in ('predicted galaxy-structure', 'deblended', 'demo',
                 'predicted transit', 'simulate refused',
                 'lens simulation refused', 'light-curve simulation refused',
                 'train refused'):
        assert line in result.stdout
    assert sorted(p.name for p in (tmp_path / 'demo').iterdir()) == [
        'catalog.ecsv', 'demo.png', 'galaxies.reg']
