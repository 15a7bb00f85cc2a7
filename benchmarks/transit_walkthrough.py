# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The docs' walk-through: a simulated Kepler star with two planets and a
background eclipsing binary, searched and vetted by ``transit``.

Writes ``docs/images/transit_walkthrough.png`` (the light curve and the
local view of each candidate with its verdict) and prints the table.

Usage::

    python benchmarks/transit_walkthrough.py [--output DIR]
"""

import argparse
import warnings
from pathlib import Path

import numpy as np


def make_star(seed=4):
    """A quiet Kepler long-cadence star (one quarter) with three signals."""
    from astropy import units as u

    from astrodl_plugins.simulate.transits import (
        simulate_light_curves,
        transit_model,
    )

    # 150 ppm per long cadence: a quiet Kepler star of about 13th mag.
    curves, _ = simulate_light_curves(1, seed=seed, mission='kepler-long',
                                      kinds=('noise',),
                                      noise_range=(150, 150))
    star = curves[0]
    time = star.time.mjd
    start = time[0]
    model = (
        # A sub-Neptune (about 600 ppm) and a Neptune (about 1800 ppm).
        transit_model(time, period=4.3, t0=start + 1.1, rp_rs=0.024,
                      a_rs=11.0, impact=0.3, supersample=7)
        * transit_model(time, period=11.7, t0=start + 5.3, rp_rs=0.042,
                        a_rs=22.0, impact=0.1, supersample=7))
    # A background eclipsing binary diluted a hundred times: a deep,
    # V-shaped primary and a secondary eclipse at phase 0.5.
    binary = transit_model(time, period=2.9, t0=start + 0.6, rp_rs=0.5,
                           a_rs=6.0, impact=0.85, secondary_depth=0.08,
                           supersample=7)
    dilution = 0.01
    model = model * (1 - dilution + dilution * binary)
    star['flux'] = star['flux'] * model
    truth = [('planet', 4.3), ('planet', 11.7), ('blended binary', 2.9)]
    return star, truth, u


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--output', default='docs/images')
    args = parser.parse_args()
    import matplotlib.pyplot as plt

    import astrodl_plugins as adl
    from astrodl_plugins.transits.io import plot_candidate

    warnings.simplefilter('ignore')
    star, truth, _ = make_star()
    vetter = adl.get_estimator('transit')
    table = vetter.predict(star, n_samples=50, seed=0)
    shown = table['candidate', 'period', 'duration', 'depth', 'snr', 'sde',
                  'p_planet', 'p_planet_err', 'flag']
    for name in ('duration', 'depth', 'snr', 'sde', 'p_planet',
                 'p_planet_err'):
        shown[name].info.format = '.3g'
    shown['period'].info.format = '.4f'
    print(shown)
    print('injected:', truth)
    output = Path(args.output)
    for row in table:
        figure = plot_candidate(star, row, others=table, title=f"candidate "
                                f"{int(row['candidate'])}")
        figure.savefig(output / f"transit_walkthrough_{int(row['candidate'])}"
                       '.png', dpi=70)
        plt.close(figure)
    figure, ax = plt.subplots(figsize=(10, 2.6))
    ax.plot(star.time.mjd, star['flux'] / np.nanmedian(star['flux']), ',',
            color='k')
    ax.set(xlabel='MJD (TDB)', ylabel='relative flux',
           title='simulated Kepler star: two planets and a blended binary')
    figure.tight_layout()
    figure.savefig(output / 'transit_walkthrough.png', dpi=70)
    plt.close(figure)


if __name__ == '__main__':
    main()
