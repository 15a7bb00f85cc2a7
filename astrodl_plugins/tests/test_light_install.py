# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
A plain install (no ``train`` extra) predicts, deblends and runs the demo:
checked in a fresh interpreter where GalSim, Dask and scikit-image cannot
be imported.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import astrodl_plugins

SCRIPT = textwrap.dedent('''
    import sys

    for name in ('galsim', 'dask', 'skimage'):
        sys.modules[name] = None
    sys.path.insert(0, sys.argv[1])

    import numpy as np
    from astropy import units as u
    from astropy.modeling.functional_models import Moffat2D
    from astropy.nddata import CCDData, StdDevUncertainty
    from astropy.wcs import WCS
    from photutils.segmentation import SegmentationImage

    import astrodl_plugins as adl
    from astrodl_plugins.deblending import deblend_sources_dl
    from astrodl_plugins.demo import run_demo, select_galaxies

    rng = np.random.default_rng(0)
    y, x = np.mgrid[:96, :160]
    data = np.zeros((96, 160))
    for x0, y0, gamma in ((39.5, 47.5, 2.0), (119.5, 47.5, 4.0),
                          (126.5, 50.5, 3.0)):
        data += Moffat2D(200.0, x0, y0, gamma, 3.0)(x, y)
    data += rng.normal(0.0, 2.0, data.shape)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [30.0, -10.0]
    wcs.wcs.crpix = [80, 48]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    ccd = CCDData(data.astype(np.float32), unit=u.electron, wcs=wcs,
                  uncertainty=StdDevUncertainty(np.full(data.shape, 2.0)),
                  meta={'PSF_FWHM': 3.0})
    segm_data = np.zeros(data.shape, np.int32)
    segm_data[35:60, 27:52] = 1
    segm_data[35:64, 107:140] = 2
    segm = SegmentationImage(segm_data)

    names = [row['name'] for row in adl.list_estimators()
             if row['plugin'].startswith('astrodl_plugins')]
    assert len(names) >= 4, names
    for name in names:
        estimator = adl.get_estimator(name)
        if estimator.task == 'deblending':
            where = {'segmentation_image': segm}
        else:
            where = {'positions': np.array([[39.5, 47.5], [119.5, 47.5]])}
        result = estimator.predict(ccd, n_samples=2, seed=0, **where)
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

    from astrodl_plugins.simulate import simulate_galaxy_stamps
    try:
        simulate_galaxy_stamps(2, seed=0, n_processes=1)
    except ImportError as error:
        assert 'pip install "astrodl-plugins[train]"' in str(error), error
        print('simulate refused')
    else:
        raise AssertionError('simulating without GalSim did not fail')

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
    for name in ('galsim', 'dask', 'skimage'):
        assert sys.modules[name] is None, name
''')


def test_predict_deblend_and_demo_without_training_extras(tmp_path):
    root = Path(astrodl_plugins.__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, '-c', SCRIPT, str(root), str(tmp_path / 'demo')],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in ('predicted galaxy-structure', 'deblended', 'demo',
                 'simulate refused', 'train refused'):
        assert line in result.stdout
    assert sorted(p.name for p in (tmp_path / 'demo').iterdir()) == [
        'catalog.ecsv', 'demo.png', 'galaxies.reg']
