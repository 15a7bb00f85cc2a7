# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
star-galaxy and galaxy-morphology: accuracy and throughput.

What it measures
----------------
On held-out simulations (seed 3 by default, never used in training or
calibration):

* star-galaxy: ROC AUC (galaxy vs star) per S/N bin with bands ``gri`` and
  ``r``, and in the same run the classical photutils baseline
  (`~astrodl_plugins.classification.baseline.psf_concentration_score`:
  aperture fluxes at 0.6 and 2 PSF FWHM around a photutils centroid,
  divided by the PSF's ratio) on the r band of the same sources. For each
  bin it prints the ratio of the baseline's ``1 - AUC`` to the CNN's
  (how many times fewer ranking errors) and PASS/FAIL of "CNN beats the
  baseline in every bin"; also PASS/FAIL of AUC >= 0.995 at S/N > 20.
* galaxy-morphology: accuracy (target >= 0.93), expected calibration error
  (target <= 0.03), the confusion matrix, with bands ``gri`` and ``r``.
* throughput of ``predict_stamps`` at ``n_samples=50`` against one
  deterministic pass (``n_samples=0``) in the same run, sources per second,
  medians of ``--repeats`` interleaved timings.

The exit status is 0 either way.

How to run
----------
From the repository root, with the package installed::

    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_classifiers.py
    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/bench_classifiers.py \\
        --n-test 300 --repeats 1                 # quick smoke run
"""

import argparse
import json
import statistics
import time

import numpy as np


def _auc_table(est, images, truth, n_samples, seed):
    from astrodl_plugins.classification.evaluate import (
        baseline_star_galaxy,
        evaluate_classifier,
    )

    metrics = evaluate_classifier(est, images, truth,
                                  band_sets=(('g', 'r', 'i'), ('r',)),
                                  n_samples=n_samples, seed=seed)
    metrics.pop('_probabilities')
    baseline = baseline_star_galaxy(images, truth)
    nominal = baseline_star_galaxy(images, truth, psf_beta=3.5)
    print('\nstar-galaxy: ROC AUC by S/N (held-out)')
    print('photutils baseline on r: FWHM only (beta 3.5, CLASS_STAR-like) '
          'and with the true beta')
    print(f"{'S/N':>10} {'n':>6} {'CNN gri':>9} {'CNN r':>9} "
          f"{'phot. FWHM':>11} {'phot. +beta':>12} {'(1-AUC) base/CNN r':>19}")
    beats = True
    for a, b, c, d in zip(metrics['gri']['by_snr'], metrics['r']['by_snr'],
                          nominal['by_snr'], baseline['by_snr']):
        ratio = (1 - c['auc']) / max(1 - b['auc'], 1e-6)
        beats &= b['auc'] > c['auc'] and a['auc'] > c['auc']
        print(f"{a['snr_min']:>4}-{a['snr_max']:<5} {a['n_sources']:>6} "
              f"{a['auc']:>9.4f} {b['auc']:>9.4f} {c['auc']:>11.4f} "
              f"{d['auc']:>12.4f} {ratio:>19.1f}")
    print(f"AUC at S/N > 20: gri {metrics['gri']['auc_snr_gt_20']:.4f}, "
          f"r {metrics['r']['auc_snr_gt_20']:.4f}, photutils "
          f"{baseline['auc_snr_gt_20']:.4f}")
    good = metrics['gri']['auc_snr_gt_20'] >= 0.995
    print(f"AUC >= 0.995 at S/N > 20 (gri): {'PASS' if good else 'FAIL'}")
    print(f"CNN (gri and r) beats the FWHM-only baseline in every S/N bin: "
          f"{'PASS' if beats else 'FAIL'}")
    return {'cnn': metrics, 'baseline_true_beta': baseline,
            'baseline_fwhm_only': nominal}


def _morphology_table(est, images, truth, n_samples, seed):
    from astrodl_plugins.classification.evaluate import evaluate_classifier

    metrics = evaluate_classifier(est, images, truth,
                                  band_sets=(('g', 'r', 'i'), ('r',)),
                                  n_samples=n_samples, seed=seed)
    metrics.pop('_probabilities')
    print('\ngalaxy-morphology (held-out)')
    for key in ('gri', 'r'):
        m = metrics[key]
        print(f"bands {key:>3}: accuracy {m['accuracy']:.4f} "
              f"({'PASS' if m['accuracy'] >= 0.93 else 'FAIL'} >= 0.93), "
              f"ECE {m['ece']:.4f} "
              f"({'PASS' if m['ece'] <= 0.03 else 'FAIL'} <= 0.03; "
              f"{m['ece_uncalibrated']:.4f} before calibration)")
    print('confusion matrix, gri (rows true, columns predicted):')
    print(' ' * 15 + ''.join(f'{c[:10]:>11}' for c in est.classes))
    for name, row in zip(est.classes, metrics['gri']['confusion']):
        print(f'{name:>15}' + ''.join(f'{v:>11}' for v in row))
    return metrics


def _throughput(est, images, truth, n_samples, repeats):
    import keras

    stamps = images[:512]
    psf = np.asarray(truth['psf_fwhm'][:512])
    times = {0: [], n_samples: []}
    with keras.device('cpu:0'):
        for t in times:  # warm up
            est.predict_stamps(stamps[:64], bands='gri', psf_fwhm=psf[:64],
                               n_samples=t, seed=0, batch_size=256)
        for _ in range(repeats):
            for t in times:
                start = time.perf_counter()
                est.predict_stamps(stamps, bands='gri', psf_fwhm=psf,
                                   n_samples=t, seed=0, batch_size=256)
                times[t].append(time.perf_counter() - start)
    one = statistics.median(times[0]) / len(stamps)
    many = statistics.median(times[n_samples]) / len(stamps)
    print(f'{est.name}: {1 / many:.0f} sources/s at n_samples={n_samples} '
          f'({many * 1e3:.2f} ms/source), {1 / one:.0f} sources/s for one '
          f'deterministic pass; cost ratio {many / one:.2f}')
    return {'ms_per_source': many * 1e3, 'ms_per_source_deterministic':
            one * 1e3, 'ratio': many / one}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--n-test', type=int, default=4000)
    parser.add_argument('--seed', type=int, default=3)
    parser.add_argument('--n-samples', type=int, default=50)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--json', default=None)
    args = parser.parse_args(argv)

    import astrodl_plugins as adl
    from astrodl_plugins.simulate import (
        simulate_morphology_stamps,
        simulate_star_galaxy_stamps,
    )

    out = {}
    sg = adl.get_estimator('star-galaxy')
    images, truth = simulate_star_galaxy_stamps(args.n_test, seed=args.seed)
    out['star_galaxy'] = _auc_table(sg, images, truth, args.n_samples,
                                    args.seed)
    out['star_galaxy']['throughput'] = _throughput(
        sg, images, truth, args.n_samples, args.repeats)
    morph = adl.get_estimator('galaxy-morphology')
    images, truth = simulate_morphology_stamps(args.n_test, seed=args.seed)
    out['morphology'] = _morphology_table(morph, images, truth,
                                          args.n_samples, args.seed)
    out['morphology']['throughput'] = _throughput(
        morph, images, truth, args.n_samples, args.repeats)
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(out, handle, indent=1, default=float)


if __name__ == '__main__':
    main()
