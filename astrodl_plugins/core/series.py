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

__all__ = ['Series', 'read_series', 'SeriesEstimator']

#: Flux columns of a TimeSeries, in order of preference.
_FLUX_COLUMNS = ('flux', 'pdcsap_flux', 'sap_flux')


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
    """

    coordinate: np.ndarray | None
    coordinate_unit: u.UnitBase | None
    values: np.ndarray
    mask: np.ndarray
    error: np.ndarray | None
    unit: u.UnitBase | None
    meta: dict


def read_series(data, *, name='data'):
    """
    Read 1-D inputs: one, a list of them, or a 2-D batch of rows.

    Parameters
    ----------
    data : Spectrum, NDData, TimeSeries, Quantity, array, or a list of them
        A specutils spectrum (its ``spectral_axis``), a 1-D NDData, a
        ``TimeSeries`` (its ``time`` and ``flux`` column, else
        ``pdcsap_flux`` or ``sap_flux``, with ``<column>_err``), or 1-D
        values. Masks (NDData's, NumPy masked arrays, masked columns and
        astropy ``Masked`` quantities) and uncertainties are honoured:
        values whose uncertainty is 0 or NaN are masked, a negative one
        is refused (see `~astrodl_plugins.core.inputs.uncertainty_std`).
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
        if all(np.ndim(item) == 0 for item in data):
            return [_read_one(np.asarray(data), name)]
        return [_read_one(item, f'{name}[{i}]')
                for i, item in enumerate(data)]
    if not isinstance(data, (NDData, Table)):
        array = np.asanyarray(data)
        if array.ndim == 2:
            return [_read_one(row, f'{name}[{i}]')
                    for i, row in enumerate(array)]
    return [_read_one(data, name)]


def _read_one(data, name):
    from astropy.table import Table

    coordinate = coordinate_unit = uncertainty = error = unit = None
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
        if 'time' in data.colnames:
            # Times of any format or scale, as MJD (days).
            coordinate, coordinate_unit = data['time'].mjd, u.day
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
                  meta)


class SeriesEstimator(BaseEstimator):
    """
    Base class of estimators that measure 1-D inputs: one row per input.

    `predict` reads the inputs with `read_series`, flags those with masked
    values (``MASKED``) or too few good values (``UNUSABLE``, NaN row),
    then calls the hooks:

    ``_usable(series)``
        Inputs to measure (default: at least ``min_points`` good values).
    ``_prepare(series, context)`` **required**
        The usable `Series` -> the list of network inputs (e.g. resampled
        onto the model's grid); per-row values go in ``context.aux``.
    ``_decode(raw, context, rng)`` **required**
        ``(n, T, k)`` network outputs -> `~astrodl_plugins.core.base.Draws`.
    Optional hooks
        ``_to_output_units``, ``_output_units``, ``_error_scale``,
        ``_range_quantities``, ``_extra_columns`` and ``_extra_meta``; see
        `~astrodl_plugins.core.base.BaseEstimator`.

    The table's first column is ``index``, the position of each input in
    ``data`` (0-based).
    """

    family = '1-d'
    #: Fewest good values an input needs to be measured.
    min_points = 2

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
        context.flags = np.array([SourceFlags.MASKED if s.mask.any() else 0
                                  for s in series], np.int32)
        context.usable = np.asarray(self._usable(series), bool)
        context.inputs = self._prepare(
            [s for s, good in zip(series, context.usable) if good], context)
        columns, flags, draws = self._measure(context)
        table = build_table({'index': np.arange(len(series))}, columns,
                            flags, self._meta(context))
        if return_samples:
            return table, draws
        return table

    def _usable(self, series):
        """Inputs with at least ``min_points`` good values."""
        return [np.count_nonzero(~s.mask) >= self.min_points for s in series]

    def _prepare(self, series, context):
        """The usable series -> network inputs (required hook)."""
        msg = f'{type(self).__name__} must implement _prepare'
        raise NotImplementedError(msg)
