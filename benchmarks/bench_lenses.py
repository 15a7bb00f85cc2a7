# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
lens-parameters against a lenstronomy maximum-likelihood lens fit.

What it measures
----------------
On the same simulated galaxy-scale lenses (default 20; every stamp a lens,
``simulate_lens_stamps(--n, seed=7, lens_fraction=1.0)``; the shipped
model was trained on seeds 11-13, so seed 7 is held out), the
``lens-parameters`` estimator (``T = 50`` MC-dropout draws, all g, r, i
bands) is compared with a lenstronomy fit of the r-band stamp:

* Accuracy, side by side on the same lenses: median ``|d theta_E| /
  theta_E``, median ``|d e1|``, ``|d e2|``, ``|d gamma1|``, ``|d gamma2|``
  and the median distance between the true and the measured lens centre
  (pixels), with the ratio fit / CNN (> 1: the CNN is closer to the truth)
  and the CNN's 68 % coverage (fraction of lenses with ``|value - truth| <=
  _err``; for the centre, the mean of the x and y coverages). The metrics
  follow `astrodl_plugins.lenses.evaluate`. Failed fits (an exception or a
  non-finite result) are counted and left out of the fit's medians; the
  CNN's medians are over all lenses.
* Time per lens. CNN: one ``predict_stamps`` call on all the stamps
  (``n_samples=50``) after an untimed warm-up call, timed ``--repeats``
  times (median used) / the number of lenses. Fit: the wall time of each
  lens's whole fit (set-up and optimisation), after one untimed tiny fit
  that warms up imports and caches; the median over the lenses is reported
  with the mean. Speed ratio: fit / CNN. Both run on the CPU (``--device``).

The lenstronomy fit
-------------------
Per lens, as a user of ``lenstronomy.Workflow.fitting_sequence.
FittingSequence`` would set it up, with everything the simulator knows
about the observation handed over (the truth of the lens is not):

* Data: the r-band stamp in pixel units (``transform_pix2angle`` the
  identity, ``ra_at_xy_0 = dec_at_xy_0 = -(48 - 1) / 2``), so that angles
  are pixels from the stamp centre, x along columns and y along rows, as in
  the simulator; ``background_rms`` the true r-band noise (sky + read
  noise) and ``exposure_time = 1``: the images are electrons at gain 1, so
  lenstronomy's source Poisson term ``model / exposure_time`` is exactly
  the simulator's.
* PSF (``--psf true``, default): the true r-band PSF of the stamp, drawn by
  GalSim with ``astrodl_plugins.simulate.sky.make_psf`` (same family, FWHM,
  Moffat beta, halo, ellipticity and spikes as the simulator, pixel
  response included), ``2 ceil(4 FWHM) + 1`` pixels wide (at most 47),
  given as a ``'PIXEL'`` kernel. The truth table does not hold all the PSF
  parameters, so they are re-drawn by replaying the simulator's random
  draws for ``--seed``; the replay is checked against the truth's
  ``psf_kind``, ``psf_beta`` and ``psf_fwhm`` and the script falls back to
  ``--psf gaussian`` (a ``'GAUSSIAN'`` PSF of the true FWHM) if it does
  not match.
* Numerics: ``supersampling_factor=--supersampling`` (default 2, the
  simulator renders scenes at twice the pixel resolution), no supersampled
  convolution.
* Model: ``SIE`` + ``SHEAR`` (``ra_0 = dec_0 = 0`` fixed), a
  ``SERSIC_ELLIPSE`` source and a ``SERSIC_ELLIPSE`` lens light whose
  centre is tied to the mass centre (``joint_lens_with_light``, as in the
  simulator); amplitudes solved linearly, positive fluxes enforced.
* Start (not the truth): ``theta_E = 1.2 arcsec`` in pixels (the pixel
  scale is known to the observer), centre at the stamp centre, round mass,
  no shear; source ``R_sersic = 0.3 arcsec``, ``n = 1``, at the lens
  centre; lens light ``R_sersic = 1 arcsec``, ``n = 4``, round. Bounds:
  ``theta_E`` within the simulator's 0.5-3 arcsec, ``|e1|, |e2| <= 0.5``,
  ``|gamma1|, |gamma2| <= 0.2``, centre within 3 pixels of the stamp
  centre; source ``R_sersic`` 0.05-10 pix, ``n`` 0.3-4, centre within
  3 arcsec; lens light ``R_sersic`` 0.3-24 pix, ``n`` 0.5-8.
* Optimiser: PSO with ``--pso-particles`` (50) particles and
  ``--pso-iterations`` (100) iterations, ``sigma_scale=1``, then optionally
  ``--mcmc-steps`` emcee steps (default 0; needs emcee; walker ratio 4,
  starting from the PSO result, best-likelihood sample kept). Each fit is seeded.
* Not modelled (as a user would not know of them): the source's Gaussian
  star-forming knots, the g and i bands, the neighbours (a quarter of the
  stamps have one or two unrelated sources, not masked) and the occasional
  smooth background structure. A bright neighbour drags the lens light
  (and with it the lens centre and ellipticity) towards itself; the
  untimed best-fit chi^2 per pixel, printed per lens by ``--verbose``,
  flags such fits (about 1 for a good one). On a lenstronomy-made mock of
  the same model the set-up recovers the lens (chi^2 per pixel 1.0,
  theta_E within 0.3 %).

Run
---
::

    # default: 20 lenses (the fits take about --n times the one-fit time)
    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_lenses.py

    # bright lenses only, with a few MCMC steps after the PSO
    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_lenses.py --snr-min 30 \\
        --mcmc-steps 50

    # quick smoke run
    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_lenses.py --n 3 \\
        --pso-particles 20 --pso-iterations 20
"""

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
import time
import warnings

import numpy as np

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

STAMP_SIZE = 48
THETA_INIT_ARCSEC = 1.2
QUANTITIES = ('theta_e', 'e1', 'e2', 'gamma1', 'gamma2', 'centre')
LABELS = {'theta_e': 'median |d theta_E| / theta_E',
          'e1': 'median |d e1|',
          'e2': 'median |d e2|',
          'gamma1': 'median |d gamma1|',
          'gamma2': 'median |d gamma2|',
          'centre': 'median |d centre| (pix)'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--n', type=int, default=20,
                        help='simulated lenses (default: 20)')
    parser.add_argument('--seed', type=int, default=7,
                        help='seed of the simulated lenses (default: 7, held '
                        'out: training used 11-13)')
    parser.add_argument('--snr-min', type=float, default=None,
                        help='lensed-source S/N range (snr-min, 200) instead '
                        'of the simulator\'s (5, 200)')
    parser.add_argument('--preset', default='lens-parameters',
                        help='estimator preset or saved directory (default: '
                        'lens-parameters)')
    parser.add_argument('--n-samples', type=int, default=50,
                        help='MC-dropout draws of the CNN (default: 50)')
    parser.add_argument('--batch-size', type=int, default=100,
                        help='batch size of the CNN (default: 100)')
    parser.add_argument('--device', default='cpu',
                        help="device of the CNN: 'cpu' (default, the fit "
                        "runs on the CPU too), 'auto', 'gpu'")
    parser.add_argument('--repeats', type=int, default=3,
                        help='timed predict_stamps calls (default: 3)')
    parser.add_argument('--pso-particles', type=int, default=50,
                        help='PSO particles (default: 50)')
    parser.add_argument('--pso-iterations', type=int, default=100,
                        help='PSO iterations (default: 100)')
    parser.add_argument('--mcmc-steps', type=int, default=0,
                        help='emcee steps after the PSO (default: 0, none)')
    parser.add_argument('--psf', choices=('true', 'gaussian'), default='true',
                        help="the fit's PSF: 'true' (default): the "
                        "simulator's GalSim PSF as a pixel kernel; "
                        "'gaussian': a Gaussian of the true FWHM")
    parser.add_argument('--supersampling', type=int, default=2,
                        help='lenstronomy supersampling_factor (default: 2)')
    parser.add_argument('--verbose', action='store_true',
                        help='one line per lens')
    parser.add_argument('--json', metavar='PATH',
                        help='write all numbers to this JSON file')
    args = parser.parse_args(argv)
    for name in ('n', 'n_samples', 'batch_size', 'repeats', 'pso_particles',
                 'pso_iterations', 'supersampling'):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.mcmc_steps < 0:
        parser.error('--mcmc-steps must be >= 0')
    if args.mcmc_steps:
        import importlib.util

        if importlib.util.find_spec('emcee') is None:
            parser.error('--mcmc-steps needs emcee (pip install emcee)')
    if args.snr_min is not None and not 0 < args.snr_min < 200:
        parser.error('--snr-min must lie in (0, 200)')
    return args


# -- the simulated lenses and their PSFs ------------------------------------


def simulation_ranges(args):
    return None if args.snr_min is None else {'snr': (args.snr_min, 200.0)}


def replay_psf_params(n, seed, ranges):
    """
    The simulator's per-stamp PSF parameters, re-drawn by replaying the
    first random draws of ``simulate_lens_stamps(n, seed=seed)`` (pixel
    scale, PSF FWHM in arcsec, then ``sky.draw_psf_params``).
    """
    from astrodl_plugins.simulate import sky
    from astrodl_plugins.simulate.common import loguniform
    from astrodl_plugins.simulate.lenses import LENS_RANGES

    r = dict(LENS_RANGES)
    r.update(ranges or {})
    rng = np.random.default_rng(seed)
    scale = rng.uniform(*r['pixel_scale'], n)
    psf_arcsec = loguniform(rng, *r['psf_fwhm_arcsec'], n)
    params = sky.draw_psf_params(rng, n, (1.0, 1.0))
    params['psf_fwhm'] = psf_arcsec / scale
    return params


def replay_matches(params, truth):
    return bool(
        np.array_equal(np.asarray(params['psf_kind']).astype(str),
                       np.asarray(truth['psf_kind']).astype(str))
        and np.allclose(params['psf_beta'], np.asarray(truth['psf_beta']))
        and np.allclose(params['psf_fwhm'], np.asarray(truth['psf_fwhm']),
                        rtol=1e-9, atol=0))


def psf_kernel(galsim, params, i):
    """The true r-band PSF of stamp ``i``, pixel-convolved, normalised."""
    from astrodl_plugins.simulate import sky
    from astrodl_plugins.simulate.classes import PSF_BAND_SCALE

    gsparams = galsim.GSParams(folding_threshold=2e-2, maxk_threshold=5e-3)
    psf = sky.make_psf(galsim, params, i, PSF_BAND_SCALE['r'], gsparams)
    fwhm = params['psf_fwhm'][i] * PSF_BAND_SCALE['r']
    width = min(2 * math.ceil(4 * fwhm) + 1, STAMP_SIZE - 1)
    kernel = np.clip(psf.drawImage(nx=width, ny=width, scale=1.0).array,
                     0.0, None)   # GalSim's tiny negative ringing
    return kernel / kernel.sum()


# -- the lenstronomy fit ------------------------------------------------------


def fit_lens(image, noise, pixel_scale, kwargs_psf, args, seed):
    """
    Maximum-likelihood SIE + SHEAR fit of one r-band stamp; returns the
    best-fit parameters (pixels, stamp frame) and the wall time.
    """
    from lenstronomy.Workflow.fitting_sequence import FittingSequence

    start = time.perf_counter()
    centre = (STAMP_SIZE - 1) / 2
    kwargs_data = {'image_data': np.asarray(image, np.float64),
                   'background_rms': float(noise), 'exposure_time': 1.0,
                   'ra_at_xy_0': -centre, 'dec_at_xy_0': -centre,
                   'transform_pix2angle': np.eye(2)}
    kwargs_numerics = {'supersampling_factor': args.supersampling,
                       'supersampling_convolution': False}
    kwargs_data_joint = {
        'multi_band_list': [[kwargs_data, kwargs_psf, kwargs_numerics]],
        'multi_band_type': 'single-band'}
    kwargs_model = {'lens_model_list': ['SIE', 'SHEAR'],
                    'source_light_model_list': ['SERSIC_ELLIPSE'],
                    'lens_light_model_list': ['SERSIC_ELLIPSE']}
    kwargs_constraints = {
        'joint_lens_with_light': [[0, 0, ['center_x', 'center_y']]]}
    kwargs_likelihood = {'check_bounds': True, 'check_positive_flux': True,
                         'source_marg': False}
    arcsec = 1.0 / pixel_scale   # pixels per arcsec
    from astrodl_plugins.simulate.lenses import LENS_RANGES

    theta_lo, theta_hi = (value * arcsec
                          for value in LENS_RANGES['theta_e_arcsec'])
    lens = [
        [{'theta_E': THETA_INIT_ARCSEC * arcsec, 'e1': 0.0, 'e2': 0.0,
          'center_x': 0.0, 'center_y': 0.0},
         {'gamma1': 0.0, 'gamma2': 0.0}],
        [{'theta_E': 0.5 * arcsec, 'e1': 0.2, 'e2': 0.2, 'center_x': 1.0,
          'center_y': 1.0},
         {'gamma1': 0.05, 'gamma2': 0.05}],
        [{}, {'ra_0': 0.0, 'dec_0': 0.0}],
        [{'theta_E': theta_lo, 'e1': -0.5, 'e2': -0.5, 'center_x': -3.0,
          'center_y': -3.0},
         {'gamma1': -0.2, 'gamma2': -0.2}],
        [{'theta_E': theta_hi, 'e1': 0.5, 'e2': 0.5, 'center_x': 3.0,
          'center_y': 3.0},
         {'gamma1': 0.2, 'gamma2': 0.2}]]
    source = [
        [{'R_sersic': 0.3 * arcsec, 'n_sersic': 1.0, 'e1': 0.0, 'e2': 0.0,
          'center_x': 0.0, 'center_y': 0.0}],
        [{'R_sersic': 0.2 * arcsec, 'n_sersic': 0.5, 'e1': 0.2, 'e2': 0.2,
          'center_x': 0.5 * arcsec, 'center_y': 0.5 * arcsec}],
        [{}],
        [{'R_sersic': 0.05, 'n_sersic': 0.3, 'e1': -0.5, 'e2': -0.5,
          'center_x': -3.0 * arcsec, 'center_y': -3.0 * arcsec}],
        [{'R_sersic': 10.0, 'n_sersic': 4.0, 'e1': 0.5, 'e2': 0.5,
          'center_x': 3.0 * arcsec, 'center_y': 3.0 * arcsec}]]
    light = [
        [{'R_sersic': 1.0 * arcsec, 'n_sersic': 4.0, 'e1': 0.0, 'e2': 0.0,
          'center_x': 0.0, 'center_y': 0.0}],
        [{'R_sersic': 0.5 * arcsec, 'n_sersic': 1.0, 'e1': 0.2, 'e2': 0.2,
          'center_x': 1.0, 'center_y': 1.0}],
        [{}],
        [{'R_sersic': 0.3, 'n_sersic': 0.5, 'e1': -0.5, 'e2': -0.5,
          'center_x': -3.0, 'center_y': -3.0}],
        [{'R_sersic': 24.0, 'n_sersic': 8.0, 'e1': 0.5, 'e2': 0.5,
          'center_x': 3.0, 'center_y': 3.0}]]
    kwargs_params = {'lens_model': lens, 'source_model': source,
                     'lens_light_model': light}
    fitting_list = [['PSO', {'sigma_scale': 1.0,
                             'n_particles': args.pso_particles,
                             'n_iterations': args.pso_iterations}]]
    if args.mcmc_steps:
        fitting_list.append(['MCMC', {'n_burn': 0,
                                      'n_run': args.mcmc_steps,
                                      'walkerRatio': 4, 'sigma_scale': 0.1,
                                      'progress': False}])
    np.random.seed(seed)
    out = {'ok': False, 'error': ''}
    try:
        with contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter('ignore')
            sequence = FittingSequence(kwargs_data_joint, kwargs_model,
                                       kwargs_constraints, kwargs_likelihood,
                                       kwargs_params, verbose=False)
            sequence.fit_sequence(fitting_list)
            result = sequence.best_fit()
        sie, shear = result['kwargs_lens']
        out.update(theta_e=sie['theta_E'], e1=sie['e1'], e2=sie['e2'],
                   gamma1=shear['gamma1'], gamma2=shear['gamma2'],
                   x_centroid=centre + sie['center_x'],
                   y_centroid=centre + sie['center_y'])
        out['ok'] = bool(all(np.isfinite(out[key]) for key in (
            'theta_e', 'e1', 'e2', 'gamma1', 'gamma2', 'x_centroid',
            'y_centroid')))
        if not out['ok']:
            out['error'] = 'non-finite result'
    except Exception as exc:  # a failed fit is counted, not fatal
        out['error'] = f'{type(exc).__name__}: {exc}'
    out['time_s'] = time.perf_counter() - start
    out['chi2_pix'] = float('nan')
    if out['ok']:   # untimed diagnostic: chi^2 per pixel of the best fit
        with contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter('ignore')
            log_l = sequence.best_fit_likelihood()
        out['chi2_pix'] = float(-2.0 * log_l / image.size)
    return out


# -- the CNN ---------------------------------------------------------------


def load_estimator(preset):
    from astrodl_plugins.lenses.estimator import LensParameters

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return LensParameters.from_preset(preset)


def run_cnn(estimator, images, truth, args):
    """``predict_stamps`` after a warm-up call; the median seconds per lens."""
    kwargs = {'psf_fwhm': truth['psf_fwhm'], 'n_samples': args.n_samples,
              'seed': 0, 'batch_size': args.batch_size,
              'device': args.device}
    estimator.predict_stamps(images, **kwargs)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        table = estimator.predict_stamps(images, **kwargs)
        times.append(time.perf_counter() - start)
    return table, statistics.median(times) / len(images), times


def _values(table, name):
    column = table[name]
    return np.asarray(getattr(column, 'value', column), np.float64)


# -- the benchmark -----------------------------------------------------------


def errors(pred, true):
    """Absolute errors per lens (theta_E fractional, centre a distance)."""
    out = {'theta_e': np.abs(pred['theta_e'] - true['theta_e'])
           / true['theta_e']}
    for name in ('e1', 'e2', 'gamma1', 'gamma2'):
        out[name] = np.abs(pred[name] - true[name])
    out['centre'] = np.hypot(pred['x_centroid'] - true['x_centroid'],
                             pred['y_centroid'] - true['y_centroid'])
    return out


def _median(values):
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else float('nan')


def _fmt(value, digits=4):
    return 'nan' if not np.isfinite(value) else f'{value:.{digits}f}'


def run_benchmark(args):
    from astrodl_plugins.simulate.common import require_galsim
    from astrodl_plugins.simulate.lenses import simulate_lens_stamps

    n = args.n
    ranges = simulation_ranges(args)
    print(f'Simulating {n} lenses (seed {args.seed}'
          + (f', snr > {args.snr_min:g}' if ranges else '') + ') ...',
          flush=True)
    kwargs = {'seed': args.seed, 'lens_fraction': 1.0, 'n_processes': 1}
    if ranges:
        kwargs['ranges'] = ranges
    images, truth = simulate_lens_stamps(n, **kwargs)
    centre = (STAMP_SIZE - 1) / 2
    true = {'theta_e': np.asarray(truth['theta_e'], np.float64),
            'e1': np.asarray(truth['e1'], np.float64),
            'e2': np.asarray(truth['e2'], np.float64),
            'gamma1': np.asarray(truth['gamma1'], np.float64),
            'gamma2': np.asarray(truth['gamma2'], np.float64),
            'x_centroid': centre + np.asarray(truth['x_lens'], np.float64),
            'y_centroid': centre + np.asarray(truth['y_lens'], np.float64)}

    # The CNN.
    print(f'CNN: {args.preset}, T = {args.n_samples} ...', flush=True)
    estimator = load_estimator(args.preset)
    table, cnn_seconds, cnn_times = run_cnn(estimator, images, truth, args)
    cnn = {name: _values(table, name) for name in true}
    cnn_err = {name: _values(table, f'{name}_err') for name in true}
    cnn_errors = errors(cnn, true)
    covered = {name: np.abs(cnn[name] - true[name]) <= cnn_err[name]
               for name in true}
    coverage = {name: float(np.mean(covered[name]))
                for name in ('theta_e', 'e1', 'e2', 'gamma1', 'gamma2')}
    coverage['centre'] = float(np.mean(np.concatenate(
        [covered['x_centroid'], covered['y_centroid']])))

    # The fits.
    psf_mode = args.psf
    galsim = None
    params = None
    if psf_mode == 'true':
        galsim = require_galsim()
        params = replay_psf_params(n, args.seed, ranges)
        if not replay_matches(params, truth):
            print('WARNING: the replayed PSF parameters do not match the '
                  "truth; using --psf gaussian", flush=True)
            psf_mode = 'gaussian'
    r_band = list(truth.meta.get('bands', ['g', 'r', 'i'])).index('r')

    def kwargs_psf(i):
        if psf_mode == 'true':
            return {'psf_type': 'PIXEL',
                    'kernel_point_source': psf_kernel(galsim, params, i)}
        return {'psf_type': 'GAUSSIAN',
                'fwhm': float(truth['psf_fwhm'][i]), 'pixel_size': 1.0}

    def fit(i, fit_args):
        return fit_lens(images[i, :, :, r_band], truth['noise_r'][i],
                        float(truth['pixel_scale'][i]), kwargs_psf(i),
                        fit_args, seed=args.seed * 100003 + i)

    budget = (f'PSO {args.pso_particles} x {args.pso_iterations}'
              + (f' + MCMC {args.mcmc_steps}' if args.mcmc_steps else ''))
    print(f'lenstronomy fits: {budget}, PSF {psf_mode}, supersampling '
          f'{args.supersampling} ...', flush=True)
    warm = argparse.Namespace(**vars(args))
    warm.pso_particles, warm.pso_iterations, warm.mcmc_steps = 4, 2, 0
    fit(0, warm)   # untimed warm-up: imports, caches
    fits = []
    for i in range(n):
        fits.append(fit(i, args))
        if not fits[-1]['ok']:
            print(f'  lens {i}: fit failed ({fits[-1]["error"]})', flush=True)
    ok = np.array([f['ok'] for f in fits])
    fitted = {name: np.array([f.get(name, np.nan) if f['ok'] else np.nan
                              for f in fits]) for name in true}
    fit_errors = errors(fitted, true)
    fit_times = np.array([f['time_s'] for f in fits])
    fit_seconds = float(np.median(fit_times))

    if args.verbose:
        print('\nPer lens (pixels; dtheta fractional; dc the centre '
              'distance):')
        print(f'{"i":>3} {"theta_E":>7} {"snr":>6} {"psf":>15} '
              f'{"dtheta cnn":>10} {"fit":>7} {"de1 cnn":>8} {"fit":>7} '
              f'{"de2 cnn":>8} {"fit":>7} {"dg1 cnn":>8} {"fit":>7} '
              f'{"dg2 cnn":>8} {"fit":>7} {"dc cnn":>7} {"fit":>7} '
              f'{"t fit s":>8} {"chi2/pix":>8}')
        for i in range(n):
            row = (f'{i:>3} {true["theta_e"][i]:7.2f} '
                   f'{float(truth["snr"][i]):6.1f} '
                   f'{str(truth["psf_kind"][i]):>15} ')
            for name in QUANTITIES:
                width = 10 if name == 'theta_e' else (
                    7 if name == 'centre' else 8)
                row += (f'{_fmt(cnn_errors[name][i], 3):>{width}} '
                        f'{_fmt(fit_errors[name][i], 3):>7} ')
            row += f'{fit_times[i]:8.2f} {_fmt(fits[i]["chi2_pix"], 2):>8}'
            if not ok[i]:
                row += '  (fit failed)'
            print(row)

    summary = {}
    print(f'\n{n} lenses, seed {args.seed}'
          + (f', snr > {args.snr_min:g}' if ranges else '')
          + f'; fit: r band, {budget}, PSF {psf_mode}; '
          f'{int((~ok).sum())} failed fit(s)')
    header = (f'{"quantity":<30} {"CNN":>9} {"fit":>9} {"fit/CNN":>8} '
              f'{"CNN 68% cov":>12}')
    print(header)
    print('-' * len(header))
    for name in QUANTITIES:
        ours = _median(cnn_errors[name])
        theirs = _median(fit_errors[name][ok])
        ratio = theirs / ours if ours > 0 else float('nan')
        summary[name] = {'cnn_median_abs_error': ours,
                         'cnn_median_abs_error_on_fitted': _median(
                             cnn_errors[name][ok]),
                         'fit_median_abs_error': theirs,
                         'fit_over_cnn': ratio,
                         'cnn_coverage_68': coverage[name]}
        print(f'{LABELS[name]:<30} {_fmt(ours):>9} {_fmt(theirs):>9} '
              f'{_fmt(ratio, 2):>8} {coverage[name]:12.2f}')
    speed = fit_seconds / cnn_seconds
    print(f'{"time per lens (s)":<30} {cnn_seconds:9.4f} {fit_seconds:9.2f} '
          f'{speed:7.0f}x')
    print(f'(fit time: median over lenses; mean {fit_times.mean():.2f} s, '
          f'total {fit_times.sum():.1f} s. CNN: median of {args.repeats} '
          f'predict_stamps calls, T = {args.n_samples}, '
          f'{args.device}.)')
    if (~ok).any():
        on_fitted = ', '.join(
            f'{name} {_fmt(summary[name]["cnn_median_abs_error_on_fitted"])}'
            for name in QUANTITIES)
        print(f'CNN medians over the lenses the fit did not fail on: '
              f'{on_fitted}')
    return {
        'config': {key: value for key, value in vars(args).items()},
        'psf_used': psf_mode,
        'summary': summary,
        'cnn_seconds_per_lens': cnn_seconds,
        'cnn_call_times_s': cnn_times,
        'fit_seconds_per_lens_median': fit_seconds,
        'fit_seconds_per_lens_mean': float(fit_times.mean()),
        'speed_ratio_fit_over_cnn': speed,
        'n_failed_fits': int((~ok).sum()),
        'per_lens': {
            'truth': {name: true[name] for name in true},
            'snr': np.asarray(truth['snr'], np.float64),
            'cnn': cnn, 'cnn_err': cnn_err, 'fit': fitted,
            'fit_ok': ok, 'fit_time_s': fit_times,
            'fit_chi2_per_pixel': [f['chi2_pix'] for f in fits],
            'fit_error': [f['error'] for f in fits]},
    }


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def main(argv=None):
    args = parse_args(argv)
    result = run_benchmark(args)
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(result, handle, indent=2, default=_json_default)
        print(f'\nWrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
