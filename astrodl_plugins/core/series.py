# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The *1-D* family: one row per 1-D input (a spectrum, a light curve).

`read_series` reads specutils spectra (NDData with a ``spectral_axis``),
NDData, astropy ``TimeSeries`` (lightkurve ``LightCurve`` objects are
TimeSeries), Quantities and arrays, one or a list (a 2-D array is a batch
of rows); `SeriesEstimator` runs the shared MC pipeline on them.
"""

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.nddata import NDData, StdDevUncertainty

from .base import BaseEstimator
from .context import PredictContext
from .flags import SourceFlags
from .inputs import split_mask, uncertainty_std
from .table import build_table

__all__ = ['Series', 'read_series', 'SeriesEstimator', 'QUALITY_IGNORED']

#: Flux columns of a TimeSeries, in order of preference.
_FLUX_COLUMNS = ('flux', 'pdcsap_flux', 'sap_flux')

#: Bits of a Kepler/TESS ``quality`` column that do not mask a cadence
#: (informational: stray light 2048 and 4096, rolling band 131072 and
#: 262144, as lightkurve's default bitmask leaves them); any other bit
#: masks it.
QUALITY_IGNORED = 2048 | 4096 | 131072 | 262144

#: Quality columns, in order of preference (astropy's ``kepler.fits``
#: reader calls Kepler's ``SAP_QUALITY``).
_QUALITY_COLUMNS = ('quality', 'sap_quality')


@dataclass
class Series:
    """
    One 1-D input read by `read_series` (arrays are private copies).

    Attributes
    ----------
    coordinate : `~numpy.ndarray` or None
        The spectral axis or the times (``coordinate_unit``), or `None`.
    coordinate_unit : `~astropy.units.UnitBase` or None
    values : `~numpy.ndarray`
        Flux values (float64).
    mask : `~numpy.ndarray`
        True at masked or non-finite values.
    error : `~numpy.ndarray` or None
        Standard deviation of each value.
    unit : `~astropy.units.UnitBase` or None
    meta : dict
    time_scale : str or None
        Time scale of the times (``'tdb'``...) of a ``TimeSeries``, whose
        ``coordinate`` is then MJD in that scale.
    """

    coordinate: np.ndarray | None
    coordinate_unit: u.UnitBase | None
    values: np.ndarray
    mask: np.ndarray
    error: np.ndarray | None
    unit: u.UnitBase | None
    meta: dict
    time_scale: str | None = None


def read_series(data, *, name='data'):
    """
    Read 1-D inputs: one, a list of them, or a 2-D batch of rows.

    Parameters
    ----------
    data : Spectrum, NDData, TimeSeries, Quantity, array, or a list of them
        A specutils spectrum (its ``spectral_axis``; a 2-D one is a
        batch of spectra on one axis), a 1-D NDData, a
        ``TimeSeries`` (its ``time`` and ``flux`` column, else
        ``pdcsap_flux`` or ``sap_flux``, with ``<column>_err``; cadences
        with a ``quality`` (or ``sap_quality``, as astropy's
        ``kepler.fits`` reader names it) bit other than those of
        `QUALITY_IGNORED` are masked, as are cadences without a finite
        time), or 1-D values.
        Masks (NDData's, NumPy masked arrays, masked columns and astropy
        ``Masked`` quantities) and uncertainties are honoured: values
        whose uncertainty is 0 or NaN are masked, a negative one is refused
        (see `~astrodl_plugins.core.inputs.uncertainty_std`).
    name : str, optional
        Parameter name used in error messages.

    Returns
    -------
    series : list of `Series`
        Private copies: ``data`` is never modified.

    Raises
    ------
    TypeError
        An uncertainty of unknown kind (a plain array given to NDData).
    ValueError
        Not 1-D real numbers, empty, or a mask or uncertainty of another
        shape, or a negative uncertainty.
    """
    from astropy.table import Table

    if isinstance(data, (list, tuple)):
        if not data:
            msg = f'{name} is an empty list'
            raise ValueError(msg)
        # A list of numbers is one series; NDData and tables have no
        # array shape (np.ndim gives 0) but are series each.
        if all(np.ndim(item) == 0 and not isinstance(item, (NDData, Table))
               for item in data):
            return [_read_one(np.asarray(data), name)]
        return [_read_one(item, f'{name}[{i}]')
                for i, item in enumerate(data)]
    if isinstance(data, NDData) and np.ndim(data.data) == 2 and getattr(
            data, 'spectral_axis', None) is not None:
        # A 2-D specutils spectrum: one spectrum per row, sharing the axis.
        return [_read_one(data[i], f'{name}[{i}]')
                for i in range(data.data.shape[0])]
    if not isinstance(data, (NDData, Table)):
        array = np.asanyarray(data)
        if array.ndim == 2:
            return [_read_one(row, f'{name}[{i}]')
                    for i, row in enumerate(array)]
    return [_read_one(data, name)]


def _read_one(data, name):
    from astropy.table import Table

    coordinate = coordinate_unit = uncertainty = error = unit = None
    time_scale = None
    masks = []
    meta = {}
    if isinstance(data, NDData):
        values, unit, meta = data.data, data.unit, dict(data.meta)
        if data.mask is not None:
            masks.append((np.asarray(data.mask, bool), f'{name}.mask'))
        uncertainty = data.uncertainty
        axis = getattr(data, 'spectral_axis', None)
        if axis is not None:
            coordinate, coordinate_unit = np.asarray(axis.value), axis.unit
    elif isinstance(data, Table):
        column = next((c for c in _FLUX_COLUMNS if c in data.colnames), None)
        if column is None:
            msg = (f'{name} has no flux column (one of {_FLUX_COLUMNS}); its '
                   f'columns are {data.colnames}')
            raise ValueError(msg)
        values = data[column]
        unit, meta = getattr(values, 'unit', None), dict(data.meta)
        if f'{column}_err' in data.colnames:
            error, error_mask = split_mask(data[f'{column}_err'])
            error = np.array(u.Quantity(error, unit).value
                             if unit is not None else error, np.float64)
            if error_mask is not None:
                error[error_mask] = np.nan
        # astropy's kepler.fits reader names Kepler's column sap_quality.
        quality_column = next((c for c in _QUALITY_COLUMNS
                               if c in data.colnames), None)
        if quality_column is not None:
            quality, _ = split_mask(data[quality_column])
            quality = np.asarray(quality)
            if quality.dtype.kind in 'iu':
                masks.append(((quality.astype(np.int64) & ~QUALITY_IGNORED)
                              != 0, f'{name}[{quality_column}]'))
        if 'time' in data.colnames:
            # Times of any format, as MJD (days) in their own scale.
            times = data['time']
            coordinate, time_mask = split_mask(times.mjd)
            coordinate = np.array(coordinate, np.float64)
            if time_mask is not None:
                coordinate[np.asarray(time_mask, bool)] = np.nan
            coordinate_unit, time_scale = u.day, getattr(times, 'scale', None)
            masks.append((~np.isfinite(coordinate), f'{name}[time]'))
    else:
        values = data
    values, mask = split_mask(values)
    if mask is not None:
        masks.append((mask, f'{name} (its mask)'))
    if isinstance(values, u.Quantity):
        values, unit = values.value, values.unit
    values = np.asanyarray(values)
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(
            values.dtype, np.number) or values.dtype == bool or (
            np.issubdtype(values.dtype, np.complexfloating)):
        msg = (f'{name} must be a non-empty 1-D numeric series of real '
               f'numbers, got shape {values.shape} and dtype {values.dtype}')
        raise ValueError(msg)
    values = np.array(values, dtype=np.float64)
    mask = ~np.isfinite(values)
    for extra, where in masks:
        if extra.shape != values.shape:
            msg = f'{where} has shape {extra.shape}, not {values.shape}'
            raise ValueError(msg)
        mask |= extra
    if unit is not None:
        unit = u.Unit(unit)
    if uncertainty is not None:
        error = uncertainty_std(uncertainty, values.shape, unit, mask, name)
    elif error is not None:
        error = uncertainty_std(StdDevUncertainty(error), values.shape, None,
                                mask, name)
    if error is not None:
        mask |= ~np.isfinite(error)
    return Series(coordinate, coordinate_unit, values, mask, error, unit,
                  meta, time_scale)


class SeriesEstimator(BaseEstimator):
    """
    Base class of estimators that measure 1-D inputs.

    `predict` reads the inputs with `read_series`, flags those with masked
    values (``MASKED``, `_input_flags`) or too few good values
    (``UNUSABLE``, one NaN row), finds the rows to measure in each usable
    input (`_rows`: by default the input itself, one row per input; the
    transit estimator's candidate signals, none or several per light
    curve), then calls the hooks:

    ``_usable(series, context)``
        Inputs to measure (default: at least ``min_points`` good values;
        ``context.options`` holds the predict options).
    ``_rows(series, context)``
        Per usable input, the list of rows to measure in it (default:
        ``[series]``). Rows of one input share its ``index``.
    ``read_file(path)`` (a classmethod)
        One input read from a file, for ``astrodl predict`` (default:
        refused).
    ``_input_flags(series)``
        Flag bits of each input, given to each of its rows (default:
        ``MASKED`` where more than ``masked_fraction`` of the values are
        masked).
    ``_prepare(rows, context)`` **required**
        The rows -> the list of network inputs (e.g. resampled onto the
        model's grid); per-row values go in ``context.aux``.
    ``_decode(raw, context, rng)`` **required**
        ``(n, T, k)`` network outputs -> `~astrodl_plugins.core.base.Draws`.
    Optional hooks
        ``_to_output_units``, ``_output_units``, ``_error_scale``,
        ``_range_quantities``, ``_extra_columns`` and ``_extra_meta``; see
        `~astrodl_plugins.core.base.BaseEstimator`.

    The table's first column is ``index``, the position in ``data`` (0-based)
    of the input each row was measured in.
    """

    family = '1-d'
    #: Fewest good values an input needs to be measured.
    min_points = 2
    #: Fraction of masked values above which an input is flagged ``MASKED``
    #: (a few flagged cadences or cosmic-ray pixels are normal in 1-D data;
    #: a flag on nearly every input would say nothing).
    masked_fraction = 0.2

    def predict(self, data, *, n_samples=50, seed=None, batch_size=64,
                device='auto', quantiles=None, progress_bar=False,
                return_samples=False, uncertainty_parts=False, **options):
        """
        Measure 1-D inputs, with MC-dropout uncertainties.

        Parameters
        ----------
        data : Spectrum, NDData, TimeSeries, Quantity, array, or a list of them
            See `read_series`.
        n_samples, seed, batch_size, device, quantiles, progress_bar
            As for every estimator (see
            `~astrodl_plugins.core.stamps.SourceStampEstimator.predict`).
        return_samples : bool, optional
            Also return the MC draws of each output.
        uncertainty_parts : bool, optional
            Add the epistemic and aleatoric parts of each ``_err``.
        **options
            The estimator's own keywords (its ``predict_options``).

        Returns
        -------
        table : `~astropy.table.QTable`
            ``index``, each output with ``_err`` (and quantiles;
            Quantities, or plain columns where dimensionless), the
            estimator's columns and ``flag``.
        """
        from .device import resolve_device

        self._check_fitted()
        options = self._options(options)
        n_samples, batch_size, quantiles, seed = self._check_predict_args(
            n_samples, batch_size, quantiles, seed)
        context = PredictContext(options, n_samples, seed, batch_size,
                                 resolve_device(device), quantiles,
                                 progress_bar=progress_bar,
                                 uncertainty_parts=uncertainty_parts)
        series = read_series(data)
        context.series = series
        good = np.asarray(self._usable(series, context), bool)
        found = iter(self._rows([s for s, ok in zip(series, good) if ok],
                                context))
        input_flags = np.asarray(self._input_flags(series), np.int32)
        index, rows, usable = [], [], []
        for i, ok in enumerate(good):
            # An unusable input keeps one (NaN, UNUSABLE) row.
            its_rows = next(found) if ok else [None]
            index += [i] * len(its_rows)
            rows += [row for row in its_rows if row is not None]
            usable += [ok] * len(its_rows)
        context.index = np.array(index, np.int64)
        context.flags = input_flags[context.index]
        context.usable = np.array(usable, bool)
        context.inputs = self._prepare(rows, context)
        columns, flags, draws = self._measure(context)
        table = build_table({'index': context.index}, columns,
                            flags, self._meta(context))
        if return_samples:
            return table, draws
        return table

    @classmethod
    def read_file(cls, path):
        """
        One input read from a file, for ``astrodl predict`` (hook; default:
        the estimator reads no files there).

        Raises
        ------
        ValueError
            The estimator reads no files, or the file is not one it reads.
        """
        msg = (f'{cls.name} does not read input files in astrodl predict; '
               'call its predict method from Python')
        raise ValueError(msg)

    def _usable(self, series, context):
        """Inputs with at least ``min_points`` good values."""
        return [np.count_nonzero(~s.mask) >= self.min_points for s in series]

    def _rows(self, series, context):
        """Rows to measure in each usable input; default: the input."""
        return [[s] for s in series]

    def _input_flags(self, series):
        """``MASKED`` for inputs with more than ``masked_fraction`` masked."""
        return [SourceFlags.MASKED
                if s.mask.size and np.mean(s.mask) > self.masked_fraction
                else 0 for s in series]

    def _prepare(self, rows, context):
        """The rows -> network inputs (required hook)."""
        msg = f'{type(self).__name__} must implement _prepare'
        raise NotImplementedError(msg)
