# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the ``astrodl`` command and the demo."""

import numpy as np
from astropy.table import QTable

from astrodl_plugins.cli import main
from astrodl_plugins.datasets import load_sample_field


class TestDemo:
    def test_demo_writes_its_files_and_refuses_to_overwrite(self, tmp_path,
                                                            capsys):
        assert main(['demo', '--output-dir', str(tmp_path),
                     '--n-samples', '10']) == 0
        out = capsys.readouterr().out
        assert 'Accuracy against the truth' in out
        for name in ('catalog.ecsv', 'galaxies.reg', 'demo.png'):
            assert (tmp_path / name).stat().st_size > 0
        table = QTable.read(tmp_path / 'catalog.ecsv')
        assert len(table) >= 25  # 30 simulated galaxies, well separated
        assert 'sky_centroid' in table.colnames
        regions = (tmp_path / 'galaxies.reg').read_text()
        assert regions.count('ellipse') == len(table)
        # A second run must not overwrite silently.
        assert main(['demo', '--output-dir', str(tmp_path),
                     '--n-samples', '2']) == 2
        assert 'overwrite' in capsys.readouterr().err
        # The demo's quantiles need a few MC draws.
        assert main(['demo', '--output-dir', str(tmp_path), '--n-samples',
                     '6', '--overwrite']) == 0

    def test_demo_accuracy(self, tmp_path):
        import matplotlib
        from matplotlib import pyplot as plt

        from astrodl_plugins.demo import run_demo

        backend = matplotlib.get_backend()
        lines = []
        _, summary = run_demo(tmp_path, n_samples=10, show=lines.append)
        # demo.png is drawn on a Figure: the caller's matplotlib untouched.
        assert matplotlib.get_backend() == backend
        assert plt.get_fignums() == []
        assert summary['n_matched'] >= 25
        assert summary['r_eff']['median_error'] < 0.1
        assert summary['axis_ratio']['median_error'] < 0.06


class TestCommands:
    def test_list(self, capsys):
        assert main(['list']) == 0
        assert 'galaxy-structure' in capsys.readouterr().out

    def test_predict_on_a_fits_file(self, tmp_path, capsys):
        ccd, _ = load_sample_field()
        path = tmp_path / 'field.fits'
        ccd.write(path)
        output = tmp_path / 'catalog.ecsv'
        args = ['predict', 'galaxy-structure', str(path), '--output',
                str(output), '--n-samples', '5']
        assert main(args) == 0
        table = QTable.read(output)
        assert len(table) >= 45  # galaxies and stars
        assert np.all(np.isfinite(table['r_eff']))
        assert main(args) == 2
        assert 'overwrite' in capsys.readouterr().err

    def test_predict_classifier_with_bands(self, tmp_path, capsys):
        ccd, truth = load_sample_field()
        paths = []
        for band in ('g', 'r'):
            paths.append(str(tmp_path / f'field_{band}.fits'))
            ccd.write(paths[-1])
        output = tmp_path / 'classes.ecsv'
        assert main(['predict', 'star-galaxy', *paths, '--bands', 'g', 'r',
                     '--output', str(output), '--n-samples', '5']) == 0
        table = QTable.read(output)
        assert table.meta['bands'] == ['g', 'r']
        assert table.meta['input_files'] == ['field_g.fits', 'field_r.fits']
        assert set(table['class']) <= {'star', 'galaxy'}
        assert 'classes:' in capsys.readouterr().out
        # One image per band only for the classifiers.
        assert main(['predict', 'galaxy-structure', *paths, '--output',
                     str(tmp_path / 'x.ecsv')]) == 2
        assert 'one image' in capsys.readouterr().err

    def test_unknown_estimator(self, tmp_path, capsys):
        ccd, _ = load_sample_field()
        path = tmp_path / 'field.fits'
        ccd.write(path)
        assert main(['predict', 'no-such-thing', str(path), '--output',
                     str(tmp_path / 'x.ecsv')]) == 2
        assert 'galaxy-structure' in capsys.readouterr().err

    def test_train_needs_a_known_recipe(self, capsys):
        assert main(['train', 'no-such-thing', '--output', 'x']) == 2
        assert 'galaxy-structure' in capsys.readouterr().err

    def test_familiarity_needs_a_model_with_one(self, tmp_path, capsys):
        assert main(['familiarity', 'no-such-thing', '--output',
                     str(tmp_path / 'x')]) == 2
        assert 'galaxy-structure' in capsys.readouterr().err

    def test_make_sample_field_is_reproducible(self, tmp_path):
        assert main(['make-sample-field', '--output-dir', str(tmp_path)]) == 0
        ccd, truth = load_sample_field()
        made = QTable.read(tmp_path / 'sample_field_truth.ecsv')
        assert np.allclose(made['flux'].value, truth['flux'].value)

    def test_deblend_writes_segmentation_and_catalog(self, tmp_path, capsys):
        from astropy import units as u
        from astropy.io import fits
        from astropy.nddata import CCDData

        from astrodl_plugins.simulate import simulate_blend_field

        image, truth, _ = simulate_blend_field(seed=7, shape=(336, 336),
                                               n_processes=1)
        path = tmp_path / 'blends.fits'
        # The CLI subtracts the background: give it a sky level.
        CCDData(image + 100.0, unit=u.electron).write(path)
        segm_path = tmp_path / 'segm.fits'
        catalog = tmp_path / 'catalog.ecsv'
        args = ['deblend', str(path), '--output', str(segm_path),
                '--catalog', str(catalog), '--n-samples', '5']
        assert main(args) == 0
        out = capsys.readouterr().out
        assert 'after deblending' in out
        segm = fits.getdata(segm_path)
        assert segm.shape == image.shape
        table = QTable.read(catalog)
        assert len(table) == segm.max()
        assert len(table) >= 0.7 * len(truth)
        assert {'parent_label', 'flux', 'flux_err'} <= set(table.colnames)
        # Never overwrite without being asked.
        assert main(args) == 2
        assert 'overwrite' in capsys.readouterr().err
