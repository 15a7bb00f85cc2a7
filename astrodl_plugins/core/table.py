# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Summaries of MC draws and the QTable every estimator returns."""

import numpy as np
from astropy import units as u
from astropy.table import QTable

__all__ = ['summarize_draws', 'quantile_name', 'source_columns',
           'output_column']


def output_column(values, unit):
    """
    Values as an output column, with photutils' and astropy's convention:
    a `~astropy.units.Quantity` where ``unit`` is a real unit, a plain
    float array where it is None or dimensionless (a probability, an
    entropy, a Sersic index, an axis ratio).

    Examples
    --------
    >>> from astropy import units as u
    >>> output_column([0.5, 2.0], u.arcsec)
    <Quantity [0.5, 2. ] arcsec>
    >>> output_column([0.5, 2.0], u.dimensionless_unscaled)
    array([0.5, 2. ])
    """
    if unit is None or u.Unit(unit) == u.dimensionless_unscaled:
        return np.asarray(getattr(values, 'value', values), np.float64)
    return u.Quantity(values, unit)


def quantile_name(name, quantile):
    """Column name of a quantile: ``r_eff_q16`` for 0.16."""
    percent = 100 * quantile
    text = f'{percent:g}'.replace('.', 'p')
    return f'{name}_q{text}'


def _circular(values, period):
    """Circular mean and standard deviation along the last axis."""
    angle = 2 * np.pi * values / period
    c, s = np.cos(angle).mean(-1), np.sin(angle).mean(-1)
    mean = (np.arctan2(s, c) * period / (2 * np.pi)) % period
    length = np.clip(np.hypot(c, s), 1e-12, 1.0)
    std = np.sqrt(-2 * np.log(length)) * period / (2 * np.pi)
    return mean, std


def _unwrap_near(values, center, period):
    """Move each draw to within half a period of ``center``."""
    return center[:, None] + (values - center[:, None] + period / 2) \
        % period - period / 2


def summarize_draws(draws, aleatoric_variance, *, units, periods=None,
                    error_scale=None, quantiles=None, predictive=None):
    """
    Columns ``<name>``, ``<name>_err`` and quantiles from MC draws.

    Parameters
    ----------
    draws : dict of `~numpy.ndarray`
        ``(n, T)`` MC draws of each output's mean.
    aleatoric_variance : dict of `~numpy.ndarray`
        ``(n, T)`` predicted (aleatoric) variance of each draw.
    units : dict
        Unit of each output.
    periods : dict, optional
        Period of circular outputs (180 for a position angle in degrees).
    error_scale : dict, optional
        Calibration factor of each ``_err`` (fitted on held-out data): a
        scalar or one value per source.
    quantiles : sequence of float, optional
        Quantiles of the predictive distribution, from ``predictive``.
    predictive : dict of `~numpy.ndarray`, optional
        ``(n, T)`` draws including the aleatoric noise.

    Returns
    -------
    columns : dict
        Name -> column (`output_column`: a Quantity, or a plain array where
        the unit is dimensionless), in the order of ``draws``.
    parts : dict
        ``<name>_epistemic`` and ``<name>_aleatoric`` standard deviations.
    """
    # Non-finite draws (an overflowing output) give non-finite columns,
    # which the caller flags; they are not worth a warning here.
    with np.errstate(invalid='ignore', over='ignore'):
        return _summarize(draws, aleatoric_variance, units, periods or {},
                          error_scale or {}, quantiles, predictive)


def _summarize(draws, aleatoric_variance, units, periods, error_scale,
               quantiles, predictive):
    columns, parts = {}, {}
    for name, values in draws.items():
        period = periods.get(name)
        if period:
            mean, epistemic = _circular(values, period)
        else:
            mean, epistemic = values.mean(-1), values.std(-1)
        aleatoric = np.sqrt(aleatoric_variance[name].mean(-1))
        scale = np.asarray(error_scale.get(name, 1.0), np.float64)
        total = np.hypot(epistemic, aleatoric) * scale
        unit = units[name]
        columns[name] = output_column(mean, unit)
        columns[f'{name}_err'] = output_column(total, unit)
        parts[f'{name}_epistemic'] = epistemic
        parts[f'{name}_aleatoric'] = aleatoric
        for quantile in quantiles or ():
            sample = predictive[name]
            if period:
                sample = _unwrap_near(sample, mean, period)
            # The calibration that widens _err widens the quantiles too.
            sample = mean[:, None] + (sample - mean[:, None]) \
                * np.reshape(scale, (-1, 1) if scale.ndim else ())
            value = np.quantile(sample, quantile, axis=-1)
            if period:
                value = value % period
            columns[quantile_name(name, quantile)] = output_column(
                value, unit)
    return columns, parts


def build_table(leading, columns, flag, meta):
    """Assemble the output QTable: leading columns, outputs, ``flag``."""
    table = QTable(meta=meta)
    for name, value in leading.items():
        table[name] = value
    for name, value in columns.items():
        table[name] = value
    table['flag'] = np.asarray(flag, np.int32)
    return table


def source_columns(sources, wcs=None):
    """
    The leading columns of a table: ``label``, ``x_centroid``,
    ``y_centroid`` and, with a celestial WCS, ``sky_centroid``.

    The centroids are plain float64 pixel columns, as in photutils'
    ``SourceCatalog.to_table()``, so that a table joined with a photutils
    catalog on ``label`` compares and stacks them.
    """
    columns = {'label': sources.label,
               'x_centroid': np.asarray(sources.x, np.float64),
               'y_centroid': np.asarray(sources.y, np.float64)}
    if wcs is not None and getattr(wcs, 'has_celestial', False):
        columns['sky_centroid'] = wcs.pixel_to_world(sources.x, sources.y)
    return columns
