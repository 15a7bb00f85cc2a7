# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Scoring deblenders against the truth of simulated blend fields.

Used by the training recipe (threshold, calibration of ``flux_err``,
model card and its figure) and ``benchmarks/bench_deblender.py``, so that
all measure the same thing:

* both deblenders start from the same detection (`detect`: photutils'
  `~photutils.segmentation.detect_sources` on the image smoothed by a
  Gaussian of FWHM 3 pixels, threshold 1.5 sigma, 5 pixels);
* a true source is *recovered* when a child lies within
  ``clip(0.5 * d_nn, 1.5, 5)`` pixels of it (``d_nn``: distance to its
  nearest true neighbour), one child per source (Hungarian matching);
* a child that matches no true source is a *spurious split*; the
  over-splitting rate is their fraction of all children;
* the flux error is ``|flux - true flux| / true flux`` of the recovered
  sources (photutils: ``SourceCatalog(...).segment_flux`` of its
  children; ours: the deblender's ``flux``).

Results are given per bin of ``separation`` (to the nearest other member,
in the larger ``r_eff``).

`write_card_figures` remakes the shipped card's example figure
(``python benchmarks/gallery.py --cards`` remakes every card's figures).
"""

import time

import numpy as np
from astropy.table import QTable

__all__ = ['SEPARATION_BINS', 'THRESHOLDS', 'detect', 'photutils_deblend',
           'match', 'score', 'flux_z', 'evaluate_fields', 'field_seeds',
           'tune_threshold', 'calibrate_flux_error', 'evaluate_deblender',
           'plot_example', 'write_card_figures']

#: Bins of the nearest-member separation (in r_eff) of the reports.
SEPARATION_BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, np.inf))
#: Detector thresholds `tune_threshold` chooses from.
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def detect(image, noise_sigma, *, kernel_fwhm=3.0, n_sigma=1.5,
           n_pixels=5):
    """
    The shared detection: photutils on the smoothed image.

    Returns
    -------
    segm : `~photutils.segmentation.SegmentationImage`
    convolved : `~numpy.ndarray`
    """
    from astropy.convolution import convolve
    from photutils.segmentation import detect_sources, make_2dgaussian_kernel

    kernel = make_2dgaussian_kernel(kernel_fwhm, size=5)
    convolved = convolve(np.asarray(image, np.float64), kernel)
    segm = detect_sources(convolved, n_sigma * noise_sigma, n_pixels)
    return segm, convolved


def photutils_deblend(image, convolved, segm, n_pixels=5):
    """
    Photutils' deblending (defaults) and catalog of its children.

    Returns
    -------
    x, y, flux : `~numpy.ndarray`
        Centroids and ``segment_flux`` of the children.
    seconds : float
        Time of `~photutils.segmentation.deblend_sources` alone.
    segm_deblended : `~photutils.segmentation.SegmentationImage`
    """
    from photutils.segmentation import SourceCatalog

    from ..core.detection import photutils_deblend_sources

    start = time.perf_counter()
    deblended = photutils_deblend_sources(convolved, segm, n_pixels)
    seconds = time.perf_counter() - start
    catalog = SourceCatalog(np.asarray(image, np.float64), deblended,
                            convolved_data=convolved)
    return (np.asarray(catalog.x_centroid), np.asarray(catalog.y_centroid),
            np.asarray(catalog.segment_flux), seconds, deblended)


def _nearest_distance(x, y, blend):
    d = np.full(len(x), np.inf)
    for b in np.unique(blend):
        idx = np.nonzero(blend == b)[0]
        if len(idx) < 2:
            continue
        dist = np.hypot(x[idx, None] - x[None, idx], y[idx, None]
                        - y[None, idx])
        np.fill_diagonal(dist, np.inf)
        d[idx] = dist.min(axis=1)
    return d


def match(truth, x, y):
    """
    One-to-one matching of children to true sources by position.

    Returns
    -------
    child_of_truth : `~numpy.ndarray`
        Index of the child matched to each true source, -1 if none.
    matched_child : `~numpy.ndarray`
        Whether each child matched a true source.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial import cKDTree

    tx, ty = np.asarray(truth['x']), np.asarray(truth['y'])
    radius = np.clip(0.5 * _nearest_distance(tx, ty,
                                             np.asarray(truth['blend'])),
                     1.5, 5.0)
    child_of_truth = np.full(len(tx), -1)
    matched_child = np.zeros(len(x), bool)
    if len(x) == 0:
        return child_of_truth, matched_child
    tree = cKDTree(np.column_stack([x, y]))
    pairs = tree.query_ball_point(np.column_stack([tx, ty]), radius)
    # Hungarian matching inside each connected group of candidates.
    big = 1e6
    rows = [i for i, p in enumerate(pairs) if p]
    # Candidates are local (a blend): one small assignment per blend.
    blend = np.asarray(truth['blend'])
    for b in np.unique(blend[rows]):
        r = [i for i in rows if blend[i] == b]
        c = sorted({j for i in r for j in pairs[i]})
        cost = np.full((len(r), len(c)), big)
        for a, i in enumerate(r):
            for j in pairs[i]:
                cost[a, c.index(j)] = np.hypot(x[j] - tx[i], y[j] - ty[i])
        ri, ci = linear_sum_assignment(cost)
        for a, k in zip(ri, ci):
            if cost[a, k] < big and not matched_child[c[k]]:
                child_of_truth[r[a]] = c[k]
                matched_child[c[k]] = True
    return child_of_truth, matched_child


def score(truth, x, y, flux, *, flux_err=None, bins=SEPARATION_BINS):
    """
    Recall, over-splitting and flux error per separation bin.

    Parameters
    ----------
    truth : `~astropy.table.QTable`
        Truth of `~astrodl_plugins.simulate.simulate_blend_field`.
    x, y, flux : array
        The children's centres and fluxes.
    flux_err : array, optional
        Also report the fraction of recovered sources whose true flux
        lies within ``flux +- flux_err`` (68 % coverage).

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per bin and one for all: ``separation_min``,
        ``separation_max``, ``n_true``, ``recall``, ``n_children``,
        ``over_splitting``, ``flux_error_median`` (and ``coverage_68``).
    """
    x, y, flux = (np.asarray(v, np.float64) for v in (x, y, flux))
    child_of_truth, matched_child = match(truth, x, y)
    separation = np.asarray(truth['separation'])
    true_flux = np.asarray(truth['flux'])
    # A spurious child belongs to the bin of its nearest true source.
    from scipy.spatial import cKDTree

    tree = cKDTree(np.column_stack([truth['x'], truth['y']]))
    nearest = tree.query(np.column_stack([x, y]))[1] if len(x) else (
        np.array([], int))
    rows = []
    for lo, hi in (*bins, (0.0, np.inf)):
        in_bin = (separation >= lo) & (separation < hi)
        found = child_of_truth[in_bin] >= 0
        children = (np.isin(nearest, np.nonzero(in_bin)[0])
                    if len(x) else np.zeros(0, bool))
        idx = child_of_truth[in_bin][found]
        err = np.abs(flux[idx] - true_flux[in_bin][found]) / \
            true_flux[in_bin][found]
        row = {'separation_min': lo, 'separation_max': hi,
               'n_true': int(in_bin.sum()),
               'recall': found.mean() if in_bin.any() else np.nan,
               'n_children': int(children.sum()),
               'over_splitting': ((~matched_child[children]).mean()
                                  if children.any() else np.nan),
               'flux_error_median': (np.median(err) if err.size
                                     else np.nan)}
        if flux_err is not None:
            e = np.asarray(flux_err, np.float64)[idx]
            inside = np.abs(flux[idx] - true_flux[in_bin][found]) <= e
            row['coverage_68'] = inside.mean() if inside.size else np.nan
        rows.append(row)
    return QTable(rows=rows)


def flux_z(truth, x, y, flux, flux_err):
    """Normalized flux residuals of the recovered sources (calibration)."""
    child_of_truth, _ = match(truth, np.asarray(x), np.asarray(y))
    found = child_of_truth >= 0
    idx = child_of_truth[found]
    true_flux = np.asarray(truth['flux'])[found]
    return (np.asarray(flux)[idx] - true_flux) / np.asarray(flux_err)[idx]


def evaluate_fields(estimator, seeds, *, shape=(1024, 1024), n_samples=20,
                    n_processes=None):
    """
    Simulate blend fields and score the deblender and photutils on them.

    Returns
    -------
    results : dict
        ``ours`` and ``photutils``: `score` tables of all fields together;
        ``z``: our normalized flux residuals; ``seconds``: deblending time
        of each method; ``n_fields``, ``n_sources``.
    """
    from astropy.table import vstack

    from ..simulate import simulate_blend_field

    truths, ours, theirs, zs = [], [], [], []
    seconds = {'ours': 0.0, 'photutils': 0.0}
    offset = 0
    for seed in seeds:
        image, truth, sigma = simulate_blend_field(
            seed=seed, shape=shape, n_processes=n_processes)
        segm, convolved = detect(image, sigma)
        px, py, pflux, pu_seconds, _ = photutils_deblend(image, convolved,
                                                         segm)
        start = time.perf_counter()
        result = estimator.deblend(image, segm, 5, n_samples=n_samples,
                                   seed=seed)
        seconds['ours'] += time.perf_counter() - start
        seconds['photutils'] += pu_seconds
        table = result.table
        truth['blend'] = np.asarray(truth['blend']) + offset
        offset = int(np.max(truth['blend'])) + 1
        truths.append(truth)
        ours.append(QTable({'x': table['x_centroid'].value,
                            'y': table['y_centroid'].value,
                            'flux': table['flux'].value,
                            'flux_err': table['flux_err'].value}))
        theirs.append(QTable({'x': px, 'y': py, 'flux': pflux}))
        zs.append(flux_z(truth, ours[-1]['x'], ours[-1]['y'],
                         ours[-1]['flux'], ours[-1]['flux_err']))
    # Fields are scored together: shift each to its own region of x.
    for k, (truth, o, t) in enumerate(zip(truths, ours, theirs)):
        shift = k * (shape[1] + 1000)
        truth['x'] = np.asarray(truth['x']) + shift
        o['x'] = np.asarray(o['x']) + shift
        t['x'] = np.asarray(t['x']) + shift
    truth = vstack(truths)
    ours = vstack(ours)
    theirs = vstack(theirs)
    return {'ours': score(truth, ours['x'], ours['y'], ours['flux'],
                          flux_err=ours['flux_err']),
            'photutils': score(truth, theirs['x'], theirs['y'],
                               theirs['flux']),
            'z': np.concatenate(zs), 'seconds': seconds,
            'n_fields': len(seeds), 'n_sources': len(truth)}


# -- the recipe's threshold, calibration, model card and figure ---------------

def field_seeds(seed, n_fields):
    """
    Seeds of the validation and the held-out test blend fields of a
    training ``seed``: ``1000 * (seed + 1) + k`` and ``1000 * (seed + 2) + k``.
    """
    return ([1000 * (seed + 1) + k for k in range(n_fields)],
            [1000 * (seed + 2) + k for k in range(n_fields)])


def tune_threshold(estimator, seeds, thresholds=THRESHOLDS):
    """
    Set the detector threshold, chosen on validation blend fields: the
    lowest (most complete) one whose over-splitting is no worse than
    photutils' on the same fields; if none is, the one that over-splits
    least.

    Returns
    -------
    threshold : float
        Also set as ``estimator.threshold_``.
    sweep : list of dict
        ``threshold``, ``recall``, ``over_splitting`` and photutils'.
    """
    sweep = []
    for threshold in thresholds:
        estimator.threshold_ = threshold
        result = evaluate_fields(estimator, seeds, n_samples=0)
        ours, theirs = result['ours'][-1], result['photutils'][-1]
        sweep.append({'threshold': threshold,
                      'recall': float(ours['recall']),
                      'over_splitting': float(ours['over_splitting']),
                      'recall_photutils': float(theirs['recall']),
                      'over_splitting_photutils': float(
                          theirs['over_splitting'])})
    good = [row for row in sweep
            if row['over_splitting'] <= row['over_splitting_photutils']]
    best = (min(good, key=lambda row: row['threshold']) if good
            else min(sweep, key=lambda row: row['over_splitting']))
    estimator.threshold_ = best['threshold']
    return best['threshold'], sweep


def calibrate_flux_error(estimator, seeds, *, n_samples=20):
    """
    Set the scale of ``flux_err``: the 68.3 % quantile of ``|flux - true|
    / flux_err`` (uncalibrated) of the sources recovered on the fields.

    Returns
    -------
    scale : float
        Also set as ``estimator.flux_error_scale_``.
    """
    estimator.flux_error_scale_ = 1.0
    z = evaluate_fields(estimator, seeds, n_samples=n_samples)['z']
    z = z[np.isfinite(z)]
    scale = float(np.quantile(np.abs(z), 0.683)) if z.size else 1.0
    estimator.flux_error_scale_ = scale
    return scale


def _bin_name(row):
    lo, hi = row['separation_min'], row['separation_max']
    if np.isfinite(hi):
        return f'{lo:g}-{hi:g}'
    return 'all' if lo == 0 else f'>= {lo:g}'


def evaluate_deblender(estimator, *, seed, n_fields=4, n_samples=20):
    """
    Tune the threshold and calibrate ``flux_err`` on the validation fields
    of ``seed``, then score the held-out test fields against photutils.

    Returns
    -------
    card : dict
        The model card's ``error_scale``, ``metrics`` (``all``) and
        ``tables`` (per separation bin; the threshold sweep).
    """
    validation_seeds, test_seeds = field_seeds(seed, n_fields)
    threshold, sweep = tune_threshold(estimator, validation_seeds)
    scale = calibrate_flux_error(estimator, validation_seeds,
                                 n_samples=n_samples)
    test = evaluate_fields(estimator, test_seeds, n_samples=n_samples)
    ours, theirs = test['ours'], test['photutils']
    rows = [[_bin_name(a), int(a['n_true']), float(a['recall']),
             float(b['recall']), float(a['over_splitting']),
             float(b['over_splitting']), float(a['flux_error_median']),
             float(b['flux_error_median']), float(a['coverage_68'])]
            for a, b in zip(ours, theirs)]
    total_a, total_b = ours[-1], theirs[-1]
    metrics = {}
    for key in ('recall', 'over_splitting', 'flux_error_median'):
        metrics[key] = float(total_a[key])
        metrics[f'{key}_photutils'] = float(total_b[key])
    metrics.update(flux_coverage_68=float(total_a['coverage_68']),
                   threshold=float(threshold),
                   seconds=test['seconds']['ours'],
                   seconds_photutils=test['seconds']['photutils'],
                   n_fields=test['n_fields'], n_sources=test['n_sources'],
                   n_samples=n_samples)
    header = ['separation (r_eff)', 'true sources', 'recall',
              'recall (photutils)', 'over-splitting',
              'over-splitting (photutils)', 'median |dF|/F',
              'median |dF|/F (photutils)', 'flux coverage 68 %']
    sweep_table = {
        'title': 'Detector threshold, chosen on validation fields (the '
                 "lowest whose over-splitting is no worse than photutils')",
        'header': ['threshold', 'recall', 'over-splitting',
                   'recall (photutils)', 'over-splitting (photutils)'],
        'rows': [[row['threshold'], row['recall'], row['over_splitting'],
                  row['recall_photutils'], row['over_splitting_photutils']]
                 for row in sweep]}
    return {
        'error_scale': {'flux': scale},
        'metrics': {'all': metrics},
        'tables': [{'title': f"Held-out blend fields ({test['n_fields']} "
                             f"of 1024 x 1024 pixels, {test['n_sources']} "
                             'sources), against photutils deblend_sources '
                             'on the same detection',
                    'header': header, 'rows': rows}, sweep_table],
    }


def plot_example(estimator, path, *, seed, zoom=True):
    """
    Four panels of a simulated blend field: the data, photutils' children,
    the deblender's, and the data minus its models.

    The field is 224 pixels; with ``zoom=True`` the panels show a crop
    around its richest blend (at least 48 pixels), where the members can
    be told apart; the red crosses are the true centres.
    """
    from astropy.visualization import simple_norm
    from matplotlib.figure import Figure

    from ..simulate import simulate_blend_field

    image, truth, sigma = simulate_blend_field(seed=seed, shape=(224, 224))
    segm, convolved = detect(image, sigma)
    theirs = photutils_deblend(image, convolved, segm)[-1]
    result = estimator.deblend(image, segm, 5, n_samples=0, seed=0)
    residual = image - result.model_image(image.shape)
    window = _zoom_window(truth, image.shape) if zoom else (
        slice(0, image.shape[0]), slice(0, image.shape[1]))
    norm = simple_norm(image[window], 'asinh', percent=99.5)
    figure = Figure(figsize=(12, 3.6), layout='constrained')
    panels = [(image, 'data', norm),
              (theirs, 'photutils deblend_sources', None),
              (result.segmentation_image, 'deblender', None),
              (residual, 'data - models', norm)]
    extent = (window[1].start - 0.5, window[1].stop - 0.5,
              window[0].start - 0.5, window[0].stop - 0.5)
    for axes, (panel, title, panel_norm) in zip(figure.subplots(1, 4),
                                                panels):
        if hasattr(panel, 'make_cmap'):
            axes.imshow(panel.data[window], origin='lower', extent=extent,
                        interpolation='nearest',
                        cmap=panel.make_cmap(seed=1))
        else:
            axes.imshow(panel[window], origin='lower', cmap='gray',
                        norm=panel_norm, extent=extent)
        axes.plot(truth['x'], truth['y'], 'r+', ms=10, mew=1.5)
        axes.set_xlim(extent[:2])
        axes.set_ylim(extent[2:])
        axes.set_title(title)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.savefig(path, dpi=80)


def _zoom_window(truth, shape, min_size=48, margin=10):
    """Slices around the blend with the most members (then the closest)."""
    x, y = np.asarray(truth['x']), np.asarray(truth['y'])
    blend = np.asarray(truth['blend'])
    labels, counts = np.unique(blend, return_counts=True)
    chosen = blend == labels[np.argmax(counts)]
    centre = (0.5 * (y[chosen].min() + y[chosen].max()),
              0.5 * (x[chosen].min() + x[chosen].max()))
    half = max(min_size // 2, int(np.ceil(0.5 * max(
        np.ptp(x[chosen]), np.ptp(y[chosen])))) + margin)
    window = []
    for c, n in zip(centre, shape):
        start = int(np.clip(round(c) - half, 0, max(n - 2 * half, 0)))
        window.append(slice(start, min(start + 2 * half, n)))
    return tuple(window)


def write_card_figures(directory=None, *, seed=3000, estimator=None):
    """
    Draw the card's ``example.png``: a zoom on a held-out blend field.

    The default seed is the recipe's first test field (training seed 1).

    Returns
    -------
    paths : list of `~pathlib.Path`
    """
    from pathlib import Path

    from .. import get_estimator
    from ..core.store import MODELS_DIR

    estimator = get_estimator('deblender') if estimator is None else estimator
    directory = Path(MODELS_DIR / 'deblender' if directory is None
                     else directory)
    path = directory / 'example.png'
    plot_example(estimator, path, seed=seed)
    return [path]
