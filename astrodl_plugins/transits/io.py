# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Reading light curves from files, and the figure of each candidate.

`read_light_curve` reads Kepler, K2 and TESS light-curve FITS files with
astropy's own readers (``TimeSeries.read(format='kepler.fits')`` or
``'tess.fits'``, chosen from the header) and tables (CSV, ECSV...) with
a time and a flux column; `plot_candidate` draws a candidate's folded
views with the vetter's verdict.
"""

import io
import warnings
from pathlib import Path

import numpy as np

__all__ = ['read_light_curve', 'TIME_FORMATS', 'plot_candidate']

#: Plain-number time formats of table files: name -> (offset added to
#: get a JD, astropy format of the result).
TIME_FORMATS = {'jd': 0.0, 'mjd': 2400000.5, 'btjd': 2457000.0,
                'bkjd': 2454833.0}

_TIME_NAMES = ('time', 'bjd', 'btjd', 'bkjd', 't', 'times', 'jd', 'mjd')
_FLUX_NAMES = ('flux', 'pdcsap_flux', 'sap_flux', 'f', 'fluxes')


def read_light_curve(path, *, time_format=None, time_scale=None,
                     instrument=None):
    """
    Read a light curve file into an astropy `~astropy.timeseries.TimeSeries`.

    Parameters
    ----------
    path : path-like
        A Kepler/K2 (``kplr*``, ``ktwo*``) or TESS light-curve FITS file,
        or a table file that astropy reads (CSV, ECSV, whitespace text)
        with a time column (``time``, ``bjd``, ``btjd``...) and a flux
        column (``flux``...; else the second column).
    time_format : {'jd', 'mjd', 'btjd', 'bkjd'}, optional
        What the numbers of a table's time column are (BTJD = BJD -
        2457000, BKJD = BJD - 2454833). Required for a table whose times
        are plain numbers.
    time_scale : str, optional
        Their time scale (``'tdb'`` for barycentric times, ``'utc'``...).
        Required with ``time_format``.
    instrument : str, optional
        Keep the rows of this instrument of a table whose text column
        names several (as juliet's files do: ``K2`` and a ground-based
        ``LCOGT`` transit, say). Their fluxes are not one light curve,
        so such a table is refused without it.

    Returns
    -------
    `~astropy.timeseries.TimeSeries`

    Raises
    ------
    ValueError
        An unreadable file, no time or flux column, plain-number times
        without ``time_format`` and ``time_scale``, or several instruments
        without ``instrument``.
    """
    from astropy.io import fits
    from astropy.table import Table
    from astropy.time import Time
    from astropy.timeseries import TimeSeries
    from astropy.units import UnitsWarning

    path = Path(path)
    if not path.is_file():
        msg = f'light curve {str(path)!r} does not exist'
        raise ValueError(msg)
    if _is_fits(path):
        with fits.open(path) as hdul:
            header = hdul[0].header
            telescope = str(header.get('TELESCOP', '')).upper()
            mission = str(header.get('MISSION', '')).upper()
        kind = 'tess.fits' if 'TESS' in (telescope, mission) else (
            'kepler.fits' if telescope in ('KEPLER', 'K2') or mission in (
                'KEPLER', 'K2') else None)
        if kind is None:
            msg = (f'{str(path)!r} is not a Kepler, K2 or TESS light-curve '
                   f'file (TELESCOP {telescope!r}); read it into an astropy '
                   'TimeSeries yourself')
            raise ValueError(msg)
        if instrument is not None:
            msg = (f'instrument={instrument!r} selects rows of a table; '
                   f'{str(path)!r} is a {kind} file of one instrument')
            raise ValueError(msg)
        try:
            with warnings.catch_warnings():
                # The missions' unit strings ('BJD - 2457000, days',
                # 'e-/s') are not FITS units; astropy's readers handle
                # the columns they need and warn about the others.
                warnings.simplefilter('ignore', UnitsWarning)
                # Cadences without a time are dropped by the reader, as
                # they would be masked here.
                warnings.filterwarnings(
                    'ignore', message=r'Ignoring \d+ rows with NaN times',
                    category=UserWarning)
                # From memory: astropy's readers leave the file open
                # when they raise part-way.
                return TimeSeries.read(io.BytesIO(path.read_bytes()),
                                       format=kind)
        except Exception as error:
            msg = f'could not read {str(path)!r} as {kind}: {error}'
            raise ValueError(msg) from error
    try:
        table = Table.read(path, format=_table_format(path))
    except Exception as error:
        msg = f'could not read {str(path)!r} as a table: {error}'
        raise ValueError(msg) from error
    table = _one_instrument(table, instrument, path)
    names = {name.lower(): name for name in table.colnames}
    time_name = next((names[n] for n in _TIME_NAMES if n in names),
                     table.colnames[0])
    flux_name = next((names[n] for n in _FLUX_NAMES if n in names),
                     next((n for n in table.colnames if n != time_name),
                          None))
    if flux_name is None:
        msg = f'{str(path)!r} has one column; give time and flux columns'
        raise ValueError(msg)
    times = table[time_name]
    if isinstance(times, Time):
        time = times
    else:
        if time_format is None or time_scale is None:
            msg = (f'the times of {str(path)!r} (column {time_name!r}) are '
                   'plain numbers: give time_format (one of '
                   f'{sorted(TIME_FORMATS)}) and time_scale (e.g. tdb) '
                   '(command line: --time-format, --time-scale)')
            raise ValueError(msg)
        if time_format not in TIME_FORMATS:
            msg = (f'time_format must be one of {sorted(TIME_FORMATS)}, got '
                   f'{time_format!r}')
            raise ValueError(msg)
        time = Time(np.asarray(times, np.float64) + TIME_FORMATS[time_format],
                    format='jd', scale=time_scale)
    series = TimeSeries(time=time)
    series['flux'] = table[flux_name]
    error = next((table[n] for n in (f'{flux_name}_err', 'flux_err', 'err',
                                     'error', 'e_flux') if n in table.colnames),
                 None)
    if error is not None:
        error = np.asarray(error, np.float64)
        if np.all(error > 0):
            series['flux_err'] = error
    series.meta['FILENAME'] = path.name
    return series


def _one_instrument(table, instrument, path):
    """The rows of ``instrument`` in the table's text column of instruments."""
    labels = [name for name in table.colnames
              if getattr(table[name], 'dtype', np.dtype(float)).kind in 'USO'
              and getattr(table[name], 'ndim', 1) == 1]
    several = [name for name in labels
               if len(np.unique(np.asarray(table[name]).astype(str))) > 1]
    if instrument is None:
        if several:
            name = several[0]
            values, counts = np.unique(np.asarray(table[name]).astype(str),
                                       return_counts=True)
            listed = ', '.join(f'{str(v)!r} ({c} rows)'
                               for v, c in zip(values, counts))
            msg = (f'the rows of {str(path)!r} come from several instruments '
                   f'(column {name!r}: {listed}); their fluxes are not one '
                   'light curve: pick one with instrument= (command line: '
                   '--instrument)')
            raise ValueError(msg)
        return table
    if not labels:
        msg = (f'instrument={instrument!r}, but {str(path)!r} has no text '
               'column of instruments')
        raise ValueError(msg)
    name = several[0] if several else labels[0]
    values = np.char.strip(np.asarray(table[name]).astype(str))
    keep = values == str(instrument)
    if not keep.any():
        msg = (f'instrument={instrument!r} is not in column {name!r} of '
               f'{str(path)!r} (it has {sorted(set(values.tolist()))})')
        raise ValueError(msg)
    return table[keep]


def _is_fits(path):
    with open(path, 'rb') as handle:
        return handle.read(6) == b'SIMPLE'


def _table_format(path):
    suffix = path.suffix.lower()
    if suffix == '.ecsv':
        return 'ascii.ecsv'
    if suffix == '.csv':
        return 'ascii.csv'
    return 'ascii'


def _detrend_as_row(time, flux, row, mask=None):
    """
    The flattened flux, detrended as the row's ``detrending`` says, with
    ``mask`` (the candidates' transits) not fitted.
    """
    from . import search

    used = str(row['detrending']) if 'detrending' in row.colnames else ''
    return search.clip_flat(search.detrend_as(time, flux, used, mask=mask)[0])


def plot_candidate(data, row, path=None, *, title=None, others=()):
    """
    A candidate's folded light curve with the vetter's verdict.

    Three panels: the whole orbit folded at the period (global view),
    the transit (local view, odd and even transits in colour) and the
    phase of the deepest dip away from it (secondary).

    Parameters
    ----------
    data : `~astropy.timeseries.TimeSeries`
        The light curve the row was measured in.
    row : `~astropy.table.Row`
        A row of the ``transit`` estimator's table.
    path : path-like, optional
        Write the figure there (PNG); else return it.
    title : str, optional
        Figure title (default: the file name and the candidate number).
    others : sequence of `~astropy.table.Row`, optional
        The light curve's other candidates: their transits are masked, as
        they were in the views the vetter read.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt

    from ..core.series import read_series
    from . import search
    from .estimator import clean_series

    series = read_series(data)[0]
    time, flux = clean_series(series)
    period = float(row['period'].to_value('day'))
    duration = float(row['duration'].to_value('hour')) / 24
    # The series' times are MJD in their own scale.
    scale = series.time_scale or row['t0'].scale
    t0 = float(getattr(row['t0'], scale).mjd)
    ephemerides = [(float(o['period'].to_value('day')),
                    float(getattr(o['t0'], scale).mjd),
                    float(o['duration'].to_value('hour')) / 24)
                   for o in others if o['candidate'] != row['candidate']]
    # Detrended as the search did at the end: every candidate's transits
    # left out of the trend; the others' transits masked (those the
    # search subtracted, variability folded at a short period, are not).
    flat = _detrend_as_row(time, flux, row, mask=search.transit_windows(
        time, ephemerides + [(period, t0, duration)]))
    flat = search.mask_transits(time, flat, [
        e for e in ephemerides if search.transit_windows(time, [e]).any()],
        keep=(period, t0, duration))
    phase = (time - t0 + 0.5 * period) % period - 0.5 * period
    epochs = np.round((time - t0) / period).astype(int)
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4),
                                gridspec_kw={'width_ratios': [2, 1.2, 1.2]})
    ppm = (flat - 1) * 1e6
    axes[0].plot(phase / period, ppm, ',', color='0.5')
    binned = _binned(phase / period, ppm, 400)
    axes[0].plot(*binned, color='k', lw=1)
    axes[0].set(xlabel='phase', ylabel='flux - 1 (ppm)', title='global view')
    near = np.abs(phase) < 4 * duration
    for parity, colour in ((1, 'tab:blue'), (0, 'tab:orange')):
        sel = near & (epochs % 2 == parity)
        axes[1].plot(phase[sel] * 24, ppm[sel], '.', ms=2, color=colour,
                     alpha=0.5, label='odd' if parity else 'even')
    axes[1].plot(*_binned(phase[near] * 24, ppm[near], 60), color='k', lw=1)
    axes[1].legend(loc='lower left', fontsize=8)
    axes[1].set(xlabel='hours from mid-transit', title='local view')
    # Time from the nearest phase 0.5.
    shifted = (phase + period) % period - 0.5 * period
    sec = np.abs(shifted) < 4 * duration
    axes[2].plot(shifted[sec] * 24, ppm[sec], '.', ms=2, color='0.5')
    if sec.any():
        axes[2].plot(*_binned(shifted[sec] * 24, ppm[sec], 60), color='k',
                     lw=1)
    axes[2].set(xlabel='hours from phase 0.5', title='secondary (phase 0.5)')
    depth = float(row['depth'])
    for ax_ in axes:
        ax_.set_ylim(-2.2 * depth - 3 * np.nanstd(ppm) / 3,
                     0.8 * depth + 3 * np.nanstd(ppm) / 3)
    p = float(row['p_planet'])
    err = float(row['p_planet_err'])
    verdict = (f"P = {period:.5f} d, depth {depth:.0f} ppm, "
               f"S/N {float(row['snr']):.1f}: p_planet = {p:.3f} +- "
               f"{err:.3f}, flag {int(row['flag'])}")
    name = title or (f"{data.meta.get('FILENAME', 'light curve')} "
                     f"candidate {int(row['candidate'])}")
    figure.suptitle(f'{name}\n{verdict}', fontsize=10)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=80)
        plt.close(figure)
    return figure


def _binned(x, y, n):
    """Mean of ``y`` in ``n`` bins of ``x`` (empty bins dropped)."""
    good = np.isfinite(x) & np.isfinite(y)
    x, y = x[good], y[good]
    if not x.size:
        return np.array([]), np.array([])
    edges = np.linspace(x.min(), x.max(), n + 1)
    index = np.clip(np.digitize(x, edges) - 1, 0, n - 1)
    counts = np.bincount(index, minlength=n)
    sums = np.bincount(index, y, n)
    ok = counts > 0
    centres = 0.5 * (edges[1:] + edges[:-1])
    return centres[ok], sums[ok] / counts[ok]
