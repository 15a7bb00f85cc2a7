# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Scene ingredients closer to the real sky, shared by the stamp simulators.

What the first simulators lacked and real images have (see the docs' "Real
data" page): PSFs other than a Moffat (ground seeing with Kolmogorov cores
and wide wings, double Gaussians, space PSFs with an Airy core and
diffraction spikes) and undersampled PSFs (FWHM below 1.5 pixels); crowded
fields, up to Galactic-plane star densities; saturated stars with bleed
trails; galaxies with spiral arms, bars, clumps and colour gradients, large
relative to the PSF; and smooth nebulosity left in the background.

Everything is drawn with GalSim on the caller's pixel grid (pixels of 1);
the functions here take a ``numpy.random.Generator`` and per-stamp
parameter arrays so that a simulator stays deterministic given its seed.
"""

import numpy as np

from .common import loguniform

__all__ = ['PSF_KINDS', 'draw_psf_params', 'make_psf', 'draw_crowd',
           'crowd_profiles', 'spiral_galaxy', 'nebulosity', 'saturate']

#: PSF families drawn, and their probabilities.
PSF_KINDS = {'moffat': 0.35, 'kolmogorov': 0.25, 'double_gaussian': 0.15,
             'airy': 0.25}


def draw_psf_params(rng, n, fwhm_range, beta_range=(1.8, 5.0),
                    halo_range=(0.0, 0.15), n_beta=6):
    """
    Per-stamp PSF parameters: family, FWHM (log-uniform, pixels), Moffat
    beta (on a grid), wing/halo fraction and scale, ellipticity, and for
    space PSFs the obscuration and diffraction-spike strength and angle.
    """
    kinds = np.array(list(PSF_KINDS))
    betas = np.linspace(*beta_range, n_beta)
    return {
        'psf_kind': kinds[rng.choice(kinds.size, size=n,
                                     p=list(PSF_KINDS.values()))],
        'psf_fwhm': loguniform(rng, *fwhm_range, n),
        'psf_beta': betas[rng.integers(betas.size, size=n)],
        'psf_halo': rng.uniform(*halo_range, n),
        'psf_halo_scale': rng.uniform(2.0, 4.0, n),
        'psf_g1': rng.normal(0.0, 0.02, n),
        'psf_g2': rng.normal(0.0, 0.02, n),
        'psf_obscuration': rng.uniform(0.0, 0.35, n),
        'psf_spikes': loguniform(rng, 0.003, 0.03, n),
        'psf_spike_angle': rng.uniform(0.0, 90.0, n),
        'psf_n_spikes': np.where(rng.random(n) < 0.6, 4, 6),
    }


def make_psf(galsim, params, i, scale, gsparams):
    """
    The unit-flux PSF of stamp ``i`` with FWHM ``params['psf_fwhm'][i] *
    scale`` (``scale``: the band's FWHM relative to the reference band).
    """
    kind = params['psf_kind'][i]
    fwhm = params['psf_fwhm'][i] * scale
    if kind == 'moffat':
        core = galsim.Moffat(beta=params['psf_beta'][i], fwhm=fwhm,
                             gsparams=gsparams)
    elif kind == 'kolmogorov':
        core = galsim.Kolmogorov(fwhm=fwhm, gsparams=gsparams)
    elif kind == 'double_gaussian':
        core = galsim.Gaussian(fwhm=fwhm, gsparams=gsparams)
    elif kind == 'airy':
        # FWHM of an Airy disk ~ 1.03 lambda/D (a little less obscured).
        core = galsim.Airy(lam_over_diam=fwhm / 1.03,
                           obscuration=params['psf_obscuration'][i],
                           gsparams=gsparams)
    else:
        msg = f'unknown PSF kind {kind!r}'
        raise ValueError(msg)
    parts = [(core, 1.0)]
    halo = params['psf_halo'][i]
    if kind == 'double_gaussian':
        halo = max(halo, 0.1)
    if halo > 0:
        wide = galsim.Gaussian(fwhm=fwhm * params['psf_halo_scale'][i],
                               gsparams=gsparams)
        parts = [(core, 1.0 - halo), (wide, halo)]
    if kind == 'airy':
        parts += _spikes(galsim, params, i, fwhm, gsparams)
    total = sum(weight for _, weight in parts)
    psf = galsim.Add([profile.withFlux(weight / total)
                      for profile, weight in parts])
    return psf.shear(g1=params['psf_g1'][i], g2=params['psf_g2'][i])


def _spikes(galsim, params, i, fwhm, gsparams):
    """Diffraction spikes: thin elongated Gaussians through the centre."""
    n_spikes = int(params['psf_n_spikes'][i])
    flux = params['psf_spikes'][i] / (n_spikes // 2)
    length = 5.0 * max(fwhm, 1.0)
    width = 0.4 * max(fwhm, 1.0)
    q = width / length
    sigma = np.sqrt(length * width)
    out = []
    for k in range(n_spikes // 2):
        angle = params['psf_spike_angle'][i] + 180.0 * k / (n_spikes // 2)
        spike = galsim.Gaussian(sigma=sigma, gsparams=gsparams).shear(
            q=q, beta=angle * galsim.degrees)
        out.append((spike, flux))
    return out


def draw_crowd(rng, size, density, fwhm, star_fraction):
    """
    Neighbours of one stamp: a Poisson number with mean ``density`` over
    the stamp and a 4-pixel margin, at least ``max(2.5, 1.5 fwhm)`` from
    the centre.

    Returns
    -------
    list of dict
        ``kind`` ('star' or 'galaxy'), ``dx``, ``dy`` (pixels from the
        centre), ``flux`` (relative to the central source), ``g_r``,
        ``r_i`` and, for galaxies, ``r_eff``, ``q``, ``pa``, ``n_index``.
    """
    n = min(rng.poisson(density), 40)
    half = size / 2 + 4
    minimum = max(2.5, 1.5 * fwhm)
    out = []
    for _ in range(n):
        while True:
            dx, dy = rng.uniform(-half, half, 2)
            if np.hypot(dx, dy) >= minimum:
                break
        star = rng.random() < star_fraction
        if star:
            g_r = rng.uniform(0.0, 1.6)
            r_i = (0.38 * g_r - 0.05 if g_r < 1.3
                   else 0.44 + 2.2 * (g_r - 1.3)) + rng.normal(0.0, 0.06)
        else:
            g_r = float(np.clip(rng.normal(0.75, 0.3), -0.3, 2.0))
            r_i = float(np.clip(rng.normal(0.38, 0.15), -0.3, 1.2))
        out.append({'kind': 'star' if star else 'galaxy', 'dx': dx, 'dy': dy,
                    'flux': float(loguniform(rng, 0.02, 4.0)), 'g_r': g_r,
                    'r_i': r_i, 'r_eff': float(loguniform(rng, 0.5, 6.0)),
                    'q': rng.uniform(0.3, 1.0), 'pa': rng.uniform(0, 180),
                    'n_index': rng.uniform(0.0, 1.0)})
    return out


def crowd_profiles(galsim, crowd, band_ratio, sersic_grid, gsparams):
    """
    The neighbours as one GalSim profile (no PSF), fluxes relative to the
    central source in one band; ``band_ratio(g_r, r_i)`` gives a source's
    flux in that band over its flux in the reference band.
    """
    parts = []
    for member in crowd:
        flux = member['flux'] * band_ratio(member['g_r'], member['r_i'])
        if member['kind'] == 'star':
            profile = galsim.DeltaFunction(flux=flux, gsparams=gsparams)
        else:
            n_index = sersic_grid[int(member['n_index'] * (sersic_grid.size
                                                            - 1))]
            profile = (galsim.Sersic(n_index, half_light_radius=member['r_eff']
                                     * np.sqrt(member['q']), flux=flux,
                                     gsparams=gsparams)
                       .shear(q=member['q'], beta=member['pa']
                              * galsim.degrees))
        parts.append(profile.shift(member['dx'], member['dy']))
    return parts


def spiral_galaxy(galsim, rng, r_eff, q, pa, gsparams):
    """
    Components of a spiral (unit flux in total, no PSF): an exponential
    disk, a bulge, sometimes a bar, and two or more logarithmic arms of
    Gaussian knots.

    Returns
    -------
    list of (profile, weight, kind)
        ``kind`` is 'bulge', 'disk' or 'young' (arms, knots), so that the
        caller can give each its own colour.
    """
    beta = pa * galsim.degrees
    bulge_fraction = rng.uniform(0.05, 0.35)
    arm_fraction = rng.uniform(0.2, 0.5)
    disk = galsim.Exponential(half_light_radius=r_eff, gsparams=gsparams)
    bulge = galsim.Sersic(4.0, half_light_radius=r_eff * rng.uniform(0.1,
                                                                      0.25),
                          gsparams=gsparams).shear(q=rng.uniform(0.7, 1.0),
                                                   beta=beta)
    parts = [(bulge, bulge_fraction, 'bulge')]
    if rng.random() < 0.35:  # a bar
        bar_fraction = rng.uniform(0.05, 0.15)
        bar = galsim.Sersic(0.5, half_light_radius=r_eff * rng.uniform(
            0.3, 0.6), gsparams=gsparams).shear(q=rng.uniform(0.2, 0.35),
                                                beta=rng.uniform(0, 180)
                                                * galsim.degrees)
        parts.append((bar, bar_fraction, 'bulge'))
        bulge_fraction += bar_fraction
    parts.append((disk, 1.0 - bulge_fraction - arm_fraction, 'disk'))
    n_arms = int(rng.choice([2, 2, 3, 4]))
    pitch = np.tan(np.radians(rng.uniform(10.0, 30.0)))
    n_knots = int(rng.integers(12, 30))
    phase = rng.uniform(0.0, 2 * np.pi)
    knot_sigma = max(0.08 * r_eff, 0.3)
    knots = []
    for arm in range(n_arms):
        radii = r_eff * np.sort(loguniform(rng, 0.3, 2.2, n_knots))
        angles = (phase + 2 * np.pi * arm / n_arms
                  + np.log(radii / radii[0]) / pitch)
        for radius, angle in zip(radii, angles):
            knots.append(galsim.Gaussian(sigma=knot_sigma
                                         * rng.uniform(0.6, 1.5),
                                         flux=rng.uniform(0.5, 1.5),
                                         gsparams=gsparams).shift(
                radius * np.cos(angle), radius * np.sin(angle)))
    arms = galsim.Add(knots)
    parts.append((arms.withFlux(1.0), arm_fraction, 'young'))
    # The disk plane is inclined: shear everything but the bulge.
    return [(profile if kind == 'bulge' else profile.shear(q=q, beta=beta),
             weight, kind) for profile, weight, kind in parts]


def nebulosity(rng, size, sigma):
    """
    Smooth structure left in a background-subtracted stamp: one to three
    broad Gaussian patches (either sign) and a gradient, up to tens of
    times the pixel noise ``sigma``.
    """
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    image = np.zeros((size, size))
    for _ in range(rng.integers(1, 4)):
        width = loguniform(rng, 6.0, 40.0)
        x0, y0 = rng.uniform(-size, size, 2)
        amplitude = sigma * loguniform(rng, 0.3, 20.0) * rng.choice([-1, 1],
                                                                    p=[0.3,
                                                                       0.7])
        image += amplitude * np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2)
                                    / width ** 2)
    slope = sigma * loguniform(rng, 0.005, 0.3) / size
    angle = rng.uniform(0.0, 2 * np.pi)
    image += slope * (xx * np.cos(angle) + yy * np.sin(angle))
    return image


def saturate(image, level):
    """
    Clip ``image`` at ``level`` and bleed the excess charge along columns
    (up and down) as CCDs do; returns the clipped image and the mask of
    saturated pixels.
    """
    out = image.copy()
    saturated = np.zeros(image.shape, bool)
    for column in np.nonzero((image > level).any(axis=0))[0]:
        values = image[:, column]
        over = values > level
        excess = np.sum(values[over] - level)
        rows = np.nonzero(over)[0]
        extra = int(excess // level)
        low = max(rows.min() - extra // 2, 0)
        high = min(rows.max() + extra - extra // 2, len(values) - 1)
        out[low:high + 1, column] = level
        saturated[low:high + 1, column] = True
    return out, saturated
