# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""DS9 ellipses of a galaxy-structure table."""

import numpy as np
from astropy import units as u

__all__ = ['structure_regions']


def structure_regions(table):
    """
    DS9-ready ellipses of a galaxy-structure table (``regions`` objects).

    The semi-major axis is ``r_eff``, the semi-minor ``axis_ratio *
    r_eff``, oriented by ``position_angle``. With sky columns (a table
    measured with a celestial WCS) the ellipses are
    `~regions.EllipseSkyRegion` (whose angle is counted from the
    longitude axis, i.e. ``position_angle - 90 deg``); otherwise
    `~regions.EllipsePixelRegion`. Rows with NaN values are skipped.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        Output of `~astrodl_plugins.structure.GalaxyStructure.predict`.

    Returns
    -------
    regions : list
        Write them with ``regions.Regions(regions).write(path,
        format='ds9')``; ``region.to_pixel(wcs)`` gives pixel ellipses.
    """
    from regions import EllipsePixelRegion, EllipseSkyRegion, PixCoord

    sky = 'sky_centroid' in table.colnames and table['r_eff'].unit == u.arcsec
    regions = []
    for row in table:
        values = [u.Quantity(row[name]).value for name in
                  ('r_eff', 'axis_ratio', 'position_angle')]
        if not np.all(np.isfinite(values)):
            continue
        width = 2 * row['r_eff']
        height = width * row['axis_ratio']
        meta = {'label': f"{row['label']}"}
        if sky:
            region = EllipseSkyRegion(row['sky_centroid'], width, height,
                                      angle=row['position_angle'] - 90 * u.deg,
                                      meta=meta)
        else:
            center = PixCoord(u.Quantity(row['x_centroid']).value,
                              u.Quantity(row['y_centroid']).value)
            region = EllipsePixelRegion(center, width.value, height.value,
                                        angle=row['position_angle'],
                                        meta=meta)
        regions.append(region)
    return regions
