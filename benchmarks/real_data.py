# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The star-galaxy classifier on real images: right, flagged, or confidently
wrong?

For each real image (the project's shared data and scikit-image's Hubble
Deep Field) this runs what ``astrodl predict star-galaxy IMAGE`` runs:
photutils background, detection and deblending, then the classifier with
no PSF given (estimated from the image's own point sources). It prints,
per field, the fraction of flagged rows, the flag bits, and the fraction
of *unflagged* rows whose class contradicts the field's truth (Galactic
plane, Galactic centre and globular-cluster sources are stars; HDF
sources with a segment of at least 50 pixels are galaxies), and draws the
classes and flags over the image (``--figures DIR``).

Run from the checkout::

    python benchmarks/real_data.py --data ../shared/data --figures docs/images
    python benchmarks/real_data.py --data ../shared/data --figures docs/images --lenses
"""

import argparse
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData


def _read(path, unit):
    with fits.open(path) as hdul:
        hdu = next(h for h in hdul if h.data is not None)
        header = hdu.header
        data = np.asarray(hdu.data, np.float64)
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        wcs = WCS(header) if 'CTYPE1' in header else None
    return CCDData(data, unit=header.get('BUNIT', unit) or unit, wcs=wcs)


def fields(data_dir):
    from skimage.data import hubble_deep_field

    data_dir = Path(data_dir)
    hdf = hubble_deep_field().astype(np.float64).mean(axis=-1)
    return [
        ('Spitzer (Galactic plane)', _read(data_dir / 'spitzer_example_image.fits',
                                           'MJy/sr'), 'star', 0),
        ('2MASS J (Galactic centre)', _read(data_dir / 'gc_2mass_j.fits', 'adu'),
         'star', 0),
        ('2MASS K (Galactic centre)', _read(data_dir / 'gc_2mass_k.fits', 'adu'),
         'star', 0),
        ('M13 (globular cluster)', _read(data_dir / 'M13_blue_0001.fits', 'adu'),
         'star', 0),
        ('Hubble Deep Field', CCDData(hdf, unit='adu'), 'galaxy', 50),
    ]


def measure(estimator, ccd, truth, min_area, by='segmentation'):
    """
    One field: detection (deblended), then the classifier asked by
    segmentation image (``by='segmentation'``) or by the positions of the
    detections only (``by='positions'``).
    """
    from astrodl_plugins.core.detection import subtract_background_and_detect

    subtracted, segm, catalog = subtract_background_and_detect(ccd,
                                                               deblend=True)
    where = ({'segmentation_image': segm} if by == 'segmentation' else
             {'positions': np.column_stack([catalog.x_centroid,
                                            catalog.y_centroid])})
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        table = estimator.predict(subtracted, n_samples=10, seed=0, **where)
    select = np.asarray(catalog.area.value) >= min_area
    flag = np.asarray(table['flag'])[select]
    wrong = np.asarray(table['class'])[select] != truth
    unflagged = flag == 0
    row = {'rows': int(select.sum()),
           'psf': table.meta['psf_fwhm_source'],
           'flagged': float(np.mean(~unflagged)),
           'unfamiliar': float(np.mean(flag & 32 > 0)),
           'out_of_range': float(np.mean(flag & 4 > 0)),
           'psf_uncertain': float(np.mean(flag & 64 > 0)),
           'rescaled': float(np.mean(np.asarray(table['rescale'])[select]
                                     > 1)),
           'wrong': float(np.mean(wrong)),
           'confident_errors': (float(np.sum(wrong & unflagged)
                                      / unflagged.sum())
                                if unflagged.any() else float('nan')),
           'stars_or_flagged': float(np.mean((np.asarray(
               table['class'])[select] == 'star') | ~unflagged))}
    return row, subtracted, table[select]


def plot(ccd, table, title, path):
    from astropy.visualization import simple_norm
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 6), layout='constrained')
    axes = figure.add_subplot()
    data = np.nan_to_num(ccd.data)
    axes.imshow(data, origin='lower', cmap='gray_r',
                norm=simple_norm(data, 'asinh', percent=99.5))
    x = np.asarray(table['x_centroid'].value)
    y = np.asarray(table['y_centroid'].value)
    flagged = np.asarray(table['flag']) > 0
    star = np.asarray(table['class']) == 'star'
    axes.scatter(x[flagged], y[flagged], s=10, facecolors='none',
                 edgecolors='0.55', lw=0.6, label='flagged')
    axes.scatter(x[~flagged & star], y[~flagged & star], s=14, marker='*',
                 c='tab:blue', label='star (unflagged)')
    axes.scatter(x[~flagged & ~star], y[~flagged & ~star], s=14, marker='o',
                 facecolors='none', edgecolors='tab:red',
                 label='galaxy (unflagged)')
    axes.set_title(title)
    axes.legend(loc='upper right', fontsize=8)
    figure.savefig(path, dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default='../shared/data')
    parser.add_argument('--figures', default=None)
    parser.add_argument('--locus', action='store_true',
                        help='measure the stellar-locus self-calibration '
                        'tried for the real-sky issue, then stop')
    parser.add_argument('--lenses', action='store_true',
                        help='run lens-finder on every field instead '
                        '(figure real_lenses.png), then stop')
    parser.add_argument('--only', default=None,
                        help='with --lenses: the fields whose name holds '
                        'this text')
    args = parser.parse_args()
    if args.locus:
        locus_consistency(args.data)
        return
    if args.lenses:
        lens_check(args.data, args.figures, only=args.only)
        return
    import astrodl_plugins as adl

    estimator = adl.get_estimator('star-galaxy')
    header = (f"{'field':28s} {'asked by':>12s} {'rows':>5s} {'flagged':>8s} "
              f"{'OOD':>6s} {'range':>6s} {'PSF?':>6s} {'rescaled':>8s} "
              f"{'wrong':>6s} {'conf.err':>9s} {'star|flag':>9s}  PSF")
    print(header)
    for name, ccd, truth, min_area in fields(args.data):
        for by in ('segmentation', 'positions'):
            row, subtracted, table = measure(estimator, ccd, truth, min_area,
                                             by=by)
            print(f"{name:28s} {by:>12s} {row['rows']:5d} "
                  f"{row['flagged']:8.2f} {row['unfamiliar']:6.2f} "
                  f"{row['out_of_range']:6.2f} {row['psf_uncertain']:6.2f} "
                  f"{row['rescaled']:8.2f} {row['wrong']:6.2f} "
                  f"{row['confident_errors']:9.2f} "
                  f"{row['stars_or_flagged']:9.2f}  {row['psf']}", flush=True)
            if args.figures and by == 'segmentation':
                stem = name.split(' (')[0].lower().replace(' ', '_')
                plot(subtracted, table, f'star-galaxy on {name}',
                     Path(args.figures) / f'real_{stem}.png')
    sizes = structure_sizes()
    print('galaxy-structure, Hubble Deep Field (segments >= 50 px): '
          f"{sizes['rows']} rows, {sizes['flagged']:.2f} flagged "
          f"({sizes['unfamiliar']:.2f} UNFAMILIAR); r_eff against photutils' "
          f"half-light radius, Spearman {sizes['spearman_unflagged']:.3f} "
          f"on the {sizes['n_unflagged']} unflagged rows")



def lens_check(data_dir, figures=None, threshold=0.5, n_top=6, only=None):
    """
    lens-finder on every real field (one band, PSF estimated), as
    ``astrodl predict lens-finder IMAGE`` runs it (its default prior, one
    lens in a thousand sources), and again with the simulations' prior
    (``class_prior=None``, about one in two) for comparison. None of these fields
    holds a known galaxy-scale lens: every unflagged row with ``p_lens``
    above ``threshold`` is a presumed false positive. Prints, per field,
    the rows, the fraction flagged (and why) and the fraction of
    confident lens calls; draws the top unflagged candidates of each field
    (``real_lenses.png``).
    """
    import astrodl_plugins as adl
    from astrodl_plugins.core.detection import subtract_background_and_detect

    finder = adl.get_estimator('lens-finder')
    horsehead = _read(Path(data_dir) / 'HorseHead.fits', 'adu')
    rows = [*fields(data_dir), ('Horsehead (DSS plate)', horsehead, None, 0)]
    if only:
        rows = [row for row in rows if only.lower() in row[0].lower()]
    header = (f"{'field':28s} {'rows':>5s} {'flagged':>8s} {'OOD':>6s} "
              f"{'range':>6s} {'PSF?':>6s} {f'p>{threshold} unflagged':>18s}"
              f" {'max p unflagged':>16s} {'same, prior 1/2':>18s}"
              f" {'max, prior 1/2':>15s}")
    print(header)
    tops = []
    balanced = adl.get_estimator('lens-finder').set_params(class_prior=None)
    for name, ccd, _, _ in rows:
        subtracted, segm, _ = subtract_background_and_detect(ccd,
                                                             deblend=True)
        counts = []
        for each in (finder, balanced):
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                table = each.predict(subtracted, segmentation_image=segm,
                                     n_samples=20, seed=0)
            flag = np.asarray(table['flag'])
            p = np.nan_to_num(np.asarray(table['p_lens']))
            unflagged = flag == 0
            calls = unflagged & (p > threshold)
            highest = p[unflagged].max() if unflagged.any() else np.nan
            counts.append(f'{np.sum(calls):7d} ({np.mean(calls):6.3f}) '
                          f'{highest:15.3f}')
            if each is finder:
                kept = table, p, unflagged, flag
        table, p, unflagged, flag = kept
        print(f'{name:28s} {len(table):5d} {np.mean(~unflagged):8.2f} '
              f'{np.mean(flag & 32 > 0):6.2f} {np.mean(flag & 4 > 0):6.2f} '
              f'{np.mean(flag & 64 > 0):6.2f} {counts[0]} {counts[1]}',
              flush=True)
        if unflagged.any():
            # The figure shows the fields where something is unflagged.
            order = np.argsort(-np.where(unflagged, p, -1))[:n_top]
            tops.append((name, subtracted,
                         table[order[unflagged[order]]]))
    if figures and tops:
        _plot_lens_candidates(tops, Path(figures) / 'real_lenses.png')


def _plot_lens_candidates(tops, path, size=48):
    from astropy.nddata.utils import extract_array
    from astropy.visualization import simple_norm
    from matplotlib.figure import Figure

    n_top = max(len(table) for _, _, table in tops)
    figure = Figure(figsize=(1.6 * n_top, 1.8 * len(tops)),
                    layout='constrained')
    axes = figure.subplots(len(tops), n_top, squeeze=False)
    for row, (name, image, table) in enumerate(tops):
        for column in range(n_top):
            ax = axes[row, column]
            ax.set_xticks([])
            ax.set_yticks([])
            if column >= len(table):
                continue
            source = table[column]
            centre = (int(np.floor(source['y_centroid'] + 0.5)),
                      int(np.floor(source['x_centroid'] + 0.5)))
            stamp = extract_array(np.asarray(image.data, float),
                                  (size, size), centre, mode='partial',
                                  fill_value=np.nan)
            stamp = np.nan_to_num(stamp)
            ax.imshow(stamp, origin='lower', cmap='gray_r',
                      norm=simple_norm(stamp, 'asinh', percent=99.5))
            ax.set_title(f"p_lens {source['p_lens']:.2g}, flag {source['flag']}",
                         fontsize=7)
        axes[row, 0].set_ylabel(name.split(' (')[0], fontsize=7)
    figure.suptitle('lens-finder on real fields with unflagged rows: the '
                    'highest p_lens among them (default prior, one lens in '
                    'a thousand)', fontsize=9)
    figure.savefig(path, dpi=80)


def locus_consistency(data_dir, k=2.0):
    """
    The self-calibration tried for the real-sky issue (not shipped): each
    source's Gaussian FWHM (`photutils.psf.fit_fwhm`, the method that
    finds the image's stellar locus) over the image's PSF FWHM; a row is
    also flagged where the class contradicts it (a galaxy within ``k``
    times the locus scatter of 1, a star above it). Prints the flagged
    fraction and confident errors with and without that flag, and the
    ratio of the wrongly classified rows.
    """
    from photutils.psf import fit_fwhm

    import astrodl_plugins as adl
    from astrodl_plugins.core.detection import subtract_background_and_detect
    from astrodl_plugins.core.inputs import read_image
    from astrodl_plugins.core.psf import estimate_image_psf

    estimator = adl.get_estimator('star-galaxy')
    for name, ccd, truth, min_area in fields(data_dir):
        subtracted, segm, catalog = subtract_background_and_detect(
            ccd, deblend=True)
        image = read_image(subtracted)
        psf = estimate_image_psf(image)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            table = estimator.predict(subtracted, segmentation_image=segm,
                                      n_samples=10, seed=0)
            xy = np.column_stack([catalog.x_centroid, catalog.y_centroid])
            box = max(7, 2 * int(1.25 * psf.fwhm) + 1)
            ratio = np.asarray(fit_fwhm(np.where(image.mask, 0, image.data),
                                        xypos=xy, fit_shape=box,
                                        mask=image.mask), float) / psf.fwhm
        select = np.asarray(catalog.area.value) >= min_area
        star = np.asarray(table['p_star']) > 0.5
        wrong = np.asarray(table['class']) != truth
        flag = np.asarray(table['flag']) > 0
        spread = psf.spread if np.isfinite(psf.spread) else 0.12
        contradicts = ((~star & (np.abs(ratio - 1) <= k * spread))
                       | (star & (ratio > 1 + k * spread))
                       | ~np.isfinite(ratio))
        for label, flagged in (('shipped', flag),
                               ('+ locus', flag | contradicts)):
            kept = select & ~flagged
            print(f'{name:28s} {label:8s} flagged '
                  f'{np.mean(flagged[select]):.2f} confident errors '
                  f'{np.sum(wrong & kept) / max(kept.sum(), 1):.2f}')
        wrong_rows = select & wrong
        if wrong_rows.any():
            print(f'{"":28s} FWHM / PSF of the wrong rows, 10-50-90 %: '
                  f'{np.round(np.nanpercentile(ratio[wrong_rows], [10, 50, 90]), 2)}')


def structure_sizes(psf_fwhm=None, min_area=50):
    """
    galaxy-structure on the Hubble Deep Field's resolved sources against
    photutils' own half-light radii (``flux_radius(0.5)``): the
    Spearman rank correlation where both are measured and unflagged, and
    the fraction of rows flagged.
    """
    from photutils.segmentation import SourceCatalog
    from scipy.stats import spearmanr
    from skimage.data import hubble_deep_field

    import astrodl_plugins as adl
    from astrodl_plugins.core.detection import subtract_background_and_detect
    from astrodl_plugins.core.inputs import read_image
    from astrodl_plugins.core.psf import estimate_image_psf

    ccd = CCDData(hubble_deep_field().astype(np.float64).mean(axis=-1),
                  unit='adu')
    subtracted, segm, _ = subtract_background_and_detect(ccd, deblend=True)
    if psf_fwhm is None:
        psf_fwhm = estimate_image_psf(read_image(subtracted)).fwhm
    catalog = SourceCatalog(subtracted.data, segm)
    select = np.asarray(catalog.area.value) >= min_area
    labels = np.asarray(catalog.label)[select]
    estimator = adl.get_estimator('galaxy-structure')
    table = estimator.predict(subtracted, segmentation_image=segm.copy(),
                              psf_fwhm=psf_fwhm, n_samples=10, seed=0)
    table = table[np.isin(table['label'], labels)]
    theirs = np.asarray(catalog.flux_radius(0.5).value)[select]
    ours = np.asarray(table['r_eff'].value)
    good = np.isfinite(ours) & np.isfinite(theirs) & (table['flag'] == 0)
    rho = spearmanr(ours[good], theirs[good]).statistic
    return {'rows': len(table), 'flagged': float(np.mean(table['flag'] > 0)),
            'unfamiliar': float(np.mean(table['flag'] & 32 > 0)),
            'spearman_unflagged': float(rho), 'n_unflagged': int(good.sum())}


if __name__ == '__main__':
    main()
