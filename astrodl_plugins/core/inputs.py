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
from astropy.nddata import NDData, StdDevUncertainty
from astropy.wcs.utils import proj_plane_pixel_scales

__all__ = ['ImageData', 'read_image', 'read_bands']

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


def _reject_unit(unit):
    """Return why ``unit`` is not a linear flux-like unit, or None."""
    # ``u.mag`` and ``u.dex`` are plain units that decompose to dex, not
    # FunctionUnitBase instances like ``u.ABmag``.
    if isinstance(unit, u.FunctionUnitBase) or u.dex in unit.decompose().bases:
        return 'a logarithmic unit (magnitudes, dex) is not a linear flux'
    bad_types = {'angle', 'length', 'time', 'temperature', 'mass',
                 'solid angle', 'speed', 'frequency'}
    physical_type = str(unit.physical_type)
    if physical_type in bad_types:
        return f'its physical type is {physical_type!r}, not a flux'
    return None


def read_image(data, *, pixel_scale=None, name='data'):
    """
    Read a 2-D image from CCDData, NDData, Quantity or ndarray.

    Parameters
    ----------
    data : `~astropy.nddata.NDData`, `~astropy.units.Quantity` or array
        The image, background subtracted. NDData's ``unit``, ``mask``,
        ``uncertainty`` and ``wcs`` are used.
    pixel_scale : `~astropy.units.Quantity`, optional
        Angle per pixel, used only when the data have no celestial WCS.
    name : str, optional
        Parameter name used in error messages.

    Returns
    -------
    image : `ImageData`

    Raises
    ------
    TypeError
        Boolean or non-numeric data.
    ValueError
        Not 2-D, empty, no finite unmasked pixel, a unit that is not a
        linear flux, or an invalid ``pixel_scale``.
    """
    mask = error = wcs = None
    unit = None
    meta = {}
    if isinstance(data, NDData):
        meta = dict(data.meta)
        array = data.data
        unit = data.unit
        mask = None if data.mask is None else np.asarray(data.mask, bool)
        wcs = data.wcs
        if data.uncertainty is not None:
            std = data.uncertainty.represent_as(StdDevUncertainty)
            error = np.array(std.array, dtype=np.float64)
    elif isinstance(data, u.Quantity):
        array, unit = data.value, data.unit
    else:
        array = data
    array = np.asanyarray(array)
    if array.dtype == bool:
        msg = f'{name} must be numeric, got a boolean array'
        raise TypeError(msg)
    if not np.issubdtype(array.dtype, np.number):
        msg = f'{name} must be numeric, got dtype {array.dtype}'
        raise TypeError(msg)
    if array.ndim != 2:
        msg = f'{name} must be a 2-D image, got shape {array.shape}'
        raise ValueError(msg)
    if array.size == 0:
        msg = f'{name} is empty (shape {array.shape})'
        raise ValueError(msg)
    array = np.array(array, dtype=np.float64)
    mask = np.zeros(array.shape, bool) if mask is None else mask.copy()
    if mask.shape != array.shape:
        msg = f'{name}.mask has shape {mask.shape}, not {array.shape}'
        raise ValueError(msg)
    mask |= ~np.isfinite(array)
    if error is not None:
        mask |= ~np.isfinite(error)
    if mask.all():
        msg = f'{name} has no finite, unmasked pixel'
        raise ValueError(msg)
    if unit is not None:
        unit = u.Unit(unit)
        why = _reject_unit(unit)
        if why:
            msg = f'{name} has unit {unit!r}: {why}'
            raise ValueError(msg)
    return ImageData(array, mask, error, unit, wcs,
                     _pixel_scale(wcs, pixel_scale), meta)


def _split_cube(data, name):
    """An NDData, Quantity or array cube (band, y, x) -> list of 2-D images."""
    if isinstance(data, NDData):
        if data.data.ndim != 3:
            return None
        wcs = data.wcs
        if wcs is not None and getattr(wcs, 'naxis', 2) == 3:
            wcs = wcs.celestial if wcs.has_celestial else None
        uncertainty = data.uncertainty
        if uncertainty is not None:
            uncertainty = uncertainty.represent_as(StdDevUncertainty)
        return [NDData(data.data[b], unit=data.unit, wcs=wcs, meta=data.meta,
                       mask=None if data.mask is None else data.mask[b],
                       uncertainty=None if uncertainty is None
                       else StdDevUncertainty(uncertainty.array[b]))
                for b in range(data.data.shape[0])]
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


def _pixel_scale(wcs, pixel_scale):
    if pixel_scale is not None:
        pixel_scale = u.Quantity(pixel_scale)
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
        return (np.sqrt(scales[0] * scales[1]) * u.deg).to(u.arcsec) / u.pix
    return pixel_scale
