# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Simulated multi-band stamps for the source classifiers.

Two simulators share one scene model: every stamp is observed in the bands
``g``, ``r`` and ``i`` (`BANDS`) with the same pixel grid, a Moffat PSF per
band (FWHM scaled by band, a slight common ellipticity), its own sky and
read noise per band, and sometimes a neighbour. Conventions:

* ``snr`` is the matched-filter signal-to-noise ratio of the central
  source in the reference band ``r`` (as in
  `~astrodl_plugins.simulate.simulate_galaxy_stamps`); the other bands
  follow from the source's colours ``g_r`` (g - r) and ``r_i`` (r - i), in
  magnitudes.
* ``psf_fwhm`` is the FWHM in the reference band, pixels; band ``b`` has
  ``psf_fwhm * PSF_BAND_SCALE[b]``.
* Images are sky subtracted, in electrons (gain 1), ``(n, size, size,
  n_bands)``; NaN marks pixels outside the detector (truncated sources).

`simulate_star_galaxy_sky_stamps` draws the same two classes in skies
closer to real ones (`astrodl_plugins.simulate.sky`: several PSF families,
undersampling, crowding, saturation, nebulosity, spirals); it is used for
fine-tuning to a survey and by the ``star-galaxy-sky`` experiment.

`simulate_star_galaxy_stamps` draws stars (the PSF with position jitter)
and galaxies (Sersic or bulge + disk, from barely resolved to extended),
down to S/N 5. `simulate_morphology_stamps` draws the five classes of the
CANDELS-like scheme of Huertas-Company et al. (2015): spheroids, disks
(all inclinations), irregulars (clumpy `galsim.RandomKnots` plus
asymmetric components), point sources and unclassifiable stamps (too
faint, artefacts, truncated).
"""

import numpy as np
from astropy.table import QTable

from .common import loguniform, run_jobs
from .structure import sersic_index_grid

__all__ = ['BANDS', 'PSF_BAND_SCALE', 'STAR_GALAXY_CLASSES',
           'STAR_GALAXY_RANGES', 'STAR_GALAXY_SKY_RANGES',
           'MORPHOLOGY_CLASSES', 'MORPHOLOGY_RANGES',
           'simulate_star_galaxy_stamps', 'simulate_star_galaxy_sky_stamps',
           'simulate_morphology_stamps', 'band_flux_ratio']

#: Bands of the simulated stamps, bluest first; ``r`` is the reference.
BANDS = ('g', 'r', 'i')
#: PSF FWHM in each band relative to the reference band (seeing ~ lambda^-0.2).
PSF_BAND_SCALE = {'g': 1.07, 'r': 1.0, 'i': 0.95}
#: Classes of the star-galaxy simulator, in label order.
STAR_GALAXY_CLASSES = ('star', 'galaxy')
#: Classes of the morphology simulator, in label order.
MORPHOLOGY_CLASSES = ('spheroid', 'disk', 'irregular', 'point_source',
                      'unclassifiable')

#: Ranges of the star-galaxy simulator (pixels, reference band).
STAR_GALAXY_RANGES = {
    'snr': (5.0, 1000.0),
    'psf_fwhm': (1.5, 6.0),
    'psf_beta': (1.8, 5.0),
    'psf_halo': (0.0, 0.15),
    'r_eff_over_fwhm': (0.35, 5.0),
    'r_eff': (0.5, 15.0),
}
#: Ranges of the sky-like star-galaxy simulator (pixels, reference band;
#: ``crowding``: mean neighbours per stamp).
STAR_GALAXY_SKY_RANGES = {
    'snr': (5.0, 1000.0),
    'psf_fwhm': (0.6, 6.0),
    'psf_beta': (1.8, 5.0),
    'psf_halo': (0.0, 0.15),
    'r_eff_over_fwhm': (0.35, 20.0),
    'r_eff': (0.4, 10.0),
    'crowding': (0.05, 12.0),
}
#: Ranges of the morphology simulator (classified galaxies and point sources).
MORPHOLOGY_RANGES = {
    'snr': (20.0, 1000.0),
    'snr_faint': (3.0, 8.0),
    'psf_fwhm': (1.5, 5.0),
    'psf_beta': (2.5, 5.0),
    'r_eff_over_fwhm': (0.8, 3.5),
}

_CHUNK = 256
_N_BETA_GRID = 6
# Colours (g - r, r - i) per kind of source: mean and scatter.
_COLOURS = {
    'star': None,  # the stellar locus, see _star_colours
    'galaxy': ((0.75, 0.30), (0.38, 0.15)),
    'spheroid': ((0.95, 0.12), (0.45, 0.08)),
    'disk': ((0.60, 0.15), (0.32, 0.10)),
    'irregular': ((0.35, 0.15), (0.15, 0.10)),
}


def _star_colours(rng, n):
    """Colours g - r and r - i along a stellar locus (A to M dwarfs)."""
    g_r = rng.uniform(0.0, 1.6, n)
    r_i = np.where(g_r < 1.3, 0.38 * g_r - 0.05,
                   0.44 + 2.2 * (g_r - 1.3)) + rng.normal(0.0, 0.06, n)
    return g_r, r_i


def _galaxy_colours(rng, kind, n):
    (gm, gs), (rm, rs) = _COLOURS[kind]
    return (np.clip(rng.normal(gm, gs, n), -0.3, 2.0),
            np.clip(rng.normal(rm, rs, n), -0.3, 1.2))


def _common(rng, n, psf_fwhm, bands, psf_beta=(2.5, 5.0)):
    """Observing conditions shared by both simulators."""
    betas = np.linspace(*psf_beta, _N_BETA_GRID)
    params = {
        'psf_fwhm': rng.uniform(*psf_fwhm, n),
        'psf_beta': betas[rng.integers(betas.size, size=n)],
        'psf_g1': rng.normal(0.0, 0.02, n),
        'psf_g2': rng.normal(0.0, 0.02, n),
        'x_offset': rng.uniform(-0.75, 0.75, n),
        'y_offset': rng.uniform(-0.75, 0.75, n),
        'position_angle': rng.uniform(0.0, 180.0, n),
    }
    for band in bands:
        params[f'sky_level_{band}'] = loguniform(rng, 20.0, 2000.0, n)
        params[f'read_noise_{band}'] = rng.uniform(2.0, 10.0, n)
    return params


def _psf(galsim, params, i, band, gsparams):
    fwhm = params['psf_fwhm'][i] * PSF_BAND_SCALE[band]
    psf = galsim.Moffat(beta=params['psf_beta'][i], fwhm=fwhm,
                        gsparams=gsparams)
    halo = params['psf_halo'][i] if 'psf_halo' in params else 0.0
    if halo > 0:
        # A wide Gaussian halo (scattered light), as real PSFs have.
        wide = galsim.Gaussian(fwhm=fwhm * params['psf_halo_scale'][i],
                               gsparams=gsparams)
        psf = galsim.Add([psf.withFlux(1.0 - halo), wide.withFlux(halo)])
    return psf.shear(g1=params['psf_g1'][i], g2=params['psf_g2'][i])


def band_flux_ratio(band, g_r, r_i):
    """Flux in ``band`` over flux in r, from the colours (magnitudes)."""
    return {'g': 10 ** (-0.4 * g_r), 'r': 1.0, 'i': 10 ** (0.4 * r_i)}[band]



def _nearest(grid, value):
    return grid[np.argmin(np.abs(grid - value))]


def _galaxy_profile(galsim, kind, p, i, rng, gsparams):
    """Unit-flux profile (no PSF) of a galaxy of ``kind``; None for a star."""
    grid = sersic_index_grid()
    pa = p['position_angle'][i] * galsim.degrees
    r_eff = p['r_eff'][i]
    if kind in ('star', 'point_source'):
        return None
    if kind in ('sersic', 'spheroid'):
        q = p['axis_ratio'][i]
        return (galsim.Sersic(p['sersic_n'][i], half_light_radius=r_eff
                              * np.sqrt(q), gsparams=gsparams)
                .shear(q=q, beta=pa))
    if kind == 'disk':
        bulge_fraction = p['bulge_fraction'][i]
        disk = galsim.InclinedExponential(
            np.arccos(p['cos_inclination'][i]) * galsim.radians,
            half_light_radius=r_eff, scale_h_over_r=p['scale_h_over_r'][i],
            gsparams=gsparams).rotate(pa)
        if bulge_fraction <= 0:
            return disk
        bulge_q = rng.uniform(0.6, 1.0)
        bulge = (galsim.Sersic(_nearest(grid, 4.0), half_light_radius=r_eff
                               * rng.uniform(0.15, 0.4), gsparams=gsparams)
                 .shear(q=bulge_q, beta=pa))
        return galsim.Add([disk.withFlux(1 - bulge_fraction),
                           bulge.withFlux(bulge_fraction)])
    if kind == 'irregular':
        deviate = galsim.BaseDeviate(int(rng.integers(2**31)))
        knot_fraction = rng.uniform(0.4, 0.8)
        knots = galsim.RandomKnots(int(rng.integers(10, 41)),
                                   half_light_radius=r_eff, flux=knot_fraction,
                                   rng=deviate, gsparams=gsparams)
        shift = r_eff * rng.uniform(0.2, 0.6)
        angle = rng.uniform(0.0, 2 * np.pi)
        smooth = (galsim.Exponential(half_light_radius=r_eff
                                     * rng.uniform(0.6, 1.2),
                                     flux=1.0 - knot_fraction,
                                     gsparams=gsparams)
                  .shear(q=rng.uniform(0.4, 1.0), beta=pa)
                  .shift(shift * np.cos(angle), shift * np.sin(angle)))
        parts = [knots, smooth]
        if rng.random() < 0.5:
            distance = r_eff * rng.uniform(0.8, 1.5)
            angle = rng.uniform(0.0, 2 * np.pi)
            blob = galsim.Exponential(
                half_light_radius=r_eff * rng.uniform(0.3, 0.6),
                flux=rng.uniform(0.1, 0.3), gsparams=gsparams)
            parts.append(blob.shift(distance * np.cos(angle),
                                    distance * np.sin(angle)))
        total = galsim.Add(parts)
        return total.withFlux(1.0)
    if kind == 'bulge_disk':
        bulge_fraction = p['bulge_fraction'][i]
        q = p['axis_ratio'][i]
        disk = (galsim.Exponential(half_light_radius=r_eff * np.sqrt(q),
                                   gsparams=gsparams).shear(q=q, beta=pa))
        bulge = (galsim.Sersic(_nearest(grid, 4.0), half_light_radius=r_eff
                               * rng.uniform(0.2, 0.6), gsparams=gsparams)
                 .shear(q=rng.uniform(0.6, 1.0), beta=pa))
        return galsim.Add([disk.withFlux(1 - bulge_fraction),
                           bulge.withFlux(bulge_fraction)])
    msg = f'unknown kind {kind!r}'
    raise ValueError(msg)


def _draw(galsim, profile, psf, size):
    """Unit-flux image of ``profile`` (or the PSF) convolved with the PSF."""
    obj = psf if profile is None else galsim.Convolve([profile, psf])
    return obj.drawImage(nx=size, ny=size, scale=1.0).array.astype(np.float64)


def _neighbour(galsim, rng, size, gsparams):
    """A random star or galaxy 0.25-0.5 stamp sizes away (unit flux)."""
    distance = rng.uniform(0.25, 0.5) * size
    angle = rng.uniform(0.0, 2 * np.pi)
    shift = (distance * np.cos(angle), distance * np.sin(angle))
    g_r, r_i = _galaxy_colours(rng, 'galaxy', 1)
    if rng.random() < 0.4:
        return None, shift, g_r[0], r_i[0]
    grid = sersic_index_grid()
    q = rng.uniform(0.3, 1.0)
    galaxy = (galsim.Sersic(grid[rng.integers(grid.size)],
                            half_light_radius=loguniform(rng, 0.5, 6.0)
                            * np.sqrt(q), gsparams=gsparams)
              .shear(q=q, beta=rng.uniform(0, 180) * galsim.degrees))
    return galaxy, shift, g_r[0], r_i[0]


def _artefact(rng, size, sigma):
    """Cosmic rays, a satellite trail or a bad column near the centre."""
    image = np.zeros((size, size))
    kind = rng.integers(3)
    c = (size - 1) / 2
    if kind == 0:  # cosmic-ray hits: sharp, not convolved with the PSF
        for _ in range(rng.integers(1, 5)):
            x0, y0 = (c + rng.uniform(-4, 4, 2)).astype(int)
            length = rng.integers(1, 5)
            dx, dy = rng.choice([-1, 0, 1], 2)
            for step in range(length):
                x, y = x0 + step * dx, y0 + step * dy
                if 0 <= x < size and 0 <= y < size:
                    image[y, x] += sigma * loguniform(rng, 20.0, 500.0)
    elif kind == 1:  # satellite trail through (near) the centre
        angle = rng.uniform(0.0, np.pi)
        yy, xx = np.mgrid[:size, :size] - c
        offset = rng.uniform(-2, 2)
        distance = xx * np.sin(angle) - yy * np.cos(angle) - offset
        width = rng.uniform(0.5, 1.5)
        image += (sigma * loguniform(rng, 5.0, 100.0)
                  * np.exp(-0.5 * (distance / width) ** 2))
    else:  # a hot column or row
        index = int(c + rng.integers(-3, 4))
        amplitude = sigma * loguniform(rng, 5.0, 100.0)
        if rng.random() < 0.5:
            image[:, index] += amplitude
        else:
            image[index, :] += amplitude
    return image


def _draw_chunk(args):
    """Draw one chunk of multi-band stamps; runs in a worker process."""
    from .common import require_galsim
    galsim = require_galsim()

    params, kinds, bands, size, seed, neighbour_fraction = args
    rng = np.random.default_rng(seed)
    gsparams = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3)
    n = len(kinds)
    images = np.empty((n, size, size, len(bands)), dtype=np.float32)
    flux_r = np.empty(n)
    ref = 'r' if 'r' in bands else bands[0]
    for i, kind in enumerate(kinds):
        profile = _galaxy_profile(galsim, params['profile'][i], params, i,
                                  rng, gsparams)
        if profile is not None:
            profile = profile.shift(params['x_offset'][i],
                                    params['y_offset'][i])
        else:
            profile = galsim.DeltaFunction().shift(params['x_offset'][i],
                                                   params['y_offset'][i])
        neighbour = None
        if rng.random() < neighbour_fraction:
            neighbour = _neighbour(galsim, rng, size, gsparams)
        neighbour_flux = loguniform(rng, 0.05, 2.0)
        # The reference band first: its S/N sets the flux of every band.
        for b in sorted(range(len(bands)), key=lambda b: bands[b] != ref):
            band = bands[b]
            psf = _psf(galsim, params, i, band, gsparams)
            unit = _draw(galsim, profile, psf, size)
            var = (params[f'sky_level_{band}'][i]
                   + params[f'read_noise_{band}'][i] ** 2)
            sigma = np.sqrt(var)
            if band == ref:
                flux_r[i] = (params['snr'][i] * np.sqrt(var / np.sum(unit**2))
                             / band_flux_ratio(band, params['g_r'][i],
                                                params['r_i'][i]))
            ratio = band_flux_ratio(band, params['g_r'][i], params['r_i'][i])
            image = unit * flux_r[i] * ratio if kind != 'artefact' else \
                unit * 0.0
            if neighbour is not None:
                galaxy, shift, g_r, r_i = neighbour
                obj = psf if galaxy is None else galsim.Convolve([galaxy,
                                                                  psf])
                image = image + obj.shift(*shift).drawImage(
                    nx=size, ny=size, scale=1.0).array * flux_r[i] \
                    * neighbour_flux * band_flux_ratio(band, g_r, r_i)
            if kind == 'artefact':
                image = image + _artefact(np.random.default_rng(
                    [seed.entropy, i]), size, sigma)
            gs_image = galsim.ImageD(np.ascontiguousarray(image), scale=1.0)
            gs_image.addNoise(galsim.CCDNoise(
                galsim.BaseDeviate(int(rng.integers(2**31))),
                sky_level=params[f'sky_level_{band}'][i], gain=1.0,
                read_noise=params[f'read_noise_{band}'][i]))
            images[i, :, :, b] = gs_image.array
        if kind == 'truncated':
            images[i] = _truncate(images[i], params, i, rng)
    return images, flux_r


def _truncate(image, params, i, rng):
    """Blank (NaN) the stamp beyond a line cutting the central source."""
    size = image.shape[0]
    c = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size] - c
    angle = rng.uniform(0.0, 2 * np.pi)
    distance = params['r_eff'][i] * rng.uniform(0.0, 1.0)
    outside = xx * np.cos(angle) + yy * np.sin(angle) > distance
    image = image.copy()
    image[outside] = np.nan
    return image


def _run(params, kinds, bands, size, seed, neighbour_fraction, n_processes):
    n = len(kinds)
    starts = range(0, n, _CHUNK)
    child_seeds = np.random.SeedSequence(seed).spawn(len(starts))
    jobs = [({key: value[start:start + _CHUNK]
              for key, value in params.items()},
             kinds[start:start + _CHUNK], tuple(bands), size, child_seeds[j],
             neighbour_fraction)
            for j, start in enumerate(starts)]
    results = run_jobs(_draw_chunk, jobs, n_processes)
    images = np.concatenate([r[0] for r in results])
    flux_r = np.concatenate([r[1] for r in results])
    return images, flux_r


def _check(n_stamps, bands):
    if n_stamps < 1:
        msg = f'n_stamps must be >= 1, got {n_stamps}'
        raise ValueError(msg)
    unknown = [band for band in bands if band not in BANDS]
    if unknown or not bands:
        msg = f'bands must be a non-empty subset of {BANDS}, got {bands}'
        raise ValueError(msg)


def _truth(params, kinds, classes, label, bands, flux_r):
    truth = QTable()
    truth['label'] = label
    truth['class'] = np.array([classes[k] for k in label])
    truth['kind'] = np.asarray(kinds)
    for key in ('snr', 'psf_fwhm', 'psf_beta', 'r_eff', 'g_r', 'r_i'):
        truth[key] = params[key]
    for key in ('sersic_n', 'axis_ratio', 'bulge_fraction'):
        if key in params:
            truth[key] = params[key]
    for band in bands:
        truth[f'flux_{band}'] = flux_r * band_flux_ratio(
            band, params['g_r'], params['r_i'])
        truth[f'noise_sigma_{band}'] = np.sqrt(
            params[f'sky_level_{band}'] + params[f'read_noise_{band}'] ** 2)
    return truth


def _star_galaxy_params(rng, params, label, kind, r):
    """
    S/N, size, shape and colours of stars (``label`` 0) and galaxies (1)
    of ``kind``, added to ``params`` (both star-galaxy simulators; the
    draws' order is part of their seeds' meaning).
    """
    n = len(label)
    grid = sersic_index_grid()
    params['snr'] = loguniform(rng, *r['snr'], n)
    size = np.clip(params['psf_fwhm']
                   * loguniform(rng, *r['r_eff_over_fwhm'], n), *r['r_eff'])
    params['r_eff'] = np.where(label == 1, size, 0.0)
    params['sersic_n'] = np.where(kind == 'sersic',
                                  grid[rng.integers(grid.size, size=n)],
                                  np.nan)
    params['axis_ratio'] = np.where(label == 1, rng.uniform(0.3, 1.0, n),
                                    1.0)
    params['bulge_fraction'] = np.where(kind == 'bulge_disk',
                                        rng.uniform(0.0, 1.0, n), np.nan)
    star_gr, star_ri = _star_colours(rng, n)
    gal_gr, gal_ri = _galaxy_colours(rng, 'galaxy', n)
    params['g_r'] = np.where(label == 0, star_gr, gal_gr)
    params['r_i'] = np.where(label == 0, star_ri, gal_ri)
    params['profile'] = kind


def simulate_star_galaxy_stamps(n_stamps, *, seed, stamp_size=32,
                                bands=BANDS, star_fraction=0.5,
                                neighbour_fraction=0.3, ranges=None,
                                n_processes=None):
    """
    Simulate multi-band stamps of stars and galaxies with their truth.

    Stars are the PSF (Moffat, FWHM and beta 1.8-5 varied, 0-15 % of the
    light in a Gaussian halo 2-4 times wider, slight ellipticity, position
    jitter) with colours along a stellar locus. Galaxies are
    Sersic profiles (n 0.5-6) or bulge + disk systems, with semi-major
    half-light radii log-uniform from 0.35 PSF FWHM (barely resolved) to 5
    PSF FWHM (within 0.5-15 pixels), and galaxy colours. S/N (reference
    band) is log-uniform in 5-1000.

    Parameters
    ----------
    n_stamps : int
        Number of stamps.
    seed : int
        Random seed; the same seed gives the same stamps.
    stamp_size : int, optional
        Side of the square stamps, pixels.
    bands : tuple of str, optional
        Bands to draw, a subset of `BANDS`.
    star_fraction : float, optional
        Fraction of stars.
    neighbour_fraction : float, optional
        Fraction of stamps with a neighbour (star or galaxy).
    ranges : dict, optional
        Overrides of `STAR_GALAXY_RANGES` (e.g. ``{'snr': (20, 1000)}``).
    n_processes : int, optional
        Worker processes; default the number of CPUs.

    Returns
    -------
    images : `~numpy.ndarray`
        ``(n_stamps, stamp_size, stamp_size, len(bands))`` float32.
    truth : `~astropy.table.QTable`
        ``label`` (0 star, 1 galaxy), ``class``, ``kind`` (``star``,
        ``sersic`` or ``bulge_disk``), ``snr``, ``psf_fwhm``, ``psf_beta``,
        ``r_eff`` (pix, semi-major; 0 for stars), ``g_r``, ``r_i``,
        ``sersic_n``, ``axis_ratio``, ``bulge_fraction``, and
        ``flux_<band>``, ``noise_sigma_<band>`` per band.
    """
    bands = tuple(bands)
    _check(n_stamps, bands)
    r = dict(STAR_GALAXY_RANGES)
    r.update(ranges or {})
    rng = np.random.default_rng(seed)
    n = n_stamps
    params = _common(rng, n, r['psf_fwhm'], bands, r['psf_beta'])
    label = (rng.random(n) >= star_fraction).astype(np.int64)
    kind = np.where(label == 0, 'star',
                    np.where(rng.random(n) < 0.5, 'sersic', 'bulge_disk'))
    _star_galaxy_params(rng, params, label, kind, r)
    params['psf_halo'] = rng.uniform(*r['psf_halo'], n)
    params['psf_halo_scale'] = rng.uniform(2.0, 4.0, n)
    images, flux_r = _run(params, list(kind), bands, stamp_size, seed,
                          neighbour_fraction, n_processes)
    truth = _truth(params, kind, STAR_GALAXY_CLASSES, label, bands, flux_r)
    truth['psf_halo'] = params['psf_halo']
    truth['psf_halo_scale'] = params['psf_halo_scale']
    return images, truth


def simulate_star_galaxy_sky_stamps(n_stamps, *, seed, stamp_size=32,
                                    bands=BANDS, star_fraction=0.5,
                                    neighbour_fraction=1.0, psf_kinds=None,
                                    nebulosity_fraction=0.3,
                                    saturated_fraction=0.05, ranges=None,
                                    n_processes=None):
    """
    Simulate multi-band stamps of stars and galaxies in skies closer to
    real ones (an experiment: see the docs' "Real data"), with their truth.

    Same conventions and truth columns as `simulate_star_galaxy_stamps`.

    Every stamp is drawn with GalSim (`astrodl_plugins.simulate.sky`):

    * **PSF**: a Moffat (beta 1.8-5), a Kolmogorov (ground seeing), a
      double Gaussian, or an obscured Airy disk with four or six diffraction
      spikes (space); 0-15 % of the light in a wide halo, a slight
      ellipticity; FWHM log-uniform in 0.6-6 pixels (undersampled to well
      sampled), scaled per band.
    * **Central source**: a star (the PSF, colours along a stellar locus)
      or a galaxy: Sersic (n 0.5-6), bulge + disk with a red bulge and a
      bluer disk, a spiral (disk, bulge, sometimes a bar, two to four arms
      of blue knots) or a clumpy irregular; semi-major half-light radius
      log-uniform from 0.35 to 20 PSF FWHM (within 0.4-10 pixels, so that
      large galaxies fill the stamp). Position jitter of +-0.75 pixel.
    * **Crowding**: a Poisson number of neighbours (stars and galaxies;
      mostly stars in crowded stamps) with a mean log-uniform in 0.05-12
      per stamp, up to Galactic-plane densities, anywhere beyond 1.5 PSF
      FWHM from the centre.
    * **Saturation** (``saturated_fraction`` of the stamps with a star):
      pixels above a full-well level clipped and bled along columns.
    * **Nebulosity** (``nebulosity_fraction`` of the stamps): broad smooth
      patches and a gradient left by the background subtraction.
    * Sky and read noise per band; S/N (matched filter, reference band)
      log-uniform in 5-1000.

    Parameters
    ----------
    n_stamps : int
        Number of stamps.
    seed : int
        Random seed; the same seed gives the same stamps.
    stamp_size : int, optional
        Side of the square stamps, pixels.
    bands : tuple of str, optional
        Bands to draw, a subset of `BANDS`.
    star_fraction : float, optional
        Fraction of stars.
    neighbour_fraction : float, optional
        Fraction of stamps with neighbours drawn (0: isolated sources).
    psf_kinds : sequence of str, optional
        PSF families to draw from (default all of
        `~astrodl_plugins.simulate.sky.PSF_KINDS`).
    nebulosity_fraction, saturated_fraction : float, optional
        Fractions of stamps with nebulosity and with saturation.
    ranges : dict, optional
        Overrides of `STAR_GALAXY_SKY_RANGES` (e.g. ``{'snr': (20, 1000)}``).
    n_processes : int, optional
        Worker processes; default the number of CPUs.

    Returns
    -------
    images : `~numpy.ndarray`
        ``(n_stamps, stamp_size, stamp_size, len(bands))`` float32.
    truth : `~astropy.table.QTable`
        ``label`` (0 star, 1 galaxy), ``class``, ``kind`` (``star``,
        ``sersic``, ``bulge_disk``, ``spiral`` or ``clumpy``), ``snr``,
        ``psf_fwhm``, ``psf_beta``, ``psf_kind``, ``r_eff`` (pix,
        semi-major; 0 for stars), ``g_r``, ``r_i``, ``sersic_n``,
        ``axis_ratio``, ``bulge_fraction``, ``crowding`` (mean neighbours),
        ``n_neighbours``, ``saturated``, ``nebulosity``, and
        ``flux_<band>``, ``noise_sigma_<band>`` per band.
    """
    from . import sky

    bands = tuple(bands)
    _check(n_stamps, bands)
    r = dict(STAR_GALAXY_SKY_RANGES)
    r.update(ranges or {})
    rng = np.random.default_rng(seed)
    n = n_stamps
    params = sky.draw_psf_params(rng, n, r['psf_fwhm'], r['psf_beta'],
                                 r['psf_halo'])
    if psf_kinds is not None:
        kinds = np.asarray(list(psf_kinds))
        if not set(kinds) <= set(sky.PSF_KINDS):
            msg = (f'psf_kinds must be among {tuple(sky.PSF_KINDS)}, got '
                   f'{tuple(psf_kinds)}')
            raise ValueError(msg)
        params['psf_kind'] = kinds[rng.integers(kinds.size, size=n)]
    params['x_offset'] = rng.uniform(-0.75, 0.75, n)
    params['y_offset'] = rng.uniform(-0.75, 0.75, n)
    params['position_angle'] = rng.uniform(0.0, 180.0, n)
    for band in bands:
        params[f'sky_level_{band}'] = loguniform(rng, 20.0, 2000.0, n)
        params[f'read_noise_{band}'] = rng.uniform(2.0, 10.0, n)
    label = (rng.random(n) >= star_fraction).astype(np.int64)
    galaxy_kinds = np.array(['sersic', 'bulge_disk', 'spiral', 'clumpy'])
    kind = np.where(label == 0, 'star', galaxy_kinds[rng.choice(
        4, size=n, p=[0.3, 0.25, 0.25, 0.2])])
    _star_galaxy_params(rng, params, label, kind, r)
    params['crowding'] = np.where(rng.random(n) < neighbour_fraction,
                                  loguniform(rng, *r['crowding'], n), 0.0)
    params['nebulosity'] = rng.random(n) < nebulosity_fraction
    params['saturation'] = np.where(rng.random(n) < saturated_fraction,
                                    loguniform(rng, 0.05, 0.6, n), np.inf)
    images, flux_r, extra = _run_sky(params, bands, stamp_size, seed,
                                     n_processes)
    truth = _truth(params, kind, STAR_GALAXY_CLASSES, label, bands, flux_r)
    truth['psf_kind'] = params['psf_kind']
    truth['psf_halo'] = params['psf_halo']
    truth['psf_halo_scale'] = params['psf_halo_scale']
    truth['crowding'] = params['crowding']
    truth['n_neighbours'] = extra[:, 0].astype(int)
    truth['saturated'] = extra[:, 1].astype(bool)
    truth['nebulosity'] = params['nebulosity']
    return images, truth


def _component_ratio(kind, band, g_r, r_i):
    """Band flux ratio of a galaxy component with a colour offset."""
    shift = {'bulge': (0.25, 0.1), 'disk': (0.0, 0.0),
             'young': (-0.35, -0.15)}[kind]
    return band_flux_ratio(band, g_r + shift[0], r_i + shift[1])


def _central_parts(galsim, kind, p, i, rng, gsparams):
    """
    The central source as ``[(profile, weight, component)]`` (unit total
    weight; components colour the bands); an empty list for a star.
    """
    from . import sky

    if kind == 'star':
        return []
    if kind == 'sersic':
        return [(_galaxy_profile(galsim, 'sersic', p, i, rng, gsparams), 1.0,
                 'disk')]
    pa = p['position_angle'][i]
    r_eff, q = p['r_eff'][i], p['axis_ratio'][i]
    if kind == 'bulge_disk':
        fraction = p['bulge_fraction'][i]
        disk = (galsim.Exponential(half_light_radius=r_eff * np.sqrt(q),
                                   gsparams=gsparams)
                .shear(q=q, beta=pa * galsim.degrees))
        bulge = (galsim.Sersic(_nearest(sersic_index_grid(), 4.0),
                               half_light_radius=r_eff * rng.uniform(0.2, 0.6),
                               gsparams=gsparams)
                 .shear(q=rng.uniform(0.6, 1.0), beta=pa * galsim.degrees))
        return [(disk, 1.0 - fraction, 'disk'), (bulge, fraction, 'bulge')]
    if kind == 'spiral':
        return sky.spiral_galaxy(galsim, rng, r_eff * np.sqrt(q), q, pa,
                                 gsparams)
    if kind == 'clumpy':
        profile = _galaxy_profile(galsim, 'irregular', p, i, rng, gsparams)
        return [(profile, 1.0, 'young')]
    msg = f'unknown kind {kind!r}'
    raise ValueError(msg)


def _draw_sky_chunk(args):
    """Draw one chunk of sky-like multi-band stamps (a worker process)."""
    from .common import require_galsim
    galsim = require_galsim()

    from . import sky

    params, bands, size, seed = args
    rng = np.random.default_rng(seed)
    # Looser than GalSim's defaults (~25 % faster); far below the noise.
    gsparams = galsim.GSParams(folding_threshold=2e-2, maxk_threshold=5e-3)
    grid = sersic_index_grid()
    n = len(params['profile'])
    images = np.empty((n, size, size, len(bands)), dtype=np.float32)
    flux_r = np.empty(n)
    extra = np.zeros((n, 2))
    ref = 'r' if 'r' in bands else bands[0]
    order = sorted(range(len(bands)), key=lambda b: bands[b] != ref)
    for i in range(n):
        kind = params['profile'][i]
        parts = _central_parts(galsim, kind, params, i, rng, gsparams)
        shift = (params['x_offset'][i], params['y_offset'][i])
        fwhm = params['psf_fwhm'][i]
        crowd = sky.draw_crowd(
            rng, size, params['crowding'][i], fwhm,
            star_fraction=0.85 if params['crowding'][i] > 2 else 0.5)
        extra[i, 0] = len(crowd)
        level = params['saturation'][i]
        has_star = kind == 'star' or any(m['kind'] == 'star' for m in crowd)
        nebula_rng = np.random.default_rng([seed.entropy, i, 1])
        nebula = None
        for b in order:
            band = bands[b]
            psf = sky.make_psf(galsim, params, i, PSF_BAND_SCALE[band],
                               gsparams)
            g_r, r_i = params['g_r'][i], params['r_i'][i]
            if parts:
                central = galsim.Add([
                    profile.withFlux(weight * _component_ratio(
                        component, band, g_r, r_i))
                    for profile, weight, component in parts]).shift(*shift)
            else:
                central = galsim.DeltaFunction(
                    flux=band_flux_ratio(band, g_r, r_i)).shift(*shift)
            unit = galsim.Convolve([central, psf]).drawImage(
                nx=size, ny=size, scale=1.0).array.astype(np.float64)
            var = (params[f'sky_level_{band}'][i]
                   + params[f'read_noise_{band}'][i] ** 2)
            sigma = np.sqrt(var)
            ratio = band_flux_ratio(band, g_r, r_i)
            if band == ref:
                flux_r[i] = (params['snr'][i] * np.sqrt(var / np.sum(
                    (unit / ratio) ** 2)) / ratio)
            image = unit * flux_r[i]
            if crowd:
                others = galsim.Convolve([galsim.Add(sky.crowd_profiles(
                    galsim, crowd, lambda a, c, band=band: band_flux_ratio(
                        band, a, c), grid, gsparams)), psf])
                image = image + others.drawImage(
                    nx=size, ny=size, scale=1.0).array * flux_r[i]
            if params['nebulosity'][i]:
                if nebula is None:
                    nebula = sky.nebulosity(nebula_rng, size, sigma)
                image = image + nebula * rng.uniform(0.7, 1.3)
            saturated = None
            if np.isfinite(level) and has_star:
                # Full well: a fraction of the brightest pixel in r.
                if band == ref:
                    full_well = level * image.max() + 3 * sigma
                image, saturated = sky.saturate(image, full_well)
            gs_image = galsim.ImageD(np.ascontiguousarray(image), scale=1.0)
            gs_image.addNoise(galsim.CCDNoise(
                galsim.BaseDeviate(int(rng.integers(2**31))),
                sky_level=params[f'sky_level_{band}'][i], gain=1.0,
                read_noise=params[f'read_noise_{band}'][i]))
            out = gs_image.array
            if saturated is not None and saturated.any():
                out[saturated] = full_well
                extra[i, 1] = 1
            images[i, :, :, b] = out
    return images, flux_r, extra


def _run_sky(params, bands, size, seed, n_processes):
    n = len(params['profile'])
    starts = range(0, n, _CHUNK)
    child_seeds = np.random.SeedSequence(seed).spawn(len(starts))
    jobs = [({key: value[start:start + _CHUNK]
              for key, value in params.items()}, tuple(bands), size,
             child_seeds[j]) for j, start in enumerate(starts)]
    results = run_jobs(_draw_sky_chunk, jobs, n_processes)
    return (np.concatenate([r[0] for r in results]),
            np.concatenate([r[1] for r in results]),
            np.concatenate([r[2] for r in results]))


def simulate_morphology_stamps(n_stamps, *, seed, stamp_size=48,
                               bands=BANDS, neighbour_fraction=0.2,
                               ranges=None, n_processes=None):
    """
    Simulate multi-band stamps of the five morphological classes.

    Classes (equal fractions, labels in `MORPHOLOGY_CLASSES` order):

    * ``spheroid``: Sersic n 3-6, axis ratio 0.5-1, red colours.
    * ``disk``: inclined exponential disk (isotropic inclinations, up to
      edge-on, scale height 0.1-0.2 of the radius) with a de Vaucouleurs
      bulge of 0-30 % of the light.
    * ``irregular``: 40-80 % of the light in 10-40 `galsim.RandomKnots`
      clumps, the rest in an off-centre smooth component and sometimes a
      companion blob; blue colours.
    * ``point_source``: the PSF.
    * ``unclassifiable``: a galaxy too faint to classify (S/N 3-8), an
      artefact without a source (cosmic rays, a satellite trail or a hot
      column), or a galaxy truncated by the detector edge (NaN pixels
      beyond a line within one half-light radius of its centre).

    Galaxies have half-light radii of 0.8-3.5 PSF FWHM (at least 1.2 px),
    S/N 20-1000 in the reference band.

    Parameters
    ----------
    n_stamps : int
        Number of stamps.
    seed : int
        Random seed; the same seed gives the same stamps.
    stamp_size : int, optional
        Side of the square stamps, pixels.
    bands : tuple of str, optional
        Bands to draw, a subset of `BANDS`.
    neighbour_fraction : float, optional
        Fraction of stamps with a neighbour.
    ranges : dict, optional
        Overrides of `MORPHOLOGY_RANGES`.
    n_processes : int, optional
        Worker processes; default the number of CPUs.

    Returns
    -------
    images : `~numpy.ndarray`
        ``(n_stamps, stamp_size, stamp_size, len(bands))`` float32.
    truth : `~astropy.table.QTable`
        ``label``, ``class``, ``kind`` (for unclassifiable stamps:
        ``faint``, ``artefact`` or ``truncated``), ``snr``, ``psf_fwhm``,
        ``psf_beta``, ``r_eff`` (pix), ``g_r``, ``r_i``, ``sersic_n``,
        ``axis_ratio``, ``bulge_fraction``, fluxes and noise per band.
    """
    bands = tuple(bands)
    _check(n_stamps, bands)
    r = dict(MORPHOLOGY_RANGES)
    r.update(ranges or {})
    rng = np.random.default_rng(seed)
    n = n_stamps
    params = _common(rng, n, r['psf_fwhm'], bands)
    label = rng.integers(len(MORPHOLOGY_CLASSES), size=n)
    galaxy_kinds = np.array(['spheroid', 'disk', 'irregular'])
    # Unclassifiable stamps: which failure, and the galaxy underneath.
    failure = np.array(['faint', 'artefact', 'truncated'])[
        rng.integers(3, size=n)]
    underlying = galaxy_kinds[rng.integers(3, size=n)]
    profile = np.where(label < 3, galaxy_kinds[np.minimum(label, 2)],
                       np.where(label == 3, 'point_source', underlying))
    kind = np.where(label == 4, failure, profile)
    grid = sersic_index_grid()
    spheroid_grid = grid[grid >= 3.0]
    params['snr'] = np.where(kind == 'faint',
                             loguniform(rng, *r['snr_faint'], n),
                             loguniform(rng, *r['snr'], n))
    params['r_eff'] = np.where(
        profile == 'point_source', 0.0,
        np.clip(params['psf_fwhm'] * loguniform(rng, *r['r_eff_over_fwhm'],
                                                 n), 1.2, 12.0))
    params['sersic_n'] = np.where(
        profile == 'spheroid',
        spheroid_grid[rng.integers(spheroid_grid.size, size=n)], np.nan)
    params['axis_ratio'] = np.where(profile == 'spheroid',
                                    rng.uniform(0.5, 1.0, n), np.nan)
    params['cos_inclination'] = rng.uniform(0.0, 1.0, n)
    params['scale_h_over_r'] = rng.uniform(0.1, 0.2, n)
    params['bulge_fraction'] = np.where(profile == 'disk',
                                        rng.uniform(0.0, 0.3, n), np.nan)
    g_r = np.empty(n)
    r_i = np.empty(n)
    for name in galaxy_kinds:
        select = profile == name
        g_r[select], r_i[select] = _galaxy_colours(rng, name, select.sum())
    select = profile == 'point_source'
    g_r[select], r_i[select] = _star_colours(rng, select.sum())
    params['g_r'], params['r_i'] = g_r, r_i
    params['profile'] = profile
    images, flux_r = _run(params, list(kind), bands, stamp_size, seed,
                          neighbour_fraction, n_processes)
    truth = _truth(params, kind, MORPHOLOGY_CLASSES, label, bands, flux_r)
    truth['snr'][kind == 'artefact'] = 0.0
    for band in bands:
        truth[f'flux_{band}'][kind == 'artefact'] = 0.0
    return images, truth
