# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Spectra onto the model's grid: units checked and converted, then
specutils' flux-conserving resampler.
"""

import numpy as np
from astropy import units as u

__all__ = ['spectrum_class', 'model_grid', 'spectral_axis_angstrom', 'resample_series']

#: Flux density per wavelength, the unit the flux is converted to where it
#: can be (the normalisation removes the scale, not the slope).
_FLAMBDA = u.erg / u.s / u.cm ** 2 / u.AA


def spectrum_class():
    """Specutils' spectrum class: ``Spectrum`` (2.x) or ``Spectrum1D``."""
    try:
        from specutils import Spectrum
    except ImportError:  # specutils < 2
        from specutils import Spectrum1D as Spectrum
    return Spectrum


def model_grid(wavelength_min, log_step, n_pixels):
    """
    A log-uniform pixel grid: ``(centres, edges)`` in Angstrom.

    The centres are the geometric means of the edges, as in
    `~astrodl_plugins.simulate.spectra.spectral_grid`.
    """
    edges = wavelength_min * np.exp(log_step * np.arange(n_pixels + 1))
    return np.sqrt(edges[1:] * edges[:-1]), edges


def spectral_axis_angstrom(series, name='data'):
    """
    The spectral axis of a `~astrodl_plugins.core.series.Series` in
    Angstrom: its ``coordinate`` (a specutils spectrum) or its
    ``meta['spectral_axis']`` (an NDData, as the simulator makes them).

    Raises
    ------
    ValueError
        No spectral axis, one without a unit or of another length, or a
        unit that is not spectral.
    """
    if series.coordinate is not None:
        axis, unit = series.coordinate, series.coordinate_unit
    else:
        axis = series.meta.get('spectral_axis')
        if axis is None:
            msg = (f'{name} has no spectral axis: give a specutils Spectrum, '
                   "or an NDData with meta['spectral_axis'] (a Quantity, e.g. "
                   'in Angstrom)')
            raise ValueError(msg)
        unit = getattr(axis, 'unit', None)
        axis = getattr(axis, 'value', axis)
    if unit is None or u.Unit(unit) == u.dimensionless_unscaled:
        msg = (f'the spectral axis of {name} has no unit: give it as a '
               'Quantity (e.g. wavelength * u.AA)')
        raise ValueError(msg)
    axis = np.asarray(axis, np.float64)
    if axis.shape != series.values.shape:
        msg = (f'the spectral axis of {name} has shape {axis.shape}, its flux '
               f'{series.values.shape}')
        raise ValueError(msg)
    try:
        return (axis * u.Unit(unit)).to_value(u.AA, equivalencies=u.spectral())
    except u.UnitConversionError:
        msg = (f'the spectral axis of {name} is in {unit}, not a wavelength, '
               'frequency, wavenumber or energy')
        raise ValueError(msg) from None


def _flux_factor(unit, wavelength):
    """Per-pixel factor converting ``unit`` to a flux density per wavelength."""
    if unit is None or isinstance(unit, u.FunctionUnitBase):
        if unit is not None:
            msg = (f'flux in {unit} (logarithmic) cannot be resampled: give '
                   'a flux density')
            raise ValueError(msg)
        return 1.0
    try:
        return (np.ones_like(wavelength) * unit).to_value(
            _FLAMBDA, equivalencies=u.spectral_density(wavelength * u.AA))
    except u.UnitConversionError:
        # Counts, or dimensionless: resampled as they are.
        return 1.0


def resample_series(series, wavelength, edges):
    """
    One spectrum -> ``(flux, ivar, mask, coverage)`` on the model's grid.

    Masked and non-finite input pixels are set to NaN before specutils'
    `~specutils.manipulation.FluxConservingResampler` runs, so a model
    pixel that overlaps one is masked; the uncertainty is propagated
    (without one, a constant noise estimated from the scatter of the
    differences between neighbouring good pixels). ``coverage`` is the
    fraction of the model's band within the spectrum's range.
    """
    from specutils.manipulation import FluxConservingResampler

    axis = spectral_axis_angstrom(series)
    keep = np.isfinite(axis)
    order = np.argsort(axis[keep], kind='stable')
    axis = axis[keep][order]
    flux = series.values[keep][order].copy()
    bad = series.mask[keep][order].copy()
    error = None if series.error is None else series.error[keep][order]
    # Repeated wavelengths (or a frequency axis with equal values): first kept.
    unique = np.concatenate([[True], np.diff(axis) > 0])
    axis, flux, bad = axis[unique], flux[unique], bad[unique]
    factor = _flux_factor(series.unit, axis)
    flux = flux * factor
    flux[bad] = np.nan
    from astropy.nddata import VarianceUncertainty

    uncertainty = None
    if error is not None:
        variance = (error[unique] * factor) ** 2
        variance[bad] = np.nan
        uncertainty = VarianceUncertainty(variance)
    spectrum = spectrum_class()(flux=flux * u.one, spectral_axis=axis * u.AA,
                                uncertainty=uncertainty)
    resampled = FluxConservingResampler(extrapolation_treatment='nan_fill')(
        spectrum, wavelength * u.AA)
    out_flux = np.asarray(resampled.flux.value, np.float64)
    mask = ~np.isfinite(out_flux)
    if uncertainty is not None:
        var = resampled.uncertainty.represent_as(VarianceUncertainty).array
        mask |= ~(np.isfinite(var) & (var > 0))
        ivar = np.where(mask, 0.0, 1.0 / np.where(mask, 1.0, var))
    else:
        ivar = np.zeros_like(out_flux)
        good = out_flux[~mask]
        if good.size > 2:
            step = np.diff(good)
            sigma = 1.4826 * np.median(np.abs(step - np.median(step))) \
                / np.sqrt(2)
            if sigma > 0:
                ivar[~mask] = 1 / sigma ** 2
            else:
                mask[:] = True
    out_flux[mask] = 0.0
    low, high = axis[0], axis[-1]
    covered = np.clip(np.minimum(edges[1:], high)
                      - np.maximum(edges[:-1], low), 0, None)
    coverage = float(covered.sum() / (edges[-1] - edges[0]))
    return out_flux, ivar, mask, coverage
