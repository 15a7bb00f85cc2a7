# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Astropy-native image inputs: one image, or one image per band.

Every estimator reads its images through `read_image` (or `read_bands`),
so unit, mask, uncertainty and WCS are honoured the same way everywhere.
The caller's objects are never modified: arrays are copied on the way in.
"""

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.nddata import NDData, StdDevUncertainty, UnknownUncertainty
from astropy.nddata.nduncertainty import IncompatibleUncertaintiesException
from astropy.utils.masked import Masked
from astropy.wcs.utils import proj_plane_pixel_scales

__all__ = ['ImageData', 'read_image', 'read_bands', 'check_flux_unit',
           'split_mask', 'uncertainty_std']

#: Linear flux-like units a pixel value may have (see `check_flux_unit`):
#: fluxes, spectral flux densities (per frequency or wavelength), photon
#: fluxes, and detector counts with their rates (``/ u.s``); the maggy is
#: the SDSS / Legacy Surveys linear flux unit (``u.zero_point_flux``).
FLUX_UNITS = (u.Jy, u.erg / u.s / u.cm ** 2 / u.AA, u.W / u.m ** 2,
              u.ph / u.s / u.cm ** 2, u.ph / u.s / u.cm ** 2 / u.AA,
              u.ph / u.s / u.cm ** 2 / u.Hz, u.mgy)
COUNT_UNITS = (u.ct, u.adu, u.electron, u.ph, u.DN)
#: What a surface brightness is per: solid angle, beam or pixel.
AREA_UNITS = (u.sr, u.beam, u.pix, u.pix ** 2)


@dataclass
class ImageData:
    """An image read by `read_image` (arrays are private copies)."""

    data: np.ndarray
    mask: np.ndarray
    error: np.ndarray | None
    unit: u.UnitBase | None
    wcs: object | None
    pixel_scale: u.Quantity | None
    meta: dict

    @property
    def shape(self):
        """Shape of the image."""
        return self.data.shape


def _is_flux(unit):
    """Whether ``unit`` is one of the linear flux-like units accepted."""
    if unit.physical_type == 'dimensionless':
        return True
    for area in (u.one, *AREA_UNITS):
        per_area = unit * area
        if any(per_area.is_equivalent(flux) for flux in FLUX_UNITS):
            return True
        if any(per_area.is_equivalent(count)
               or per_area.is_equivalent(count / u.s)
               for count in COUNT_UNITS):
            return True
    return False


def check_flux_unit(unit, name='data'):
    """
    Check that ``unit`` is a linear flux-like unit (an allow-list).

    Accepted: detector counts and count rates (``ct``, ``adu``,
    ``electron``, ``ph``, ``DN``, each optionally per time); fluxes and
    spectral flux densities, per frequency or per wavelength, in energy or
    photons (``Jy``, ``erg / (s cm2 Angstrom)``, ``W / m2``,
    ``ph / (s cm2)``, maggies); any of these per solid angle (``sr``,
    ``arcsec2``), per ``beam`` or per pixel (surface brightness, e.g.
    ``MJy / sr``, ``Jy / beam``); and dimensionless values. Magnitudes
    and other logarithmic units are refused: the networks read linear
    fluxes, and a background-subtracted image has negative pixels that
    no magnitude can hold.

    Parameters
    ----------
    unit : `~astropy.units.UnitBase`, str or None
        The unit; `None` (no unit) is accepted.
    name : str, optional
        Parameter name used in error messages.

    Returns
    -------
    unit : `~astropy.units.UnitBase` or None

    Raises
    ------
    ValueError
        Any other unit; the message names ``name`` and the unit.

    Examples
    --------
    >>> from astropy import units as u
    >>> from astrodl_plugins.core.inputs import check_flux_unit
    >>> check_flux_unit(u.MJy / u.sr)
    Unit("MJy / sr")
    >>> check_flux_unit(u.m ** 2)
    Traceback (most recent call last):
    ...
    ValueError: data has unit 'm2' (physical type 'area'), not a flux: ...
    """
    if unit is None:
        return None
    if isinstance(unit, u.FunctionUnitBase):
        why = 'a logarithmic unit (magnitudes, dex) is not a linear flux'
    else:
        try:
            unit = u.Unit(unit)
        except (ValueError, TypeError) as error:
            msg = f'{name} has unit {unit!r}, which astropy cannot read: {error}'
            raise ValueError(msg) from None
        if isinstance(unit, u.UnrecognizedUnit):
            why = 'an unrecognized unit'
        elif u.dex in unit.decompose().bases:
            # u.mag and u.dex are plain units (not FunctionUnitBase).
            why = 'a logarithmic unit (magnitudes, dex) is not a linear flux'
        elif _is_flux(unit):
            return unit
        else:
            why = f'physical type {str(unit.physical_type)!r}'
    msg = (f'{name} has unit {unit.to_string()!r} ({why}), not a flux: give '
           'counts or count rates (adu, ct, electron, ph, DN, per s), a '
           'flux or spectral flux density (Jy, erg / (s cm2 Angstrom), '
           'W / m2), a surface brightness (one of these per sr, arcsec2, '
           'beam or pix) or a dimensionless value')
    if unit.physical_type == 'temperature':
        msg += ('; convert a brightness temperature with '
                'u.brightness_temperature')
    elif 'logarithmic' in why:
        msg += '; convert magnitudes to a linear flux (e.g. with .physical)'
    raise ValueError(msg)


def split_mask(values):
    """
    The values and the mask of a NumPy masked array or an astropy
    ``Masked`` object; ``(values, None)`` for anything else.
    """
    if isinstance(values, Masked):
        return values.unmasked, np.array(values.mask, bool)
    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmask(values)
        return (np.ma.getdata(values),
                None if mask is np.ma.nomask else np.array(mask, bool))
    return values, None


def uncertainty_std(uncertainty, shape, unit, mask, name='data'):
    """
    The standard deviation of an NDData uncertainty, checked.

    Parameters
    ----------
    uncertainty : `~astropy.nddata.NDUncertainty`
        `~astropy.nddata.StdDevUncertainty`,
        `~astropy.nddata.VarianceUncertainty`,
        `~astropy.nddata.InverseVariance` (converted with
        ``represent_as``) or any uncertainty that converts to a standard
        deviation.
    shape : tuple
        Shape of the data.
    unit : `~astropy.units.UnitBase` or None
        Unit of the data: the standard deviation is converted to it.
    mask : `~numpy.ndarray`
        Pixels already masked: any uncertainty is accepted there.
    name : str, optional
        Parameter name used in error messages.

    Returns
    -------
    error : `~numpy.ndarray`
        float64 standard deviations (a copy), NaN or infinite where the
        pixel carries no information (NaN or zero standard deviation or
        variance, zero inverse variance): the caller masks those.

    Raises
    ------
    TypeError
        An uncertainty of unknown kind (e.g. a plain array given to
        `~astropy.nddata.NDData`) or one that has no standard deviation.
    ValueError
        Wrong shape, a unit not convertible to the data's, or a negative
        value at an unmasked pixel.
    """
    where = f'{name}.uncertainty'
    if isinstance(uncertainty, UnknownUncertainty):
        msg = (f'{where} is of unknown kind (a plain array given as '
               'NDData uncertainty?): wrap it as StdDevUncertainty(array) '
               '(or VarianceUncertainty, InverseVariance) to say what it '
               'holds')
        raise TypeError(msg)
    raw = np.asarray(getattr(uncertainty, 'array', uncertainty))
    if raw.shape != tuple(shape):
        msg = (f'{where} has shape {raw.shape}, the data {tuple(shape)}: '
               'they must be equal')
        raise ValueError(msg)
    if raw.dtype.kind not in 'iuf':
        msg = f'{where} must be numeric, got dtype {raw.dtype}'
        raise TypeError(msg)
    raw = raw.astype(np.float64)
    with np.errstate(invalid='ignore'):
        bad = np.isfinite(raw) & (raw < 0) & ~mask
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        msg = (f'{where} is negative at {np.count_nonzero(bad)} unmasked '
               f'pixels (e.g. {raw[index]:g} at index {index}): give the '
               'noise of every pixel (>= 0; 0 or NaN marks a pixel without '
               'information), or mask those pixels')
        raise ValueError(msg)
    # Masked pixels may hold anything: negatives become NaN, not warnings.
    clean = np.where(raw < 0, np.nan, raw)
    try:
        with np.errstate(divide='ignore', invalid='ignore'):
            std = type(uncertainty)(clean, unit=uncertainty.unit,
                                    copy=False).represent_as(
                                        StdDevUncertainty)
    except (TypeError, ValueError, AttributeError, NotImplementedError,
            IncompatibleUncertaintiesException) as error:
        msg = (f'{where} ({type(uncertainty).__name__}) cannot be read as '
               f'a standard deviation: {error}')
        raise TypeError(msg) from None
    error = np.array(std.array, dtype=np.float64)
    if std.unit is not None and unit is None:
        msg = (f'{where} has unit {std.unit.to_string()!r} but the data '
               'have none: give the data their unit, or an uncertainty '
               'without one')
        raise ValueError(msg)
    # A zero noise is a fill value (no exposure, a bad pixel), not an
    # infinitely precise pixel: NaN, masked by the caller.
    error[error == 0] = np.nan
    if std.unit is not None and unit is not None and std.unit != unit:
        try:
            error *= std.unit.to(unit)
        except u.UnitConversionError:
            msg = (f'{where} has unit {std.unit.to_string()!r} as a '
                   f'standard deviation, not convertible to the data unit '
                   f'{u.Unit(unit).to_string()!r}')
            raise ValueError(msg) from None
    return error


def read_image(data, *, pixel_scale=None, name='data'):
    """
    Read a 2-D image from CCDData, NDData, Quantity or ndarray.

    Parameters
    ----------
    data : `~astropy.nddata.NDData`, `~astropy.units.Quantity` or array
        The image, background subtracted. NDData's ``unit``, ``mask``,
        ``uncertainty`` and ``wcs`` are used; so is the mask of a NumPy
        masked array or an astropy ``Masked`` quantity.
    pixel_scale : `~astropy.units.Quantity`, optional
        Angle per pixel, used only when the data have no celestial WCS.
    name : str, optional
        Parameter name used in error messages.

    Returns
    -------
    image : `ImageData`
        Private copies: ``data`` is never modified, and pixels that are
        masked, not finite, or whose uncertainty is not finite are masked.

    Raises
    ------
    TypeError
        Boolean, complex or non-numeric data; an uncertainty of unknown
        kind (see `uncertainty_std`).
    ValueError
        Not 2-D, empty, no finite unmasked pixel, a mask or uncertainty of
        another shape, a negative uncertainty at an unmasked pixel, a
        unit that is not flux-like (`check_flux_unit`), a WCS that is not
        2-D or is singular, or an invalid ``pixel_scale``.
    """
    masks = []
    uncertainty = wcs = unit = None
    meta = {}
    if isinstance(data, NDData):
        meta = dict(data.meta)
        array, unit, wcs = data.data, data.unit, data.wcs
        if data.mask is not None:
            masks.append((np.asarray(data.mask, bool), f'{name}.mask'))
        uncertainty = data.uncertainty
    else:
        array = data
    array, mask = split_mask(array)
    if mask is not None:
        masks.append((mask, f'{name} (its mask)'))
    if isinstance(array, u.Quantity):
        array, unit = array.value, array.unit
    array = np.asanyarray(array)
    _check_numeric(array, name)
    if array.ndim != 2:
        msg = f'{name} must be a 2-D image, got shape {array.shape}'
        raise ValueError(msg)
    if array.size == 0:
        msg = f'{name} is empty (shape {array.shape})'
        raise ValueError(msg)
    array = np.array(array, dtype=np.float64)
    mask = ~np.isfinite(array)
    for extra, where in masks:
        if extra.shape != array.shape:
            msg = f'{where} has shape {extra.shape}, not {array.shape}'
            raise ValueError(msg)
        mask |= extra
    unit = check_flux_unit(unit, name)
    error = None
    if uncertainty is not None:
        error = uncertainty_std(uncertainty, array.shape, unit, mask, name)
        mask |= ~np.isfinite(error)
    if mask.all():
        msg = f'{name} has no finite, unmasked pixel'
        if error is not None:
            msg += ' (pixels whose uncertainty is 0 or NaN are masked)'
        raise ValueError(msg)
    _check_wcs(wcs, name)
    return ImageData(array, mask, error, unit, wcs,
                     _pixel_scale(wcs, pixel_scale, name), meta)


def _check_numeric(array, name):
    if array.dtype == bool:
        msg = f'{name} must be numeric, got a boolean array'
        raise TypeError(msg)
    if not np.issubdtype(array.dtype, np.number):
        msg = f'{name} must be numeric, got dtype {array.dtype}'
        raise TypeError(msg)
    if np.issubdtype(array.dtype, np.complexfloating):
        msg = f'{name} must be real, got dtype {array.dtype}'
        raise TypeError(msg)


def _check_wcs(wcs, name):
    """A WCS of a 2-D image: two pixel axes, invertible when celestial."""
    if wcs is None:
        return
    n_axes = getattr(wcs, 'pixel_n_dim', 2)
    if n_axes != 2:
        msg = (f'{name}.wcs has {n_axes} pixel axes but the image is 2-D: '
               'give its celestial part (wcs.celestial) or slice it to the '
               'image')
        raise ValueError(msg)
    try:
        if not getattr(wcs, 'has_celestial', False):
            return
        matrix = np.asarray(wcs.celestial.pixel_scale_matrix, np.float64)
    except ValueError as error:  # astropy's SingularMatrixError, WcsError
        reason = str(error).strip().splitlines()
        msg = (f'{name}.wcs is invalid (its CD or PC/CDELT matrix cannot '
               f'be inverted?): {reason[-1] if reason else error!r}')
        raise ValueError(msg) from None
    if not (np.isfinite(matrix).all() and np.linalg.matrix_rank(matrix) == 2):
        msg = (f'{name}.wcs has a singular pixel-to-sky matrix (CD or '
               f'PC*CDELT {matrix.tolist()}): pixels of zero or undefined '
               'size, that cannot be inverted')
        raise ValueError(msg)


def _split_cube(data, name):
    """An NDData, Quantity or array cube (band, y, x) -> list of 2-D images."""
    if isinstance(data, NDData):
        if np.ndim(data.data) != 3:
            return None
        shape = np.shape(data.data)
        wcs = data.wcs
        if wcs is not None and getattr(wcs, 'pixel_n_dim', 2) == 3:
            wcs = (wcs.celestial if getattr(wcs, 'has_celestial', False)
                   else None)
        mask = data.mask
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape == shape[1:]:
                # One (y, x) mask for every band.
                mask = np.broadcast_to(mask, shape)
            elif mask.shape != shape:
                msg = (f'{name}.mask has shape {mask.shape}; the cube '
                       f'{shape} needs a mask of shape {shape} or '
                       f'{shape[1:]} (the same for every band)')
                raise ValueError(msg)
        uncertainty = data.uncertainty
        if uncertainty is not None:
            error = uncertainty_std(
                uncertainty, shape, data.unit,
                np.zeros(shape, bool) if mask is None else mask, name)
            uncertainty = StdDevUncertainty(error, unit=data.unit)
        return [NDData(data.data[b], unit=data.unit, wcs=wcs, meta=data.meta,
                       mask=None if mask is None else mask[b],
                       uncertainty=None if uncertainty is None
                       else StdDevUncertainty(uncertainty.array[b]))
                for b in range(shape[0])]
    array = data.value if isinstance(data, u.Quantity) else data
    if isinstance(array, (list, tuple)):
        return None
    array = np.asanyarray(array)
    if array.ndim != 3:
        return None
    if isinstance(data, u.Quantity):
        return [data[b] for b in range(array.shape[0])]
    return [array[b] for b in range(array.shape[0])]


def read_bands(data, *, bands=None, known_bands, default_band,
               pixel_scale=None, name='data'):
    """
    Read one image per band, all on the same pixel grid.

    Parameters
    ----------
    data : image, sequence of images, or cube
        One 2-D image (CCDData, NDData, Quantity or array); a list of them,
        one per band; or a cube ``(band, y, x)`` (NDData, Quantity or
        array).
    bands : sequence of str, optional
        Band names, in the order of ``data``. Default: ``default_band`` for
        a single image, else each image's ``meta['BAND']`` or
        ``meta['FILTER']`` when these are known band names.
    known_bands : tuple of str
        Bands the model knows.
    default_band : str
        Band assumed for a single image without a name.
    pixel_scale : `~astropy.units.Quantity`, optional
        Angle per pixel when the data have no celestial WCS.
    name : str, optional
        Parameter name used in error messages.

    Returns
    -------
    images : list of `ImageData`
        One per band, converted to the first band's unit.
    bands : tuple of str
        The band of each image.

    Raises
    ------
    ValueError
        Unknown, repeated or too many bands; images of different shapes,
        pixel grids (WCS) or incompatible units.
    """
    cube = _split_cube(data, name)
    if cube is not None:
        items = cube
    elif isinstance(data, (list, tuple)):
        items = list(data)
        if not items:
            msg = f'{name} is an empty list: give at least one image'
            raise ValueError(msg)
    else:
        items = [data]
    if len(items) > len(known_bands):
        msg = (f'{name} has {len(items)} bands; the model was trained for '
               f'at most {len(known_bands)} ({", ".join(known_bands)})')
        raise ValueError(msg)
    bands = _band_names(items, bands, known_bands, default_band, name)
    images = [read_image(item, pixel_scale=pixel_scale,
                         name=f'{name}[{band!r}]')
              for item, band in zip(items, bands)]
    first = images[0]
    for image, band in zip(images[1:], bands[1:]):
        where = f'{name}[{band!r}]'
        if image.shape != first.shape:
            msg = (f'{where} has shape {image.shape}, band {bands[0]!r} '
                   f'{first.shape}: every band must share one pixel grid')
            raise ValueError(msg)
        _check_same_grid(first, image, where, bands[0])
        if (image.unit is None) != (first.unit is None) or (
                image.unit is not None and image.unit != first.unit):
            if (image.unit is None or first.unit is None
                    or not image.unit.is_equivalent(first.unit)):
                msg = (f'{where} has unit {image.unit!r} but band '
                       f'{bands[0]!r} has {first.unit!r}: mixed units')
                raise ValueError(msg)
            factor = image.unit.to(first.unit)
            image.data = image.data * factor
            if image.error is not None:
                image.error = image.error * factor
            image.unit = first.unit
    return images, bands


def _band_names(items, bands, known_bands, default_band, name):
    if bands is None:
        if len(items) == 1:
            return (default_band,)
        found = []
        for item in items:
            meta = getattr(item, 'meta', None) or {}
            value = meta.get('BAND', meta.get('FILTER'))
            found.append(str(value).strip() if value is not None else None)
        if all(value in known_bands for value in found):
            bands = found
        else:
            msg = (f'{name} has {len(items)} images: give bands=, their '
                   f'names in order, from {known_bands}')
            raise ValueError(msg)
    if isinstance(bands, str):
        bands = (bands,) if len(items) == 1 or bands in known_bands \
            else tuple(bands)
    bands = tuple(bands)
    if len(bands) != len(items):
        msg = f'bands has {len(bands)} names for {len(items)} images'
        raise ValueError(msg)
    unknown = [band for band in bands if band not in known_bands]
    if unknown:
        msg = (f'bands {unknown} are not bands the model was trained for: '
               f'{known_bands}')
        raise ValueError(msg)
    if len(set(bands)) != len(bands):
        msg = f'bands has repeated names: {bands}'
        raise ValueError(msg)
    return bands


def _check_same_grid(first, image, where, first_band):
    """Images with celestial WCSs must map pixels to the same sky."""
    wcs0, wcs1 = first.wcs, image.wcs
    if wcs0 is None or wcs1 is None or not (
            getattr(wcs0, 'has_celestial', False)
            and getattr(wcs1, 'has_celestial', False)):
        return
    ny, nx = first.shape
    x = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2])
    y = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2])
    x1, y1 = wcs1.world_to_pixel(wcs0.pixel_to_world(x, y))
    offset = np.max(np.hypot(np.asarray(x1) - x, np.asarray(y1) - y))
    if not offset < 0.05:
        msg = (f'{where} is on another pixel grid than band {first_band!r}: '
               f'their WCSs differ by up to {offset:.3g} pixels; resample '
               f'the bands onto one grid first (e.g. with reproject)')
        raise ValueError(msg)


def _pixel_scale(wcs, pixel_scale, name='data'):
    if pixel_scale is not None:
        try:
            pixel_scale = u.Quantity(pixel_scale)
        except (TypeError, ValueError):
            msg = (f'pixel_scale must be an angle per pixel (a Quantity), '
                   f'got {pixel_scale!r}')
            raise TypeError(msg) from None
        if pixel_scale.unit.is_equivalent(u.arcsec / u.pix):
            pixel_scale = pixel_scale.to(u.arcsec / u.pix)
        elif pixel_scale.unit.is_equivalent(u.arcsec):
            pixel_scale = pixel_scale.to(u.arcsec) / u.pix
        else:
            msg = (f'pixel_scale must be an angle per pixel, got '
                   f'{pixel_scale!r}')
            raise ValueError(msg)
        if not (pixel_scale.size == 1 and pixel_scale.value > 0):
            msg = f'pixel_scale must be one positive value, got {pixel_scale}'
            raise ValueError(msg)
    if wcs is not None and getattr(wcs, 'has_celestial', False):
        scales = proj_plane_pixel_scales(wcs.celestial)
        scale = np.sqrt(scales[0] * scales[1])
        if not (np.isfinite(scale) and scale > 0):
            msg = f'{name}.wcs gives a pixel scale of {scale} deg'
            raise ValueError(msg)
        return (scale * u.deg).to(u.arcsec) / u.pix
    return pixel_scale
