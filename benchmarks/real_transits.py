# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The shipped ``transit`` estimator on the real light curves of
``data/lightcurves`` (Kepler, K2 and TESS; see its README for the
sources and the known planets).

Prints every candidate with the known planet it matches (period within
0.1 %), counts the rows that are wrong without a flag (a known planet
with ``p_planet < 0.5``, or a signal that is no known planet with
``p_planet >= 0.5``, unflagged), and draws the local view of every
candidate with its verdict in ``docs/images/transits_real.png``.

Usage::

    python benchmarks/real_transits.py [--output docs/images]
"""

import argparse
import warnings
from pathlib import Path

import numpy as np

#: file -> (reader keywords, {planet name: period in days}).
FILES = {
    'wasp18b_lc.fits': ({}, {'WASP-18 b': 0.941452}),
    'tess2019032160000-s0008-0000000413248763-0136-s_lc.fits': (
        {}, {'GJ 357 b': 3.93072}),
    'tess2018234235059-s0002-0000000402026209-0121-s_lc.fits': (
        {}, {'WASP-4 b': 1.338231}),
    'hlsp_tess-data-alerts_tess_phot_00055652896-s01_tess_v1_lc.fits': (
        {}, {'TOI-216 b': 17.0968, 'TOI-216 c': 34.5516}),
    'EPIC201367065.csv': ({'time_format': 'bkjd', 'time_scale': 'tdb'},
                          {'K2-3 b': 10.05449, 'K2-3 c': 24.64638,
                           'K2-3 d': 44.5563}),
    # juliet's file adds a ground-based transit (LCOGT): K2's alone.
    'K2-140_lc.dat': ({'time_format': 'jd', 'time_scale': 'tdb',
                       'instrument': 'K2'},
                      {'K2-140 b': 6.56918}),
    'K2-32_lc.dat': ({'time_format': 'jd', 'time_scale': 'tdb'},
                     {'K2-32 b': 8.99213, 'K2-32 c': 20.66186,
                      'K2-32 d': 31.7142, 'K2-32 e': 4.34934}),
    'kplr010002792-2009259160929_llc.fits': ({}, {}),
    'kplr001430163-2010355172524_llc.fits': ({}, {}),
}


def known_planet(period, planets, tolerance=1e-3):
    """
    Name of the known planet at ``period`` (within ``tolerance``), with
    `` (P/2)`` or `` (2P)`` when the signal is found at half or twice the
    planet's period (still that planet's transits).
    """
    for suffix, factor in (('', 1.0), (' (P/2)', 0.5), (' (2P)', 2.0)):
        for name, true in planets.items():
            if abs(period - factor * true) <= tolerance * factor * true:
                return name + suffix
    return ''


def run(directory, n_samples=50):
    """``[(file, series, table, planets)]`` for every real light curve."""
    import astrodl_plugins as adl
    from astrodl_plugins.transits.io import read_light_curve

    vetter = adl.get_estimator('transit')
    out = []
    for name, (kwargs, planets) in FILES.items():
        series = read_light_curve(Path(directory) / name, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            table = vetter.predict(series, n_samples=n_samples, seed=0)
        out.append((name, series, table, planets))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--data', default='data/lightcurves')
    parser.add_argument('--output', default='docs/images')
    args = parser.parse_args()
    import matplotlib.pyplot as plt

    from astrodl_plugins.core.series import read_series
    from astrodl_plugins.transits import search
    from astrodl_plugins.transits.estimator import clean_series

    results = run(args.data)
    wrong = total = 0
    n_cols = max(len(table) for _, _, table, _ in results)
    figure, axes = plt.subplots(len(results), n_cols,
                                figsize=(2.6 * n_cols, 2.0 * len(results)),
                                squeeze=False)
    for r, (name, series, table, planets) in enumerate(results):
        print(name)
        s = read_series(series)[0]
        time, flux = clean_series(s)
        flat = search.detrend(time, flux)[0]
        for c in range(n_cols):
            axes[r, c].axis('off')
        for c, row in enumerate(table):
            period = float(row['period'].value)
            planet = known_planet(period, planets)
            p = float(row['p_planet'])
            flagged = int(row['flag']) != 0
            bad = (not flagged) and ((planet and p < 0.5)
                                     or (not planet and p >= 0.5))
            wrong += bad
            total += 1
            print(f"  {int(row['candidate'])} P={period:.5f} d "
                  f"depth={float(row['depth']):.0f} ppm "
                  f"snr={float(row['snr']):.1f} sde={float(row['sde']):.1f} "
                  f"p_planet={p:.3f}+-{float(row['p_planet_err']):.3f} "
                  f"flag={int(row['flag'])} ood={float(row['ood_score']):.2f}"
                  f" {planet or '-'}{'  WRONG, unflagged' if bad else ''}")
            t0 = float(getattr(row['t0'], s.time_scale or 'tdb').mjd)
            duration = float(row['duration'].value) / 24
            # The other candidates' transits masked, as the vetter saw it.
            shown = search.mask_transits(time, flat, [
                (float(o['period'].value),
                 float(getattr(o['t0'], s.time_scale or 'tdb').mjd),
                 float(o['duration'].value) / 24)
                for o in table if o['candidate'] != row['candidate']],
                keep=(period, t0, duration))
            phase = (time - t0 + 0.5 * period) % period - 0.5 * period
            near = np.abs(phase) < 3 * duration
            ax = axes[r, c]
            ax.axis('on')
            ax.plot(phase[near] * 24, (shown[near] - 1) * 1e6, '.', ms=1.5,
                    color='0.4')
            ax.set_title(f"P={period:.4g} d {planet or ''}\np_planet "
                         f"{p:.2f} flag {int(row['flag'])}", fontsize=7,
                         color='tab:red' if bad else 'k')
            ax.tick_params(labelsize=6)
        axes[r, 0].set_ylabel(name[:18], fontsize=7)
    figure.tight_layout()
    figure.savefig(Path(args.output) / 'transits_real.png', dpi=60)
    print(f'{wrong} of {total} rows wrong without a flag')


if __name__ == '__main__':
    main()
