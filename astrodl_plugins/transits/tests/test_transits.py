# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The transit search, the views and the ``transit`` estimator's pipeline
(with a tiny untrained network: the shipped model is tested in
test_shipped.py).
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.time import Time
from astropy.timeseries import TimeSeries

from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.transits import search
from astrodl_plugins.transits.estimator import TransitVetter


def _box_curve(seed=0, *, periods=(3.7,), depths=(2000e-6,),
               durations=(3.0,), t0s=(1.3,), noise=300e-6, days=27.4,
               cadence=30.0, start=1500.0):
    """Times (days) and relative flux with box transits and white noise."""
    rng = np.random.default_rng(seed)
    time = start + np.arange(0.0, days, cadence / 1440.0)
    flux = 1.0 + rng.normal(0.0, noise, len(time))
    for period, depth, hours, t0 in zip(periods, depths, durations, t0s):
        phase = (time - start - t0 + 0.5 * period) % period - 0.5 * period
        flux[np.abs(phase) < hours / 48.0] -= depth
    return time, flux


def _series(time, flux, unit=u.electron / u.s, scale=1e4, quality=None):
    times = Time(time + 2400000.5, format='jd', scale='tdb')
    ts = TimeSeries(time=times)
    ts['flux'] = flux * scale * unit
    ts['flux_err'] = np.full(len(flux), 3e-4 * scale) * unit
    if quality is not None:
        ts['quality'] = quality
    return ts


@pytest.fixture(scope='module')
def vetter():
    """An untrained vetter with small views (the pipeline, not the model)."""
    import keras

    keras.utils.set_random_seed(0)
    estimator = TransitVetter(n_global=201, n_local=41, dense=8)
    estimator.model_ = estimator.build()
    estimator.card_ = {'valid_ranges': {'period': [0.5, 30.0],
                                        'depth': [50.0, 5e5],
                                        'duration': [0.3, 16.0]}}
    return estimator


# -- search -----------------------------------------------------------------


def test_search_finds_two_planets_at_their_periods():
    time, flux = _box_curve(periods=(3.7, 5.9), depths=(2500e-6, 1800e-6),
                            durations=(3.0, 4.0), t0s=(1.3, 2.2))
    found, flat = search.search_transits(time, flux)
    assert flat.shape == time.shape
    periods = sorted(c.period for c in found[:2])
    assert periods[0] == pytest.approx(3.7, rel=1e-3)
    assert periods[1] == pytest.approx(5.9, rel=1e-3)
    first = found[0]
    assert first.number == 1 and found[1].number == 2
    assert first.n_transits >= 4
    assert first.snr > 20 and first.sde > 7
    depth = 2500e-6 if abs(first.period - 3.7) < 0.01 else 1800e-6
    assert first.depth == pytest.approx(depth, rel=0.25)


def test_each_candidates_views_mask_the_others_transits():
    time, flux = _box_curve(periods=(3.7, 5.9), depths=(2500e-6, 1800e-6),
                            durations=(3.0, 4.0), t0s=(1.3, 2.2))
    found, flat = search.search_transits(time, flux)
    a, b = found[:2]
    own = search.mask_others(time, flat, a, found)
    b_transits = search._in_transit(time, b.period, b.t0, b.duration)
    a_transits = search._in_transit(time, a.period, a.t0, a.duration)
    b_zone = search._in_transit(time, b.period, b.t0, b.duration, 3.0)
    assert np.all(np.isnan(own[b_transits]))
    assert np.isfinite(own[a_transits & ~b_zone]).mean() > 0.95
    # The input is not changed, and a lone candidate sees everything.
    assert np.isfinite(flat[b_transits]).mean() > 0.95
    assert search.mask_others(time, flat, a, [a]) is flat


def test_a_signal_at_half_the_period_does_not_hide_the_transits():
    # A hot Jupiter's occultation folds at P / 2 once its transits are
    # masked; masking that candidate must not empty the planet's views.
    time, flux = _box_curve(periods=(1.7,), depths=(1e-2,),
                            durations=(2.5,), t0s=(0.4,), noise=100e-6)
    planet = search.Candidate(1.7, 1500.4, 2.5 / 24, 1e-2, 500.0, 30.0, 16)
    half = search.Candidate(0.85, 1500.4, 2.0 / 24, 4e-5, 8.0, 8.0, 32)
    seen = search.mask_others(time, flux, planet, [planet, half])
    inside = search._in_transit(time, 1.7, 1500.4, 2.5 / 24)
    assert np.isfinite(seen[inside]).all()
    _, local, _ = search.transit_views(time, seen, planet, n_global=201,
                                       n_local=41)
    assert local[20, 0] == pytest.approx(-1.0, abs=0.05)
    # The half-period signal's own view loses the planet's transits.
    other = search.mask_others(time, flux, half, [planet, half])
    assert np.isnan(other[inside & ~search._in_transit(
        time, 0.85, 1500.4, 2.0 / 24, 8.0)]).all()


def test_outlying_cadences_folded_together_are_not_a_candidate():
    # Two deep single-cadence outliers 6.1 days apart fold at 6.1 days:
    # the search drops them and finds the planet.
    time, flux = _box_curve(periods=(3.7,), depths=(800e-6,),
                            durations=(3.0,), t0s=(1.3,), seed=4)
    for k in (200, 200 + int(6.1 * 48)):
        flux[k] -= 0.02
    found, _ = search.search_transits(time, flux)
    assert found and found[0].period == pytest.approx(3.7, rel=1e-3)
    assert not any(abs(c.period / 6.1 - 1) < 0.01 for c in found)
    rng = np.random.default_rng(1)
    values = 1 + rng.normal(0, 1e-4, 400)
    stats = search.measure_candidate(time[:400], values, 2.0,
                                     time[0] + 0.5, 0.1, 1e-4)
    assert not search.outlier_driven(stats) or stats['depth'] <= 0
    values[[24, 120]] -= 0.01  # on two epochs of the fold
    stats = search.measure_candidate(time[:400], values, 2.0,
                                     time[24], 0.02, 1e-4)
    assert stats['depth'] > 0 and search.outlier_driven(stats)


def test_short_period_variability_is_subtracted_not_masked():
    # A 0.6-day sinusoid folds into a 'transit' whose mask would remove
    # most of the data: it is subtracted and the search goes on.
    time, flux = _box_curve(periods=(4.3,), depths=(1500e-6,),
                            durations=(3.0,), t0s=(2.0,), seed=2)
    flux = flux * (1 + 3e-3 * np.sin(2 * np.pi * time / 0.6))
    found, _ = search.search_transits(time, flux, spline_window=None,
                                      window=3.0)
    periods = [c.period for c in found]
    assert any(abs(p / 4.3 - 1) < 1e-3 for p in periods), periods
    first = found[0]
    active = np.ones(len(time), bool)
    out, still = search.remove_signal(time, flux, active, first)
    assert out is not flux and still is not active
    if 'profile' in first.extra:
        assert still.all()
    else:
        assert not still.all()


def test_search_on_noise_returns_few_weak_signals():
    time, flux = _box_curve(depths=(0.0,), seed=3)
    found, _ = search.search_transits(time, flux, min_sde=9.0, min_snr=7.0)
    assert all(c.snr < 12 for c in found)


def test_period_grid_stays_small_for_long_baselines():
    """Ofir's grid: a four-year Kepler light curve is not a memory bomb."""
    grid = search.period_grid(1460.0, period_min=0.5, period_max=30.0)
    assert 1e4 < len(grid) < 5e5
    assert np.all(np.diff(grid) > 0)
    assert grid[0] >= 0.5 and grid[-1] <= 30.0


def test_period_grid_reaches_period_min_below_the_tls_limit():
    # transitleastsquares' grid stops at 0.6 d (three solar radii); an
    # ultra-short-period planet at 0.55 d must be on the grid.
    grid = search.period_grid(27.4, period_min=0.3, period_max=5.0)
    assert grid[0] == pytest.approx(0.3, rel=0.01) and grid[0] >= 0.3
    x = grid ** (-1 / 3)
    steps = np.abs(np.diff(x))
    assert steps.max() < 1.5 * np.median(steps)  # one step, no seam
    assert np.all(np.diff(grid) > 0)


def test_ultra_short_period_planet_is_found_at_its_period():
    time, flux = _box_curve(periods=(0.55,), depths=(1500e-6,),
                            durations=(1.0,), t0s=(0.2,))
    found, _ = search.search_transits(time, flux, max_candidates=1)
    assert found[0].period == pytest.approx(0.55, rel=1e-3)


def _spotted(time, period, amplitude):
    """Spot modulation: a rotation period and its first harmonic."""
    phase = 2 * np.pi * (time - time[0]) / period
    return 1 + amplitude * (np.sin(phase) + 0.4 * np.sin(2 * phase + 1.0))


def test_fast_rotator_is_detrended_with_the_spline():
    time, flux = _box_curve(periods=(4.3,), depths=(1500e-6,),
                            durations=(2.5,), t0s=(1.1,), noise=200e-6)
    spotted = flux * _spotted(time, 2.0, 6000e-6)
    flat, trend, used = search.detrend(time, spotted)
    assert used == 'hspline 0.3 d'
    # The planet is found first, not the spots; the biweight alone
    # leaves them in and the search finds them instead.
    found, _ = search.search_transits(time, spotted, max_candidates=1)
    assert found[0].period == pytest.approx(4.3, rel=1e-3)
    assert found[0].extra['detrending'] == 'hspline 0.3 d'
    lost, _ = search.search_transits(time, spotted, max_candidates=1,
                                     spline_window=None)
    assert lost[0].period != pytest.approx(4.3, rel=1e-2)


def test_quiet_and_slowly_rotating_stars_keep_the_biweight():
    time, flux = _box_curve(periods=(4.3,), depths=(1500e-6,),
                            durations=(6.0,), t0s=(1.1,), noise=200e-6)
    flat, _, used = search.detrend(time, flux)
    assert used == 'biweight 1 d'
    # The 6-hour transits keep their depth.
    inside = search._in_transit(time, 4.3, 1501.1, 5.0 / 24)
    assert 1 - np.nanmean(flat[inside]) == pytest.approx(1500e-6, rel=0.05)
    slow = flux * _spotted(time, 12.0, 5000e-6)
    assert search.detrend(time, slow)[2] == 'biweight 1 d'


def test_views_put_the_transit_at_minus_one():
    time, flux = _box_curve(depths=(3000e-6,), noise=100e-6)
    found, flat = search.search_transits(time, flux, max_candidates=1)
    global_view, local, scalars = search.transit_views(time, flat, found[0])
    assert global_view.shape == (2001,)
    assert local.shape == (201, 4)
    assert scalars.shape == (len(search.SCALAR_NAMES),)
    centre = local[95:106, 0]
    assert np.median(centre) == pytest.approx(-1.0, abs=0.2)
    assert abs(np.median(local[:30, 0])) < 0.1
    # No secondary eclipse: the secondary view stays near 0.
    assert np.median(local[95:106, 3]) > -0.3


def test_odd_even_views_differ_for_alternating_eclipses():
    # An eclipsing binary at twice the period with unequal eclipses: a
    # search at the half period sees odd and even depths that differ.
    time, flux = _box_curve(periods=(7.4,), depths=(6000e-6,), noise=100e-6)
    phase = (time - 1500.0 - 1.3 - 3.7 + 3.7) % 7.4 - 3.7
    flux[np.abs(phase) < 3.0 / 48.0] -= 2000e-6
    candidate = search.Candidate(3.7, 1500.0 + 1.3, 3.0 / 24, 4000e-6,
                                 50.0, 20.0, 7)
    flat = search.detrend(time, flux)[0]
    _, local, _ = search.transit_views(time, flat, candidate)
    odd, even = np.median(local[95:106, 1]), np.median(local[95:106, 2])
    assert abs(odd - even) > 0.5


# -- estimator --------------------------------------------------------------


def test_predict_returns_one_row_per_candidate(vetter):
    time, flux = _box_curve(periods=(3.7, 5.9), depths=(2500e-6, 1800e-6),
                            durations=(3.0, 4.0), t0s=(1.3, 2.2))
    table = vetter.predict(_series(time, flux), n_samples=5, seed=0,
                           max_candidates=2)
    assert len(table) == 2
    assert list(table['index']) == [0, 0]
    assert list(table['candidate']) == [1, 2]
    for name in ('period', 't0', 'duration', 'depth', 'snr', 'sde',
                 'n_transits', 'p_planet', 'p_planet_err', 'entropy',
                 'flag'):
        assert name in table.colnames
    assert table['period'].unit == u.day
    assert table['duration'].unit == u.hour
    assert isinstance(table['t0'], Time) and table['t0'].scale == 'tdb'
    # t0 is a mid-transit time of the candidate.
    period = table['period'][0].to_value(u.day)
    t0 = table['t0'][0].mjd - 1500.0
    t0_true = 1.3 if abs(period - 3.7) < 0.01 else 2.2
    assert abs((t0 - t0_true + period / 2) % period - period / 2) < 0.05
    assert np.all((table['p_planet'] >= 0) & (table['p_planet'] <= 1))
    assert table.meta['search']['method'] == 'bls'
    assert table.meta['depth_unit'] == 'ppm'


def test_flux_unit_and_scale_do_not_matter(vetter):
    time, flux = _box_curve()
    a = vetter.predict(_series(time, flux), n_samples=3, seed=1)
    b = vetter.predict(_series(time, flux, unit=u.Jy, scale=3.0),
                       n_samples=3, seed=1)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a['period'].value, b['period'].value)
    np.testing.assert_allclose(a['p_planet'], b['p_planet'], atol=1e-5)


def test_unsorted_and_repeated_times_give_the_sorted_answer(vetter):
    time, flux = _box_curve()
    order = np.random.default_rng(0).permutation(len(time))
    repeated = np.concatenate([order, order[:50]])
    shuffled = _series(time[repeated], flux[repeated])
    given = shuffled['flux'].copy()
    a = vetter.predict(_series(time, flux), n_samples=3, seed=2)
    b = vetter.predict(shuffled, n_samples=3, seed=2)
    np.testing.assert_allclose(a['period'].value, b['period'].value)
    np.testing.assert_allclose(a['p_planet'], b['p_planet'], atol=1e-5)
    # The input is not modified.
    assert np.all(shuffled['flux'] == given)


def test_quality_flagged_cadences_are_masked(vetter):
    time, flux = _box_curve(depths=(3000e-6,))
    bad = flux.copy()
    quality = np.zeros(len(time), np.int32)
    # Corrupted cadences flagged by the mission (desaturation events):
    # masked; stray-light bits (informational) are not.
    quality[::37] = 32
    bad[::37] = 0.2
    quality[5::41] = 2048
    a = vetter.predict(_series(time, flux), n_samples=3, seed=3)
    b = vetter.predict(_series(time, bad, quality=quality), n_samples=3,
                       seed=3)
    assert b['period'][0].value == pytest.approx(a['period'][0].value,
                                                 rel=1e-3)
    assert not np.any(b['flag'] & SourceFlags.MASKED)


def test_bad_light_curve_in_a_batch_is_a_flagged_row(vetter):
    time, flux = _box_curve()
    empty = _series(time, np.full(len(time), np.nan))
    table = vetter.predict([_series(time, flux), empty], n_samples=3,
                           seed=0)
    assert 1 in table['index']
    row = table[table['index'] == 1]
    assert len(row) == 1
    assert row['flag'][0] & SourceFlags.UNUSABLE
    assert np.isnan(row['p_planet'][0])
    assert np.all(table[table['index'] == 0]['flag']
                  & SourceFlags.UNUSABLE == 0)


@pytest.mark.parametrize('make, match', [
    (lambda t, f: _series(t, np.full(len(t), np.nan)), 'good cadences'),
    (lambda t, f: _series(t[:40], f[:40]), 'fewer than 50'),
    (lambda t, f: _series(t, f - 1.0), 'median flux is not positive'),
    (lambda t, f: f * u.electron / u.s, 'no times'),
    # 0.4 days: not two transits even at period_min = 0.5 days.
    (lambda t, f: _series(t[0] + np.linspace(0.0, 0.4, 300),
                          np.ones(300)),
     'too short for two transits at period_min=0.5'),
])
def test_a_single_bad_light_curve_is_a_clear_error(vetter, make, match):
    time, flux = _box_curve()
    with pytest.raises(ValueError, match=match):
        vetter.predict(make(time, flux), n_samples=2)


def test_no_signal_gives_no_rows(vetter):
    time, flux = _box_curve(depths=(0.0,), seed=5)
    table = vetter.predict(_series(time, flux), n_samples=2, seed=0,
                           min_sde=50.0)
    assert len(table) == 0
    assert 'p_planet' in table.colnames


@pytest.mark.parametrize('options, match', [
    ({'method': 'fft'}, "method must be 'bls' or 'tls'"),
    ({'period_min': -1}, 'period_min must be a positive number'),
    ({'period_min': 5.0, 'period_max': 2.0}, 'must exceed period_min'),
    ({'max_candidates': 0}, 'max_candidates must be an integer >= 1'),
    ({'min_transits': 1}, 'min_transits must be an integer >= 2'),
    ({'window': 'wide'}, 'window must be a positive number'),
    ({'spline_window': 0}, r'spline_window must be a positive number.*None'),
])
def test_bad_search_options_are_refused(vetter, options, match):
    time, flux = _box_curve()
    with pytest.raises(ValueError, match=match):
        vetter.predict(_series(time, flux), n_samples=2, **options)


def test_two_different_single_transits_paired_are_flagged(vetter):
    # The single transits of two planets (8000 and 1500 ppm), 11.2 days
    # apart: the search pairs them; too few transits to double the
    # period, so the candidate is flagged, not trusted.
    time, flux = _box_curve(depths=(0.0,), noise=200e-6)
    for centre, depth in ((1505.0, 8000e-6), (1516.2, 1500e-6)):
        flux[np.abs(time - centre) < 2.0 / 24] -= depth
    table = vetter.predict(_series(time, flux), n_samples=3, seed=0,
                           max_candidates=1)
    assert table['period'][0].to_value(u.day) == pytest.approx(11.2,
                                                               rel=1e-2)
    assert table['flag'][0] & SourceFlags.PERIOD_ALIAS
    # A planet's equal transits are not.
    time, flux = _box_curve(periods=(3.7,), depths=(2500e-6,))
    table = vetter.predict(_series(time, flux), n_samples=3, seed=0,
                           max_candidates=1)
    assert not table['flag'][0] & SourceFlags.PERIOD_ALIAS


@pytest.mark.parametrize('odd, even, sigma, expected', [
    (0.0024, 0.0172, 43.0, True),   # two bodies' transits, or 2P
    (0.0100, 0.0090, 3.0, False),   # a planet within the noise
    (0.0020, 0.0100, 4.0, False),   # not significant
    (0.0050, 0.0100, 20.0, False),  # a binary's unequal eclipses at P
    (np.nan, 0.0100, 0.0, False),   # one parity without data
])
def test_alternating(odd, even, sigma, expected):
    stats = {'depth_odd': odd, 'depth_even': even, 'odd_even_sigma': sigma}
    assert search.alternating(stats) is expected


def test_unknown_keyword_is_refused(vetter):
    time, flux = _box_curve()
    with pytest.raises(TypeError, match='unexpected keyword'):
        vetter.predict(_series(time, flux), n_samples=2, period=3.0)


def test_a_long_period_beyond_the_baseline_is_not_a_candidate(vetter):
    # One transit only in the light curve: no periodic candidate.
    time, flux = _box_curve(periods=(40.0,), depths=(5000e-6,), t0s=(10.0,))
    table = vetter.predict(_series(time, flux), n_samples=2, seed=0,
                           min_sde=9.0)
    assert np.all(table['n_transits'] >= 2)


# -- reading files ----------------------------------------------------------


def _two_instrument_file(tmp_path):
    time, flux = _box_curve()
    lines = [f'{t + 2400000.5:.6f} {f:.7f} 0.0003 {"K2" if k % 10 else "LCOGT"}'
             for k, (t, f) in enumerate(zip(time, flux))]
    path = tmp_path / 'mixed_lc.dat'
    path.write_text('\n'.join(lines) + '\n')
    return path, len(time)


def test_a_table_of_several_instruments_needs_one_picked(tmp_path):
    from astrodl_plugins.transits.io import read_light_curve

    path, n = _two_instrument_file(tmp_path)
    with pytest.raises(ValueError, match=r"several instruments .*'K2' "
                                         r"\(\d+ rows\), 'LCOGT'.*"
                                         'instrument='):
        read_light_curve(path, time_format='jd', time_scale='tdb')
    k2 = read_light_curve(path, time_format='jd', time_scale='tdb',
                          instrument='K2')
    lcogt = read_light_curve(path, time_format='jd', time_scale='tdb',
                             instrument='LCOGT')
    assert len(k2) + len(lcogt) == n and len(lcogt) == -(-n // 10)
    with pytest.raises(ValueError, match="instrument='TESS' is not in"):
        read_light_curve(path, time_format='jd', time_scale='tdb',
                         instrument='TESS')


def test_instrument_of_a_single_instrument_table(tmp_path):
    from astrodl_plugins.transits.io import read_light_curve

    time, flux = _box_curve()
    path = tmp_path / 'plain.csv'
    path.write_text('time,flux\n' + '\n'.join(
        f'{t:.6f},{f:.7f}' for t, f in zip(time, flux)) + '\n')
    with pytest.raises(ValueError, match='no text column of instruments'):
        read_light_curve(path, time_format='mjd', time_scale='tdb',
                         instrument='K2')
    assert len(read_light_curve(path, time_format='mjd',
                                time_scale='tdb')) == len(time)


def _card_with_snr_table(aucs):
    return {'valid_ranges': {'period': [0.5, 30.0], 'depth': [50.0, 5e5],
                             'duration': [0.3, 16.0]},
            'tables': [{'title': 'Held-out candidates by S/N',
                        'header': ['S/N', 'planets', 'recall at 0.5',
                                   'false positives', 'AUC'],
                        'rows': [[band, 10, '0.9', 10, auc] for band, auc
                                 in zip(['6-10', '10-20', '20-50', '50-inf'],
                                        aucs)]}]}


@pytest.mark.parametrize('aucs, expected', [
    (['0.90', '0.94', '0.98', '0.99'], 20.0),
    (['0.96', '0.94', '0.98', '0.99'], 20.0),   # reliable from 20 up only
    (['0.96', '0.97', '0.98', '0.99'], 6.0),
    (['', '0.97', '0.98', '0.99'], 10.0),       # an empty band is skipped
    (['0.9', '0.9', '0.9', '0.9'], np.inf),
])
def test_reliable_snr_from_the_card(aucs, expected):
    estimator = TransitVetter()
    estimator.card_ = _card_with_snr_table(aucs)
    assert estimator.reliable_snr() == expected


def test_weak_candidates_are_flagged_low_snr(vetter):
    time, flux = _box_curve(depths=(2000e-6,))
    card = vetter.card_
    try:
        vetter.card_ = _card_with_snr_table(['0.9', '0.9', '0.9', '0.99'])
        table = vetter.predict(_series(time, flux), n_samples=2, seed=0)
        assert table.meta['reliable_snr'] == 50.0
        weak = np.asarray(table['snr']) < 50
        assert weak.any()
        low = (np.asarray(table['flag']) & SourceFlags.LOW_SNR) != 0
        np.testing.assert_array_equal(low, weak)
    finally:
        vetter.card_ = card
    assert 'reliable_snr' not in vetter.predict(
        _series(time, flux), n_samples=2, seed=0).meta


def test_long_file_names_are_shortened_on_screen_only():
    from astrodl_plugins.cli import _short_name

    name = 'tess2018234235059-s0002-0000000402026209-0121-s_lc.fits'
    short = _short_name(name)
    assert len(short) == 28 and short.startswith('tess2018234')
    assert short.endswith('s_lc.fits') and '...' in short
    assert _short_name('wasp18b_lc.fits') == 'wasp18b_lc.fits'
