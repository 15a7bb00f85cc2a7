# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Simulated galaxy-scale strong lenses and the galaxies that mimic them.

Lenses are drawn with lenstronomy (Birrer & Amara 2018): a singular
isothermal ellipsoid with external shear (``SIE`` + ``SHEAR``) deflects a
Sersic source with star-forming knots (irregular, clumpy high-z sources);
the deflector's light is a red Sersic (n 2.5-6) aligned with the mass.
The negatives are the galaxies that fool lens finders, one class each:

* ``elliptical``: a lens-like red galaxy alone;
* ``ring``: a ring galaxy, a blue (often partial, knotty) ring around a
  red core;
* ``spiral``: a spiral with arms of knots, a bulge and sometimes a bar;
* ``merger``: two galaxies with curved tidal tails;
* ``group``: a galaxy pair or small group (2-4 members);
* ``edge_on``: an edge-on disk with a bulge;
* ``star_galaxy``: stars next to a galaxy (like a lensed quasar's images);
* ``blue_companion``: a red galaxy with blue star-forming companions;
* ``stars``: a star alone or with other stars around it, no galaxy (star
  fields, pairs like a lensed quasar's images).

Every stamp is observed in ``g``, ``r`` and ``i`` with the PSF families
and noise of the sky-like simulators (`astrodl_plugins.simulate.sky`:
Moffat, Kolmogorov, double Gaussian and space-like Airy PSFs; sky and read
noise) and sometimes neighbours. Conventions:

* lengths are in pixels unless their name ends in ``_arcsec``; the pixel
  scale of each stamp (``pixel_scale``, arcsec per pixel) is drawn from a
  range or fixed, so that ``theta_e_arcsec`` (0.5-3 arcsec) and the PSF
  FWHM in arcsec have survey-like values;
* ``x``/``y`` are along the array's columns/rows and angles run
  counter-clockwise from +x (lenstronomy's ``e1``, ``e2``, ``gamma1``,
  ``gamma2`` in that frame); ``x_lens``, ``y_lens`` are the lens centre's
  offset from the stamp centre, pixels;
* ``snr`` is the matched-filter S/N, in the reference band ``r``, of the
  lensed source (for a negative: of its lens-like feature: the ring, the
  tails, the companions or the stars; 0 for an elliptical, a spiral and
  an edge-on disk); ``galaxy_snr`` that of the deflector (the main galaxy);
* images are sky subtracted, in electrons (gain 1), ``(n, size, size,
  n_bands)``.

Each scene is rendered at twice the pixel resolution, convolved with the
band's PSF (drawn by GalSim) and binned, so the pixels integrate the
light.
"""

import numpy as np
from astropy.table import QTable

from .classes import BANDS, PSF_BAND_SCALE, band_flux_ratio
from .common import loguniform, require_lenstronomy, run_jobs

__all__ = ['LENS_CLASSES', 'NEGATIVE_KINDS', 'LENS_RANGES',
           'simulate_lens_stamps', 'simulate_lens_field']

#: Classes of the lens simulator, in label order.
LENS_CLASSES = ('lens', 'non_lens')
#: The negatives' kinds and their fractions among the negatives.
NEGATIVE_KINDS = {'elliptical': 0.14, 'ring': 0.11, 'spiral': 0.11,
                  'merger': 0.11, 'group': 0.11, 'edge_on': 0.09,
                  'star_galaxy': 0.11, 'blue_companion': 0.12,
                  'stars': 0.1}

#: Ranges of the lens simulator: Einstein radius and PSF FWHM in arcsec,
#: pixel scale in arcsec per pixel, S/N of the lensed source (or the
#: negative's feature) and of the deflector, both in the reference band.
LENS_RANGES = {
    'theta_e_arcsec': (0.5, 3.0),
    'pixel_scale': (0.16, 0.27),
    'psf_fwhm_arcsec': (0.5, 1.2),
    'snr': (5.0, 200.0),
    'galaxy_snr': (30.0, 1500.0),
    'axis_ratio_mass': (0.5, 1.0),
    'shear': (0.0, 0.1),
    'source_r_eff_arcsec': (0.05, 0.5),
}

_CHUNK = 256
_SUPER = 2
# Colours (g - r, r - i; mean, spread): red deflectors, blue sources.
_RED = ((1.2, 0.2), (0.45, 0.1))
_BLUE = ((0.3, 0.25), (0.15, 0.15))


def _colour(rng, which):
    (gr, s_gr), (ri, s_ri) = which
    return (float(np.clip(rng.normal(gr, s_gr), -0.5, 2.2)),
            float(np.clip(rng.normal(ri, s_ri), -0.4, 1.2)))


def _star_colour(rng):
    g_r = rng.uniform(0.0, 1.6)
    r_i = (0.38 * g_r - 0.05 if g_r < 1.3 else 0.44 + 2.2 * (g_r - 1.3))
    return g_r, r_i + rng.normal(0.0, 0.06)


class _Scene:
    """
    One stamp's light before the PSF, as components with colours: each
    component is a supersampled unit-flux image (in the reference band)
    with its ``(g_r, r_i)``; ``main`` components are the deflector (or the
    negative's galaxy), ``feature`` ones the lensed source (or the
    negative's lens-like feature).
    """

    def __init__(self, size):
        self.size = size
        n = size * _SUPER
        coords = (np.arange(n) - (n - 1) / 2) / _SUPER
        self.x, self.y = np.meshgrid(coords, coords)
        self.parts = {'main': [], 'feature': []}

    def add(self, group, image, colour, weight=1.0):
        total = float(np.sum(image))
        if total > 0 and weight > 0:
            self.parts[group].append((image * (weight / total), colour))

    def deposit(self, group, x, y, colour, weight=1.0):
        """A point source at ``(x, y)`` (bilinear on the fine grid)."""
        n = self.size * _SUPER
        fx = x * _SUPER + (n - 1) / 2
        fy = y * _SUPER + (n - 1) / 2
        ix, iy = int(np.floor(fx)), int(np.floor(fy))
        tx, ty = fx - ix, fy - iy
        image = np.zeros((n, n))
        for dx, dy, w in ((0, 0, (1 - tx) * (1 - ty)), (1, 0, tx * (1 - ty)),
                          (0, 1, (1 - tx) * ty), (1, 1, tx * ty)):
            if 0 <= ix + dx < n and 0 <= iy + dy < n:
                image[iy + dy, ix + dx] += w
        self.add(group, image, colour, weight)

    def band(self, group, band):
        """Sum of a group's components in ``band`` (reference-band units)."""
        n = self.size * _SUPER
        out = np.zeros((n, n))
        for image, (g_r, r_i) in self.parts[group]:
            out += image * band_flux_ratio(band, g_r, r_i)
        return out


def _sersic(light, x, y, r_eff, n_sersic, e1, e2, cx, cy):
    return light.surface_brightness(
        x, y, [{'amp': 1.0, 'R_sersic': r_eff, 'n_sersic': n_sersic,
                'e1': e1, 'e2': e2, 'center_x': cx, 'center_y': cy}])


def _ellipticity(rng, q_range=(0.5, 1.0), angle=None):
    from lenstronomy.Util.param_util import phi_q2_ellipticity

    q = rng.uniform(*q_range)
    phi = rng.uniform(0.0, np.pi) if angle is None else angle
    return phi_q2_ellipticity(phi, q), phi, q


def _galaxy(scene, sersic, rng, r_eff, n_sersic, cx, cy, q_range, colour,
            group='main', weight=1.0):
    (e1, e2), _, _ = _ellipticity(rng, q_range)
    image = _sersic(sersic, scene.x, scene.y, r_eff, n_sersic, e1, e2, cx,
                    cy)
    scene.add(group, image, colour, weight)


def _blobs(scene, xs, ys, sigmas, weights, colour, group='feature'):
    """Gaussian knots at ``(xs, ys)`` (pixels), one colour."""
    image = np.zeros_like(scene.x)
    for x0, y0, sigma, weight in zip(xs, ys, sigmas, weights):
        image += weight / sigma ** 2 * np.exp(
            -0.5 * ((scene.x - x0) ** 2 + (scene.y - y0) ** 2) / sigma ** 2)
    scene.add(group, image, colour)


def _lens(scene, p, i, rng, modules):
    """The deflector's light and the lensed, knotty source."""
    lens_model, sersic, gaussian = modules
    theta = p['theta_e'][i]
    cx, cy = p['x_lens'][i], p['y_lens'][i]
    kwargs = [{'theta_E': theta, 'e1': p['e1'][i], 'e2': p['e2'][i],
               'center_x': cx, 'center_y': cy},
              {'gamma1': p['gamma1'][i], 'gamma2': p['gamma2'][i],
               'ra_0': cx, 'dec_0': cy}]
    bx, by = lens_model.ray_shooting(scene.x.ravel(), scene.y.ravel(),
                                     kwargs)
    # The source: a Sersic, offset from the lens by up to 0.6 theta_E,
    # with 0-8 bluer knots within two of its radii.
    radius = theta * 0.6 * np.sqrt(rng.random())
    angle = rng.uniform(0.0, 2 * np.pi)
    sx, sy = cx + radius * np.cos(angle), cy + radius * np.sin(angle)
    r_src = p['source_r_eff'][i]
    (se1, se2), _, _ = _ellipticity(rng, (0.4, 1.0))
    smooth = _sersic(sersic, bx, by, r_src, rng.uniform(0.5, 2.0), se1, se2,
                     sx, sy).reshape(scene.x.shape)
    colour = _colour(rng, _BLUE)
    knot_fraction = rng.uniform(0.0, 0.6)
    scene.add('feature', smooth, colour, 1.0 - knot_fraction)
    n_knots = int(rng.integers(1, 9))
    if knot_fraction > 0:
        spread = 2.0 * r_src
        kx = sx + rng.normal(0.0, spread / 2, n_knots)
        ky = sy + rng.normal(0.0, spread / 2, n_knots)
        sig = np.maximum(r_src * rng.uniform(0.1, 0.3, n_knots), 0.05)
        amps = rng.uniform(0.5, 1.5, n_knots)
        kwargs_knots = [{'amp': a, 'sigma': s, 'center_x': x, 'center_y': y}
                        for a, s, x, y in zip(amps, sig, kx, ky)]
        knots = sum(gaussian.surface_brightness(bx, by, [kw])
                    for kw in kwargs_knots).reshape(scene.x.shape)
        knot_colour = (colour[0] - 0.3, colour[1] - 0.1)
        scene.add('feature', knots, knot_colour, knot_fraction)
    # The deflector's light follows the mass (slightly misaligned).
    phi = 0.5 * np.arctan2(p['e2'][i], p['e1'][i])
    q_mass = p['axis_ratio_mass'][i]
    from lenstronomy.Util.param_util import phi_q2_ellipticity
    le1, le2 = phi_q2_ellipticity(phi + rng.normal(0.0, 0.1),
                                  np.clip(q_mass + rng.normal(0.0, 0.05),
                                          0.4, 1.0))
    image = _sersic(sersic, scene.x, scene.y, p['galaxy_r_eff'][i],
                    p['galaxy_n'][i], le1, le2, cx, cy)
    scene.add('main', image, _colour(rng, _RED))


def _negative(scene, kind, p, i, rng, galsim, gsparams, modules):
    """A lens-like non-lens of class ``kind``."""
    from . import sky

    _, sersic, _ = modules
    cx, cy = p['x_lens'][i], p['y_lens'][i]
    r_eff = p['galaxy_r_eff'][i]
    theta = p['theta_e'][i]   # a lens-like scale for the feature
    red = _colour(rng, _RED)
    if kind in ('elliptical', 'ring', 'star_galaxy', 'blue_companion'):
        _galaxy(scene, sersic, rng, r_eff, p['galaxy_n'][i], cx, cy,
                (0.5, 1.0), red)
    if kind == 'ring':
        # A ring (Gaussian in elliptical radius), partial or whole, with
        # knots along it.
        (e1, e2), phi, q = _ellipticity(rng, (0.6, 1.0))
        dx, dy = scene.x - cx, scene.y - cy
        u = dx * np.cos(phi) + dy * np.sin(phi)
        v = (-dx * np.sin(phi) + dy * np.cos(phi)) / q
        r = np.hypot(u, v)
        width = theta * rng.uniform(0.08, 0.3)
        ring = np.exp(-0.5 * ((r - theta) / width) ** 2)
        if rng.random() < 0.6:  # partial: an arc-like modulation
            azimuth = np.arctan2(v, u)
            centre = rng.uniform(-np.pi, np.pi)
            extent = rng.uniform(0.5, 2.5)
            ring = ring * np.exp(-0.5 * (np.angle(np.exp(
                1j * (azimuth - centre))) / extent) ** 2)
        scene.add('feature', ring, _colour(rng, _BLUE),
                  rng.uniform(0.5, 1.0))
        n_knots = int(rng.integers(0, 8))
        if n_knots:
            t = rng.uniform(0, 2 * np.pi, n_knots)
            _blobs(scene, cx + theta * np.cos(t), cy + theta * q * np.sin(t),
                   np.maximum(width * rng.uniform(0.5, 1.0, n_knots), 0.3),
                   rng.uniform(0.5, 1.5, n_knots), _colour(rng, _BLUE))
    elif kind == 'spiral':
        q = rng.uniform(0.4, 1.0)
        pa = rng.uniform(0.0, 180.0)
        radius = min(r_eff * rng.uniform(1.0, 2.5), scene.size / 5)
        for profile, weight, part in sky.spiral_galaxy(
                galsim, rng, radius, q, pa, gsparams):
            shift = {'bulge': (0.25, 0.1), 'disk': (0.0, 0.0),
                     'young': (-0.35, -0.15)}[part]
            image = profile.shift(cx, cy).drawImage(
                nx=scene.x.shape[1], ny=scene.x.shape[0],
                scale=1.0 / _SUPER, method='no_pixel').array
            scene.add('main', image, (0.6 + shift[0], 0.3 + shift[1]),
                      weight)
    elif kind == 'merger':
        separation = r_eff * rng.uniform(0.5, 2.5)
        angle = rng.uniform(0, 2 * np.pi)
        ox, oy = separation * np.cos(angle), separation * np.sin(angle)
        colour = _colour(rng, _RED if rng.random() < 0.5 else _BLUE)
        _galaxy(scene, sersic, rng, r_eff, p['galaxy_n'][i], cx, cy,
                (0.4, 1.0), colour)
        _galaxy(scene, sersic, rng, r_eff * rng.uniform(0.4, 1.0),
                rng.uniform(1.0, 4.0), cx + ox, cy + oy, (0.4, 1.0),
                colour, weight=rng.uniform(0.2, 1.0))
        # Curved tidal tails: knots along arcs of circles.
        for _ in range(int(rng.integers(1, 3))):
            radius = theta * rng.uniform(0.8, 1.6)
            start = rng.uniform(0, 2 * np.pi)
            t = start + np.linspace(0, rng.uniform(0.6, 2.0), 12)
            centre = (cx + rng.normal(0, theta * 0.3),
                      cy + rng.normal(0, theta * 0.3))
            _blobs(scene, centre[0] + radius * np.cos(t),
                   centre[1] + radius * np.sin(t),
                   np.full(t.size, max(theta * 0.15, 0.4)),
                   rng.uniform(0.5, 1.5, t.size),
                   (colour[0] - 0.2, colour[1] - 0.1))
    elif kind == 'group':
        members = int(rng.integers(2, 5))
        _galaxy(scene, sersic, rng, r_eff, p['galaxy_n'][i], cx, cy,
                (0.5, 1.0), red)
        for _ in range(members - 1):
            distance = theta * rng.uniform(0.8, 2.5) + 2.0
            angle = rng.uniform(0, 2 * np.pi)
            _galaxy(scene, sersic, rng, r_eff * rng.uniform(0.3, 1.0),
                    rng.uniform(1.0, 4.0), cx + distance * np.cos(angle),
                    cy + distance * np.sin(angle), (0.4, 1.0),
                    _colour(rng, _RED if rng.random() < 0.7 else _BLUE),
                    group='feature', weight=rng.uniform(0.3, 1.0))
    elif kind == 'edge_on':
        q = rng.uniform(0.08, 0.25)
        pa = rng.uniform(0.0, 180.0) * galsim.degrees
        radius = min(r_eff * rng.uniform(1.0, 2.5), scene.size / 4)
        disk = galsim.Exponential(half_light_radius=radius,
                                  gsparams=gsparams).shear(q=q, beta=pa)
        bulge = galsim.Sersic(3.0, half_light_radius=radius * 0.2,
                              gsparams=gsparams).shear(q=0.7, beta=pa)
        for profile, weight, colour in (
                (disk, rng.uniform(0.6, 0.95), (0.7, 0.35)),
                (bulge, 0.3, red)):
            image = profile.shift(cx, cy).drawImage(
                nx=scene.x.shape[1], ny=scene.x.shape[0],
                scale=1.0 / _SUPER, method='no_pixel').array
            scene.add('main', image, colour, weight)
    elif kind == 'star_galaxy':
        for _ in range(int(rng.integers(1, 4))):
            distance = theta * rng.uniform(0.5, 1.5) + 1.0
            angle = rng.uniform(0, 2 * np.pi)
            scene.deposit('feature', cx + distance * np.cos(angle),
                          cy + distance * np.sin(angle), _star_colour(rng),
                          rng.uniform(0.3, 1.0))
    elif kind == 'blue_companion':
        count = int(rng.integers(1, 5))
        distance = theta * rng.uniform(0.6, 1.4, count) + 1.0
        angle = rng.uniform(0, 2 * np.pi, count)
        _blobs(scene, cx + distance * np.cos(angle),
               cy + distance * np.sin(angle),
               loguniform(rng, 0.3, 1.5, count) * rng.uniform(0.7, 1.3),
               rng.uniform(0.3, 1.0, count), _colour(rng, _BLUE))
    elif kind == 'stars':
        scene.deposit('main', cx, cy, _star_colour(rng))
        for _ in range(int(rng.integers(0, 5))):
            distance = theta * rng.uniform(0.3, 2.0) + 1.0
            angle = rng.uniform(0, 2 * np.pi)
            scene.deposit('feature', cx + distance * np.cos(angle),
                          cy + distance * np.sin(angle), _star_colour(rng),
                          rng.uniform(0.1, 1.0))
    elif kind != 'elliptical':
        msg = f'unknown negative kind {kind!r}'
        raise ValueError(msg)


def _neighbours(scene, rng, galsim, gsparams, p, i):
    """One or two unrelated sources far from the centre."""
    size = scene.size
    for _ in range(int(rng.integers(1, 3))):
        while True:
            x, y = rng.uniform(-size / 2, size / 2, 2)
            if np.hypot(x, y) > 0.3 * size:
                break
        weight = loguniform(rng, 0.02, 1.0)
        if rng.random() < 0.5:
            scene.deposit('main', x, y, _star_colour(rng), weight)
        else:
            profile = galsim.Sersic(
                1.5, half_light_radius=loguniform(rng, 0.8, 4.0),
                gsparams=gsparams).shear(q=rng.uniform(0.3, 1.0),
                                         beta=rng.uniform(0, 180)
                                         * galsim.degrees)
            image = profile.shift(x, y).drawImage(
                nx=scene.x.shape[1], ny=scene.x.shape[0],
                scale=1.0 / _SUPER, method='no_pixel').array
            scene.add('main', image, _colour(rng, _RED if rng.random() < 0.5
                                             else _BLUE), weight)


def _bin(image):
    n = image.shape[0] // _SUPER
    return image.reshape(n, _SUPER, n, _SUPER).sum(axis=(1, 3))


def _draw_chunk(args):
    """Draw one chunk of lens and non-lens stamps (a worker process)."""
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel
    from scipy.signal import fftconvolve

    from . import sky
    from .common import require_galsim

    galsim = require_galsim()
    params, bands, size, seed, noise = args
    rng = np.random.default_rng(seed)
    gsparams = galsim.GSParams(folding_threshold=2e-2, maxk_threshold=5e-3)
    modules = (LensModel(['SIE', 'SHEAR']), LightModel(['SERSIC_ELLIPSE']),
               LightModel(['GAUSSIAN']))
    n = len(params['kind'])
    images = np.empty((n, size, size, len(bands)), dtype=np.float32)
    fluxes = np.zeros((n, 2))
    visibility = np.zeros((n, 2))
    ref = 'r' if 'r' in bands else bands[0]
    order = sorted(range(len(bands)), key=lambda b: bands[b] != ref)
    fine = size * _SUPER
    for i in range(n):
        kind = params['kind'][i]
        scene = _Scene(size)
        if kind == 'lens':
            _lens(scene, params, i, rng, modules)
        else:
            _negative(scene, kind, params, i, rng, galsim, gsparams, modules)
        if params['neighbours'][i]:
            _neighbours(scene, rng, galsim, gsparams, params, i)
        var_ref = (params[f'sky_level_{ref}'][i]
                   + params[f'read_noise_{ref}'][i] ** 2)
        nebula_rng = np.random.default_rng([seed.entropy, i, 1])
        nebula = None
        scales = {}
        for b in order:
            band = bands[b]
            psf = sky.make_psf(galsim, params, i, PSF_BAND_SCALE[band],
                               gsparams)
            width = int(min(fine - 1, 2 * int(np.ceil(
                8 * params['psf_fwhm'][i] * PSF_BAND_SCALE[band])) + 1))
            kernel = psf.drawImage(nx=width, ny=width, scale=1.0 / _SUPER,
                                   method='no_pixel').array
            kernel /= kernel.sum()
            image = np.zeros((size, size))
            drawn = {}
            for k, group in enumerate(('main', 'feature')):
                if not scene.parts[group]:
                    continue
                unit = _bin(fftconvolve(scene.band(group, band), kernel,
                                        mode='same'))
                if band == ref:
                    # Scale the group to its matched-filter S/N.
                    target = params['galaxy_snr' if group == 'main'
                                    else 'snr'][i]
                    scales[group] = target * np.sqrt(var_ref / np.sum(
                        unit ** 2))
                    fluxes[i, k] = scales[group] * np.sum(
                        scene.band(group, band))
                drawn[group] = unit * scales[group]
                image += drawn[group]
            if band == ref and 'feature' in drawn:
                visibility[i] = _visibility(drawn, var_ref)
            sigma = np.sqrt(params[f'sky_level_{band}'][i]
                            + params[f'read_noise_{band}'][i] ** 2)
            if params['nebulosity'][i]:
                if nebula is None:
                    nebula = sky.nebulosity(nebula_rng, size, sigma)
                image = image + nebula * rng.uniform(0.7, 1.3)
            gs_image = galsim.ImageD(np.ascontiguousarray(image), scale=1.0)
            deviate = galsim.BaseDeviate(int(rng.integers(2**31)))
            if noise:
                gs_image.addNoise(galsim.CCDNoise(
                    deviate, sky_level=params[f'sky_level_{band}'][i],
                    gain=1.0, read_noise=params[f'read_noise_{band}'][i]))
            images[i, :, :, b] = gs_image.array
    return images, fluxes, visibility


def _visibility(drawn, var_sky):
    """
    ``(arc_pixels, arc_contrast)`` of the feature in the reference band:
    its pixels above 1 sigma of the pixel noise (sky, read and the photon
    noise of all the light), the criterion of Metcalf et al. (2019), and
    its share of the light in those pixels.
    """
    feature = drawn['feature']
    total = feature + drawn.get('main', 0.0)
    above = feature > np.sqrt(var_sky + np.clip(total, 0.0, None))
    if not above.any():
        return 0.0, 0.0
    return float(above.sum()), float(feature[above].sum()
                                     / total[above].sum())


def simulate_lens_stamps(n_stamps, *, seed, stamp_size=48, bands=BANDS,
                         lens_fraction=0.5, pixel_scale=None,
                         neighbour_fraction=0.25, nebulosity_fraction=0.05,
                         negative_kinds=None, ranges=None, common_psf=False,
                         noise=True, n_processes=None):
    """
    Simulate multi-band stamps of strong lenses and lens-like non-lenses.

    Parameters
    ----------
    n_stamps : int
        Number of stamps.
    seed : int
        Random seed; the same seed gives the same stamps.
    stamp_size : int, optional
        Side of the square stamps, pixels.
    bands : tuple of str, optional
        Bands to draw, a subset of ``('g', 'r', 'i')``.
    lens_fraction : float, optional
        Fraction of lenses (1 for a set of lenses only).
    pixel_scale : float, optional
        Arcsec per pixel of every stamp; default drawn uniformly from
        ``LENS_RANGES['pixel_scale']`` (0.16-0.27: HSC to DES).
    neighbour_fraction : float, optional
        Fraction of stamps with one or two unrelated neighbours.
    nebulosity_fraction : float, optional
        Fraction of stamps with smooth residual background structure.
    negative_kinds : dict, optional
        Fractions of the negatives' kinds (default `NEGATIVE_KINDS`).
    ranges : dict, optional
        Overrides of `LENS_RANGES` (e.g. ``{'snr': (20, 200)}``).
    common_psf : bool, optional
        One PSF (the first stamp's) for every stamp, as in one exposure.
    noise : bool, optional
        Add the sky and read noise (`False`: noiseless stamps, whose S/N
        is still computed for the noise in the truth table).
    n_processes : int, optional
        Worker processes; default the number of CPUs.

    Returns
    -------
    images : `~numpy.ndarray`
        ``(n_stamps, stamp_size, stamp_size, len(bands))`` float32.
    truth : `~astropy.table.QTable`
        ``label`` (0 lens, 1 non-lens), ``class``, ``kind``, ``snr``,
        ``galaxy_snr``, ``theta_e`` (pix), ``theta_e_arcsec``, ``e1``,
        ``e2``, ``gamma1``, ``gamma2`` (lenses; NaN for negatives),
        ``x_lens``, ``y_lens`` (pix from the stamp centre),
        ``pixel_scale``, ``psf_fwhm`` (pix, reference band),
        ``psf_kind``, ``source_r_eff`` (pix), ``galaxy_r_eff`` (pix),
        ``flux_main`` and ``flux_feature`` (reference band),
        ``arc_pixels`` (pixels where the lensed source, or the negative's
        feature, is above 1 sigma of the pixel noise including the photon
        noise of the deflector: the visibility criterion of Metcalf et al.
        2019), ``arc_contrast`` (the feature's share of the light in those
        pixels) and the noise of each band.

    Examples
    --------
    >>> from astrodl_plugins.simulate import simulate_lens_stamps
    >>> images, truth = simulate_lens_stamps(4, seed=1, n_processes=1)
    >>> images.shape
    (4, 48, 48, 3)
    """
    from . import sky

    require_lenstronomy()
    bands = tuple(bands)
    if not bands or not set(bands) <= set(BANDS) or len(set(bands)) != len(
            bands):
        msg = f'bands must be distinct names among {BANDS}, got {bands}'
        raise ValueError(msg)
    if not (isinstance(n_stamps, (int, np.integer)) and n_stamps > 0):
        msg = f'n_stamps must be a positive integer, got {n_stamps!r}'
        raise ValueError(msg)
    if not 0.0 <= lens_fraction <= 1.0:
        msg = f'lens_fraction must lie in [0, 1], got {lens_fraction!r}'
        raise ValueError(msg)
    kinds = dict(NEGATIVE_KINDS if negative_kinds is None
                 else negative_kinds)
    if not kinds or not set(kinds) <= set(NEGATIVE_KINDS):
        msg = (f'negative_kinds must be among {tuple(NEGATIVE_KINDS)}, got '
               f'{tuple(kinds)}')
        raise ValueError(msg)
    r = dict(LENS_RANGES)
    r.update(ranges or {})
    rng = np.random.default_rng(seed)
    n = n_stamps
    scale = (rng.uniform(*r['pixel_scale'], n) if pixel_scale is None
             else np.full(n, float(pixel_scale)))
    psf_arcsec = loguniform(rng, *r['psf_fwhm_arcsec'], n)
    params = sky.draw_psf_params(rng, n, (1.0, 1.0))
    params['psf_fwhm'] = psf_arcsec / scale
    if common_psf:
        for key in list(params):
            params[key] = np.full_like(params[key], params[key][0])
    params['pixel_scale'] = scale
    label = (rng.random(n) >= lens_fraction).astype(np.int64)
    names = np.array(list(kinds))
    weights = np.array(list(kinds.values()), float)
    negative = names[rng.choice(names.size, size=n, p=weights / weights.sum())]
    params['kind'] = np.where(label == 0, 'lens', negative)
    theta_arcsec = rng.uniform(*r['theta_e_arcsec'], n)
    params['theta_e'] = theta_arcsec / scale
    q_mass = rng.uniform(*r['axis_ratio_mass'], n)
    phi = rng.uniform(0.0, np.pi, n)
    e = (1 - q_mass) / (1 + q_mass)
    params['axis_ratio_mass'] = q_mass
    params['e1'], params['e2'] = e * np.cos(2 * phi), e * np.sin(2 * phi)
    shear = rng.uniform(*r['shear'], n)
    shear_angle = rng.uniform(0.0, np.pi, n)
    params['gamma1'] = shear * np.cos(2 * shear_angle)
    params['gamma2'] = shear * np.sin(2 * shear_angle)
    params['x_lens'] = rng.uniform(-1.0, 1.0, n)
    params['y_lens'] = rng.uniform(-1.0, 1.0, n)
    params['source_r_eff'] = loguniform(rng, *r['source_r_eff_arcsec'],
                                        n) / scale
    # The deflector: a half-light radius comparable to theta_E.
    params['galaxy_r_eff'] = np.clip(params['theta_e'] * loguniform(
        rng, 0.4, 1.5, n), 1.0, None)
    params['galaxy_n'] = rng.uniform(2.5, 6.0, n)
    params['snr'] = loguniform(rng, *r['snr'], n)
    params['galaxy_snr'] = loguniform(rng, *r['galaxy_snr'], n)
    # Negatives without a lens-like feature have none (a lone star's
    # companions are drawn as its feature when there are any).
    plain = np.isin(params['kind'], ['elliptical', 'spiral', 'edge_on'])
    params['snr'] = np.where(plain, 0.0, params['snr'])
    for band in bands:
        params[f'sky_level_{band}'] = loguniform(rng, 20.0, 2000.0, n)
        params[f'read_noise_{band}'] = rng.uniform(2.0, 10.0, n)
    params['neighbours'] = rng.random(n) < neighbour_fraction
    params['nebulosity'] = rng.random(n) < nebulosity_fraction
    starts = range(0, n, _CHUNK)
    child_seeds = np.random.SeedSequence(seed).spawn(len(starts))
    jobs = [({key: value[start:start + _CHUNK]
              for key, value in params.items()}, bands, stamp_size,
             child_seeds[j], bool(noise)) for j, start in enumerate(starts)]
    results = run_jobs(_draw_chunk, jobs, n_processes)
    images = np.concatenate([result[0] for result in results])
    fluxes = np.concatenate([result[1] for result in results])
    visibility = np.concatenate([result[2] for result in results])
    truth = QTable()
    truth['label'] = label
    truth['class'] = np.asarray(LENS_CLASSES)[label]
    truth['kind'] = params['kind']
    is_lens = label == 0
    for key in ('snr', 'galaxy_snr', 'theta_e', 'e1', 'e2', 'gamma1',
                'gamma2'):
        values = np.asarray(params[key], np.float64)
        truth[key] = (np.where(is_lens, values, np.nan)
                      if key not in ('snr', 'galaxy_snr') else values)
    truth['theta_e_arcsec'] = np.where(is_lens, theta_arcsec, np.nan)
    for key in ('x_lens', 'y_lens', 'pixel_scale', 'psf_fwhm', 'psf_kind',
                'psf_beta', 'source_r_eff', 'galaxy_r_eff'):
        truth[key] = params[key]
    truth['flux_main'] = fluxes[:, 0]
    truth['flux_feature'] = fluxes[:, 1]
    truth['arc_pixels'] = visibility[:, 0].astype(np.int64)
    truth['arc_contrast'] = visibility[:, 1]
    for band in bands:
        truth[f'noise_{band}'] = np.sqrt(params[f'sky_level_{band}']
                                         + params[f'read_noise_{band}'] ** 2)
    truth.meta['bands'] = list(bands)
    truth.meta['reference_band'] = 'r' if 'r' in bands else bands[0]
    return images, truth


def simulate_lens_field(n_sources=64, *, seed, lens_fraction=0.1,
                        pixel_scale=0.2, psf_fwhm_arcsec=0.8, noise=(4.0,
                                                                    5.0,
                                                                    8.0),
                        bands=BANDS, n_processes=None):
    """
    A simulated survey tile: lenses among lens-like galaxies, one PSF.

    Sources of `simulate_lens_stamps` (72-pixel scenes, noiseless,
    tapered at their edges) are placed on a jittered grid of 80-pixel
    cells, then each band gets its
    own Gaussian noise; every source shares one PSF (a Moffat, Kolmogorov,
    double-Gaussian or Airy FWHM ``psf_fwhm_arcsec``).

    Parameters
    ----------
    n_sources : int, optional
        Number of sources (lenses and non-lenses); the tile is square,
        ``ceil(sqrt(n_sources))`` cells a side.
    seed : int
        Random seed.
    lens_fraction : float, optional
        Fraction of lenses.
    pixel_scale : float, optional
        Arcsec per pixel.
    psf_fwhm_arcsec : float, optional
        PSF FWHM in the reference band.
    noise : tuple of float, optional
        Noise sigma of each band (electrons).
    bands : tuple of str, optional
        Bands to draw.
    n_processes : int, optional
        Worker processes.

    Returns
    -------
    images : list of `~astropy.nddata.CCDData`
        One per band (electrons), with a TAN WCS and ``BAND`` and
        ``PSF_FWHM`` (pixels) in the meta.
    truth : `~astropy.table.QTable`
        The truth of `simulate_lens_stamps` with ``x`` and ``y``: the lens
        (or galaxy) centre in the tile, pixels.
    """
    from astropy.nddata import CCDData
    from astropy.wcs import WCS

    bands = tuple(bands)
    if len(noise) != len(bands):
        msg = f'noise must give one sigma per band, got {noise!r}'
        raise ValueError(msg)
    stamps, truth = simulate_lens_stamps(
        n_sources, seed=seed, bands=bands, lens_fraction=lens_fraction,
        stamp_size=72,
        pixel_scale=pixel_scale, common_psf=True, noise=False,
        nebulosity_fraction=0.0, n_processes=n_processes,
        ranges={'psf_fwhm_arcsec': (psf_fwhm_arcsec, psf_fwhm_arcsec)})
    rng = np.random.default_rng([seed, 1])
    reference = bands.index('r') if 'r' in bands else 0
    cell, size = 80, stamps.shape[1]
    # A soft edge: the largest galaxies do not end in a square.
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    taper = np.clip((size / 2 - np.hypot(xx, yy)) / 8.0, 0.0, 1.0)
    side = int(np.ceil(np.sqrt(n_sources)))
    shape = (side * cell, side * cell)
    planes = np.zeros((len(bands), *shape))
    x = np.empty(n_sources)
    y = np.empty(n_sources)
    for i in range(n_sources):
        row, column = divmod(i, side)
        jx, jy = rng.integers(0, cell - size + 1, 2)
        x0, y0 = column * cell + jx, row * cell + jy
        # Scaled to the tile's noise: the truth's S/N stays right.
        factor = noise[reference] / truth[f'noise_{bands[reference]}'][i]
        planes[:, y0:y0 + size, x0:x0 + size] += factor * taper * np.moveaxis(
            stamps[i], -1, 0)
        x[i] = x0 + (size - 1) / 2 + truth['x_lens'][i]
        y[i] = y0 + (size - 1) / 2 + truth['y_lens'][i]
    truth['x'] = x
    truth['y'] = y
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cdelt = [-pixel_scale / 3600, pixel_scale / 3600]
    fwhm = float(truth['psf_fwhm'][0])
    images = []
    for band, plane, sigma in zip(bands, planes, noise):
        data = plane + rng.normal(0.0, sigma, shape)
        images.append(CCDData(data.astype(np.float32), unit='electron',
                              wcs=wcs.deepcopy(),
                              meta={'BAND': band, 'PSF_FWHM': fwhm * (
                                  PSF_BAND_SCALE[band])}))
    for band, sigma in zip(bands, noise):
        truth[f'noise_{band}'] = sigma
    return images, truth
