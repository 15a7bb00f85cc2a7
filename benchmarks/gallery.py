# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The gallery: every shipped estimator on real images, flags included.

For a 256-pixel crop of each real image (the project's shared data --
Spitzer, Horsehead, M13, 2MASS J -- and scikit-image's Hubble Deep Field)
this runs what a user would: photutils background and detection
(`~astrodl_plugins.core.detection.subtract_background_and_detect`, not
deblended), then ``star-galaxy``, ``galaxy-morphology`` and
``galaxy-structure`` on the detected segments with no PSF given (each
estimates it from the image), and ``deblender`` on the same segments. Each
field gives one figure of four panels, and a line per estimator with the
number of rows, the fraction flagged and the flag bits set. ``--cards``
also remakes the model cards' figures (fixed seeds) into the shipped
presets' directories.

Run from the checkout::

    python benchmarks/gallery.py --data ../shared/data --figures docs/images
    python benchmarks/gallery.py --cards
"""

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from astropy.nddata import CCDData
from real_data import _read

#: (name, file or None for the HDF, unit, centre (y, x) of the crop or None).
FIELDS = (
    ('Hubble Deep Field', None, 'adu', None),
    ('Spitzer', 'spitzer_example_image.fits', 'MJy/sr', None),
    ('Horsehead', 'HorseHead.fits', 'adu', (560, 380)),
    ('M13', 'M13_blue_0001.fits', 'adu', None),
    ('2MASS J', 'gc_2mass_j.fits', 'adu', None),
)
SIZE = 256
ESTIMATORS = ('star-galaxy', 'galaxy-morphology', 'galaxy-structure',
              'deblender')


def crop(ccd, centre, size=SIZE):
    """A ``size``-pixel cutout (WCS kept) around ``centre`` (default middle)."""
    from astropy.nddata import Cutout2D

    ny, nx = ccd.shape
    y, x = centre if centre is not None else (ny // 2, nx // 2)
    cutout = Cutout2D(ccd.data, (x, y), (min(size, ny), min(size, nx)),
                      wcs=ccd.wcs, mode='trim')
    return CCDData(cutout.data, unit=ccd.unit, wcs=cutout.wcs)


def load(data_dir):
    """``(name, slug, ccd)`` of each crop."""
    from skimage.data import hubble_deep_field

    out = []
    for name, file, unit, centre in FIELDS:
        if file is None:
            hdf = hubble_deep_field().astype(np.float64).mean(axis=-1)
            ccd = CCDData(hdf[::-1], unit=unit)
        else:
            ccd = _read(Path(data_dir) / file, unit)
        slug = name.lower().replace(' ', '_')
        out.append((name, slug, crop(ccd, centre)))
    return out


def run_field(estimators, ccd):
    """Detection, then each estimator; ``(subtracted, segm, results)``."""
    from astrodl_plugins.core.detection import subtract_background_and_detect
    from astrodl_plugins.core.inputs import read_image
    from astrodl_plugins.core.psf import estimate_image_psf

    subtracted, segm, _ = subtract_background_and_detect(ccd)
    psf_fwhm = None
    results = {}
    with warnings.catch_warnings():
        # Real data: the estimators warn (PSF estimate, flags); the flags
        # are what the figures show.
        warnings.simplefilter('ignore')
        for name, estimator in estimators.items():
            if name == 'deblender':
                results[name] = estimator.deblend(subtracted, segm.copy(), 5,
                                                  n_samples=10, seed=0)
                continue
            try:
                results[name] = estimator.predict(
                    subtracted, segmentation_image=segm.copy(),
                    n_samples=10, seed=0)
            except ValueError:
                # This estimator needs psf_fwhm: give it the image's own
                # estimate, as the docs tell a user to.
                if psf_fwhm is None:
                    psf_fwhm = estimate_image_psf(read_image(subtracted)).fwhm
                results[name] = estimator.predict(
                    subtracted, segmentation_image=segm.copy(),
                    psf_fwhm=psf_fwhm, n_samples=10, seed=0)
    return subtracted, segm, results


def summary(results):
    """Rows, flagged fraction, flag bits and the main result, per estimator."""
    out = {}
    for name, result in results.items():
        table = result.table if name == 'deblender' else result
        flag = np.asarray(table['flag'], int)
        row = {'rows': len(table),
               'flagged': float(np.mean(flag > 0)) if len(table) else 0.0,
               'bits': {int(b): int(np.sum(flag & b > 0))
                        for b in (1, 2, 4, 8, 16, 32, 64, 128)
                        if np.any(flag & b)},
               'psf_fwhm': _psf(table)}
        if 'class' in table.colnames:
            classes, counts = np.unique(np.asarray(table['class']),
                                        return_counts=True)
            row['classes'] = dict(zip(classes.tolist(), counts.tolist()))
            classes, counts = np.unique(np.asarray(table['class'])[flag == 0],
                                        return_counts=True)
            row['classes_unflagged'] = dict(zip(classes.tolist(),
                                                counts.tolist()))
        if 'r_eff' in table.colnames:
            good = flag == 0
            row['median_r_eff_unflagged'] = (
                float(np.median(table['r_eff'].value[good]))
                if good.any() else None)
        out[name] = row
    return out


def _psf(table):
    """The table meta's PSF entries, as text."""
    return {key: str(value) for key, value in table.meta.items()
            if key.startswith('psf')}


def plot(name, subtracted, segm, results, path):
    """Four panels: classes, morphology, structure ellipses, deblending."""
    from astropy.visualization import simple_norm
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse

    data = np.nan_to_num(np.asarray(subtracted.data, np.float64))
    norm = simple_norm(data, 'asinh', percent=99.5)
    figure = Figure(figsize=(13, 3.7), layout='constrained')
    axes = figure.subplots(1, 4)
    for ax in axes[:3]:
        ax.imshow(data, origin='lower', cmap='gray_r', norm=norm)
    _classes(axes[0], results['star-galaxy'], 'star-galaxy')
    _classes(axes[1], results['galaxy-morphology'], 'galaxy-morphology')
    table = results['galaxy-structure']
    has_wcs = getattr(subtracted, 'wcs', None) is not None
    flagged = np.asarray(table['flag']) > 0
    for row, bad in zip(table, flagged):
        r_eff = float(getattr(row['r_eff'], 'value', row['r_eff']))
        if not np.isfinite(r_eff):
            continue
        angle = float(getattr(row['position_angle'], 'value',
                              row['position_angle']))
        # East of north with a celestial WCS (north up, east left: +90
        # from +x), else counter-clockwise from +x.
        angle += 90.0 if has_wcs else 0.0
        axes[2].add_patch(Ellipse(
            (float(row['x_centroid']), float(row['y_centroid'])), 2 * r_eff,
            2 * r_eff * float(row['axis_ratio']), angle=angle,
            fill=False, lw=0.7, color='0.55' if bad else 'tab:red'))
    axes[2].set_title('galaxy-structure (red: unflagged, grey: flagged)',
                      fontsize=8)
    result = results['deblender']
    axes[3].imshow(result.segmentation_image.data, origin='lower',
                   interpolation='nearest',
                   cmap=result.segmentation_image.make_cmap(seed=1))
    axes[3].set_title(f'deblender: {segm.n_labels} segments -> '
                      f'{result.segmentation_image.n_labels} children',
                      fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(-0.5, data.shape[1] - 0.5)
        ax.set_ylim(-0.5, data.shape[0] - 0.5)
    figure.suptitle(name)
    save_small(figure, path)


def save_small(figure, path, dpi=72):
    """Save as a 256-colour PNG (the docs' images stay under 200 kB)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert('RGB').quantize(256).save(path, optimize=True)


def _classes(ax, table, title):
    x = np.asarray(table['x_centroid'].value)
    y = np.asarray(table['y_centroid'].value)
    flagged = np.asarray(table['flag']) > 0
    classes = np.asarray(table['class'])
    ax.scatter(x[flagged], y[flagged], s=16, facecolors='none',
               edgecolors='0.55', lw=0.6, label='flagged')
    for k, label in enumerate(sorted(set(classes[~flagged].tolist()))):
        chosen = ~flagged & (classes == label)
        ax.scatter(x[chosen], y[chosen], s=16, marker='o', facecolors='none',
                   edgecolors=f'C{k}', lw=1.0, label=label)
    ax.set_title(f'{title} ({flagged.sum()} of {len(table)} flagged)',
                 fontsize=8)
    ax.legend(loc='upper right', fontsize=6, framealpha=0.7)


def cards(seed_offset=0):
    """Remake every shipped card's figures (fixed seeds)."""
    from astrodl_plugins.classification import evaluate as classification
    from astrodl_plugins.deblending import evaluate as deblending
    from astrodl_plugins.structure import evaluate as structure

    paths = structure.write_card_figures(seed=3 + seed_offset)
    for name in ('star-galaxy', 'galaxy-morphology'):
        paths += classification.write_card_figures(name, seed=3 + seed_offset)
    paths += deblending.write_card_figures(seed=3000 + seed_offset)
    for path in paths:
        print(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default='../shared/data')
    parser.add_argument('--figures', default=None,
                        help='directory of the gallery figures')
    parser.add_argument('--cards', action='store_true',
                        help="remake the model cards' figures, then stop")
    args = parser.parse_args()
    if args.cards:
        cards()
        return
    import astrodl_plugins as adl

    estimators = {name: adl.get_estimator(name) for name in ESTIMATORS}
    everything = {}
    for name, slug, ccd in load(args.data):
        subtracted, segm, results = run_field(estimators, ccd)
        everything[name] = summary(results)
        print(name, json.dumps(everything[name]), flush=True)
        if args.figures:
            plot(name, subtracted, segm, results,
                 Path(args.figures) / f'gallery_{slug}.png')


if __name__ == '__main__':
    main()
