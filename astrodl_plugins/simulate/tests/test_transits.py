# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the light-curve simulator."""

import numpy as np
import pytest

pytest.importorskip('batman')

from astropy import units as u  # noqa: E402
from astropy.timeseries import TimeSeries  # noqa: E402

from astrodl_plugins.simulate.transits import (  # noqa: E402
    KINDS,
    MISSIONS,
    QualityFlags,
    simulate_light_curve_arrays,
    simulate_light_curves,
    transit_model,
)


def t14(period, a_rs, rp_rs, impact):
    sin_i = np.sqrt(1 - (impact / a_rs) ** 2)
    return period / np.pi * np.arcsin(
        np.sqrt((1 + rp_rs) ** 2 - impact ** 2) / (a_rs * sin_i))


def folded_depths(curve, row, period, t0):
    """Median depths in the middle of each transit at ``period``, relative to
    a quadratic fit to the flux around it, per epoch."""
    time, flux = curve['time'], curve['flux']
    good = curve['quality'] == 0
    duration = row['duration'] / 24
    epochs = np.round((time - t0) / period)
    offset = time - t0 - epochs * period
    depths = {}
    for epoch in np.unique(epochs):
        this = good & (epochs == epoch)
        inside = this & (np.abs(offset) < duration / 4)
        outside = this & (np.abs(offset) > 0.75 * duration) & (
            np.abs(offset) < 2.0 * duration)
        if (inside.sum() >= 3 and np.any(outside & (offset < 0))
                and np.any(outside & (offset > 0))):
            baseline = np.polyval(np.polyfit(offset[outside], flux[outside], 2),
                                  offset[inside])
            depths[int(epoch)] = 1 - np.median(flux[inside] / baseline)
    return depths


class TestTransitModel:
    def test_depth_and_out_of_transit(self):
        time = np.linspace(-0.5, 0.5, 2001)
        flux = transit_model(time, period=3.0, t0=0.0, rp_rs=0.1, a_rs=10.0,
                             impact=0.0, u=(0.0, 0.0))
        assert flux.min() == pytest.approx(1 - 0.1 ** 2, rel=1e-3)
        assert flux[0] == 1.0 and flux[-1] == 1.0

    def test_duration_is_t14(self):
        time = np.linspace(-0.3, 0.3, 60001)
        for impact in (0.0, 0.5, 0.85):
            flux = transit_model(time, period=5.0, t0=0.0, rp_rs=0.08,
                                 a_rs=12.0, impact=impact)
            inside = time[flux < 1]
            measured = inside[-1] - inside[0]
            assert measured == pytest.approx(t14(5.0, 12.0, 0.08, impact),
                                             rel=2e-3)

    def test_secondary_eclipse(self):
        time = np.linspace(0.0, 4.0, 4001)
        flux = transit_model(time, period=4.0, t0=0.0, rp_rs=0.3, a_rs=8.0,
                             impact=0.2, secondary_depth=0.05,
                             secondary_phase=0.45)
        at = np.argmin(np.abs(time - 1.8))
        assert flux[at] == pytest.approx(0.95, abs=1e-6)
        assert flux[np.argmin(np.abs(time - 2.0))] == 1.0

    def test_supersampling_smears(self):
        time = np.arange(-0.3, 0.3, 0.001)
        sharp = transit_model(time, period=3.0, t0=0.0, rp_rs=0.1, a_rs=10.0,
                              impact=0.3)
        smooth = transit_model(time, period=3.0, t0=0.0, rp_rs=0.1,
                               a_rs=10.0, impact=0.3, supersample=15,
                               exposure=0.0204)
        assert smooth.min() > sharp.min()
        # Ingress and egress are spread over the exposure (20 steps).
        assert np.sum(smooth < 1) >= np.sum(sharp < 1) + 15
        assert np.sum(1 - smooth) == pytest.approx(np.sum(1 - sharp), rel=0.01)
        with pytest.raises(ValueError, match='exposure'):
            transit_model([0.0], period=3.0, t0=0.0, rp_rs=0.1, a_rs=10.0,
                          impact=0.3, supersample=7)

    def test_bad_geometry(self):
        with pytest.raises(ValueError, match='impact'):
            transit_model([0.0], period=3.0, t0=0.0, rp_rs=0.1, a_rs=2.0,
                          impact=3.0)


class TestSimulateLightCurveArrays:
    def test_reproducible_and_independent_of_n(self):
        a, sa = simulate_light_curve_arrays(6, seed=7)
        b, sb = simulate_light_curve_arrays(3, seed=7)
        c, _ = simulate_light_curve_arrays(3, seed=8)
        for key in ('time', 'flux', 'flux_err', 'quality'):
            for i in range(3):
                assert np.array_equal(a[i][key], b[i][key])
        assert np.array_equal(sa[sa['curve'] < 3]['depth'], sb['depth'])
        assert not np.array_equal(a[0]['flux'][:100], c[0]['flux'][:100])

    @pytest.mark.parametrize('mission', list(MISSIONS))
    def test_arrays(self, mission):
        curves, signals = simulate_light_curve_arrays(3, seed=1,
                                                      mission=mission)
        spec = MISSIONS[mission]
        step = spec['cadence'] / 1440
        low, high = spec['start_range']
        for curve in curves:
            time = curve['time']
            assert time.dtype == np.float64 and curve['flux'].dtype == np.float64
            assert curve['flux_err'].dtype == np.float64
            assert curve['quality'].dtype == np.int32
            assert (time.shape == curve['flux'].shape == curve['flux_err'].shape
                    == curve['quality'].shape)
            steps = np.diff(time)
            assert np.all(steps > 0)
            assert np.allclose(steps / step, np.round(steps / step), atol=1e-6)
            assert steps.max() > 0.5  # a downlink gap
            assert time[-1] - time[0] == pytest.approx(spec['baseline'],
                                                       abs=step * 1.5)
            assert low <= time[0] <= high
            good = curve['quality'] == 0
            assert np.median(curve['flux'][good]) == pytest.approx(1.0)
            assert np.all(curve['flux_err'] > 0)
            assert curve['mission'] == mission and curve['kind'] in KINDS
            assert curve['noise_ppm'] > 0 and curve['cdpp_ppm'] > 0

    def test_quality_flags(self):
        curves, _ = simulate_light_curve_arrays(10, seed=2, kinds=['noise'])
        quality = np.concatenate([curve['quality'] for curve in curves])
        desat = quality & QualityFlags.DESAT > 0
        assert 0.003 < desat.mean() < 0.02  # one cadence every ~3 days
        assert np.any(quality & QualityFlags.MANUAL_EXCLUDE)
        other = quality & ~(QualityFlags.DESAT | QualityFlags.MANUAL_EXCLUDE)
        assert 0.002 < np.mean(other > 0) < 0.01

    def test_noise_level(self):
        curves, _ = simulate_light_curve_arrays(10, seed=3, kinds=['noise'],
                                                mission='tess-2min')
        for curve in curves:
            diff = np.diff(curve['flux'][curve['quality'] == 0])
            sigma = 1.4826 * np.median(np.abs(diff)) / np.sqrt(2) * 1e6
            assert 0.85 < sigma / curve['noise_ppm'] < 1.4
            assert curve['cdpp_ppm'] < curve['noise_ppm']

    def test_kinds_and_fractions(self):
        curves, signals = simulate_light_curve_arrays(300, seed=4)
        kinds = np.array([curve['kind'] for curve in curves])
        assert set(kinds) == set(KINDS)
        assert 0.3 < np.mean(kinds == 'planet') < 0.5
        signal_curves = set(signals['curve'])
        for index, kind in enumerate(kinds):
            assert (index in signal_curves) == (kind in ('planet', 'eb', 'beb'))
        assert set(signals['kind']) == {'planet', 'eb', 'beb'}
        per_curve = np.bincount(signals['curve'][signals['kind'] == 'planet'])
        assert per_curve.max() <= 3
        curves, signals = simulate_light_curve_arrays(
            20, seed=4, kinds=['noise', 'variable'], fractions={'noise': 1.0})
        assert {curve['kind'] for curve in curves} == {'noise'}
        assert len(signals) == 0 and 'depth' in signals.colnames

    def test_periods_and_durations(self):
        curves, signals = simulate_light_curve_arrays(
            60, seed=5, kinds=['planet', 'eb'], period_range=(1.0, 40.0),
            min_transits=3)
        assert np.all(signals['period'] >= 1.0)
        assert np.all(signals['period'] <= (90.0 - 0.03) / 2)
        for row in signals:
            time = curves[row['curve']]['time']
            assert time[0] <= row['t0'] < time[0] + row['period']
            assert row['t0'] + 2 * row['period'] <= time[-1]
            expected = t14(row['period'], row['a_rs'], row['rp_rs'],
                           row['impact']) * 24
            assert row['duration'] == pytest.approx(expected, rel=1e-9)
        planets = signals[signals['kind'] == 'planet']
        density = (planets['a_rs'] / 4.2083) ** 3 / planets['period'] ** 2
        assert np.all((density > 0.29) & (density < 3.01))
        assert np.all((planets['impact'] >= 0) & (planets['impact'] <= 0.9))
        assert np.all(planets['odd_even'] == 1)
        # A planet's occultation is a small fraction of its transit (it
        # shows only for hot giants).
        assert np.all(planets['secondary_depth'] >= 0)
        assert np.all(planets['secondary_depth'] < 0.25 * planets['depth'])
        assert np.all(planets['search_period'] == planets['period'])

    def test_planet_depth_recovered(self):
        curves, signals = simulate_light_curve_arrays(
            30, seed=6, kinds=['planet'], mission='tess-2min',
            noise_range=(20, 40), depth_range=(2000, 20000),
            period_range=(1.0, 5.0))
        ratios = []
        for row in signals[signals['impact'] < 0.7]:
            depths = folded_depths(curves[row['curve']], row, row['period'],
                                   row['t0'])
            if len(depths) >= 2:
                ratios.append(np.median(list(depths.values())) * 1e6
                              / row['depth'])
        ratios = np.array(ratios)
        assert len(ratios) >= 10
        # A quadratic baseline cannot follow the fastest, strongest spot
        # modulation (1-day rotation, 2 %): most, not all, are within 10 %.
        assert np.median(ratios) == pytest.approx(1.0, abs=0.05)
        assert np.mean(np.abs(ratios - 1) < 0.1) >= 0.8
        assert np.all(signals['snr'] > 0) and np.all(signals['n_transits'] > 0)

    def test_hot_giants_show_their_occultation(self):
        _, signals = simulate_light_curve_arrays(
            30, seed=2, kinds=['planet'], mission='tess-2min',
            depth_range=(8000, 20000), period_range=(0.5, 1.5))
        hot = signals[(signals['rp_rs'] > 0.08) & (signals['a_rs'] < 4)]
        assert len(hot) >= 5
        # Tens to hundreds of ppm (WASP-18 b: about 340 ppm in TESS).
        assert np.all(hot['secondary_depth'] > 20)
        assert np.all(hot['secondary_depth'] < 2000)

    def test_similar_eb_odd_even(self):
        curves, signals = simulate_light_curve_arrays(
            40, seed=7, kinds=['eb'], mission='tess-2min', noise_range=(20, 40),
            period_range=(1.0, 8.0))
        ebs = signals[signals['kind'] == 'eb']
        similar = ebs[ebs['search_period'] < ebs['period']]
        assert 5 < len(similar) < 35
        assert np.allclose(similar['search_period'], similar['period'] / 2)
        assert np.all((similar['odd_even'] > 1 / 0.91)
                      & (similar['odd_even'] < 1 / 0.69))
        assert np.allclose(similar['secondary_depth'] * similar['odd_even'],
                           similar['depth'])
        assert np.all(ebs[ebs['search_period'] == ebs['period']]['odd_even']
                      == 1)
        checked = 0
        for row in similar[similar['impact'] < 0.5]:
            depths = folded_depths(curves[row['curve']], row,
                                   row['search_period'], row['t0'])
            odd = [d for epoch, d in depths.items() if epoch % 2 == 0]
            even = [d for epoch, d in depths.items() if epoch % 2 == 1]
            if odd and even:
                ratio = np.median(odd) / np.median(even)
                assert ratio == pytest.approx(row['odd_even'], rel=0.1)
                checked += 1
        assert checked >= 2

    def test_blended_eb_depths(self):
        _, signals = simulate_light_curve_arrays(60, seed=8, kinds=['beb'])
        bebs = signals[signals['kind'] == 'beb']
        assert len(bebs) == 60
        assert np.all((bebs['depth'] >= 200 * 0.999)
                      & (bebs['depth'] <= 30000 * 1.001))
        assert np.all((bebs['dilution'] >= 0.001) & (bebs['dilution'] <= 0.1))
        assert np.all(bebs['secondary_depth'] < bebs['depth'])
        assert np.any(bebs['rp_rs'] > 0.2)  # stellar, not planetary, radii

    @pytest.mark.parametrize('kwargs, match', [
        ({'mission': 'k2'}, 'mission'),
        ({'kinds': ['planet', 'comet']}, 'kinds'),
        ({'fractions': [0.5, 0.5]}, 'fractions'),
        ({'fractions': {'planet': 0.5, 'eb': 0.4}}, 'fractions'),
        ({'kinds': ['planet', 'eb'], 'fractions': [1.5, -0.5]}, 'fractions'),
        ({'fractions': {'comet': 1.0}}, 'fractions'),
        ({'period_range': (50.0, 60.0)}, 'period_range'),
        ({'mission': 'tess-2min', 'period_range': (28.0, 40.0),
          'min_transits': 2}, 'period_range'),
        ({'depth_range': (0, 100)}, 'depth_range'),
        ({'noise_range': (10, 1)}, 'noise_range'),
        ({'min_transits': 0}, 'min_transits'),
        ({'baseline': 0.1}, 'baseline'),
    ])
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            simulate_light_curve_arrays(2, seed=0, **kwargs)


class TestSimulateLightCurves:
    def test_time_series(self):
        series, signals = simulate_light_curves(4, seed=9, mission='tess-2min')
        arrays, _ = simulate_light_curve_arrays(4, seed=9, mission='tess-2min')
        for ts, curve in zip(series, arrays):
            assert isinstance(ts, TimeSeries)
            assert ts.time.scale == 'tdb' and ts.time.format == 'jd'
            btjd = (ts.time - 2457000.0 * u.day).jd  # keeps the precision
            assert np.allclose(btjd, curve['time'], rtol=0, atol=1e-8)
            assert ts['flux'].unit == u.electron / u.s
            assert ts['flux_err'].unit == u.electron / u.s
            level = np.median(ts['flux'][curve['quality'] == 0].value)
            assert 1e3 <= level <= 1e6
            assert np.allclose(ts['flux'].value / level, curve['flux'])
            assert ts['quality'].dtype == np.int32
            assert ts.meta['MISSION'] == 'TESS'
            assert ts.meta['kind'] == curve['kind']
            assert ts.meta['noise_ppm'] == curve['noise_ppm']
        assert signals['t0'].scale == 'tdb'
        assert np.all(signals['t0'].jd > 2457000 + 1325)
