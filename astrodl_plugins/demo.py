# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
``astrodl demo``: star-galaxy and galaxy-structure on the shipped sample
field.

Subtract the background and detect sources with photutils, separate stars
from galaxies with ``star-galaxy``, measure the galaxies with
``galaxy-structure`` (both with MC dropout), compare with the truth, and
write ``catalog.ecsv``, ``galaxies.reg`` (DS9) and ``demo.png``.
``select_galaxies`` is the classical alternative: a peak-to-flux
concentration cut against the PSF.
"""

from pathlib import Path

import numpy as np
from astropy import units as u

__all__ = ['run_demo', 'select_galaxies', 'accuracy_against_truth']

OUTPUT_FILES = ('catalog.ecsv', 'galaxies.reg', 'demo.png')


def _psf_peak_fraction(fwhm, beta, size=64):
    """
    Peak over total of a pixel-integrated Moffat PSF centred on a
    ``size`` x ``size`` grid (astropy's `~astropy.modeling.functional_models.Moffat2D`,
    10x oversampled: within 0.1 % of GalSim's rendering).
    """
    from astropy.convolution import discretize_model
    from astropy.modeling.functional_models import Moffat2D

    gamma = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    center = (size - 1) / 2
    image = discretize_model(Moffat2D(1.0, center, center, gamma, beta),
                             (0, size), (0, size), mode='oversample',
                             factor=10)
    return float(image.max() / image.sum())


def select_galaxies(catalog, psf_fwhm, psf_beta=3.5, factor=0.75):
    """
    Labels of resolved sources: peak / Kron flux below ``factor`` times
    the PSF's (a CLASS_STAR-like concentration cut).
    """
    concentration = np.asarray(catalog.max_value / catalog.kron_flux)
    limit = factor * _psf_peak_fraction(psf_fwhm, psf_beta)
    return np.asarray(catalog.labels)[concentration < limit]


def accuracy_against_truth(table, truth, max_separation=0.5 * u.arcsec):
    """
    Match measured galaxies to the truth; median errors and coverage.

    Returns
    -------
    summary : dict
    matched : `~astropy.table.QTable`
        Measured rows with the matching truth values (``true_*``).
    """
    from astrodl_plugins.core.table import output_column

    galaxies = truth[truth['kind'] == 'galaxy']
    index, separation, _ = table['sky_centroid'].match_to_catalog_sky(
        galaxies['sky_centroid'])
    good = separation < max_separation
    matched = table[good]
    true = galaxies[index[good]]
    pairs = {'sersic_n': true['sersic_n'], 'r_eff': true['r_eff_arcsec'],
             'axis_ratio': true['axis_ratio'],
             'position_angle': true['position_angle'], 'flux': true['flux']}
    summary = {'n_measured': len(table), 'n_matched': int(good.sum()),
               'n_galaxies_in_truth': len(galaxies)}
    for name, value in pairs.items():
        # The measured column's convention: a Quantity, or a plain column
        # where the output is dimensionless.
        unit = getattr(matched[name], 'unit', None)
        value = _in_unit(value, unit)
        matched[f'true_{name}'] = output_column(value, unit)
        delta = _in_unit(matched[name], unit) - value
        if name == 'position_angle':
            delta = (delta + 90.0) % 180.0 - 90.0
        select = np.ones(len(delta), bool)
        if name == 'position_angle':
            select = np.asarray(matched['true_axis_ratio']) < 0.7
        error = np.abs(delta)
        if name in ('sersic_n', 'r_eff', 'flux'):
            error = error / np.abs(value)
        summary[name] = {
            'median_error': float(np.median(error[select])),
            'relative': name in ('sersic_n', 'r_eff', 'flux'),
            'coverage_68': float(np.mean(
                np.abs(delta[select])
                <= _in_unit(matched[f'{name}_err'], unit)[select])),
        }
    return summary, matched


def _in_unit(values, unit):
    """Float values of a column in ``unit`` (None: a plain column)."""
    if unit is None:
        return np.asarray(getattr(values, 'value', values), np.float64)
    return u.Quantity(values).to_value(unit)


def _classification_against_truth(classes, truth,
                                  max_separation=0.5 * u.arcsec):
    """One line: how many classified sources match the truth's kind."""
    index, separation, _ = classes['sky_centroid'].match_to_catalog_sky(
        truth['sky_centroid'])
    matched = separation < max_separation
    kind = np.asarray(truth['kind'])[index[matched]]
    predicted = np.asarray(classes['class'])[matched]
    right = int(np.sum(kind == predicted))
    return (f'{right} of {int(matched.sum())} matched to the truth are '
            'classified correctly.')


def _print_summary(summary, show):
    show(f"\nAccuracy against the truth ({summary['n_matched']} of "
         f"{summary['n_galaxies_in_truth']} simulated galaxies matched):")
    show(f"  {'output':<16}{'median error':>16}{'68% coverage':>15}")
    for name in ('sersic_n', 'r_eff', 'axis_ratio', 'position_angle',
                 'flux'):
        entry = summary[name]
        if entry['relative']:
            text = f"{100 * entry['median_error']:.1f} %"
        elif name == 'position_angle':
            text = f"{entry['median_error']:.1f} deg (q<0.7)"
        else:
            text = f"{entry['median_error']:.3f}"
        show(f"  {name:<16}{text:>16}{entry['coverage_68']:>15.2f}")


def run_demo(output_dir='.', *, overwrite=False, n_samples=50, seed=0,
             show=print):
    """
    Run the demo; see the module docstring.

    Parameters
    ----------
    output_dir : path-like, optional
        Where the three files go.
    overwrite : bool, optional
        Replace existing output files (otherwise an error names them).
    n_samples, seed : int, optional
        MC-dropout draws and their seed.
    show : callable, optional
        Receives the printed lines.

    Returns
    -------
    table : `~astropy.table.QTable`
    summary : dict
    """
    import astrodl_plugins as adl
    from astrodl_plugins.core.detection import subtract_background_and_detect
    from astrodl_plugins.core.output import atomic_outputs, write_table_file
    from astrodl_plugins.datasets import load_sample_field

    output_dir = Path(output_dir)
    paths = [output_dir / name for name in OUTPUT_FILES]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        msg = (f'{existing} already exist; pass --overwrite to replace them '
               'or --output-dir to write elsewhere')
        raise FileExistsError(msg)
    output_dir.mkdir(parents=True, exist_ok=True)

    ccd, truth = load_sample_field()
    show(f'Sample field: {ccd.shape[1]}x{ccd.shape[0]} CCDData in '
         f'{ccd.unit}, PSF FWHM {ccd.meta["PSF_FWHM"]} pix, simulated with '
         f'seed {ccd.meta["SIMSEED"]} ({(truth["kind"] == "galaxy").sum()} '
         f'galaxies, {(truth["kind"] == "star").sum()} stars).')
    subtracted, segm, catalog = subtract_background_and_detect(ccd)
    classifier = adl.get_estimator('star-galaxy')
    classes = classifier.predict(subtracted, segmentation_image=segm,
                                 n_samples=n_samples, seed=seed)
    labels = np.asarray(classes['label'][classes['class'] == 'galaxy'])
    show(f'photutils: {segm.n_labels} sources detected. star-galaxy '
         f'({n_samples} MC samples): {len(labels)} galaxies, '
         f"{int(np.sum(classes['class'] == 'star'))} stars; "
         + _classification_against_truth(classes, truth))
    galaxies = segm.copy()
    galaxies.keep_labels(labels)

    estimator = adl.get_estimator('galaxy-structure')
    table, samples = estimator.predict(
        subtracted, segmentation_image=galaxies, n_samples=n_samples,
        seed=seed, quantiles=(0.16, 0.84), return_samples=True)
    show(f'\ngalaxy-structure ({n_samples} MC-dropout samples, seed {seed}, '
         f"device {table.meta['device']}):")
    columns = ['label', 'sersic_n', 'sersic_n_err', 'r_eff', 'r_eff_err',
               'axis_ratio', 'axis_ratio_err', 'position_angle',
               'position_angle_err', 'flag']
    head = table[columns][:8]
    for name in columns[1:-1]:
        head[name].info.format = '.2f'
    show('\n'.join(head.pformat(max_width=-1)))
    summary, matched = accuracy_against_truth(table, truth)
    _print_summary(summary, show)

    # All three files or none, each written whole (temporaries renamed
    # into place), as the astrodl command writes its outputs.
    with atomic_outputs(paths, overwrite=overwrite) as temporaries:
        write_table_file(table, temporaries[0], 'ascii.ecsv')
        _write_regions(table, temporaries[1], True)
        _plot(subtracted, table, samples, matched, temporaries[2])
    show('\nWrote ' + ', '.join(str(p) for p in paths))
    return table, summary


def _write_regions(table, path, overwrite):
    from regions import Regions

    from astrodl_plugins.structure import structure_regions

    Regions(structure_regions(table)).write(str(path), format='ds9',
                                            overwrite=overwrite)


def _plot(ccd, table, samples, matched, path):
    from astropy.visualization import simple_norm
    from matplotlib.figure import Figure

    from astrodl_plugins.structure import structure_regions

    figure = Figure(figsize=(13, 6.2), layout='constrained')
    grid = figure.add_gridspec(2, 4, width_ratios=(2.2, 1, 1, 1))
    axes = figure.add_subplot(grid[:, 0], projection=ccd.wcs)
    data = np.nan_to_num(ccd.data)
    axes.imshow(data, origin='lower', cmap='Greys',
                norm=simple_norm(data, 'asinh', percent=99.7))
    for region in structure_regions(table):
        region.to_pixel(ccd.wcs).plot(ax=axes, color='tab:orange', lw=1.2)
    axes.set_title('galaxy-structure ellipses (r_eff, axis ratio, PA)')
    axes.set_xlabel('RA')
    axes.set_ylabel('Dec')
    row = int(np.nanargmax(_in_unit(table['flux'], None)))
    label = table['label'][row]
    truth = matched[matched['label'] == label]
    names = ['sersic_n', 'r_eff', 'axis_ratio', 'position_angle', 'flux']
    spots = [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2)]
    for name, spot in zip(names, spots):
        ax = figure.add_subplot(grid[spot])
        unit = getattr(table[name], 'unit', None)
        values = _in_unit(samples[name][row], unit)
        ax.hist(values, bins=15, color='tab:blue', alpha=0.8)
        mean = float(_in_unit(table[name][row], unit))
        err = float(_in_unit(table[f'{name}_err'][row], unit))
        ax.axvspan(mean - err, mean + err, color='0.85', zorder=0,
                   label='mean +/- _err')
        ax.axvline(mean, color='k', lw=1.5, label='MC mean')
        if len(truth):
            ax.axvline(float(_in_unit(truth[f'true_{name}'][0], unit)),
                       color='tab:red', ls='--', lw=1.5, label='truth')
        ax.set_xlabel(f'{name} [{unit}]' if unit is not None else name)
        ax.set_yticks([])
    text = figure.add_subplot(grid[1:, 3])
    text.axis('off')
    text.legend(*ax.get_legend_handles_labels(), loc='lower left',
                fontsize=9)
    text.text(0.0, 0.9, f'MC-dropout draws of label {label}\n'
              f'(the brightest galaxy), {len(values)} samples:\n'
              'the epistemic part. Grey band: _err,\n'
              'which adds the predicted noise\n'
              '(aleatoric) and is calibrated.\n'
              'Black: MC mean. Red: truth.', va='top', fontsize=9)
    figure.savefig(path, dpi=100)
