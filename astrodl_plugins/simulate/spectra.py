# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Simulated 1-D galaxy spectra for redshift estimation.

Each spectrum is one source (`SPECTRUM_KINDS`) observed with one of two
instrument setups (`SPECTRAL_SETUPS`):

* ``'nisp'`` (default): Euclid-NISP-like slitless red grism, 1.20-1.90
  micron, resolving power set by the source's size (slitless: a larger
  source smears its lines), ``R = 450 - 200 log10(size / 0.1 arcsec)``
  for half-light radii of 0.1-1 arcsec drawn log-uniform (point sources
  450), galaxies at z 0.9-1.8 (Halpha in band throughout, [OIII] from z
  1.40);
* ``'optical'``: a ground-based fibre spectrograph, 3600-9800 Angstrom,
  R 1800-2000, galaxies at z 0-1.5 ([OII] in band throughout).

A ``galaxy`` is a Dirichlet mixture of the four Coleman, Wu & Weedman
(1980) templates that GalSim ships (E, Sbc, Scd, Im; one or two types
dominate), attenuated by Calzetti et al. (2000) dust (E(B-V) 0-0.6, less
for E types), with emission lines in physical ratios: Case B Balmer lines
(Halpha / Hbeta = 2.86 before dust), [NII]/Halpha and [OIII]/Hbeta along
the BPT star-forming sequence with scatter ([NII]6548 = 6583 / 3.05,
[OIII]4959 = 5007 / 2.98), the [OII] and [SII] doublets, [NeIII] and
[SIII]; their strength follows the star-forming share of the mixture (rest
EW(Halpha) 0.5-300 Angstrom, none for most E types and 5 % of the others),
velocity dispersion 50-250 km/s. Narrow stellar absorption lines (Ca II H
and K, G band, Mg b, Na D, Balmer, Ca triplet) are added to the continuum,
the templates being sampled every 40 Angstrom (their own smeared emission
lines are bridged). The out-of-distribution kinds are
``star`` (a blackbody with hydrogen and metal absorption lines, radial
velocity within +-300 km/s) and ``qso`` (a power law with broad lines of
FWHM 3000-5000 km/s, narrow [OIII] and [OII], and the Lyman-alpha forest).

The rest-frame spectrum is redshifted (wavelength times 1 + z, flux
density over 1 + z), convolved with a Gaussian line-spread function of
FWHM lambda / R (R drawn per spectrum) and integrated over each pixel of a
log-uniform grid (constant velocity pixels, 2 per resolution element at
the highest R): the continuum on a grid 4 times finer, the lines
analytically. The noise is Gaussian (background, through a smooth
throughput curve) plus a Poisson-like term (variance proportional to the
signal), scaled to a continuum S/N per pixel drawn log-uniform; then sky
residuals (narrow spikes, a slow wiggle) that ``ivar`` does not describe,
masked cosmic-ray hits and bad pixels (about 0.5 %) and sometimes a gap.

Conventions: vacuum wavelengths in Angstrom, observed frame; flux
densities in units of 1e-17 erg / s / cm2 / Angstrom
(`SPECTRUM_FLUX_UNIT`), the continuum's level set by an AB magnitude; line
fluxes in 1e-17 erg / s / cm2, observed (after dust); equivalent widths
in the rest frame, positive in emission.
"""

import functools

import numpy as np
from astropy import units as u
from astropy.table import QTable
from scipy.ndimage import gaussian_filter1d
from scipy.special import ndtr

from ._spectral_noise import add_noise
from ._spectral_sources import (
    C_KMS,
    CWW_TEMPLATES,
    EMISSION_LINES,
    calzetti_attenuation,
    draw_galaxy,
    draw_qso,
    draw_star,
)
from .common import check_fractions, loguniform, require_galsim

__all__ = ['SPECTRAL_SETUPS', 'SPECTRUM_KINDS', 'EMISSION_LINES',
           'CWW_TEMPLATES', 'SPECTRUM_FLUX_UNIT', 'calzetti_attenuation',
           'spectral_grid', 'lines_in_band', 'simulate_spectrum_arrays',
           'simulate_spectra']

__doctest_requires__ = {('simulate_spectrum_arrays', 'simulate_spectra'):
                        ['galsim']}

#: Unit of the simulated flux densities.
SPECTRUM_FLUX_UNIT = u.Unit(1e-17 * u.erg / u.s / u.cm ** 2 / u.AA)
#: Kinds of source.
SPECTRUM_KINDS = ('galaxy', 'star', 'qso')

_FRACTIONS = {'galaxy': 0.8, 'star': 0.1, 'qso': 0.1}
_FWHM_TO_SIGMA = 1 / (2 * np.sqrt(2 * np.log(2)))
_C_ANGSTROM = 2.99792458e18  # Angstrom / s
_SUBPIXELS = 4
_MARGIN = 12  # pixels beyond the band, for the line-spread function
_Z_LIMIT = 6.0
# Airglow of a ground-based site: [OI] 5577, Na D, [OI] 6300, 6364 (vacuum)
# and, red of 6800 Angstrom, OH lines at positions drawn once.
_ATOMIC_SKY = np.array([5578.9, 5891.6, 5897.6, 6302.0, 6365.5])


def _setup(description, wavelength_range, resolving_power, z_range,
           mag_range, slitless, sky_lines):
    low, high = wavelength_range
    step = 1.0 / (2 * resolving_power[1])
    n_pixels = int(np.ceil(np.log(high / low) / step))
    lines = {}
    for name, rest in EMISSION_LINES.items():
        z_low = max(low / rest - 1, z_range[0])
        z_high = min(high / rest - 1, z_range[1])
        if z_low < z_high:
            lines[name] = (round(z_low, 4), round(z_high, 4))
    return {'description': description, 'wavelength_range': wavelength_range,
            'log_step': step, 'n_pixels': n_pixels,
            'resolving_power': resolving_power, 'z_range': z_range,
            'mag_range': mag_range, 'slitless': slitless,
            'sky_lines': sky_lines, 'lines': lines}


#: Instrument setups: ``wavelength_range`` (Angstrom, vacuum), the
#: log-uniform pixel grid (``log_step`` in ln wavelength, ``n_pixels``: 2
#: pixels per FWHM at the highest resolving power), ``resolving_power``
#: range, default ``z_range`` and ``mag_range`` (AB) of the galaxies,
#: ``slitless`` (R set by the source's size), ``sky_lines`` (airglow in
#: the background) and ``lines``: the emission lines of `EMISSION_LINES`
#: in band somewhere in ``z_range``, with the redshifts where they are.
SPECTRAL_SETUPS = {
    'nisp': _setup('Euclid NISP-like red grism (slitless)', (12000.0, 19000.0),
                   (250.0, 450.0), (0.9, 1.8), (19.0, 23.0), True, False),
    'optical': _setup('optical fibre spectrograph', (3600.0, 9800.0),
                      (1800.0, 2000.0), (0.0, 1.5), (17.0, 22.0), False,
                      True),
}


def spectral_grid(setup='nisp'):
    """
    The pixel grid of a setup: log-uniform in wavelength.

    Parameters
    ----------
    setup : str, optional
        A key of `SPECTRAL_SETUPS`.

    Returns
    -------
    wavelength : `~numpy.ndarray`
        Pixel centres (geometric means of their edges), Angstrom.
    edges : `~numpy.ndarray`
        The ``n_pixels + 1`` pixel edges, Angstrom, from the setup's lower
        wavelength (the last one slightly beyond its upper wavelength).

    Examples
    --------
    >>> from astrodl_plugins.simulate.spectra import spectral_grid
    >>> wavelength, edges = spectral_grid('nisp')
    >>> wavelength.shape, edges.shape
    ((414,), (415,))
    """
    spec = _check_setup(setup)
    steps = np.arange(spec['n_pixels'] + 1)
    edges = spec['wavelength_range'][0] * np.exp(spec['log_step'] * steps)
    return np.sqrt(edges[1:] * edges[:-1]), edges


def lines_in_band(setup, z):
    """
    Names of the `EMISSION_LINES` within a setup's band at redshift ``z``.

    Parameters
    ----------
    setup : str
        A key of `SPECTRAL_SETUPS`.
    z : float
        Redshift.

    Returns
    -------
    names : list of str
        The lines whose observed wavelength lies within the setup's
        ``wavelength_range``.

    Examples
    --------
    >>> from astrodl_plugins.simulate.spectra import lines_in_band
    >>> 'halpha' in lines_in_band('nisp', 1.0), 'oiii_5007' in lines_in_band(
    ...     'nisp', 1.0)
    (True, False)
    """
    low, high = _check_setup(setup)['wavelength_range']
    return [name for name, rest in EMISSION_LINES.items()
            if low <= rest * (1 + z) <= high]


def simulate_spectrum_arrays(n, *, seed, setup='nisp', z_range=None,
                             snr_range=(1.0, 50.0), kinds=('galaxy',),
                             fractions=None, mag_range=None, noiseless=False):
    """
    Simulate spectra as NumPy arrays, with their truth.

    Parameters
    ----------
    n : int
        Number of spectra.
    seed : int or None
        Seed: the same seed gives the same spectra, and spectrum ``i`` is
        the same whatever ``n`` (each draws from its own child of
        ``np.random.SeedSequence(seed)``).
    setup : str, optional
        A key of `SPECTRAL_SETUPS`: ``'nisp'`` or ``'optical'``.
    z_range : tuple of float, optional
        Redshifts of galaxies and quasars, drawn uniform in ``[low, high)``
        (``low == high`` fixes it), within 0-6; default: the setup's.
    snr_range : tuple of float, optional
        Range of the continuum S/N per pixel (median over good pixels),
        drawn log-uniform.
    kinds : sequence of str, optional
        The kinds drawn, of `SPECTRUM_KINDS` (``'galaxy'``, ``'star'``,
        ``'qso'``).
    fractions : dict or sequence of float, optional
        Probability of each kind (a dict by kind, or a sequence aligned
        with ``kinds``), summing to 1; default: galaxy 0.8, star 0.1, qso
        0.1, renormalized over ``kinds``.
    mag_range : tuple of float, optional
        AB magnitudes of the continuum (its mean flux density over the
        band), drawn uniform; default: the setup's.
    noiseless : bool, optional
        Return the model instead of the noisy flux: no noise, sky residuals
        or garbage in masked pixels; ``ivar``, ``mask`` and the truth are
        those of the noisy spectra of the same seed.

    Returns
    -------
    wavelength : `~numpy.ndarray`
        ``(n_pixels,)`` pixel centres, Angstrom (`spectral_grid`).
    flux : `~numpy.ndarray`
        ``(n, n_pixels)`` flux densities, 1e-17 erg / s / cm2 / Angstrom
        (`SPECTRUM_FLUX_UNIT`); masked pixels hold garbage (NaN in gaps,
        cosmic-ray hits, zeros).
    ivar : `~numpy.ndarray`
        ``(n, n_pixels)`` inverse variance of the noise added, 0 where
        masked (it ignores the sky residuals).
    mask : `~numpy.ndarray`
        ``(n, n_pixels)`` bool, True for bad pixels.
    truth : `~astropy.table.QTable`
        One row per spectrum: ``kind``; ``z``; ``mag`` (AB, of the
        continuum); ``size`` (half-light radius, arcsec; 0 for stars and
        quasars); ``resolving_power``; the mixture ``weight_e``,
        ``weight_sbc``, ``weight_scd``, ``weight_im`` (fractions of the
        rest-frame flux density at 5500 Angstrom; 0 unless a galaxy);
        ``ebv`` (stellar continuum's E(B-V)) and ``ebv_gas`` (the lines',
        ``ebv / 0.44``); ``sigma_v`` (the lines' velocity dispersion before
        the instrument, km/s); per line of `EMISSION_LINES`, ``flux_<line>``
        (observed, after dust; negative for a star's absorption) and
        ``ew_<line>`` (rest-frame, over the attenuated continuum); ``snr``
        (continuum S/N per pixel, median over unmasked pixels: the value
        drawn from ``snr_range``, unless most of the band is dark, as
        beyond a quasar's Lyman limit);
        ``line_snr`` (matched-filter S/N of the line detected best, from
        ``ivar``) and ``strongest_line`` (its name); ``mask_fraction`` and
        ``gap`` (whether a contiguous chunk is masked). The meta holds the
        ``setup`` and the ``seed`` (the root seed's entropy).

    Raises
    ------
    ValueError
        An unknown setup or kind, bad fractions or ranges.

    Examples
    --------
    >>> from astrodl_plugins.simulate.spectra import simulate_spectrum_arrays
    >>> wavelength, flux, ivar, mask, truth = simulate_spectrum_arrays(
    ...     3, seed=1)
    >>> flux.shape, mask.dtype, len(truth)
    ((3, 414), dtype('bool'), 3)
    >>> bool(truth['z'].min() >= 0.9 and truth['z'].max() < 1.8)
    True
    """
    config = _check_arguments(n, setup, z_range, snr_range, kinds, fractions,
                              mag_range)
    require_galsim()
    root = np.random.SeedSequence(seed)
    wavelength = config['wavelength']
    shape = (int(n), wavelength.size)
    flux, ivar = np.empty(shape), np.empty(shape)
    mask = np.empty(shape, dtype=bool)
    rows = []
    for index, child in enumerate(root.spawn(int(n))):
        source_rng, noise_rng = (np.random.default_rng(s)
                                 for s in child.spawn(2))
        source, model, continuum, profiles = _observe(source_rng, config)
        flux[index], ivar[index], mask[index], row = add_noise(
            noise_rng, model, continuum, profiles, source['snr'],
            config['grid'])
        if noiseless:
            flux[index] = model
        rows.append(_truth_row(source, row))
    truth = _truth_table(rows)
    truth.meta.update(setup=setup, seed=root.entropy)
    return wavelength, flux, ivar, mask, truth


def simulate_spectra(n, *, seed, **kwargs):
    """
    Simulate spectra as astropy `~astropy.nddata.NDData`, with their truth.

    Like `simulate_spectrum_arrays` (same arguments, same spectra), each
    spectrum an `~astropy.nddata.NDData` with ``data`` the flux (its
    ``unit`` `SPECTRUM_FLUX_UNIT`), ``uncertainty`` an
    `~astropy.nddata.InverseVariance`, ``mask`` (True for bad pixels) and
    in ``meta`` the ``spectral_axis`` (the wavelengths, a Quantity in
    Angstrom), ``setup``, ``kind`` and ``z``. With specutils installed,
    ``Spectrum(spectral_axis=s.meta['spectral_axis'], flux=s.data * s.unit,
    uncertainty=s.uncertainty, mask=s.mask)`` makes a specutils spectrum of
    ``s`` (specutils is not needed here).

    Returns
    -------
    spectra : list of `~astropy.nddata.NDData`
    truth : `~astropy.table.QTable`
        As `simulate_spectrum_arrays`.

    Examples
    --------
    >>> from astrodl_plugins.simulate.spectra import simulate_spectra
    >>> spectra, truth = simulate_spectra(2, seed=3, setup='optical')
    >>> spectra[0].unit, spectra[0].meta['spectral_axis'].unit
    (Unit("1e-17 erg / (Angstrom s cm2)"), Unit("Angstrom"))
    """
    from astropy.nddata import InverseVariance, NDData

    wavelength, flux, ivar, mask, truth = simulate_spectrum_arrays(
        n, seed=seed, **kwargs)
    axis = wavelength * u.AA
    spectra = [NDData(flux[i], uncertainty=InverseVariance(ivar[i]),
                      mask=mask[i], unit=SPECTRUM_FLUX_UNIT,
                      meta={'spectral_axis': axis,
                            'setup': truth.meta['setup'],
                            'kind': truth['kind'][i],
                            'z': float(truth['z'][i])})
               for i in range(len(flux))]
    return spectra, truth


def _check_setup(setup):
    if not isinstance(setup, str) or setup not in SPECTRAL_SETUPS:
        msg = f'setup must be one of {sorted(SPECTRAL_SETUPS)}, not {setup!r}'
        raise ValueError(msg)
    return SPECTRAL_SETUPS[setup]


def _check_range(name, value, low_limit=0.0, high_limit=np.inf,
                 strict=True):
    """``value`` as a (low, high) tuple, or a ValueError naming it."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        low = high = np.nan
    above = low > low_limit if strict else low >= low_limit
    if not (above and low <= high <= high_limit):
        bound = '<' if strict else '<='
        msg = (f'{name} must be (low, high) with {low_limit} {bound} low <= '
               f'high <= {high_limit}, not {value!r}')
        raise ValueError(msg)
    return low, high


def _check_arguments(n, setup, z_range, snr_range, kinds, fractions,
                     mag_range):
    """The arguments checked, as the configuration of every spectrum."""
    spec = _check_setup(setup)
    if not isinstance(n, (int, np.integer)) or n < 0:
        msg = f'n must be a non-negative integer, not {n!r}'
        raise ValueError(msg)
    z_range = _check_range('z_range', spec['z_range'] if z_range is None
                           else z_range, 0.0, _Z_LIMIT, strict=False)
    snr_range = _check_range('snr_range', snr_range)
    mag_range = _check_range('mag_range', spec['mag_range'] if mag_range
                             is None else mag_range, 0.0, 40.0)
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not kinds or any(k not in SPECTRUM_KINDS for k in kinds) or len(
            set(kinds)) != len(kinds):
        msg = (f'kinds must be distinct kinds of {SPECTRUM_KINDS}, not '
               f'{kinds!r}')
        raise ValueError(msg)
    return {'setup': setup, 'spec': spec, 'z_range': z_range,
            'snr_range': snr_range, 'mag_range': mag_range, 'kinds': kinds,
            'fractions': check_fractions(fractions, kinds, _FRACTIONS),
            'wavelength': spectral_grid(setup)[0], 'grid': _fine_grid(setup)}


@functools.lru_cache(maxsize=None)
def _fine_grid(setup):
    """Sub-pixel wavelengths (with margins), pixel edges, sky profiles."""
    spec = SPECTRAL_SETUPS[setup]
    _, edges = spectral_grid(setup)
    n_pixels = spec['n_pixels']
    steps = (np.arange(-_MARGIN * _SUBPIXELS,
                       (n_pixels + _MARGIN) * _SUBPIXELS) + 0.5) / _SUBPIXELS
    fine = spec['wavelength_range'][0] * np.exp(spec['log_step'] * steps)
    inside = slice(_MARGIN * _SUBPIXELS, (n_pixels + _MARGIN) * _SUBPIXELS)
    weights = fine[inside].reshape(n_pixels, _SUBPIXELS)
    grid = {'fine': fine, 'inside': inside, 'edges': edges,
            'bin_weights': weights / weights.sum(axis=1, keepdims=True)}
    if spec['sky_lines']:
        oh = np.random.default_rng(1990)  # the same OH lines everywhere
        centres = np.concatenate([_ATOMIC_SKY,
                                  oh.uniform(6800.0, edges[-1], 60)])
        strength = np.concatenate([[30.0, 8.0, 8.0, 12.0, 4.0],
                                   loguniform(oh, 1.0, 30.0, 60)])
        sigma = centres / np.mean(spec['resolving_power']) * _FWHM_TO_SIGMA
        middle = np.sqrt(edges[1:] * edges[:-1])
        profiles = np.exp(-0.5 * ((middle - centres[:, None])
                                  / sigma[:, None]) ** 2)
        keep = profiles.max(axis=1) > 0.1
        grid['sky'] = profiles[keep]
        grid['sky_strength'] = strength[keep]
    return grid


def _draw_source(rng, config):
    """A source of a drawn kind, its redshift, size and magnitude."""
    kind = config['kinds'][rng.choice(len(config['kinds']),
                                      p=config['fractions'])]
    if kind == 'star':
        source = draw_star(rng)
    else:
        z = rng.uniform(*config['z_range'])
        draw = draw_galaxy if kind == 'galaxy' else draw_qso
        source = draw(rng, z)
    low, high = config['spec']['resolving_power']
    if config['spec']['slitless']:  # a larger source smears the lines
        span = np.log10(max(source['size'], 0.1) / 0.1)
        source['resolving_power'] = high - (high - low) * span
    else:
        source['resolving_power'] = rng.uniform(low, high)
    source['mag'] = rng.uniform(*config['mag_range'])
    source['snr'] = loguniform(rng, *config['snr_range'])
    return source


def _observe(rng, config):
    """
    A source and its noiseless spectrum: redshifted, convolved, binned.

    Returns the source, the pixel values of the model and of its continuum
    (stellar absorption included) and, per emission line, the first pixel
    and the pixel values of its profile.
    """
    source = _draw_source(rng, config)
    grid, spec = config['grid'], config['spec']
    z, fine = source['z'], grid['fine']
    continuum = source['continuum'](fine / (1 + z)) / (1 + z)
    with np.errstate(divide='ignore', invalid='ignore'):
        source['line_ew'] = np.nan_to_num(
            source['line_flux'] / source['continuum'](source['line_wave']))
    scale = _flux_scale(source, continuum, grid)
    source['line_flux'] = source['line_flux'] * scale
    sigma_lsf = _FWHM_TO_SIGMA / source['resolving_power']
    smooth = gaussian_filter1d(continuum * scale,
                               sigma_lsf * _SUBPIXELS / spec['log_step'],
                               mode='nearest', truncate=5.0)
    binned = smooth[grid['inside']].reshape(grid['bin_weights'].shape)
    continuum = np.sum(binned * grid['bin_weights'], axis=1)
    model = continuum.copy()
    profiles = []
    for line_flux, first, profile in _line_profiles(source, grid['edges'],
                                                    sigma_lsf):
        model[first:first + profile.size] += profile
        if line_flux < 0:  # absorption belongs to the continuum
            continuum[first:first + profile.size] += profile
            profile = np.zeros(0)
        profiles.append((first, profile))
    return source, model, continuum, profiles


def _flux_scale(source, continuum, grid):
    """
    The factor that gives the continuum its magnitude.

    ``mag`` is the AB magnitude, at the band's central wavelength, of the
    continuum's mean f_lambda over the band (stellar absorption lines,
    which do not reach the edges, included).
    """
    inside = grid['fine'][grid['inside']]
    integral = np.sum(continuum[grid['inside']] * inside) / np.sum(inside)
    edges = grid['edges']
    width = edges[-1] - edges[0]
    observed = source['line_wave'] * (1 + source['z'])
    absorbed = (source['line_flux'] < 0) & (observed > edges[0]) & (
        observed < edges[-1])
    mean = integral + np.sum(source['line_flux'][absorbed]) / width
    centre = np.sqrt(edges[0] * edges[-1])
    target = (10 ** (-0.4 * (source['mag'] + 48.6)) * _C_ANGSTROM
              / centre ** 2 / 1e-17)
    return target / mean if mean > 0 else 0.0


def _line_profiles(source, edges, sigma_lsf):
    """
    Each line integrated over the pixels it reaches (Gaussian, its width
    and the instrument's in quadrature): its flux, first pixel, values.
    """
    for rest, line_flux, sigma_v in zip(source['line_wave'],
                                        source['line_flux'],
                                        source['line_sigma']):
        centre = rest * (1 + source['z'])
        sigma = centre * np.hypot(sigma_v / C_KMS, sigma_lsf)
        first, last = np.searchsorted(edges, [centre - 8 * sigma,
                                              centre + 8 * sigma])
        first, last = max(first - 1, 0), min(last, edges.size - 1)
        if line_flux == 0 or last <= first:
            yield line_flux, 0, np.zeros(0)
            continue
        window = edges[first:last + 1]
        yield line_flux, first, line_flux * np.diff(
            ndtr((window - centre) / sigma)) / np.diff(window)


_COLUMNS = (('kind', 'U6', None), ('z', float, None), ('mag', float, None),
            ('size', float, u.arcsec), ('resolving_power', float, None),
            *((f'weight_{name.lower()}', float, None)
              for name in CWW_TEMPLATES),
            ('ebv', float, None), ('ebv_gas', float, None),
            ('sigma_v', float, u.km / u.s),
            *((f'{q}_{line}', float, unit) for line in EMISSION_LINES
              for q, unit in (('flux', SPECTRUM_FLUX_UNIT * u.AA),
                              ('ew', u.AA))),
            ('snr', float, None), ('line_snr', float, None),
            ('strongest_line', 'U12', None), ('mask_fraction', float, None),
            ('gap', bool, None))


def _truth_row(source, noise):
    row = {'kind': source['kind'], 'z': source['z'], 'mag': source['mag'],
           'size': source['size'],
           'resolving_power': source['resolving_power'],
           'ebv': source.get('ebv', 0.0),
           'ebv_gas': source.get('ebv_gas', 0.0),
           'sigma_v': source.get('sigma_v', np.nan), 'snr': noise['snr'],
           'mask_fraction': noise['mask_fraction'], 'gap': noise['gap']}
    weights = source.get('weights', np.zeros(len(CWW_TEMPLATES)))
    for name, weight in zip(CWW_TEMPLATES, weights):
        row[f'weight_{name.lower()}'] = weight
    for line in EMISSION_LINES:
        row[f'flux_{line}'] = row[f'ew_{line}'] = 0.0
    for line, flux, ew in zip(source['line_names'], source['line_flux'],
                              source['line_ew']):
        if line in EMISSION_LINES:
            row[f'flux_{line}'], row[f'ew_{line}'] = flux, ew
    best = int(np.argmax(noise['line_snr']))
    row['line_snr'] = noise['line_snr'][best]
    row['strongest_line'] = (source['line_names'][best]
                             if row['line_snr'] > 0 else '')
    return row


def _truth_table(rows):
    table = QTable()
    for name, dtype, unit in _COLUMNS:
        column = np.array([row[name] for row in rows], dtype=dtype)
        table[name] = column * unit if unit is not None else column
    return table
