# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Noise, sky residuals and masks of the spectrum simulator.

Every pixel gets Gaussian noise whose variance holds a background term
(through a smooth throughput curve, with the airglow lines of a
ground-based setup) and a Poisson-like term proportional to the signal;
then sky-subtraction residuals that the inverse variance does not
describe (a slow wiggle, spikes at the airglow lines or at random
places), masked cosmic-ray hits and dead pixels, and sometimes a gap.
"""

import numpy as np

from .common import loguniform

__all__ = ['add_noise']


def add_noise(rng, model, continuum, profiles, snr, grid):
    """
    The noisy flux, its inverse variance, the mask and the noise's truth.

    The variance is ``A [(1 - p) background / throughput**2 + p model /
    (level throughput)]`` (a Poisson share ``p`` at the median continuum
    ``level``), ``A`` set so that the median continuum S/N over the good
    pixels is ``snr`` (the row's ``snr``, lower where that cannot be);
    ``grid`` holds the setup's airglow profiles, if any (``sky``,
    ``sky_strength``).
    """
    n_pixels = model.size
    t = np.linspace(-1.0, 1.0, n_pixels)
    throughput = np.clip(1 - rng.uniform(0.2, 0.6) * t ** 2
                         + rng.uniform(-0.15, 0.15) * t, 0.2, None)
    background = np.ones(n_pixels)
    if 'sky' in grid:
        airglow = grid['sky_strength'] * rng.uniform(0.5, 2.0)
        background += airglow @ grid['sky']
    mask, gap = _draw_mask(rng, n_pixels)
    good = ~mask
    level = max(np.median(continuum[good]), 1e-6 * np.abs(model).max(),
                1e-30)
    poisson = rng.uniform(0.0, 0.8)
    variance = ((1 - poisson) * background / throughput ** 2
                + poisson * np.clip(model, 0.0, None) / (level * throughput))
    unit_snr = continuum[good] / np.sqrt(variance[good])
    # Where most of the band is dark (a quasar's Lyman break) the median
    # cannot be set: then the brightest tenth of the pixels gets ``snr``.
    reference = np.median(unit_snr)
    if not reference > 1e-3 * np.max(unit_snr, initial=0.0):
        reference = np.percentile(unit_snr, 90)
    sigma = np.sqrt(variance) * max(reference, 1e-30) / snr
    flux = model + sigma * rng.standard_normal(n_pixels)
    flux += _sky_residual(rng, sigma, grid)
    _add_garbage(rng, flux, sigma, mask, gap)
    ivar = np.where(mask, 0.0, 1.0 / sigma ** 2)
    line_snr = np.array([np.sqrt(np.sum(profile ** 2
                                        * ivar[first:first + profile.size]))
                         for first, profile in profiles])
    row = {'snr': np.median(unit_snr) * snr / max(reference, 1e-30),
           'line_snr': line_snr, 'mask_fraction': mask.mean(),
           'gap': bool(gap.any())}
    return flux, ivar, mask, row


def _draw_mask(rng, n_pixels):
    """Bad pixels and cosmic-ray hits (about 0.5 %), and maybe a gap."""
    mask = rng.random(n_pixels) < rng.uniform(0.002, 0.008)
    # Some hits spill into the next pixel.
    spill = np.flatnonzero(mask[:-1] & (rng.random(n_pixels - 1) < 0.3))
    mask[spill + 1] = True
    gap = np.zeros(n_pixels, dtype=bool)
    if rng.random() < 0.3:  # a detector gap or a lost chunk, 1-10 %
        length = max(int(rng.uniform(0.01, 0.10) * n_pixels), 1)
        start = rng.integers(0, n_pixels - length + 1)
        gap[start:start + length] = True
    return mask | gap, gap


def _add_garbage(rng, flux, sigma, mask, gap):
    """Masked pixels: cosmic-ray hits, dead pixels (0), gaps (NaN)."""
    bad = np.flatnonzero(mask & ~gap)
    dead = rng.random(bad.size) < 0.3
    flux[bad[~dead]] += sigma[bad[~dead]] * loguniform(rng, 5.0, 100.0,
                                                       np.sum(~dead))
    flux[bad[dead]] = 0.0
    flux[gap] = np.nan


def _sky_residual(rng, sigma, grid):
    """Sky-subtraction residuals: spikes and a slow wiggle."""
    n_pixels = sigma.size
    scale = np.median(sigma)
    coefficients = rng.normal(0.0, 1.0, 4)
    wiggle = np.polynomial.legendre.legval(np.linspace(-1, 1, n_pixels),
                                           coefficients)
    residual = rng.uniform(0.0, 0.3) * scale * wiggle / np.abs(wiggle).max()
    if 'sky' in grid:  # at the airglow lines, in proportion to their noise
        peaks = sigma[np.argmax(grid['sky'], axis=1)]
        amplitude = rng.normal(0.0, rng.uniform(0.3, 1.5), peaks.size)
        residual += (amplitude * peaks) @ grid['sky']
    else:  # spikes at random places (imperfect decontamination)
        n_spikes = rng.poisson(3.0)
        where = rng.uniform(0, n_pixels, n_spikes)
        width = rng.uniform(0.6, 1.2, n_spikes)
        amplitude = (rng.choice([-1.0, 1.0], n_spikes)
                     * loguniform(rng, 2.0, 10.0, n_spikes))
        pixels = np.arange(n_pixels)
        for centre, w, a in zip(where, width, amplitude):
            near = slice(max(int(centre) - 5, 0), int(centre) + 6)
            residual[near] += a * sigma[near] * np.exp(
                -0.5 * ((pixels[near] - centre) / w) ** 2)
    return residual
