# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The ``astrodl`` command as a user meets it: quiet TensorFlow, fast
refusals, help, ``--version``, ``list``, ``--deblend``, ``--regions`` and
output formats that round-trip.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

from astrodl_plugins import __version__
from astrodl_plugins.cli import main
from astrodl_plugins.tests.shared_data import shared_data_dir


def _run(code, cwd):
    env = {k: v for k, v in os.environ.items()
           if k not in ('TF_CPP_MIN_LOG_LEVEL', 'GRPC_VERBOSITY')}
    return subprocess.run([sys.executable, '-c', code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


class TestQuietAndFast:
    def test_tensorflow_says_nothing(self, tmp_path):
        directory = shared_data_dir()
        if directory is None:
            pytest.skip('shared test data not found')
        image = os.path.join(directory, 'spitzer_example_image.fits')
        code = ('import sys; from astrodl_plugins.cli import main; '
                f"sys.exit(main(['predict', 'star-galaxy', {image!r}, "
                "'--output', 'x.ecsv', '--n-samples', '2', '--psf-fwhm', "
                "'1.7']))")
        done = _run(code, tmp_path)
        assert done.returncode == 0, done.stderr
        for noise in ('oneDNN', 'absl', 'tensorflow', 'retracing',
                      'InitializeLog'):
            assert noise not in done.stderr
        assert 'sources measured' in done.stdout

    @pytest.mark.parametrize('case', ['missing', 'not_fits', 'csv',
                                      'no_unit'])
    def test_refused_fast_before_tensorflow(self, tmp_path, small_image,
                                            case):
        from astropy.io import fits

        (tmp_path / 'notes.fits').write_text('not a FITS file\n')
        fits.PrimaryHDU(np.zeros((16, 16))).writeto(tmp_path / 'bare.fits')
        image, output = {
            'missing': ('no_such.fits', 'o.ecsv'),
            'not_fits': ('notes.fits', 'o.ecsv'),
            'csv': (str(small_image), 'o.csv'),
            'no_unit': ('bare.fits', 'o.ecsv')}[case]
        code = ('import sys; from astrodl_plugins.cli import main; '
                f"rc = main(['predict', 'galaxy-structure', {image!r}, "
                f"'--output', {output!r}]); "
                "print(rc, [m for m in ('tensorflow', 'keras', 'photutils')"
                " if m in sys.modules])")
        done = _run(code, tmp_path)
        rc, heavy = done.stdout.split(maxsplit=1)
        assert rc == '2'
        # What makes it fast: nothing heavy is imported before refusing.
        assert heavy.strip() == '[]'
        assert 'error' in done.stderr


class TestHelp:
    def test_version(self, capsys):
        assert main(['--version']) == 0
        assert __version__ in capsys.readouterr().out

    def test_every_option_has_help_and_its_default(self, capsys):
        assert main(['predict', '--help']) == 0
        out = ' '.join(capsys.readouterr().out.split())
        assert '(default: 50)' in out and '(default: none)' in out
        assert 'galaxy-structure' in out and 'star-galaxy' in out
        for command in ('demo', 'list', 'deblend', 'train', 'familiarity',
                        'make-sample-field'):
            assert main([command, '--help']) == 0
            out = capsys.readouterr().out
            options = re.findall(r'^  (-[-\w, ]+?)(?:  |\n| [A-Z])', out,
                                 flags=re.MULTILINE)
            assert options

    def test_unknown_estimator_lists_the_choices(self, capsys, tmp_path,
                                                 small_image):
        # Checked after the files (the registry loads every estimator
        # class), still before any network.
        assert main(['predict', 'nope', str(small_image), '--output',
                     str(tmp_path / 'x.ecsv')]) == 2
        err = capsys.readouterr().err
        assert 'nope' in err and 'galaxy-structure' in err
        assert not (tmp_path / 'x.ecsv').exists()

    def test_help_lists_the_estimators(self, capsys):
        assert main(['predict', '--help']) == 0
        assert 'galaxy-structure' in capsys.readouterr().out

    def test_list_wraps_to_the_terminal(self, capsys, monkeypatch):
        monkeypatch.setenv('COLUMNS', '50')
        assert main(['list']) == 0
        lines = capsys.readouterr().out.splitlines()
        assert any(line.startswith('galaxy-structure') for line in lines)
        assert max(len(line) for line in lines) <= 50


class TestPredictOptions:
    def test_regions_and_deblend(self, tmp_path, small_image, capsys):
        output = tmp_path / 'c.ecsv'
        regions = tmp_path / 'c.reg'
        assert main(['predict', 'galaxy-structure', str(small_image),
                     '--output', str(output), '--regions', str(regions),
                     '--n-samples', '0', '--deblend']) == 0
        captured = capsys.readouterr()
        assert "'--deblend photutils'" in captured.err
        table = QTable.read(output)
        text = regions.read_text()
        labels = re.findall(r'text=\{(\d+)\}', text)
        n_regions = text.count('ellipse')
        assert len(labels) == n_regions > 0
        assert set(map(int, labels)) <= set(table['label'].tolist())
        assert f'{n_regions} regions' in captured.out
        if n_regions < len(table):
            assert 'skipped' in captured.out

    def test_regions_checked_before_the_work(self, tmp_path, small_image,
                                             capsys):
        for name in ('c.txt', 'c.ecsv'):
            assert main(['predict', 'galaxy-structure', str(small_image),
                         '--output', str(tmp_path / 'c.ecsv'), '--regions',
                         str(tmp_path / name)]) == 2
            assert '--regions' in capsys.readouterr().err
        assert list(tmp_path.iterdir()) == []

    def test_deblend_method_names(self, tmp_path, small_image, capsys):
        assert main(['predict', 'galaxy-structure', str(small_image),
                     '--output', str(tmp_path / 'c.ecsv'),
                     '--deblend', 'nope']) == 2
        assert 'photutils' in capsys.readouterr().err

    @pytest.mark.filterwarnings('ignore:.*psf_fwhm')
    def test_deblend_dl(self, tmp_path, small_image):
        assert main(['predict', 'galaxy-structure', str(small_image),
                     '--output', str(tmp_path / 'c.ecsv'), '--n-samples',
                     '0', '--deblend', 'dl']) == 0
        assert len(QTable.read(tmp_path / 'c.ecsv')) > 0


class TestOutputFormats:
    @pytest.mark.parametrize('name', ['c.ecsv', 'c.fits', 'c.h5'])
    def test_round_trip(self, tmp_path, small_image, name):
        pytest.importorskip('h5py') if name.endswith('.h5') else None
        reference = tmp_path / 'reference.ecsv'
        assert main(['predict', 'star-galaxy', str(small_image), '--output',
                     str(reference), '--n-samples', '0', '--psf-fwhm',
                     '3']) == 0
        assert main(['predict', 'star-galaxy', str(small_image), '--output',
                     str(tmp_path / name), '--n-samples', '0',
                     '--psf-fwhm', '3']) == 0
        expected = QTable.read(reference)
        with u.add_enabled_units([u.electron]):
            table = QTable.read(tmp_path / name)
        assert table.colnames == expected.colnames
        for column in expected.colnames:
            assert type(table[column]) is type(expected[column]), column
            assert (getattr(table[column], 'unit', None)
                    == getattr(expected[column], 'unit', None)), column
        assert table.meta['flags'] == expected.meta['flags']
        assert set(table.meta) == set(expected.meta)

    @pytest.mark.parametrize('option', [['--output', 'c.csv'],
                                        ['--output', 'c.xml'],
                                        ['--output', 'c.ecsv', '--format',
                                         'ascii.csv']])
    def test_lossy_formats_refused(self, tmp_path, small_image, capsys,
                                   option):
        option = [str(tmp_path / o) if o.startswith('c.') else o
                  for o in option]
        assert main(['predict', 'galaxy-structure', str(small_image),
                     *option]) == 2
        err = capsys.readouterr().err
        assert 'ecsv' in err and 'fits' in err
        assert list(tmp_path.iterdir()) == []


def test_deblend_progress_bars_do_not_overshoot(tmp_path, small_image,
                                                capsys):
    assert main(['deblend', str(small_image), '--output',
                 str(tmp_path / 'seg.fits'), '--n-samples', '0']) == 0
    err = capsys.readouterr().err
    counts = re.findall(r'(\d+)/(\d+) \[', err)
    assert counts
    assert all(int(n) <= int(total) for n, total in counts)


def test_catalog_regions_skip_undrawable_rows():
    import numpy as np

    from astrodl_plugins.cli import catalog_regions

    table = QTable({'label': [1, 2, 3, 4],
                    'x_centroid': [1.0, 2.0, 3.0, 4.0] * u.pix,
                    'y_centroid': [1.0, 2.0, 3.0, 4.0] * u.pix,
                    'r_eff': [2.0, np.nan, 2.0, 0.0] * u.pix,
                    'axis_ratio': [0.5, 0.5, 0.0, 0.5],
                    'position_angle': [10.0, 10.0, 10.0, 10.0] * u.deg})
    regions, n_skipped = catalog_regions(table)
    assert n_skipped == 3
    assert [region.meta['text'] for region in regions] == ['1']
    points, n_skipped = catalog_regions(table['label', 'x_centroid',
                                               'y_centroid'])
    assert n_skipped == 0
    assert [region.meta['text'] for region in points] == ['1', '2', '3', '4']
