# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""A simulated CCD field with galaxies, stars, sky, noise, WCS and truth."""

import numpy as np
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable
from astropy.wcs import WCS

__all__ = ['simulate_field']


def _field_wcs(shape, pixel_scale, center):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [center[0], center[1]]
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    scale = pixel_scale.to_value(u.deg / u.pix)
    wcs.wcs.cdelt = [-scale, scale]
    return wcs


def _place(rng, n, shape, margin, min_separation, taken):
    """Random positions at least ``min_separation`` from each other."""
    ny, nx = shape
    positions = list(taken)
    new = []
    for _ in range(200 * n):
        if len(new) == n:
            break
        x, y = rng.uniform(margin, nx - margin), rng.uniform(margin,
                                                           ny - margin)
        if all(np.hypot(x - px, y - py) >= min_separation
               for px, py in positions):
            positions.append((x, y))
            new.append((x, y))
    return new


def simulate_field(*, seed, shape=(512, 512), n_galaxies=30, n_stars=20,
                   psf_fwhm=3.0, psf_beta=3.5, pixel_scale=0.2 * u.arcsec / u.pix,
                   sky_level=200.0, read_noise=5.0, snr=(30.0, 400.0),
                   center=(150.1, 2.2)):
    """
    Simulate a CCD field: Sersic galaxies and stars under one Moffat PSF.

    The galaxies' parameters lie inside the galaxy-structure model's
    trained ranges, and sources are at least 36 pixels apart (no blends),
    so the field is a fair check of the estimator on a whole image.

    Parameters
    ----------
    seed : int
        Random seed: the same seed gives the same field.
    shape : tuple of int, optional
        Image shape (ny, nx).
    n_galaxies, n_stars : int, optional
        Number of galaxies and stars.
    psf_fwhm : float, optional
        Moffat FWHM, pixels (also stored as ``meta['PSF_FWHM']``).
    psf_beta : float, optional
        Moffat beta.
    pixel_scale : `~astropy.units.Quantity`, optional
        Of the TAN WCS (north up, east left).
    sky_level : float, optional
        Sky, electrons per pixel; it is left in the image (subtract it).
    read_noise : float, optional
        Electrons.
    snr : tuple of float, optional
        Range of matched-filter S/N (log-uniform) of the sources.
    center : tuple of float, optional
        RA, Dec of the image centre, degrees.

    Returns
    -------
    ccd : `~astropy.nddata.CCDData`
        Image in electrons including sky, with WCS, StdDevUncertainty and
        ``PSF_FWHM`` in its meta.
    truth : `~astropy.table.QTable`
        One row per source: ``id``, ``kind`` (galaxy/star), ``x``, ``y``,
        ``sky_centroid``, ``flux``, ``snr``, and for galaxies
        ``sersic_n``, ``r_eff`` (pix, semi-major axis), ``r_eff_arcsec``,
        ``axis_ratio``, ``position_angle_pix`` (from +x,
        counter-clockwise) and ``position_angle`` (east of north).
    """
    from .common import require_galsim
    galsim = require_galsim()

    rng = np.random.default_rng(seed)
    ny, nx = shape
    image = galsim.ImageF(nx, ny, scale=1.0)
    psf = galsim.Moffat(beta=psf_beta, fwhm=psf_fwhm)
    galaxies = _place(rng, n_galaxies, shape, 34, 44, [])
    stars = _place(rng, n_stars, shape, 20, 36, galaxies)
    var = sky_level + read_noise ** 2
    grid = np.geomspace(0.6, 5.5, 24)
    rows = []
    for kind, positions in (('galaxy', galaxies), ('star', stars)):
        for x, y in positions:
            row = {'kind': kind, 'x': x, 'y': y,
                   'snr': np.exp(rng.uniform(*np.log(snr)))}
            if kind == 'galaxy':
                row.update(sersic_n=grid[rng.integers(grid.size)],
                           r_eff=np.exp(rng.uniform(np.log(2.0),
                                                    np.log(12.0))),
                           axis_ratio=rng.uniform(0.25, 1.0),
                           position_angle_pix=rng.uniform(0.0, 180.0))
                profile = galsim.Sersic(
                    row['sersic_n'],
                    half_light_radius=row['r_eff'] * np.sqrt(
                        row['axis_ratio'])).shear(
                    q=row['axis_ratio'],
                    beta=row['position_angle_pix'] * galsim.degrees)
                profile = galsim.Convolve([profile, psf])
            else:
                profile = psf
            unit = profile.drawImage(nx=64, ny=64, scale=1.0).array
            row['flux'] = row['snr'] * np.sqrt(var / np.sum(unit ** 2))
            # Pixel i (0-based, numpy) has its centre at i + 1 in GalSim.
            ix, iy = int(round(x)) + 1, int(round(y)) + 1
            bounds = galsim.BoundsI(ix - 48, ix + 48, iy - 48, iy + 48)
            profile.withFlux(row['flux']).drawImage(
                image=image[bounds & image.bounds], add_to_image=True,
                center=galsim.PositionD(x + 1.0, y + 1.0))
            rows.append(row)
    noise = galsim.CCDNoise(galsim.BaseDeviate(int(rng.integers(2**31))),
                            sky_level=sky_level, gain=1.0,
                            read_noise=read_noise)
    image.addNoise(noise)
    data = image.array + sky_level
    error = np.sqrt(np.clip(data, 0, None) + read_noise ** 2)
    wcs = _field_wcs(shape, pixel_scale, center)
    meta = {'PSF_FWHM': psf_fwhm, 'PSFBETA': psf_beta, 'SKYLEVEL': sky_level,
            'RDNOISE': read_noise, 'SIMSEED': seed,
            'ORIGIN': 'astrodl_plugins.simulate.simulate_field'}
    ccd = CCDData(data.astype(np.float32), unit=u.electron, wcs=wcs,
                  uncertainty=StdDevUncertainty(error.astype(np.float32)),
                  meta=meta)
    return ccd, _truth_table(rows, wcs, pixel_scale)


def _truth_table(rows, wcs, pixel_scale):
    truth = QTable()
    truth['id'] = np.arange(1, len(rows) + 1)
    truth['kind'] = [row['kind'] for row in rows]
    truth['x'] = [row['x'] for row in rows] * u.pix
    truth['y'] = [row['y'] for row in rows] * u.pix
    truth['sky_centroid'] = wcs.pixel_to_world(truth['x'].value,
                                               truth['y'].value)
    truth['flux'] = [row['flux'] for row in rows] * u.electron
    truth['snr'] = [row['snr'] for row in rows]
    for name in ('sersic_n', 'r_eff', 'axis_ratio', 'position_angle_pix'):
        truth[name] = [row.get(name, np.nan) for row in rows]
    truth['r_eff'] = truth['r_eff'] * u.pix
    truth['r_eff_arcsec'] = (truth['r_eff'] * pixel_scale).to(u.arcsec)
    truth['position_angle_pix'] = truth['position_angle_pix'] * u.deg
    # North up, east left: the +x axis points west (PA 270 deg).
    truth['position_angle'] = ((truth['position_angle_pix'].value + 90.0)
                               % 180.0) * u.deg
    return truth
