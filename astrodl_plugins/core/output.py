# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Checked, atomic output files (the ``astrodl`` command's writers).

Every output is first written to a hidden temporary file in its own
directory and then moved into place with `os.replace`, which is atomic on
POSIX and Windows file systems: a reader sees the old file or the complete
new one, never a half-written file, and a write that fails (disk full,
quota, interrupted) leaves the previous file untouched and no temporary
behind. `atomic_outputs` extends this to commands that write several files:
all temporaries are written first and only then renamed, so a failure while
writing leaves none of the outputs changed.

The checks (`check_output_path`, `table_write_format`,
`check_fits_output`, `check_fits_input`) are cheap and meant to run before
any computation, so that a run is not lost at the end because of its
output path.
"""

import bz2
import contextlib
import gzip
import importlib.util
import io
import os
import secrets
from pathlib import Path

__all__ = ['check_output_path', 'table_write_format', 'check_fits_output',
           'check_fits_input', 'atomic_outputs', 'write_table_atomic',
           'write_fits_atomic', 'write_table_file', 'write_fits_file',
           'fits_table_hdu', 'ROUND_TRIP_FORMATS']

#: File name endings written as FITS.
FITS_EXTENSIONS = ('.fits', '.fit', '.fts', '.fits.gz', '.fit.gz', '.fts.gz')

#: The table formats that round-trip a catalog: units, mixin columns
#: (``sky_centroid``, a `~astropy.coordinates.SkyCoord`) and the whole
#: ``meta`` (the ``flags`` descriptions, provenance) are read back as
#: written. CSV and the other plain-text formats turn units and coordinates
#: into bare numbers or strings, VOTable refuses mixin columns: they are
#: refused before any work.
ROUND_TRIP_FORMATS = ('ascii.ecsv', 'fits', 'hdf5')

#: The optional package that an astropy table format needs to write.
_FORMAT_PACKAGES = {'hdf5': 'h5py'}


def check_output_path(path, *, overwrite=False, name='path'):
    """
    Check that a file can be written at ``path``, before computing it.

    Parameters
    ----------
    path : path-like
        The output file.
    overwrite : bool, optional
        Whether an existing file may be replaced.
    name : str, optional
        How the error messages call ``path`` (e.g. ``'--output'``).

    Returns
    -------
    path : `~pathlib.Path`

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is `False`.
    FileNotFoundError
        The directory of ``path`` does not exist.
    ValueError
        ``path`` is a directory, or its directory is not one.
    PermissionError
        The directory is not writable.
    """
    path = Path(path)
    directory = path.parent
    if str(path) == '' or path.name in ('', '.', '..'):
        msg = f'{name} must name a file, got {str(path)!r}'
        raise ValueError(msg)
    if not directory.exists():
        msg = (f'{name} {str(path)!r}: directory {str(directory)!r} does not '
               'exist')
        raise FileNotFoundError(msg)
    if not directory.is_dir():
        msg = f'{name} {str(path)!r}: {str(directory)!r} is not a directory'
        raise ValueError(msg)
    if path.is_dir():
        msg = f'{name} {str(path)!r} is a directory, not a file'
        raise ValueError(msg)
    if path.exists() and not overwrite:
        hint = '--overwrite' if name.startswith('--') else 'overwrite=True'
        msg = f'{name} {str(path)!r} exists; pass {hint} to replace it'
        raise FileExistsError(msg)
    if not os.access(directory, os.W_OK | os.X_OK):
        msg = (f'{name} {str(path)!r}: directory {str(directory)!r} is not '
               'writable')
        raise PermissionError(msg)
    return path


def table_write_format(path, format=None, *, name='path',
                       format_name='format'):
    """
    The astropy format that `~astropy.table.Table.write` will use.

    Parameters
    ----------
    path : path-like
        The output file; its extension gives the format when ``format`` is
        None.
    format : str, optional
        An astropy table format (``'ascii.ecsv'``, ``'fits'``, ...).
    name, format_name : str, optional
        How the error messages call ``path`` and ``format`` (e.g.
        ``'--output'`` and ``'--format'``).

    Returns
    -------
    format : str

    Raises
    ------
    ValueError
        ``format`` is not one of ``ROUND_TRIP_FORMATS``, its package is not
        installed, or the extension of ``path`` names no single format.
    """
    from astropy.io import registry
    from astropy.table import QTable

    formats = registry.get_formats(QTable, 'Write')
    writable = {str(f) for f in formats['Format']}
    if format is None:
        found = registry.identify_format('write', QTable, str(path), None,
                                         [], {})
        if not found:
            msg = (f'{name} {str(path)!r}: cannot tell the table format from '
                   f'its extension; use .ecsv, .fits or .h5, or give '
                   f'{format_name} (one of {list(ROUND_TRIP_FORMATS)})')
            raise ValueError(msg)
        found = [f for f in found if f in ROUND_TRIP_FORMATS] or found
        if len(found) > 1:
            msg = (f'{name} {str(path)!r}: its extension matches the formats '
                   f'{found}; give {format_name}')
            raise ValueError(msg)
        format = found[0]
        given = f'{name} {str(path)!r} (format {format!r})'
    else:
        given = f'{format_name} {format!r}'
    if format not in ROUND_TRIP_FORMATS:
        what = ('would lose units, coordinates or metadata'
                if format in writable else 'is not a table format')
        msg = (f'{given} {what}; write one of the formats that keep the '
               f'catalog whole: {list(ROUND_TRIP_FORMATS)} (.ecsv, .fits, '
               '.h5)')
        raise ValueError(msg)
    package = _FORMAT_PACKAGES.get(format)
    if package and importlib.util.find_spec(package) is None:
        msg = (f'{name} {str(path)!r}: writing format {format!r} needs the '
               f'{package} package, which is not installed')
        raise ValueError(msg)
    return format


def check_fits_output(path, *, name='path'):
    """
    Check that ``path`` ends as a FITS file does (``FITS_EXTENSIONS``).

    Parameters
    ----------
    path : path-like
        The output file.
    name : str, optional
        How the error messages call ``path``.

    Returns
    -------
    path : `~pathlib.Path`

    Raises
    ------
    ValueError
        Another extension (e.g. a catalog name given for an image).
    """
    if not str(path).lower().endswith(FITS_EXTENSIONS):
        msg = (f'{name} {str(path)!r} is written as FITS; give it one of the '
               f'extensions {list(FITS_EXTENSIONS)}')
        raise ValueError(msg)
    return Path(path)


def check_fits_input(path, *, name='path'):
    """
    Check that ``path`` is an existing, readable FITS file.

    The first bytes are read (through gzip or bzip2 when compressed) and
    must be the FITS signature ``SIMPLE  =``.

    Parameters
    ----------
    path : path-like
        The input file.
    name : str, optional
        How the error messages call ``path``.

    Returns
    -------
    path : `~pathlib.Path`

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A directory, or not a FITS file.
    """
    path = Path(path)
    if not path.exists():
        msg = f'{name} {str(path)!r} does not exist'
        raise FileNotFoundError(msg)
    if path.is_dir():
        msg = f'{name} {str(path)!r} is a directory, not a FITS file'
        raise ValueError(msg)
    with open(path, 'rb') as stream:
        magic = stream.read(3)
    opener = {b'\x1f\x8b\x08': gzip.open, b'BZh': bz2.open}.get(magic, open)
    try:
        with opener(path, 'rb') as stream:
            start = stream.read(9)
    except (OSError, EOFError):
        start = b''
    if start != b'SIMPLE  =':
        msg = (f'{name} {str(path)!r} is not a FITS file (it does not start '
               'with a FITS header)')
        raise ValueError(msg)
    return path


def _temporary_path(path):
    """A new, empty, hidden file beside ``path`` that ends as it does."""
    path = Path(path)
    while True:
        candidate = path.with_name(f'.tmp-{secrets.token_hex(4)}-{path.name}')
        try:
            # Exclusive creation: never clobber a file; mode follows umask.
            with open(candidate, 'x'):
                return candidate
        except FileExistsError:
            continue


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _flush_to_disk(path):
    with open(path, 'rb') as stream:
        os.fsync(stream.fileno())


def _commit(pairs, overwrite):
    """Rename every temporary into place; undo the renames on failure."""
    done = []  # the finals replaced so far
    backups = {}  # final: hard link to its previous content
    try:
        for temporary, final in pairs:
            if final.exists() and not overwrite:
                msg = f'{str(final)!r} exists; pass --overwrite to replace it'
                raise FileExistsError(msg)
            if final.exists():
                backup = final.with_name(
                    f'.old-{secrets.token_hex(4)}-{final.name}')
                # No hard links on this file system: no undo for this one.
                with contextlib.suppress(OSError):
                    os.link(final, backup)
                    backups[final] = backup
            os.replace(temporary, final)
            done.append(final)
    except BaseException:
        for final in reversed(done):
            if final in backups:
                os.replace(backups.pop(final), final)
            else:
                _remove(final)
        raise
    finally:
        for backup in backups.values():
            _remove(backup)


@contextlib.contextmanager
def atomic_outputs(paths, *, overwrite=False):
    """
    Write several files all-or-nothing, through temporaries.

    Yields one temporary path per output, in the same directory and with
    the same extension; write each (with ``overwrite=True``, since the
    temporary exists, empty). On a normal exit the temporaries are flushed
    to disk and renamed into place, all of them after all were written; on
    an exception they are removed and the outputs are left as they were.

    Parameters
    ----------
    paths : sequence of path-like
        The final output files.
    overwrite : bool, optional
        Whether existing outputs may be replaced.

    Yields
    ------
    temporaries : list of `~pathlib.Path`

    Raises
    ------
    FileExistsError
        An output exists and ``overwrite`` is `False`.
    """
    finals = [Path(path) for path in paths]
    if len(set(map(os.path.abspath, finals))) != len(finals):
        msg = f'the output paths must differ, got {[str(p) for p in finals]}'
        raise ValueError(msg)
    temporaries = []
    try:
        for final in finals:
            temporaries.append(_temporary_path(final))
        yield list(temporaries)
        for temporary in temporaries:
            _flush_to_disk(temporary)
        _commit(list(zip(temporaries, finals)), overwrite)
    finally:
        for temporary in temporaries:
            _remove(temporary)


def write_table_atomic(table, path, *, overwrite=False, format=None,
                       **kwargs):
    """
    `~astropy.table.Table.write` through a temporary file.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table (a `~astropy.table.QTable` keeps its units in ECSV and
        FITS).
    path : path-like
        The output file.
    overwrite : bool, optional
        Whether an existing file may be replaced.
    format : str, optional
        The astropy format; by default from the extension of ``path``.
    **kwargs
        Passed to `~astropy.table.Table.write`.

    Returns
    -------
    path : `~pathlib.Path`

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is `False`.
    OSError
        The write failed; ``path`` is as it was and no temporary is left.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from astropy import units as u
    >>> from astropy.table import QTable
    >>> table = QTable({'flux': [1.0, 2.0] * u.Jy})
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     path = write_table_atomic(table, Path(directory) / 'cat.ecsv')
    ...     QTable.read(path)['flux'].unit
    Unit("Jy")
    """
    path = check_output_path(path, overwrite=overwrite)
    format = table_write_format(path, format)
    with atomic_outputs([path], overwrite=overwrite) as (temporary,):
        write_table_file(table, temporary, format, **kwargs)
    return path


def write_fits_atomic(hdus, path, *, overwrite=False, header=None):
    """
    Write a FITS file through a temporary file.

    Parameters
    ----------
    hdus : `~astropy.io.fits.HDUList`, HDU or `~numpy.ndarray`
        The content; an array becomes the primary HDU.
    path : path-like
        The output file.
    overwrite : bool, optional
        Whether an existing file may be replaced.
    header : `~astropy.io.fits.Header`, optional
        Header of the primary HDU when ``hdus`` is an array.

    Returns
    -------
    path : `~pathlib.Path`
    """
    path = check_output_path(path, overwrite=overwrite)
    with atomic_outputs([path], overwrite=overwrite) as (temporary,):
        write_fits_file(hdus, temporary, header=header)
    return path


def write_table_file(table, path, format, **kwargs):
    """
    Write ``table`` to ``path`` (a temporary of `atomic_outputs`), keeping
    units, mixin columns and meta in every format.

    FITS: the whole ``meta`` goes into the YAML block of COMMENT cards in
    which astropy already keeps the mixin columns, and which
    `~astropy.table.Table.read` restores into ``meta``; no header card is
    made from it (no HIERARCH cards, no dict dropped).
    """
    if format == 'hdf5':
        # Keep units and meta, as ECSV and FITS do.
        kwargs = {'path': 'catalog', 'serialize_meta': True,
                  **kwargs}
    if format == 'fits' and not kwargs:
        from astropy.io import fits

        fits.HDUList([fits.PrimaryHDU(), fits_table_hdu(table)]).writeto(
            path, overwrite=True)
        return
    table.write(path, format=format, overwrite=True, **kwargs)


_BEGIN = '--BEGIN-ASTROPY-SERIALIZED-COLUMNS--'
_END = '--END-ASTROPY-SERIALIZED-COLUMNS--'


def fits_table_hdu(table):
    """
    A `~astropy.io.fits.BinTableHDU` of ``table`` whose whole ``meta``
    reads back with `~astropy.table.Table.read`.

    Parameters
    ----------
    table : `~astropy.table.Table`

    Returns
    -------
    hdu : `~astropy.io.fits.BinTableHDU`

    Examples
    --------
    >>> from astropy.table import QTable
    >>> table = QTable({'flag': [0, 1]}, meta={'flags': {1: 'edge'}})
    >>> hdu = fits_table_hdu(table)
    >>> QTable.read(hdu).meta['flags']
    {1: 'edge'}
    """
    import yaml
    from astropy.io import fits
    from astropy.io.misc.yaml import AstropyDumper
    from astropy.table import meta as table_meta

    bare = table.copy(copy_data=False)
    bare.meta = {}
    if 'comments' in table.meta:
        bare.meta['comments'] = list(table.meta['comments'])
    # Table.write encodes the mixin columns (table_to_hdu refuses them).
    buffer = io.BytesIO()
    bare.write(buffer, format='fits')
    buffer.seek(0)
    with fits.open(buffer) as hdus:
        hdu = fits.BinTableHDU(data=hdus[1].data.copy(),
                               header=hdus[1].header.copy())
    comments = ([str(card) for card in hdu.header['COMMENT']]
                if 'COMMENT' in hdu.header else [])
    info = {'datatype': [], 'meta': {}}
    if _BEGIN in comments and _END in comments:
        i0, i1 = comments.index(_BEGIN), comments.index(_END)
        lines = []
        continuation = False
        for line in comments[i0 + 1:i1]:
            if continuation:
                lines[-1] += line[:70]
            else:
                lines.append(line[:70])
            continuation = len(line) == 71
        info = table_meta.get_header_from_yaml(lines)
        comments = comments[:i0] + comments[i1 + 1:]
    meta = {key: value for key, value in table.meta.items()
            if key != 'comments'}
    info['meta'] = {**meta, **info.get('meta', {})}
    block = [_BEGIN]
    text = yaml.dump(info, Dumper=AstropyDumper, default_flow_style=None,
                     sort_keys=False, width=130)
    for line in text.splitlines():
        # COMMENT cards hold 72 characters: 70 and a continuation mark.
        chunks = [line[i:i + 70] for i in range(0, len(line), 70)] or ['']
        block.extend(chunk + '\\' for chunk in chunks[:-1])
        block.append(chunks[-1])
    block.append(_END)
    hdu.header.remove('COMMENT', ignore_missing=True, remove_all=True)
    for comment in comments + block:
        hdu.header.add_comment(comment)
    return hdu


def write_fits_file(hdus, path, *, header=None):
    """
    Write an array, HDU or `~astropy.io.fits.HDUList` to ``path`` (a
    temporary of `atomic_outputs`).
    """
    from astropy.io import fits

    if isinstance(hdus, fits.PrimaryHDU):
        hdus = fits.HDUList([hdus])
    elif isinstance(hdus, (fits.ImageHDU, fits.BinTableHDU, fits.TableHDU)):
        hdus = fits.HDUList([fits.PrimaryHDU(), hdus])
    elif not isinstance(hdus, fits.HDUList):
        hdus = fits.HDUList([fits.PrimaryHDU(hdus, header=header)])
    hdus.writeto(path, overwrite=True)
