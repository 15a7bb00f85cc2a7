# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
MC-dropout engine against the naive way, on the CPU.

What it measures
----------------
The time to draw ``T`` (``--n-samples``, default 50) MC-dropout samples of
the shipped ``galaxy-structure`` network for ``N`` (``--n-stamps``, default
256) simulated stamps, batch by batch (``--batch-size``, default 64), with
the device forced to the CPU (``keras.device('cpu:0')``):

* naive: ``T`` full forward passes of the model on every batch
  (``MCDropoutEngine.naive_sample`` per batch);
* ours: ``MCDropoutEngine.sample``, which runs the deterministic trunk once
  per batch and the ``T`` draws of the MC head as one enlarged batch.

Both are warmed up first, then timed ``--repeats`` times, interleaved
(naive, ours, naive, ours, ...) so that a change in the machine's load hits
both. The table gives the best and the median time of each; the speed-up is
the ratio of the medians (the ratio of the best times is printed too). The
target is a speed-up of at least ``--target`` (default 10); PASS/FAIL is
printed, the exit status is 0 either way.

Both must draw from the same distribution: for every object and network
output, the difference of the two MC means is divided by the MC standard
deviation; the mean of its absolute value is printed next to the value
expected for two independent sets of ``T`` draws of one distribution,
``sqrt(2 / T) * sqrt(2 / pi)`` (about 0.16 for ``T = 50``).

The benchmark uses whatever model is shipped as the ``galaxy-structure``
preset (``--preset``: another; ``lens-finder`` and ``lens-parameters`` run
on simulated lens stamps in g, r, i): the speed-up depends on the
architecture, not on the weights.

How to run
----------
From the repository root, with the package installed::

    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_mc_engine.py
    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_mc_engine.py \\
        --n-stamps 16 --repeats 1          # quick smoke run
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--n-stamps', type=int, default=256,
                        help='number of stamps N (default: 256)')
    parser.add_argument('--n-samples', type=int, default=50,
                        help='MC draws T per stamp (default: 50)')
    parser.add_argument('--batch-size', type=int, default=64,
                        help='stamps per batch (default: 64)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='timed repeats of each method (default: 3)')
    parser.add_argument('--seed', type=int, default=3,
                        help='seed of the simulated stamps (default: 3)')
    parser.add_argument('--target', type=float, default=10.0,
                        help='speed-up target (default: 10)')
    parser.add_argument('--preset', default='galaxy-structure',
                        help="estimator preset or saved directory (default: "
                        "'galaxy-structure')")
    parser.add_argument('--json', metavar='PATH',
                        help='also write all numbers to this JSON file')
    args = parser.parse_args(argv)
    for name in ('n_stamps', 'n_samples', 'batch_size', 'repeats'):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def load_inputs(n_stamps, seed, preset='galaxy-structure'):
    """Simulated stamps -> the network's two inputs."""
    if preset.startswith('lens-'):
        return lens_inputs(n_stamps, seed, preset)
    from astrodl_plugins.simulate.structure import simulate_galaxy_stamps
    from astrodl_plugins.structure.network import psf_feature, stamp_features

    images, truth = simulate_galaxy_stamps(n_stamps, seed=seed)
    features, _, _ = stamp_features(images)
    return [features, psf_feature(np.asarray(truth['psf_fwhm']))]


def lens_inputs(n_stamps, seed, preset):
    """Simulated lens stamps (g, r, i) -> the lens networks' inputs."""
    import astrodl_plugins as adl
    from astrodl_plugins.classification import network as cnet
    from astrodl_plugins.lenses.network import finder_channels
    from astrodl_plugins.simulate import simulate_lens_stamps

    images, truth = simulate_lens_stamps(n_stamps, seed=seed)
    arrays, npix = cnet.input_arrays(images, np.asarray(truth['psf_fwhm']))
    x, conditions = cnet.scaled_inputs(arrays, npix,
                                       cnet.presence('gri', n_stamps),
                                       'noise')
    # The channels the preset was trained on (its saved parameters).
    estimator = adl.get_estimator(preset)
    if preset == 'lens-finder':
        x = finder_channels(x, colour=estimator.colour_residual)
    elif estimator.residuals:
        x = finder_channels(x)
    return [x, conditions]


def batches(inputs, batch_size):
    n = len(inputs[0])
    return [[x[start:start + batch_size] for x in inputs]
            for start in range(0, n, batch_size)]


def run_naive(engine, inputs, n_samples, batch_size, seed):
    """``n_samples`` full forward passes of every batch."""
    return np.concatenate([
        engine.naive_sample(batch, n_samples, seed=seed * 1_000_003 + index)
        for index, batch in enumerate(batches(inputs, batch_size))])


def run_ours(engine, inputs, n_samples, batch_size, seed):
    return engine.sample(inputs, n_samples, seed=seed, batch_size=batch_size)


def consistency(ours, naive):
    """Mean |difference of MC means| / MC std, and the MC std ratio."""
    mean_o, mean_n = ours.mean(axis=1), naive.mean(axis=1)
    std_o, std_n = ours.std(axis=1, ddof=1), naive.std(axis=1, ddof=1)
    pooled = np.sqrt(0.5 * (std_o ** 2 + std_n ** 2))
    good = pooled > 1e-12 * np.maximum(1.0, np.abs(mean_o))
    z = np.abs(mean_o - mean_n)[good] / pooled[good]
    ratio = std_o[good] / std_n[good]
    return float(np.mean(z)), float(np.median(ratio)), int(good.sum())


def main(argv=None):
    args = parse_args(argv)

    import keras

    import astrodl_plugins
    from astrodl_plugins.core.mc import MCDropoutEngine

    n, T, B = args.n_stamps, args.n_samples, args.batch_size
    simulator = ('simulate_lens_stamps' if args.preset.startswith('lens-')
                 else 'simulate_galaxy_stamps')
    print(f'Simulating {n} stamps ({simulator}({n}, seed={args.seed}))...',
          flush=True)
    inputs = load_inputs(n, args.seed, args.preset)
    estimator = astrodl_plugins.get_estimator(args.preset)

    with keras.device('cpu:0'):
        engine = MCDropoutEngine(estimator.model_)
        # Warm-up: the exact batch shapes of the timed runs.
        first = [x[:B] for x in inputs]
        run_ours(engine, first, T, B, seed=0)
        engine.naive_sample(first, min(T, 3), seed=0)

        times = {'naive': [], 'ours': []}
        draws = {}
        for repeat in range(args.repeats):
            for name, function in (('naive', run_naive), ('ours', run_ours)):
                start = time.perf_counter()
                draws[name] = function(engine, inputs, T, B,
                                       seed=args.seed + 17 * repeat + 1)
                times[name].append(time.perf_counter() - start)
                print(f'  repeat {repeat + 1}/{args.repeats} {name:5s} '
                      f'{times[name][-1]:9.3f} s', flush=True)

    best = {key: min(value) for key, value in times.items()}
    median = {key: statistics.median(value) for key, value in times.items()}
    speedup = median['naive'] / median['ours']
    speedup_best = best['naive'] / best['ours']
    z_mean, std_ratio, n_compared = consistency(draws['ours'], draws['naive'])
    z_expected = math.sqrt(2.0 / T) * math.sqrt(2.0 / math.pi)
    passed = speedup >= args.target
    same = z_mean < 2.0 * z_expected and 0.8 < std_ratio < 1.25

    print()
    print(f'MC dropout on the CPU: N = {n} stamps, T = {T} draws, batch '
          f'size {B}, model {args.preset!r} (split at its first MCDropout: '
          f'{engine.split}), keras {keras.__version__} '
          f'({keras.backend.backend()}), {os.cpu_count()} CPU cores, '
          f'{args.repeats} repeat(s)')
    print()
    header = (f"{'method':<34s}{'best (s)':>10s}{'median (s)':>12s}"
              f"{'ms / stamp':>12s}{'draws / s':>12s}")
    print(header)
    print('-' * len(header))
    labels = {'naive': 'naive (T full passes per batch)',
              'ours': 'ours (MCDropoutEngine.sample)'}
    for key in ('naive', 'ours'):
        print(f'{labels[key]:<34s}{best[key]:>10.3f}{median[key]:>12.3f}'
              f'{1e3 * median[key] / n:>12.3f}{n * T / median[key]:>12.0f}')
    print('-' * len(header))
    print(f'speed-up (median / median): {speedup:8.1f}x   '
          f'(best / best: {speedup_best:.1f}x)')
    print(f'target >= {args.target:g}x: {"PASS" if passed else "FAIL"}')
    print()
    print('Same distribution? Over the last repeat, per object and output '
          f'({n_compared} values):')
    print(f'  mean |mean_ours - mean_naive| / MC std = {z_mean:.3f} '
          f'(expected {z_expected:.3f} for independent draws of one '
          'distribution)')
    print(f'  median MC std ratio ours / naive      = {std_ratio:.3f} '
          '(expected 1)')
    print(f'  consistent: {"PASS" if same else "FAIL"} (mean < 2x expected '
          'and std ratio within 0.8-1.25)')

    if args.json:
        result = {
            'n_stamps': n, 'n_samples': T, 'batch_size': B,
            'repeats': args.repeats, 'seed': args.seed,
            'preset': args.preset, 'split': engine.split,
            'cpu_count': os.cpu_count(), 'keras': keras.__version__,
            'backend': keras.backend.backend(),
            'times_s': times, 'best_s': best, 'median_s': median,
            'speedup_median': speedup, 'speedup_best': speedup_best,
            'target': args.target, 'speed_pass': passed,
            'mean_abs_mean_diff_over_std': z_mean,
            'expected_mean_abs_mean_diff_over_std': z_expected,
            'median_std_ratio': std_ratio, 'consistent': same,
        }
        with open(args.json, 'w') as handle:
            json.dump(result, handle, indent=2)
        print(f'\nWrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
