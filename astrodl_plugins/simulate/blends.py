# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Simulated blends: 2-4 overlapping galaxies and stars (GalSim).

A blend has a *primary* (its brightest member) and 1-3 companions placed
0.5-4 primary ``r_eff`` from it (for a star primary, ``r_eff`` is half the
PSF FWHM). Companions are 1-50 times fainter than the primary, and never
below S/N 10. All members share one Moffat PSF and one noise level.
Galaxies are Sersic profiles (``r_eff`` along the semi-major axis); stars
are the PSF.

`simulate_blend_stamps` makes the training set of the ``deblender``: for
every member, the noisy stamp centred on it and its own noise-free image
on the same pixels (the network's target). `simulate_blend_field` pastes
whole blends into a large image with known truth (benchmarks, tests).

Conventions: pixel coordinates are 0-based with (0, 0) the centre of the
first pixel, as in photutils; images are sky subtracted, in electrons
(gain 1).
"""

import numpy as np
from astropy.table import QTable

from .common import loguniform, run_jobs
from .structure import sersic_index_grid

__all__ = ['BLEND_RANGES', 'simulate_blend_stamps', 'simulate_blend_field']

#: Ranges the blend simulator draws from (the deblender's range of
#: validity); lengths in pixels.
BLEND_RANGES = {
    'n_members': (2, 4),
    'separation': (0.5, 4.0),
    'flux_ratio': (1.0, 50.0),
    'snr': (10.0, 1000.0),
    'r_eff': (1.5, 6.0),
    'sersic_n': (0.5, 4.0),
    'axis_ratio': (0.3, 1.0),
    'psf_fwhm': (1.5, 5.0),
    'psf_beta': (2.5, 5.0),
    'star_fraction': 0.2,
}

_CANVAS = 96
_MAX_RADIUS = 23.0
_CHUNK = 128


def _draw_blend(rng, ranges, n_members):
    """The truth of one blend (no pixels yet)."""
    grid = sersic_index_grid()
    lo_n, hi_n = ranges['sersic_n']
    grid = grid[(grid >= lo_n * 0.999) & (grid <= hi_n * 1.001)]
    betas = np.linspace(*ranges['psf_beta'], 6)
    fwhm = rng.uniform(*ranges['psf_fwhm'])
    beta = betas[rng.integers(betas.size)]
    members = []
    for _ in range(n_members):
        star = rng.random() < ranges['star_fraction']
        members.append({
            'kind': 'star' if star else 'galaxy',
            'sersic_n': np.nan if star else grid[rng.integers(grid.size)],
            'r_eff': fwhm / 2 if star else loguniform(rng, *ranges['r_eff']),
            'axis_ratio': 1.0 if star else rng.uniform(*ranges['axis_ratio']),
            'position_angle': 0.0 if star else rng.uniform(0.0, 180.0),
        })
    snr = loguniform(rng, *ranges['snr'])
    max_ratio = min(ranges['flux_ratio'][1], snr / ranges['snr'][0])
    r_ref = members[0]['r_eff']
    center = (_CANVAS - 1) / 2
    x = [center + rng.uniform(-0.5, 0.5)]
    y = [center + rng.uniform(-0.5, 0.5)]
    members[0].update(flux_ratio=1.0, separation_primary=0.0)
    for member in members[1:]:
        for _ in range(20):
            u = rng.uniform(*ranges['separation'])
            distance = min(u * r_ref, _MAX_RADIUS)
            angle = rng.uniform(0, 2 * np.pi)
            cx = x[0] + distance * np.cos(angle)
            cy = y[0] + distance * np.sin(angle)
            others = np.hypot(np.array(x[1:]) - cx, np.array(y[1:]) - cy)
            if np.all(others >= max(0.5 * r_ref, 1.0)):
                break
        x.append(cx)
        y.append(cy)
        member.update(flux_ratio=loguniform(rng, ranges['flux_ratio'][0],
                                             max(max_ratio, 1.0)),
                      separation_primary=distance / r_ref)
    return {'psf_fwhm': fwhm, 'psf_beta': beta, 'snr': snr,
            'snr_min': ranges['snr'][0],
            'members': members, 'x': np.array(x), 'y': np.array(y)}


def _member_images(galsim, blend, gsparams):
    """Unit-flux noise-free images of each member on the canvas."""
    psf = galsim.Moffat(beta=blend['psf_beta'], fwhm=blend['psf_fwhm'],
                        gsparams=gsparams)
    center = (_CANVAS - 1) / 2
    images = []
    for member, x, y in zip(blend['members'], blend['x'], blend['y']):
        if member['kind'] == 'star':
            profile = psf
        else:
            q = member['axis_ratio']
            galaxy = galsim.Sersic(member['sersic_n'],
                                   half_light_radius=member['r_eff']
                                   * np.sqrt(q), gsparams=gsparams)
            galaxy = galaxy.shear(q=q, beta=member['position_angle']
                                  * galsim.degrees)
            profile = galsim.Convolve([galaxy, psf], gsparams=gsparams)
        image = profile.shift(x - center, y - center).drawImage(
            nx=_CANVAS, ny=_CANVAS, scale=1.0)
        images.append(image.array.astype(np.float64))
    return images


def _draw_chunk(args):
    """Noise-free member images (scaled to their flux) of some blends."""
    from .common import require_galsim
    galsim = require_galsim()

    blends, variance = args
    gsparams = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3)
    out = []
    for blend, var in zip(blends, variance):
        unit = _member_images(galsim, blend, gsparams)
        # The primary's flux gives it the drawn matched-filter S/N; the
        # companions follow from their flux ratios.
        flux0 = blend['snr'] * np.sqrt(var / np.sum(unit[0] ** 2))
        # Companions never fall below the S/N floor.
        fluxes = [max(flux0 / m['flux_ratio'],
                      blend['snr_min'] * np.sqrt(var / np.sum(im ** 2)))
                  for m, im in zip(blend['members'], unit)]
        fluxes[0] = flux0
        images = np.stack([f * im for f, im in zip(fluxes, unit)])
        snr = [f * np.sqrt(np.sum(im ** 2) / var)
               for f, im in zip(fluxes, unit)]
        out.append((images.astype(np.float32), np.array(fluxes),
                    np.array(snr)))
    return out


def _blends(rng, n_blends, ranges, single_fraction):
    lo, hi = ranges['n_members']
    n_members = rng.integers(lo, hi + 1, n_blends)
    n_members[rng.random(n_blends) < single_fraction] = 1
    return [_draw_blend(rng, ranges, int(k)) for k in n_members]


def _ranges(ranges):
    out = dict(BLEND_RANGES)
    for key, value in (ranges or {}).items():
        if key not in out:
            msg = (f'ranges has an unknown key {key!r}; valid: '
                   f'{sorted(out)}')
            raise ValueError(msg)
        out[key] = value
    return out


def _render(blends, variance, seed, n_processes):
    starts = range(0, len(blends), _CHUNK)
    jobs = [(blends[s:s + _CHUNK], variance[s:s + _CHUNK]) for s in starts]
    results = run_jobs(_draw_chunk, jobs, n_processes)
    return [item for chunk in results for item in chunk]


def _nearest_separation(blend, index):
    """Distance to the nearest other member, in the larger one's r_eff."""
    x, y = blend['x'], blend['y']
    best = np.inf
    for j in range(len(x)):
        if j != index:
            r_ref = max(blend['members'][index]['r_eff'],
                        blend['members'][j]['r_eff'])
            best = min(best, np.hypot(x[j] - x[index], y[j] - y[index])
                       / r_ref)
    return best


def _member_rows(blend, index, fluxes, snr, x, y):
    member = blend['members'][index]
    return {
        'kind': member['kind'], 'x': x, 'y': y, 'flux': fluxes[index],
        'snr': snr[index], 'r_eff': member['r_eff'],
        'sersic_n': member['sersic_n'], 'axis_ratio': member['axis_ratio'],
        'position_angle': member['position_angle'],
        'flux_ratio': fluxes[0] / fluxes[index],
        'separation': _nearest_separation(blend, index),
        'separation_primary': member['separation_primary'],
        'n_members': len(blend['members']), 'primary': index == 0,
        'psf_fwhm': blend['psf_fwhm'], 'psf_beta': blend['psf_beta'],
    }


def simulate_blend_stamps(n_blends, *, seed, stamp_size=48, ranges=None,
                          single_fraction=0.0, n_processes=None):
    """
    Simulate blends and cut a stamp centred on every member.

    Parameters
    ----------
    n_blends : int
        Number of blends.
    seed : int
        Random seed; the same seed gives the same stamps whatever
        ``n_processes`` is.
    stamp_size : int, optional
        Side of the stamps, pixels (at most 48).
    ranges : dict, optional
        Overrides for entries of `BLEND_RANGES`.
    single_fraction : float, optional
        Fraction of "blends" with a single member (isolated sources), so
        that a deblender also learns not to split.
    n_processes : int, optional
        Worker processes; default the number of CPUs.

    Returns
    -------
    stamps : `~numpy.ndarray`
        ``(n_members_total, stamp_size, stamp_size)`` float32: the noisy
        blend, centred on the member (at the pixel nearest its centre).
    models : `~numpy.ndarray`
        The member's own noise-free image on the same pixels.
    truth : `~astropy.table.QTable`
        One row per member: ``blend``, ``kind``, ``x``, ``y`` (centre in
        stamp pixels), ``flux``, ``snr``, ``r_eff``, ``sersic_n``,
        ``axis_ratio``, ``position_angle``, ``flux_ratio`` (primary flux
        over this one), ``separation`` (to the nearest member, in the
        larger ``r_eff``), ``separation_primary``, ``n_members``,
        ``primary``, ``psf_fwhm``, ``psf_beta``, ``noise_sigma``, and
        ``others_x``/``others_y`` (the other members' centres in this
        stamp's pixels, NaN padded to 3).
    """
    if n_blends < 1:
        raise ValueError(f'n_blends must be >= 1, got {n_blends}')
    if not 16 <= stamp_size <= 48:
        raise ValueError(f'stamp_size must be in [16, 48], got {stamp_size}')
    ranges = _ranges(ranges)
    rng = np.random.default_rng(seed)
    blends = _blends(rng, n_blends, ranges, single_fraction)
    sky = loguniform(rng, 20.0, 2000.0, n_blends)
    read_noise = rng.uniform(2.0, 10.0, n_blends)
    variance = sky + read_noise ** 2
    rendered = _render(blends, variance, seed, n_processes)
    noise_rng = np.random.default_rng([seed, 1])
    stamps, models, rows = [], [], []
    half = stamp_size // 2
    for b, (blend, (images, fluxes, snr)) in enumerate(zip(blends,
                                                           rendered)):
        total = images.sum(axis=0)
        # CCD noise: Poisson on sky + sources, Gaussian read noise.
        counts = noise_rng.poisson(np.clip(total + sky[b], 0, None))
        noisy = (counts - sky[b] + noise_rng.normal(
            0.0, read_noise[b], total.shape)).astype(np.float32)
        for i in range(len(images)):
            x0 = int(np.round(blend['x'][i])) - half
            y0 = int(np.round(blend['y'][i])) - half
            cut = (slice(y0, y0 + stamp_size), slice(x0, x0 + stamp_size))
            stamps.append(noisy[cut])
            models.append(images[i][cut])
            row = _member_rows(blend, i, fluxes, snr, blend['x'][i] - x0,
                               blend['y'][i] - y0)
            others = [j for j in range(len(images)) if j != i]
            row['others_x'] = np.full(3, np.nan)
            row['others_y'] = np.full(3, np.nan)
            row['others_x'][:len(others)] = blend['x'][others] - x0
            row['others_y'][:len(others)] = blend['y'][others] - y0
            row['blend'] = b
            row['noise_sigma'] = np.sqrt(variance[b])
            rows.append(row)
    truth = QTable(rows=rows)
    return np.stack(stamps), np.stack(models), truth


def simulate_blend_field(*, seed, shape=(1024, 1024), spacing=112,
                         ranges=None, single_fraction=0.0,
                         sky_level=200.0, read_noise=5.0, n_processes=None):
    """
    A large image of blends on a jittered grid, with the truth of every
    member.

    Parameters
    ----------
    seed : int
        Random seed.
    shape : tuple of int, optional
        ``(ny, nx)`` of the image.
    spacing : int, optional
        Grid step between blends, pixels (>= 96: blends do not overlap).
    ranges : dict, optional
        Overrides for entries of `BLEND_RANGES`.
    single_fraction : float, optional
        Fraction of isolated sources among the grid cells.
    sky_level, read_noise : float, optional
        Sky (electrons per pixel) and read noise (electrons).
    n_processes : int, optional
        Worker processes.

    Returns
    -------
    image : `~numpy.ndarray`
        Sky-subtracted noisy image, float32, electrons.
    truth : `~astropy.table.QTable`
        One row per member, as in `simulate_blend_stamps` with ``x``, ``y``
        in image pixels and no ``others_*`` columns.
    noise_sigma : float
        Background noise per pixel, electrons.
    """
    if spacing < _CANVAS:
        raise ValueError(f'spacing must be >= {_CANVAS}, got {spacing}')
    ranges = _ranges(ranges)
    rng = np.random.default_rng(seed)
    ny, nx = shape
    cells = [(y, x) for y in range(0, ny - _CANVAS + 1, spacing)
             for x in range(0, nx - _CANVAS + 1, spacing)]
    if not cells:
        raise ValueError(f'shape {shape} holds no blend of {_CANVAS} px')
    blends = _blends(rng, len(cells), ranges, single_fraction)
    variance = sky_level + read_noise ** 2
    rendered = _render(blends, np.full(len(blends), variance), seed,
                       n_processes)
    total = np.zeros(shape, dtype=np.float64)
    rows = []
    for b, ((y0, x0), blend, (images, fluxes, snr)) in enumerate(
            zip(cells, blends, rendered)):
        total[y0:y0 + _CANVAS, x0:x0 + _CANVAS] += images.sum(axis=0)
        for i in range(len(images)):
            row = _member_rows(blend, i, fluxes, snr, blend['x'][i] + x0,
                               blend['y'][i] + y0)
            row['blend'] = b
            rows.append(row)
    noise_rng = np.random.default_rng([seed, 1])
    counts = noise_rng.poisson(np.clip(total + sky_level, 0, None))
    image = (counts - sky_level + noise_rng.normal(0.0, read_noise, shape))
    truth = QTable(rows=rows)
    truth['noise_sigma'] = np.sqrt(variance)
    return image.astype(np.float32), truth, float(np.sqrt(variance))
