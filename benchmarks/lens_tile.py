# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Finding lenses in a simulated survey tile, as the docs' "Strong lenses"
page walks through it.

A tile of ``--n-sources`` galaxies (a tenth of them lenses, the others the
simulator's lens-like non-lenses and stars) is made by
`~astrodl_plugins.simulate.simulate_lens_field` (one PSF, g, r, i, a TAN
WCS at 0.2 arcsec per pixel). Then what a user would do: photutils
detection on the r band, ``lens-finder`` on every segment (the PSF from
the images' ``PSF_FWHM``), the candidates ranked by ``p_lens``, and
``lens-parameters`` (with the finder alongside) on the top candidates. It
prints the purity and completeness of the ranking against the
simulation's truth, the measured lens parameters of the candidates next to
their truth, and draws the tile and the top candidates (each with the
residual after removing its point-symmetric light, where arcs stand out,
and the measured Einstein radius).

Run from the checkout::

    python benchmarks/lens_tile.py --figures docs/images
"""

import argparse
import warnings
from pathlib import Path

import numpy as np


def detect(images):
    """Background-subtracted images and the r band's segmentation image."""
    from astrodl_plugins.core.detection import subtract_background_and_detect

    subtracted, segm = [], None
    for image in images:
        data, band_segm, _ = subtract_background_and_detect(image,
                                                           deblend=True)
        subtracted.append(data)
        if image.meta['BAND'] == 'r':
            segm = band_segm
    return subtracted, segm


def match(table, truth, radius=4.0):
    """Index of the true source of each row (-1 beyond ``radius`` pixels)."""
    dx = np.asarray(table['x_centroid'])[:, None] - np.asarray(truth['x'])
    dy = np.asarray(table['y_centroid'])[:, None] - np.asarray(truth['y'])
    distance = np.hypot(dx, dy)
    nearest = np.argmin(distance, axis=1)
    return np.where(distance[np.arange(len(table)), nearest] <= radius,
                    nearest, -1)


def rgb(stamps, scale):
    """An asinh colour image of ``(size, size, 3)`` g, r, i stamps."""
    image = np.arcsinh(stamps[..., ::-1] / scale) / np.arcsinh(100.0)
    return np.clip(image, 0.0, 1.0)


def cutout(images, x, y, size=48):
    """``(size, size, 3)`` around ``(x, y)`` (NaN beyond the edge)."""
    from astropy.nddata.utils import extract_array

    # Integer centre: the image pixel round(x) is the cutout's size // 2.
    centre = (int(np.floor(y + 0.5)), int(np.floor(x + 0.5)))
    return np.stack([extract_array(np.asarray(image.data, float),
                                   (size, size), centre, mode='partial',
                                   fill_value=np.nan) for image in images],
                    axis=-1)


def point_symmetric_residual(stamp, dx, dy, size=48):
    """
    The stamp minus itself turned by 180 deg about the source centre,
    ``(dx, dy)`` pixels from the cutout's pixel ``size // 2``: a smooth
    galaxy cancels, arcs stay.
    """
    from scipy.ndimage import map_coordinates

    cx = size // 2 + dx
    cy = size // 2 + dy
    yy, xx = np.mgrid[:size, :size].astype(float)
    turned = map_coordinates(np.nan_to_num(stamp), [2 * cy - yy, 2 * cx - xx],
                             order=3, mode='nearest')
    return stamp - turned


def plot_tile(images, table, truth, found, path, threshold):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 7))
    axes = figure.subplots()
    axes.imshow(rgb(np.stack([image.data for image in images], -1), 15.0),
                origin='lower')
    lens = np.asarray(truth['label']) == 0
    axes.scatter(truth['x'][lens], truth['y'][lens], s=300,
                 facecolors='none', edgecolors='cyan', lw=1.2,
                 label='true lenses')
    candidate = (np.asarray(table['p_lens']) > threshold) & (
        np.asarray(table['flag']) == 0)
    axes.scatter(np.asarray(table['x_centroid'])[candidate],
                 np.asarray(table['y_centroid'])[candidate], s=500,
                 facecolors='none', edgecolors='orange', lw=1.2, ls='--',
                 label=f'p_lens > {threshold}, unflagged')
    axes.legend(loc='upper right', fontsize=8)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(f'Simulated tile: {lens.sum()} lenses among '
                   f'{len(truth)} sources', fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def plot_candidates(images, table, params, truth, found, path, n=8):
    from matplotlib.figure import Figure

    order = np.argsort(-np.nan_to_num(np.asarray(table['p_lens'])))[:n]
    figure = Figure(figsize=(2.0 * n, 4.4))
    axes = figure.subplots(2, n, squeeze=False)
    scale = 0.2
    for column, row in enumerate(order):
        x, y = table['x_centroid'][row], table['y_centroid'][row]
        stamps = cutout(images, x, y)
        p = params[params['label'] == table['label'][row]]
        # Turned about the refined lens centre where it was measured.
        cx, cy = ((p['x_centroid'][0], p['y_centroid'][0]) if len(p)
                  else (x, y))
        residual = point_symmetric_residual(stamps[..., 1],
                                            cx - np.floor(x + 0.5),
                                            cy - np.floor(y + 0.5))
        index = found[row]
        kind = truth['kind'][index] if index >= 0 else 'no match'
        top, bottom = axes[0, column], axes[1, column]
        top.imshow(rgb(np.nan_to_num(stamps), 15.0), origin='lower')
        top.set_title(f"p_lens {table['p_lens'][row]:.2f}"
                      f"+-{table['p_lens_err'][row]:.2f}\n"
                      f"truth: {kind}, flag {table['flag'][row]}",
                      fontsize=7)
        limit = 8 * 1.4826 * np.nanmedian(np.abs(residual))
        bottom.imshow(np.nan_to_num(residual), origin='lower',
                      cmap='RdBu_r', vmin=-limit, vmax=limit)
        if len(p):
            theta = p['theta_e'][0].to_value('arcsec') / scale
            cx = p['x_centroid'][0] - np.floor(x + 0.5) + 24
            cy = p['y_centroid'][0] - np.floor(y + 0.5) + 24
            circle = np.linspace(0, 2 * np.pi, 100)
            bottom.plot(cx + theta * np.cos(circle),
                        cy + theta * np.sin(circle), 'k--', lw=0.8)
            true_theta = (truth['theta_e'][index] if index >= 0
                          else np.nan)
            bottom.set_title(
                f"theta_E {p['theta_e'][0].value:.2f}"
                f"+-{p['theta_e_err'][0].value:.2f}\" (true "
                + (f'{true_theta * scale:.2f}' if np.isfinite(true_theta)
                   else '-') + ')', fontsize=7)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel('g, r, i', fontsize=8)
    axes[1, 0].set_ylabel('r minus its 180 deg turn', fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--n-sources', type=int, default=144)
    parser.add_argument('--lens-fraction', type=float, default=0.1,
                        help='fraction of lenses in the tile (also the '
                        "finder's class_prior for the second count)")
    parser.add_argument('--seed', type=int, default=21)
    parser.add_argument('--threshold', type=float, default=0.5,
                        help='p_lens of a candidate')
    parser.add_argument('--finder', default='lens-finder',
                        help='finder preset (name or directory)')
    parser.add_argument('--parameters', default='lens-parameters',
                        help='lens-parameters preset (name or directory)')
    parser.add_argument('--figures', default=None,
                        help='write lens_tile.png and lens_candidates.png '
                        'here')
    args = parser.parse_args()

    from astrodl_plugins.lenses import LensFinder, LensParameters
    from astrodl_plugins.simulate import simulate_lens_field

    images, truth = simulate_lens_field(args.n_sources, seed=args.seed,
                                        lens_fraction=args.lens_fraction)
    subtracted, segm = detect(images)
    finder = LensFinder.from_preset(args.finder)
    n_lenses = int(np.sum(truth['label'] == 0))
    tables = {}
    # The finder's default prior (lenses one in a thousand), and the
    # tile's own lens fraction (what a user of a preselected sample knows).
    tile_prior = (args.lens_fraction, 1.0 - args.lens_fraction)
    for name, prior in (('survey prior', finder.class_prior),
                        ("the tile's lens fraction", tile_prior)):
        finder.set_params(class_prior=prior)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            tables[name] = finder.predict(subtracted, bands=('g', 'r', 'i'),
                                          segmentation_image=segm,
                                          n_samples=50, seed=0)
    table = tables["the tile's lens fraction"]
    found = match(table, truth)
    is_lens = np.array([index >= 0 and truth['label'][index] == 0
                        for index in found])
    good = np.asarray(table['flag']) == 0
    print(f'{len(truth)} sources ({n_lenses} lenses), {len(table)} '
          f'segments detected, {int(good.sum())} unflagged')
    for name, each in tables.items():
        p = np.nan_to_num(np.asarray(each['p_lens']))
        candidate = good & (p > args.threshold)
        found_lenses = len(set(found[candidate & is_lens]))
        prior = each.meta['class_prior']['lens']
        print(f'{name} ({prior:g}): p_lens > {args.threshold}, unflagged: '
              f'{int(candidate.sum())} candidates, '
              f'{int(np.sum(candidate & is_lens))} of them lenses (purity '
              f'{np.mean(is_lens[candidate]) if candidate.any() else 0:.2f}'
              f', completeness {found_lenses / max(n_lenses, 1):.2f}); '
              f'highest p_lens {p.max():.3f}')
    p = np.nan_to_num(np.asarray(table['p_lens']))
    candidate = good & (p > args.threshold)
    order = np.argsort(-p)
    for k in (5, 10, 20):
        print(f'top {k} by p_lens: {int(is_lens[order[:k]].sum())} lenses')
    kinds = [truth['kind'][index] if index >= 0 else 'no match'
             for index in found[candidate & ~is_lens]]
    if kinds:
        names, counts = np.unique(kinds, return_counts=True)
        print("false candidates at the tile's fraction: " + ', '.join(
            f'{name} {count}' for name, count in zip(names, counts)))
    # Lens parameters of the top candidates, the finder alongside.
    top = order[:max(int(candidate.sum()), 8)]
    positions = np.column_stack([table['x_centroid'][top],
                                 table['y_centroid'][top]])
    estimator = LensParameters.from_preset(args.parameters)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        params = estimator.predict(subtracted, bands=('g', 'r', 'i'),
                                   positions=positions, n_samples=50,
                                   seed=0, finder=finder)
    params['label'] = table['label'][top]
    scale = 0.2
    print('\nlabel  p_lens  theta_E (arcsec)          truth   flag')
    for row, index in zip(params, found[top]):
        true = (truth['theta_e'][index] * scale
                if index >= 0 and truth['label'][index] == 0 else np.nan)
        print(f"{row['label']:5d}  {row['p_lens']:.2f}   "
              f"{row['theta_e'].value:.2f} +- {row['theta_e_err'].value:.2f}"
              f"          {true:.2f}    {row['flag']}")
    if args.figures:
        directory = Path(args.figures)
        plot_tile(images, table, truth, found, directory / 'lens_tile.png',
                  args.threshold)
        plot_candidates(images, table, params, truth, found,
                        directory / 'lens_candidates.png')
        print(f'wrote {directory}/lens_tile.png and lens_candidates.png')


if __name__ == '__main__':
    main()
