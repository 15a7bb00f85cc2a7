# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Simulated galaxy postage stamps for training and validating the
structural-parameter estimator (Tuccillo et al. 2018 style).

Every quantity is in the pixel domain so the trained model applies to any
telescope through its WCS. Conventions, shared with the estimator:

* ``r_eff`` is the half-light radius along the **semi-major axis** (as in
  GALFIT and `~astropy.modeling.functional_models.Sersic2D`). GalSim's
  ``half_light_radius`` of a sheared profile is the circularized radius
  ``r_eff * sqrt(axis_ratio)``; the conversion happens here only.
* ``position_angle`` is in degrees counter-clockwise from the +x axis, in
  [0, 180).
* ``snr`` is the matched-filter signal-to-noise ratio of the galaxy
  against the sky + read noise, ``flux * sqrt(sum(I**2) / var)`` for the unit
  flux profile ``I`` (GalSim's ``addNoiseSNR`` definition).
"""

import numpy as np
from astropy.table import QTable

from .common import loguniform, run_jobs

__all__ = ['GALAXY_STRUCTURE_RANGES', 'simulate_galaxy_stamps',
           'sersic_index_grid']

#: Ranges the simulator draws from (and the model is valid in), pixels.
GALAXY_STRUCTURE_RANGES = {
    'sersic_n': (0.5, 6.0),
    'r_eff': (1.5, 15.0),
    'axis_ratio': (0.2, 1.0),
    'position_angle': (0.0, 180.0),
    'snr': (10.0, 1000.0),
    'psf_fwhm': (2.0, 5.0),
    'psf_beta': (2.5, 5.0),
}

# GalSim builds (and caches, up to 100) a Hankel table per distinct Sersic
# index: ~40 ms each. Drawing n from a fine log grid keeps the cache warm
# (2.6 % steps, well inside the 10 % accuracy target).
_N_SERSIC_GRID = 96
_N_BETA_GRID = 6
_CHUNK = 256


def sersic_index_grid():
    """
    Return the grid of Sersic indices the simulator draws from.

    Returns
    -------
    grid : `~numpy.ndarray`
        96 log-spaced values between 0.5 and 6.
    """
    low, high = GALAXY_STRUCTURE_RANGES['sersic_n']
    return np.geomspace(low, high, _N_SERSIC_GRID)


def _draw_parameters(rng, n, ranges, neighbour_fraction, max_offset):
    """Draw the truth of ``n`` stamps (vectorized)."""
    grid = sersic_index_grid()
    lo_n, hi_n = ranges['sersic_n']
    grid = grid[(grid >= lo_n * 0.999) & (grid <= hi_n * 1.001)]
    betas = np.linspace(*ranges['psf_beta'], _N_BETA_GRID)
    return {
        'sersic_n': grid[rng.integers(grid.size, size=n)],
        'r_eff': loguniform(rng, *ranges['r_eff'], n),
        'axis_ratio': rng.uniform(*ranges['axis_ratio'], n),
        'position_angle': rng.uniform(0.0, 180.0, n),
        'snr': loguniform(rng, *ranges['snr'], n),
        'psf_fwhm': rng.uniform(*ranges['psf_fwhm'], n),
        'psf_beta': betas[rng.integers(betas.size, size=n)],
        'x_offset': rng.uniform(-max_offset, max_offset, n),
        'y_offset': rng.uniform(-max_offset, max_offset, n),
        'sky_level': loguniform(rng, 20.0, 2000.0, n),
        'read_noise': rng.uniform(2.0, 10.0, n),
        'has_neighbour': rng.random(n) < neighbour_fraction,
    }


def _sersic(galsim, n, r_eff, q, pa, gsparams):
    return (galsim.Sersic(n, half_light_radius=r_eff * np.sqrt(q),
                          gsparams=gsparams)
            .shear(q=q, beta=pa * galsim.degrees))


def _draw_chunk(args):
    """Draw one chunk of stamps; runs in a worker process."""
    from .common import require_galsim
    galsim = require_galsim()

    params, stamp_size, seed = args
    rng = np.random.default_rng(seed)
    gsparams = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3)
    grid = sersic_index_grid()
    n_stamps = params['sersic_n'].size
    images = np.empty((n_stamps, stamp_size, stamp_size), dtype=np.float32)
    flux = np.empty(n_stamps)
    noise_sigma = np.empty(n_stamps)
    for i in range(n_stamps):
        psf = galsim.Moffat(beta=params['psf_beta'][i],
                            fwhm=params['psf_fwhm'][i], gsparams=gsparams)
        gal = _sersic(galsim, params['sersic_n'][i], params['r_eff'][i],
                      params['axis_ratio'][i], params['position_angle'][i],
                      gsparams)
        gal = gal.shift(params['x_offset'][i], params['y_offset'][i])
        image = galsim.Convolve([gal, psf], gsparams=gsparams).drawImage(
            nx=stamp_size, ny=stamp_size, scale=1.0)
        unit = image.array.astype(np.float64)
        var = params['sky_level'][i] + params['read_noise'][i] ** 2
        flux[i] = params['snr'][i] * np.sqrt(var / np.sum(unit ** 2))
        image *= flux[i]
        if params['has_neighbour'][i]:
            image += _draw_neighbour(galsim, rng, grid, psf, flux[i],
                                     params['r_eff'][i], stamp_size, gsparams)
        noise = galsim.CCDNoise(galsim.BaseDeviate(int(rng.integers(2**31))),
                                sky_level=params['sky_level'][i], gain=1.0,
                                read_noise=params['read_noise'][i])
        image.addNoise(noise)
        images[i] = image.array
        noise_sigma[i] = np.sqrt(var)
    return images, flux, noise_sigma


def _draw_neighbour(galsim, rng, grid, psf, flux, r_eff, stamp_size,
                    gsparams):
    """A companion 12-40 px (and >= 1.5 r_eff) away, 0.05-2x as bright."""
    distance = rng.uniform(max(12.0, 1.5 * r_eff), 40.0)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    neighbour = _sersic(galsim, grid[rng.integers(grid.size)],
                        loguniform(rng, 1.0, 10.0), rng.uniform(0.2, 1.0),
                        rng.uniform(0.0, 180.0), gsparams)
    neighbour = neighbour.withFlux(flux * loguniform(rng, 0.05, 2.0))
    neighbour = neighbour.shift(distance * np.cos(angle),
                                distance * np.sin(angle))
    return galsim.Convolve([neighbour, psf], gsparams=gsparams).drawImage(
        nx=stamp_size, ny=stamp_size, scale=1.0)


def simulate_galaxy_stamps(n_stamps, *, seed, stamp_size=64, ranges=None,
                           neighbour_fraction=0.3, max_offset=0.75,
                           n_processes=None):
    """
    Simulate noisy PSF-convolved Sersic galaxy stamps with their truth.

    Parameters
    ----------
    n_stamps : int
        Number of stamps.
    seed : int
        Random seed. The same seed gives the same stamps, whatever
        ``n_processes`` is.
    stamp_size : int, optional
        Side of the square stamps in pixels.
    ranges : dict, optional
        Overrides for entries of `GALAXY_STRUCTURE_RANGES` (e.g.
        ``{'snr': (50, 1000)}``).
    neighbour_fraction : float, optional
        Fraction of stamps with a companion galaxy 12-40 px (and at least
        1.5 ``r_eff``) away.
    max_offset : float, optional
        The galaxy centre is offset uniformly by up to this many pixels in
        x and y from the stamp centre (centroiding error).
    n_processes : int, optional
        Worker processes; default the number of CPUs.

    Returns
    -------
    images : `~numpy.ndarray`
        Sky-subtracted images, shape ``(n_stamps, stamp_size, stamp_size)``,
        float32, in electrons (gain 1).
    truth : `~astropy.table.QTable`
        One row per stamp: ``sersic_n``, ``r_eff`` (pix, semi-major axis),
        ``axis_ratio``, ``position_angle`` (deg from +x, counter-clockwise),
        ``flux`` (electrons), ``snr``, ``psf_fwhm`` (pix), ``psf_beta``,
        ``x_offset``, ``y_offset``, ``sky_level``, ``read_noise``,
        ``noise_sigma``, ``has_neighbour``.
    """
    if n_stamps < 1:
        raise ValueError(f'n_stamps must be >= 1, got {n_stamps}')
    all_ranges = dict(GALAXY_STRUCTURE_RANGES)
    all_ranges.update(ranges or {})
    rng = np.random.default_rng(seed)
    params = _draw_parameters(rng, n_stamps, all_ranges, neighbour_fraction,
                              max_offset)
    starts = range(0, n_stamps, _CHUNK)
    child_seeds = np.random.SeedSequence(seed).spawn(len(starts))
    jobs = [({key: value[start:start + _CHUNK]
              for key, value in params.items()}, stamp_size,
             child_seeds[i])
            for i, start in enumerate(starts)]
    results = run_jobs(_draw_chunk, jobs, n_processes)
    images = np.concatenate([result[0] for result in results])
    truth = QTable(params)
    truth['flux'] = np.concatenate([result[1] for result in results])
    truth['noise_sigma'] = np.concatenate([result[2] for result in results])
    return images, truth
