# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The shipped ``transit`` preset: held-out simulated candidates, clear
planets and binaries, the command line, and the real light curves of
``data/lightcurves`` (Kepler, K2, TESS; see its README).
"""

import warnings

import numpy as np
import pytest
from astropy.table import QTable

import astrodl_plugins as adl
from astrodl_plugins.tests.shared_data import light_curve_path


@pytest.fixture(scope='module')
def vetter():
    return adl.get_estimator('transit')


@pytest.fixture(scope='module')
def held_out():
    pytest.importorskip('batman')
    from astrodl_plugins.transits.recipe import simulate_candidates

    # Seeds 10-32 made the shipped model's sets: 61 is held out.
    return simulate_candidates(120, seed=61, n_processes=1)


def test_held_out_candidates_are_separated(vetter, held_out):
    from astrodl_plugins.classification.evaluate import roc_auc
    from astrodl_plugins.transits.evaluate import vetter_inputs

    probabilities = vetter.mc_engine().sample(vetter_inputs(held_out), 10,
                                              seed=0)
    logits = probabilities.mean(axis=1)
    planet = np.asarray(held_out[3]['label']) == 'planet'
    assert 20 < planet.sum() < len(planet) - 20
    # The card's AUC (0.956) is measured on 2000 light curves; on these
    # ~150 candidates it scatters by a few hundredths: this checks that
    # the shipped weights separate the classes, not the last digit.
    assert roc_auc(planet, logits[:, 0] - logits[:, 1]) > 0.88


def _star(kind, seed=0):
    from astrodl_plugins.simulate.transits import simulate_light_curves

    curves, signals = simulate_light_curves(
        1, seed=seed, mission='tess-2min', kinds=(kind,),
        depth_range=(3000, 8000), noise_range=(300, 600))
    return curves[0], signals


def test_a_clear_planet_is_called_a_planet(vetter):
    pytest.importorskip('batman')
    star, signals = _star('planet', seed=3)
    table = vetter.predict(star, n_samples=20, seed=0)
    period = float(signals['period'][0].value) if hasattr(
        signals['period'][0], 'value') else float(signals['period'][0])
    found = [row for row in table
             if abs(row['period'].value - period) < 1e-3 * period]
    assert found, (table, signals)
    assert found[0]['p_planet'] > 0.5


def test_a_binary_is_not_called_a_planet(vetter):
    pytest.importorskip('batman')
    star, signals = _star('eb', seed=5)
    table = vetter.predict(star, n_samples=20, seed=0)
    assert len(table) >= 1
    strongest = table[table['candidate'] == 1][0]
    assert strongest['p_planet'] < 0.5 or strongest['flag'] != 0


# -- real light curves ------------------------------------------------------

#: Known planets of the real files (days): each must be found at its
#: period (within 0.1 %) and called a planet or flagged.
KNOWN = {
    'wasp18b_lc.fits': ({}, [0.941452]),
    'tess2019032160000-s0008-0000000413248763-0136-s_lc.fits': ({},
                                                               [3.93072]),
    'tess2018234235059-s0002-0000000402026209-0121-s_lc.fits': ({},
                                                               [1.338231]),
    # juliet's file adds a ground-based transit (LCOGT) to K2's.
    'K2-140_lc.dat': ({'time_format': 'jd', 'time_scale': 'tdb',
                       'instrument': 'K2'},
                      [6.56918]),
    'EPIC201367065.csv': ({'time_format': 'bkjd', 'time_scale': 'tdb'},
                          [10.05449, 24.64638]),
    'K2-32_lc.dat': ({'time_format': 'jd', 'time_scale': 'tdb'},
                     [8.99213, 20.66186]),
}

#: Stars without a known planet: nothing may be called a planet unflagged.
QUIET = ('kplr010002792-2009259160929_llc.fits',
         'kplr001430163-2010355172524_llc.fits')

#: Stars whose planets may show (or not) in the file: no signal at any
#: other period (or P/2, 2P) may be called a planet unflagged. TOI-216's
#: b (17.1 d) and c (34.6 d) transit at most twice and once in sector 1.
OTHERS = {'hlsp_tess-data-alerts_tess_phot_00055652896-s01_tess_v1_lc.fits':
          [17.0968, 34.5516]}


def _predict(vetter, name, **kwargs):
    from astrodl_plugins.transits.io import read_light_curve

    series = read_light_curve(light_curve_path(name), **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return vetter.predict(series, n_samples=20, seed=0)


@pytest.mark.parametrize('name', sorted(KNOWN))
def test_known_planets_are_found_and_not_rejected(vetter, name):
    kwargs, periods = KNOWN[name]
    table = _predict(vetter, name, **kwargs)
    for period in periods:
        rows = [row for row in table
                if abs(row['period'].value - period) <= 1e-3 * period]
        assert rows, (name, period, table['period'])
        row = rows[0]
        assert row['p_planet'] >= 0.5 or row['flag'] != 0, (name, row)


@pytest.mark.parametrize('name', QUIET)
def test_stars_without_planets_get_no_unflagged_planet(vetter, name):
    table = _predict(vetter, name)
    confident = (np.asarray(table['p_planet']) >= 0.5) & (
        np.asarray(table['flag']) == 0)
    assert not confident.any(), table


@pytest.mark.parametrize('name', sorted(OTHERS))
def test_signals_that_are_no_known_planet_are_not_called_planets(vetter,
                                                                 name):
    table = _predict(vetter, name)
    for row in table:
        period = row['period'].value
        known = any(abs(period - f * p) <= 1e-3 * f * p
                    for p in OTHERS[name] for f in (0.5, 1.0, 2.0))
        assert known or row['p_planet'] < 0.5 or row['flag'] != 0, row


# -- command line -----------------------------------------------------------


def test_command_line_writes_catalog_and_plots(tmp_path, capsys):
    from astrodl_plugins.cli import main

    path = light_curve_path('wasp18b_lc.fits')
    output = tmp_path / 'candidates.ecsv'
    status = main(['transit', str(path), '--output', str(output), '--plot',
                   '--n-samples', '5'])
    assert status == 0, capsys.readouterr()
    table = QTable.read(output)
    assert table['file'][0] == 'wasp18b_lc.fits'
    assert abs(table['period'][0].value - 0.941452) < 1e-3
    plots = sorted(p.name for p in tmp_path.glob('*.png'))
    assert plots[0] == 'wasp18b_lc_candidate1.png'
    # Nothing is overwritten without --overwrite, and nothing is lost.
    status = main(['transit', str(path), '--output', str(output), '--plot'])
    assert status == 2
    assert 'exists' in capsys.readouterr().err


def test_command_line_needs_the_time_scale_of_plain_times(tmp_path, capsys):
    from astrodl_plugins.cli import main

    path = light_curve_path('K2-140_lc.dat')
    status = main(['transit', str(path), '--instrument', 'K2'])
    assert status == 2
    err = capsys.readouterr().err
    assert 'plain numbers' in err and '--time-format' in err
    # K2 and a ground-based transit in one file: one must be picked.
    status = main(['transit', str(path), '--time-format', 'jd',
                   '--time-scale', 'tdb'])
    assert status == 2
    err = capsys.readouterr().err
    assert "'LCOGT' (98 rows)" in err and '--instrument' in err
