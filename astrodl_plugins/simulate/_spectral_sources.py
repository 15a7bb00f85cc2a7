# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Rest-frame sources of the spectrum simulator: galaxies, stars and quasars.

Each ``draw_*`` function draws one source from a generator and returns a
dict: ``continuum`` (a function of rest-frame wavelength, Angstrom, giving
f_lambda in arbitrary units), the lines (``line_names``, rest-frame
vacuum ``line_wave`` in Angstrom, ``line_flux`` in the continuum's units
times Angstrom, negative for absorption, part of the continuum, and
intrinsic ``line_sigma`` in km/s) and the truth (``z``, mixture
``weights``, ``ebv``...).
"""

import functools

import numpy as np

from .common import loguniform, require_galsim

__all__ = ['EMISSION_LINES', 'CWW_TEMPLATES', 'calzetti_attenuation']

#: Galaxies' emission lines: rest-frame vacuum wavelengths, Angstrom.
EMISSION_LINES = {
    'oii_3726': 3727.09, 'oii_3729': 3729.88, 'neiii_3869': 3869.86,
    'hdelta': 4102.89, 'hgamma': 4341.68, 'hbeta': 4862.68,
    'oiii_4959': 4960.30, 'oiii_5007': 5008.24, 'nii_6548': 6549.86,
    'halpha': 6564.61, 'nii_6583': 6585.27, 'sii_6716': 6718.29,
    'sii_6731': 6732.67, 'siii_9069': 9071.1, 'siii_9531': 9533.2,
}
#: The Coleman, Wu & Weedman (1980) templates that GalSim ships (extended
#: to the UV and IR by Bolzonella et al. 2000), in mixture-weight order.
CWW_TEMPLATES = ('E', 'Sbc', 'Scd', 'Im')

C_KMS = 299792.458
# Case B recombination, T = 1e4 K, n_e = 100 cm^-3 (Osterbrock & Ferland
# 2006): Halpha / Hbeta, Hgamma / Hbeta and Hdelta / Hbeta.
_BALMER_DECREMENT = 2.86
_HGAMMA_HBETA, _HDELTA_HBETA = 0.468, 0.259
# Calzetti et al. (2000): the stellar continuum's colour excess is 0.44 of
# the ionized gas's.
_STELLAR_TO_GAS_EBV = 0.44
_NORM_WAVE = 5500.0
# Rest-frame windows (Angstrom) of the lines in the CWW templates: [OII],
# [NeIII], Hgamma, Hbeta, [OIII], Halpha + [NII], [SII].
_TEMPLATE_LINE_WINDOWS = ((3690.0, 3770.0), (3850.0, 3890.0),
                          (4320.0, 4360.0), (4830.0, 4890.0),
                          (4920.0, 5050.0), (6520.0, 6620.0),
                          (6700.0, 6750.0))
# Star-forming share of each template (E none): sets line strengths.
_SF_SHARE = np.array([0.0, 0.4, 0.7, 1.0])

# Stellar absorption of galaxies: rest vacuum wavelength (Angstrom) and EW
# (Angstrom) in the E, Sbc, Scd and Im populations; the templates' own
# are smeared over their 40-A sampling.
_GALAXY_ABSORPTION = {
    'caii_k': (3934.78, (8.0, 6.0, 3.0, 1.0)),
    'caii_h': (3969.59, (7.0, 5.0, 3.0, 1.0)),
    'hdelta_abs': (4102.89, (1.5, 3.0, 4.0, 3.0)),
    'g_band': (4305.6, (5.0, 4.0, 2.0, 0.5)),
    'hgamma_abs': (4341.68, (1.5, 3.0, 3.5, 3.0)),
    'hbeta_abs': (4862.68, (1.5, 2.5, 3.0, 2.5)),
    'mgb_5177': (5176.7, (5.0, 3.5, 2.0, 0.5)),
    'nad_5895': (5894.6, (3.0, 2.5, 1.5, 0.5)),
    'halpha_abs': (6564.61, (1.0, 2.0, 2.5, 2.0)),
    'cat_8500': (8500.36, (1.5, 1.3, 1.0, 0.6)),
    'cat_8544': (8544.44, (3.0, 2.5, 2.0, 1.2)),
    'cat_8665': (8664.52, (2.5, 2.0, 1.6, 1.0)),
}
_QSO_LINES = {  # rest vacuum wavelength, Angstrom; rest EW (Vanden Berk
    # et al. 2001 composite, rounded); broad (True) or narrow
    'lya_1216': (1215.67, 75.0, True), 'nv_1240': (1240.14, 15.0, True),
    'siiv_1400': (1399.8, 8.0, True), 'civ_1549': (1549.06, 24.0, True),
    'ciii_1909': (1908.73, 22.0, True), 'mgii_2799': (2798.75, 32.0, True),
    'hgamma': (4341.68, 14.0, True), 'hbeta': (4862.68, 46.0, True),
    'halpha': (6564.61, 195.0, True), 'oii_3729': (3728.48, 1.6, False),
    'oiii_5007': (5008.24, 13.0, False), 'oiii_4959': (4960.30, 4.4, False),
}
_STAR_LINES = {  # rest vacuum wavelength, Angstrom; peak EW, Angstrom;
    # hydrogen (True, peaking in A stars) or metal (cool stars)
    'halpha': (6564.61, 9.0, True), 'hbeta': (4862.68, 12.0, True),
    'hgamma': (4341.68, 12.0, True), 'hdelta': (4102.89, 12.0, True),
    'hepsilon': (3971.20, 10.0, True), 'h8': (3890.17, 8.0, True),
    'pabeta': (12821.6, 8.0, True), 'pagamma': (10941.1, 6.0, True),
    'padelta': (10052.1, 5.0, True), 'br10': (17366.9, 4.0, True),
    'br11': (16811.1, 4.0, True), 'br12': (16411.7, 3.5, True),
    'br13': (16113.8, 3.0, True), 'br14': (15884.9, 3.0, True),
    'caii_k': (3934.78, 16.0, False), 'caii_h': (3969.59, 12.0, False),
    'mgb_5177': (5176.7, 5.0, False), 'nad_5895': (5894.6, 4.0, False),
    'cat_8500': (8500.36, 2.5, False), 'cat_8544': (8544.44, 3.5, False),
    'cat_8665': (8664.52, 3.0, False), 'ki_12436': (12435.7, 1.5, False),
    'ki_12526': (12525.6, 1.5, False), 'ali_13127': (13127.0, 1.5, False),
    'mgi_15770': (15770.0, 1.2, False),
}


def calzetti_attenuation(wavelength, ebv):
    """
    Fraction of the light that the Calzetti et al. (2000) dust transmits.

    The starburst attenuation curve of Calzetti et al. (2000, ApJ 533,
    682, eq. 4), with R_V = 4.05:
    ``k = 2.659 (-1.857 + 1.040 / x) + R_V`` for 0.63 <= x <= 2.20 micron
    and ``k = 2.659 (-2.156 + 1.509 / x - 0.198 / x**2 + 0.011 / x**3) +
    R_V`` for 0.12 <= x < 0.63 micron, extended beyond those limits by the
    same formulas (clipped at k >= 0). The transmission is
    ``10 ** (-0.4 * k * ebv)``.

    Parameters
    ----------
    wavelength : float, array-like or `~astropy.units.Quantity`
        Rest-frame wavelength, Angstrom unless a Quantity.
    ebv : float or array-like
        Colour excess E(B-V), magnitudes (of the stellar continuum in
        Calzetti's use; pass the gas's, 1 / 0.44 times larger, for
        nebular lines).

    Returns
    -------
    transmission : float or `~numpy.ndarray`
        Between 0 and 1, broadcast from ``wavelength`` and ``ebv``.

    Examples
    --------
    >>> import numpy as np
    >>> from astrodl_plugins.simulate.spectra import calzetti_attenuation
    >>> k_v = -2.5 * np.log10(calzetti_attenuation(5500.0, 1.0))
    >>> print(f'{k_v:.2f}')
    4.05
    """
    if hasattr(wavelength, 'unit'):
        from astropy import units as u

        wavelength = wavelength.to_value(u.AA, equivalencies=u.spectral())
    x = np.asarray(wavelength, dtype=np.float64) / 1e4
    inverse = 1.0 / x
    k = np.where(x >= 0.63, 2.659 * (-1.857 + 1.040 * inverse) + 4.05,
                 2.659 * (-2.156 + 1.509 * inverse - 0.198 * inverse ** 2
                          + 0.011 * inverse ** 3) + 4.05)
    return 10.0 ** (-0.4 * np.clip(k, 0.0, None) * np.asarray(ebv))


@functools.lru_cache(maxsize=1)
def template_table():
    """
    The CWW templates, read through GalSim, on the union of their knots.

    Returns
    -------
    wave : `~numpy.ndarray`
        Rest-frame wavelengths, Angstrom (91-22050).
    photons : `~numpy.ndarray`
        ``(4, n)`` photon flux densities (GalSim's internal unit, linear
        between knots as GalSim interpolates), each scaled so that its
        f_lambda (photons / wavelength) is 1 at 5500 Angstrom.
    """
    galsim = require_galsim()
    seds = [galsim.SED(f'CWW_{name}_ext.sed', wave_type='Ang',
                       flux_type='flambda') for name in CWW_TEMPLATES]
    wave_nm = np.unique(np.concatenate([sed.wave_list for sed in seds]))
    wave = wave_nm * 10.0
    photons = np.array([sed(wave_nm) for sed in seds])
    # The Scd and Im templates hold emission lines smeared over 40-80 A;
    # the lines are added separately, so bridge those knots.
    lines = np.zeros(wave.size, dtype=bool)
    for low, high in _TEMPLATE_LINE_WINDOWS:
        lines |= (wave > low) & (wave < high)
    for row in photons:
        row[lines] = np.interp(wave[lines], wave[~lines],
                               row[~lines] / wave[~lines]) * wave[lines]
    photons *= (_NORM_WAVE / np.array([np.interp(_NORM_WAVE, wave, row)
                                       for row in photons]))[:, None]
    return wave, photons


def galaxy_continuum(weights, ebv):
    """f_lambda(rest wavelength) of a dust-attenuated template mixture."""
    wave, photons = template_table()
    mixture = np.asarray(weights) @ photons

    def continuum(rest_wave):
        return (np.interp(rest_wave, wave, mixture) / rest_wave
                * calzetti_attenuation(rest_wave, ebv))
    return continuum


def draw_galaxy(rng, z):
    """A galaxy: template mixture, dust and emission lines."""
    alpha = np.full(4, 0.25)
    dominant = rng.choice(4, 1 if rng.random() < 0.6 else 2, replace=False,
                          p=[0.3, 0.25, 0.25, 0.2])
    alpha[dominant] += 3.0
    weights = rng.dirichlet(alpha)
    # E-dominated galaxies are nearly dust free, star-forming ones dusty.
    ebv = 0.6 * (1 - 0.8 * weights[0]) * rng.beta(1.2, 2.0)
    ebv_gas = ebv / _STELLAR_TO_GAS_EBV
    continuum = galaxy_continuum(weights, ebv)
    sigma_v = rng.uniform(50.0, 250.0)
    star_forming = float(weights @ _SF_SHARE)
    names = list(EMISSION_LINES)
    line_wave = np.array([EMISSION_LINES[name] for name in names])
    if rng.random() < 0.05 + 0.85 * weights[0]:
        ew_halpha = 0.0
    else:  # 0.5-300 A, log-uniform-ish, stronger with more star formation
        ew_halpha = 0.5 * 600.0 ** rng.beta(1 + 4 * star_forming,
                                            1 + 4 * (1 - star_forming))
    ratios = _nebular_ratios(rng, weights)
    intrinsic = np.array([ratios[name] for name in names])
    # The EW of Halpha is over the attenuated continuum; the other lines
    # follow from the intrinsic ratios and the gas's attenuation.
    observed_halpha = ew_halpha * continuum(EMISSION_LINES['halpha'])
    intrinsic_halpha = observed_halpha / calzetti_attenuation(
        EMISSION_LINES['halpha'], ebv_gas)
    line_flux = (intrinsic * intrinsic_halpha
                 * calzetti_attenuation(line_wave, ebv_gas))
    absorption = list(_GALAXY_ABSORPTION)
    absorption_wave = np.array([_GALAXY_ABSORPTION[name][0]
                                for name in absorption])
    absorption_ew = (np.array([_GALAXY_ABSORPTION[name][1]
                               for name in absorption]) @ weights
                     * rng.uniform(0.7, 1.3, len(absorption)))
    # Balmer absorption is wide (A stars' wings); all of it shallower than
    # 80 % of the continuum.
    absorption_sigma = np.where(
        [name.endswith('_abs') for name in absorption], 400.0, sigma_v)
    absorption_sigma = np.maximum(absorption_sigma, C_KMS * absorption_ew / (
        0.8 * np.sqrt(2 * np.pi) * absorption_wave))
    return {'kind': 'galaxy', 'z': z, 'continuum': continuum,
            'line_names': names + absorption,
            'line_wave': np.concatenate([line_wave, absorption_wave]),
            'line_flux': np.concatenate([
                line_flux, -absorption_ew * continuum(absorption_wave)]),
            'line_sigma': np.concatenate([np.full(line_wave.size, sigma_v),
                                          absorption_sigma]),
            'weights': weights, 'ebv': ebv, 'ebv_gas': ebv_gas,
            'sigma_v': sigma_v, 'size': loguniform(rng, 0.1, 1.0)}


def _nebular_ratios(rng, weights):
    """Intrinsic (dust-free) line fluxes relative to Halpha."""
    # Metallicity from the type: massive Sbc galaxies sit at high
    # [NII]/Halpha, irregulars low, along the BPT star-forming sequence.
    star_forming = weights[1:].sum()
    young = (0.5 * weights[2] + weights[3]) / max(star_forming, 1e-12)
    x = np.clip(rng.normal(-0.35 - 0.9 * young, 0.2), -2.0, -0.3)
    # log [OIII]5007/Hbeta along the SDSS star-forming ridge, kept below
    # the Kauffmann et al. (2003) star-formation / AGN demarcation.
    y = 0.61 / (x + 0.08) + 1.1 + rng.normal(0.0, 0.12)
    y = np.clip(y, -1.0, min(1.0, 0.61 / (x - 0.05) + 1.3 - 0.05))
    hbeta = 1.0 / _BALMER_DECREMENT
    nii = 10.0 ** x
    oiii = 10.0 ** y * hbeta
    sii = 10.0 ** (-0.45 + 0.3 * (x + 0.5) + rng.normal(0.0, 0.1))
    sii_ratio = rng.uniform(1.1, 1.45)  # 6716 / 6731 (low density)
    oii = hbeta * 10.0 ** (0.45 - 0.4 * max(x + 0.7, 0.0)
                           + rng.normal(0.0, 0.15))
    oii_ratio = rng.uniform(1.1, 1.5)  # 3729 / 3726
    siii = 10.0 ** rng.normal(-0.7, 0.15)
    return {'halpha': 1.0, 'hbeta': hbeta,
            'hgamma': _HGAMMA_HBETA * hbeta, 'hdelta': _HDELTA_HBETA * hbeta,
            'nii_6583': nii, 'nii_6548': nii / 3.05,
            'oiii_5007': oiii, 'oiii_4959': oiii / 2.98,
            'neiii_3869': oiii * 10.0 ** rng.normal(-1.1, 0.08),
            'sii_6716': sii * sii_ratio / (1 + sii_ratio),
            'sii_6731': sii / (1 + sii_ratio),
            'oii_3729': oii * oii_ratio / (1 + oii_ratio),
            'oii_3726': oii / (1 + oii_ratio),
            'siii_9531': siii, 'siii_9069': siii / 2.47}


def draw_star(rng):
    """A star: a blackbody with hydrogen and metal absorption lines."""
    temperature = loguniform(rng, 3500.0, 12000.0)

    def continuum(rest_wave):
        return rest_wave ** -5.0 / np.expm1(1.4388e8 / (rest_wave
                                                         * temperature))
    names = list(_STAR_LINES)
    line_wave = np.array([_STAR_LINES[name][0] for name in names])
    peak = np.array([_STAR_LINES[name][1] for name in names])
    hydrogen = np.array([_STAR_LINES[name][2] for name in names])
    strength = np.where(
        hydrogen,
        np.exp(-0.5 * (np.log10(temperature / 9500.0) / 0.12) ** 2),
        np.clip((7500.0 - temperature) / 3000.0, 0.0, 1.0))
    ew = peak * strength * rng.uniform(0.6, 1.4, len(names))
    sigma = np.where(hydrogen, rng.uniform(400.0, 750.0), 60.0)
    # Wide enough that no line is deeper than 80% of the continuum.
    sigma = np.maximum(sigma, C_KMS * ew / (0.8 * np.sqrt(2 * np.pi)
                                             * line_wave))
    return {'kind': 'star', 'z': rng.uniform(-300.0, 300.0) / C_KMS,
            'continuum': continuum, 'line_names': names,
            'line_wave': line_wave,
            'line_flux': -ew * continuum(line_wave), 'line_sigma': sigma,
            'size': 0.0, 'temperature': temperature}


def draw_qso(rng, z):
    """A quasar: a power law, broad and narrow lines, the Lya forest."""
    slope = rng.normal(-0.44, 0.3)  # f_nu ~ nu^slope (Vanden Berk 2001)
    optical_depth = 0.0018  # Lya forest, tau = 0.0018 (1 + z_abs)^3.92

    def continuum(rest_wave):
        flux = (rest_wave / _NORM_WAVE) ** (-2.0 - slope)
        forest = np.exp(-optical_depth * (rest_wave * (1 + z) / 1215.67)
                        ** 3.92)
        flux = np.where(rest_wave < 1215.67, flux * forest, flux)
        return np.where(rest_wave < 912.0, 0.0, flux)
    names = list(_QSO_LINES)
    line_wave = np.array([_QSO_LINES[name][0] for name in names])
    ew = np.array([_QSO_LINES[name][1] for name in names])
    ew *= 10.0 ** (rng.normal(0.0, 0.2) + rng.normal(0.0, 0.1, ew.size))
    ew[names.index('oiii_4959')] = ew[names.index('oiii_5007')] / 2.98
    broad = np.array([_QSO_LINES[name][2] for name in names])
    fwhm = np.where(broad, rng.uniform(3000.0, 5000.0),
                    rng.uniform(300.0, 600.0))
    return {'kind': 'qso', 'z': z, 'continuum': continuum,
            'line_names': names, 'line_wave': line_wave,
            'line_flux': ew * continuum(line_wave),
            'line_sigma': fwhm / (2 * np.sqrt(2 * np.log(2))),
            'size': 0.0, 'slope': slope}
