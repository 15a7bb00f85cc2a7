# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Reliability of the ``astrodl`` command: checked options and inputs, outputs
checked before computing and written atomically.
"""

import contextlib
import errno
import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import QTable, Table
from astropy.utils.exceptions import AstropyUserWarning

from astrodl_plugins.cli import main
from astrodl_plugins.core import output as output_module
from astrodl_plugins.core.output import (
    atomic_outputs,
    check_fits_input,
    table_write_format,
    write_fits_atomic,
    write_table_atomic,
)

OLD_BYTES = b'# the previous catalog, which must survive\n' * 50


def _disk_full(*args, **kwargs):
    """Write some bytes to the target, then fail as a full disk does."""
    path = next(a for a in args if isinstance(a, (str, os.PathLike)))
    with open(path, 'wb') as stream:
        stream.write(b'SIMPLE  =   partial' * 20)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@pytest.fixture
def failing_table_write(monkeypatch):
    monkeypatch.setattr(Table, 'write', _disk_full)


@pytest.fixture
def failing_fits_write(monkeypatch):
    monkeypatch.setattr(fits.HDUList, 'writeto', _disk_full)


def _listing(directory):
    return sorted(p.name for p in Path(directory).iterdir())


def _table():
    return QTable({'label': [1, 2], 'flux': [1.5, 2.5] * u.electron,
                   'r_eff': [0.3, 0.4] * u.arcsec})


def _fits_unit_warning(name):
    """FITS: astropy warns that 'electron' is no standard FITS unit."""
    if name.endswith('.fits'):
        return pytest.warns(AstropyUserWarning, match="unit 'electron'")
    return contextlib.nullcontext()


class TestAtomicWriters:
    @pytest.mark.parametrize('name', ['t.ecsv', 't.fits'])
    def test_units_survive(self, tmp_path, name):
        with _fits_unit_warning(name):
            path = write_table_atomic(_table(), tmp_path / name)
        with u.add_enabled_units([u.electron]):
            table = QTable.read(path)
        assert table['flux'].unit == u.electron
        assert table['r_eff'].unit == u.arcsec
        assert _listing(tmp_path) == [name]

    def test_refuses_to_overwrite_unless_asked(self, tmp_path):
        path = tmp_path / 't.ecsv'
        path.write_bytes(OLD_BYTES)
        with pytest.raises(FileExistsError, match='overwrite'):
            write_table_atomic(_table(), path)
        assert path.read_bytes() == OLD_BYTES
        write_table_atomic(_table(), path, overwrite=True)
        assert len(QTable.read(path)) == 2

    def test_failed_overwrite_keeps_the_old_file(self, tmp_path,
                                                 failing_table_write):
        path = tmp_path / 't.ecsv'
        path.write_bytes(OLD_BYTES)
        with pytest.raises(OSError, match='No space left'):
            write_table_atomic(_table(), path, overwrite=True)
        assert path.read_bytes() == OLD_BYTES
        assert _listing(tmp_path) == ['t.ecsv']

    def test_failed_new_file_leaves_nothing(self, tmp_path,
                                            failing_table_write):
        with pytest.raises(OSError, match='No space left'):
            write_table_atomic(_table(), tmp_path / 't.ecsv')
        assert _listing(tmp_path) == []

    def test_failed_fits_write_keeps_the_old_file(self, tmp_path,
                                                  failing_fits_write):
        path = tmp_path / 'seg.fits'
        path.write_bytes(OLD_BYTES)
        with pytest.raises(OSError, match='No space left'):
            write_fits_atomic(np.zeros((4, 4)), path, overwrite=True)
        assert path.read_bytes() == OLD_BYTES
        assert _listing(tmp_path) == ['seg.fits']

    def test_fits_round_trip(self, tmp_path):
        header = fits.Header({'EXTNAME': 'SEGMENTATION'})
        path = write_fits_atomic(np.arange(6).reshape(2, 3), tmp_path /
                                 'seg.fits', header=header)
        assert fits.getheader(path)['EXTNAME'] == 'SEGMENTATION'
        assert fits.getdata(path).sum() == 15

    def test_several_files_all_or_nothing(self, tmp_path, monkeypatch):
        first, second = tmp_path / 'a.fits', tmp_path / 'b.ecsv'
        first.write_bytes(OLD_BYTES)
        second.write_bytes(OLD_BYTES + b'b')
        real_replace = os.replace
        calls = []

        def replace(source, target):
            calls.append(target)
            # The second output's rename fails; the first must be undone.
            if Path(target) == second:
                raise OSError(errno.EIO, 'rename failed')
            real_replace(source, target)

        monkeypatch.setattr(output_module.os, 'replace', replace)
        with pytest.raises(OSError, match='rename failed'):
            with atomic_outputs([first, second], overwrite=True) as temps:
                temps[0].write_bytes(b'new a')
                temps[1].write_bytes(b'new b')
        monkeypatch.undo()
        assert first.read_bytes() == OLD_BYTES
        assert second.read_bytes() == OLD_BYTES + b'b'
        assert _listing(tmp_path) == ['a.fits', 'b.ecsv']

    def test_identical_paths_rejected(self, tmp_path):
        with pytest.raises(ValueError, match='must differ'):
            with atomic_outputs([tmp_path / 'a', tmp_path / 'a']):
                pass

    def test_format_checks(self, tmp_path):
        assert table_write_format(tmp_path / 'x.ecsv') == 'ascii.ecsv'
        assert table_write_format(tmp_path / 'x.txt', 'fits') == 'fits'
        with pytest.raises(ValueError, match=r"'ascii.csv'\) would lose"):
            table_write_format(tmp_path / 'x.csv')
        with pytest.raises(ValueError, match="'x.txt'.*extension"):
            table_write_format('x.txt', name='--output')
        with pytest.raises(ValueError, match="--format 'nope'"):
            table_write_format('x.ecsv', 'nope', format_name='--format')

    def test_fits_input_check(self, tmp_path, small_image):
        assert check_fits_input(small_image) == small_image
        gz = tmp_path / 'small.fits.gz'
        gz.write_bytes(gzip.compress(small_image.read_bytes()))
        assert check_fits_input(gz) == gz
        text = tmp_path / 'text.fits'
        text.write_text('not a fits file')
        with pytest.raises(ValueError, match="image '.*text.fits' is not a "
                           'FITS file'):
            check_fits_input(text, name='image')


class TestCommandWriteFailures:
    """The real networks run; the final write fails as a full disk."""

    def test_predict_overwrite_keeps_the_old_catalog(
            self, tmp_path, small_image, failing_table_write, capsys):
        output = tmp_path / 'catalog.ecsv'
        output.write_bytes(OLD_BYTES)
        assert main(['predict', 'galaxy-structure', str(small_image),
                     '--output', str(output), '--n-samples', '0',
                     '--overwrite']) == 1
        err = capsys.readouterr().err
        assert 'catalog.ecsv' in err and 'No space left' in err
        assert 'no output file was changed' in err
        assert output.read_bytes() == OLD_BYTES
        assert _listing(tmp_path) == ['catalog.ecsv']

    def test_predict_new_catalog_not_left_half_written(
            self, tmp_path, small_image, failing_table_write, capsys):
        assert main(['predict', 'galaxy-structure', str(small_image),
                     '--output', str(tmp_path / 'catalog.ecsv'),
                     '--n-samples', '0']) == 1
        assert 'catalog.ecsv' in capsys.readouterr().err
        assert _listing(tmp_path) == []

    def test_deblend_leaves_no_segmentation_when_the_catalog_fails(
            self, tmp_path, small_image, failing_table_write, capsys):
        args = ['deblend', str(small_image), '--output',
                str(tmp_path / 'seg.fits'), '--catalog',
                str(tmp_path / 'catalog.ecsv'), '--n-samples', '0']
        assert main(args) == 1
        assert 'catalog.ecsv' in capsys.readouterr().err
        assert _listing(tmp_path) == []
        # With --overwrite, both previous files survive byte for byte.
        (tmp_path / 'seg.fits').write_bytes(OLD_BYTES)
        (tmp_path / 'catalog.ecsv').write_bytes(OLD_BYTES + b'c')
        assert main(args + ['--overwrite']) == 1
        assert (tmp_path / 'seg.fits').read_bytes() == OLD_BYTES
        assert (tmp_path / 'catalog.ecsv').read_bytes() == OLD_BYTES + b'c'
        assert _listing(tmp_path) == ['catalog.ecsv', 'seg.fits']

    def test_deblend_segmentation_write_fails(
            self, tmp_path, small_image, failing_fits_write, capsys):
        assert main(['deblend', str(small_image), '--output',
                     str(tmp_path / 'seg.fits'), '--n-samples', '0']) == 1
        assert 'seg.fits' in capsys.readouterr().err
        assert _listing(tmp_path) == []

    @pytest.mark.filterwarnings('ignore:Attribute `flags`')
    def test_units_kept_in_the_cli_catalogs(self, tmp_path, small_image):
        for name in ('catalog.ecsv', 'catalog.fits'):
            with _fits_unit_warning(name):
                assert main(['predict', 'galaxy-structure', str(small_image),
                             '--output', str(tmp_path / name),
                             '--n-samples', '0']) == 0
            with u.add_enabled_units([u.electron]):
                table = QTable.read(tmp_path / name)
            assert table['r_eff'].unit == u.arcsec
            assert table['flux'].unit == u.electron
            assert table['x_centroid'].unit is None
        assert _listing(tmp_path) == ['catalog.ecsv', 'catalog.fits']


def _files(directory, image):
    """Bad inputs and existing outputs, made once per test."""
    text = directory / 'notes.fits'
    text.write_text('not a FITS file\n')
    (directory / 'empty.fits').write_bytes(b'')
    raw = image.read_bytes()
    (directory / 'truncated.fits').write_bytes(raw[:len(raw) // 3])
    fits.writeto(directory / 'cube.fits', np.zeros((2, 8, 8)))
    (directory / 'existing.ecsv').write_bytes(OLD_BYTES)
    (directory / 'a_directory.ecsv').mkdir()
    (directory / 'image.fits').write_bytes(raw)


# (argv with {d} for the directory and {img} for a good image, the
# expected exit status, text that stderr must contain)
BAD_INPUTS = [
    ('predict galaxy-structure {img} --output {d}/o.ecsv --n-sigma -1',
     '--n-sigma'),
    ('predict galaxy-structure {img} --output {d}/o.ecsv --n-sigma nan',
     '--n-sigma'),
    ('predict galaxy-structure {img} --output {d}/o.ecsv --n-pixels 0',
     '--n-pixels'),
    ('predict galaxy-structure {img} --output {d}/o.ecsv --n-pixels 2.5',
     '--n-pixels'),
    ('predict galaxy-structure {img} --output {d}/o.ecsv --n-samples -1',
     '--n-samples'),
    ('predict galaxy-structure {img} --output {d}/o.ecsv --seed -5',
     '--seed'),
    ('predict galaxy-structure {img} --output {d}/o.ecsv --psf-fwhm 0',
     '--psf-fwhm'),
    ('predict galaxy-structure {img} --output {d}/o.ecsv --unit furlongs',
     '--unit'),
    ('predict galaxy-structure {img} --output {d}/out.txt', "out.txt'"),
    ('predict galaxy-structure {img} --output {d}/o.ecsv --format nope',
     '--format'),
    ('predict galaxy-structure {img} --output {d}/missing_dir/o.ecsv',
     'missing_dir'),
    ('predict galaxy-structure {img} --output {d}/existing.ecsv',
     '--overwrite'),
    ('predict galaxy-structure {img} --output {d}/a_directory.ecsv '
     '--overwrite', 'a_directory.ecsv'),
    ('predict galaxy-structure {d}/image.fits --output {d}/image.fits '
     '--format fits --overwrite', 'also an input'),
    ('predict galaxy-structure {d}/no_such.fits --output {d}/o.ecsv',
     'no_such.fits'),
    ('predict galaxy-structure {d}/notes.fits --output {d}/o.ecsv',
     'notes.fits'),
    ('predict galaxy-structure {d}/empty.fits --output {d}/o.ecsv',
     'empty.fits'),
    ('predict galaxy-structure {d}/truncated.fits --output {d}/o.ecsv',
     'truncated.fits'),
    ('predict galaxy-structure {d}/cube.fits --output {d}/o.ecsv --unit adu',
     'cube.fits'),
    ('predict galaxy-structure {d} --output {d}/o.ecsv', 'is a directory'),
    ('predict star-galaxy {img} {img} --bands g --output {d}/o.ecsv',
     '--bands'),
    ('deblend {img} --output {d}/seg.ecsv', '--output'),
    ('deblend {img} --output {d}/seg.fits --catalog {d}/cat.txt',
     '--catalog'),
    ('deblend {img} --output {d}/seg.fits --catalog {d}/seg.fits',
     '--catalog'),
    ('deblend {img} --output {d}/seg.fits --catalog {d}/existing.ecsv',
     '--catalog'),
    ('deblend {img} --output {d}/seg.fits --n-sigma 0', '--n-sigma'),
    ('train galaxy-structure --output {d}/model --epochs 0', '--epochs'),
    ('familiarity galaxy-structure --output {d}/model --n 1', '--n'),
    ('demo --output-dir {d} --n-samples -2', '--n-samples'),
    ('make-sample-field --output-dir {d} --seed -1', '--seed'),
]


@pytest.mark.parametrize(('command', 'named'), BAD_INPUTS,
                         ids=[c.split(' {')[0] + ':' + n
                              for c, n in BAD_INPUTS])
def test_bad_input_is_refused_before_any_work(tmp_path, small_image,
                                              monkeypatch, capsys, command,
                                              named):
    def no_work(*args, **kwargs):
        raise AssertionError('the computation started')

    monkeypatch.setattr('astrodl_plugins.core.detection.'
                        'subtract_background_and_detect', no_work)
    _files(tmp_path, small_image)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    argv = command.format(d=tmp_path, img=small_image).split()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err
    assert 'Traceback' not in err
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert after == before


def test_demo_writes_all_or_nothing(tmp_path, monkeypatch):
    # A failure while drawing the figure (the last of the three files)
    # leaves no catalog, no region file and no temporary behind.
    from astrodl_plugins import demo

    def broken_plot(*args, **kwargs):
        raise OSError('No space left on device')

    monkeypatch.setattr(demo, '_plot', broken_plot)
    with pytest.raises(OSError, match='No space left'):
        demo.run_demo(tmp_path, n_samples=6, seed=0, show=lambda line: None)
    assert list(tmp_path.iterdir()) == []
