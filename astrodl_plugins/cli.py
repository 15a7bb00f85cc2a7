# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The ``astrodl`` command.

Subcommands: ``demo``, ``list``, ``predict``, ``deblend``, ``train``,
``familiarity``,
``make-sample-field``. ``astrodl <subcommand> --help`` describes each.
"""

import argparse
import contextlib
import logging
import math
import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

__all__ = ['main']

#: Lines that TensorFlow's C++ runtime writes to stderr while it loads,
#: whatever TF_CPP_MIN_LOG_LEVEL says; hidden unless ``--verbose``.
_TF_NOISE = ('oneDNN custom operations', 'absl::InitializeLog',
             'Unable to register cu', 'TF-TRT Warning',
             'failed call to cuInit',
             'This TensorFlow binary is optimized', 'cuda drivers',
             'rebuild TensorFlow with the appropriate compiler flags')

#: ``--deblend`` methods of ``astrodl predict``.
_DEBLEND_METHODS = ('none', 'photutils', 'dl')


@contextlib.contextmanager
def _stderr_filtered(noise):
    """Capture file descriptor 2; replay the lines that are not noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors='replace')
            kept = [line for line in text.splitlines()
                    if line.strip() and not any(n in line for n in noise)]
            if kept:
                print('\n'.join(kept), file=sys.stderr)


def _load_tensorflow(verbose):
    """
    Import TensorFlow now, quietly unless ``verbose``: only its log output
    is hidden (no option that changes the numerics is touched).
    """
    if verbose:
        return
    for name in ('tensorflow', 'absl', 'h5py'):
        logging.getLogger(name).setLevel(logging.ERROR)
    if 'tensorflow' in sys.modules:
        return
    import importlib.util

    if importlib.util.find_spec('tensorflow') is None:
        return
    with _stderr_filtered(_TF_NOISE):
        import tensorflow as tf

        # Listing the GPUs initializes CUDA once per process; without a
        # GPU (or a driver) the full ``tensorflow`` wheel logs a cuInit
        # error here. The device list is cached, so later calls are quiet.
        with contextlib.suppress(Exception):
            tf.config.list_physical_devices('GPU')
    # Retracing warnings go through TensorFlow's Python logger.
    tf.get_logger().setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)


def _quiet_environment(verbose):
    """Log levels of TensorFlow's C++ side, set before it is imported."""
    if not verbose:
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
        os.environ.setdefault('GRPC_VERBOSITY', 'ERROR')


def _demo(args):
    _load_tensorflow(args.verbose)
    from .demo import run_demo

    run_demo(args.output_dir, overwrite=args.overwrite,
             n_samples=args.n_samples, seed=args.seed)


def _list(args):
    from . import list_estimators

    table = list_estimators()
    width = max(40, shutil.get_terminal_size().columns - 1)
    wrap = textwrap.TextWrapper(width=width, initial_indent='    ',
                                subsequent_indent='    ',
                                break_on_hyphens=False)
    for row in table:
        row = dict(zip(table.colnames, row))
        details = [f'{key} {row[key]}' if key == 'version' else str(row[key])
                   for key in ('task', 'version', 'plugin')
                   if str(row.get(key, '') or '') not in ('', '--')]
        head = f"{row['name']}  ({', '.join(details)})" if details else str(
            row['name'])
        print(textwrap.fill(head, width=width, subsequent_indent='    ',
                            break_on_hyphens=False))
        description = str(row.get('description', '') or '')
        if description:
            print(wrap.fill(description))


def _read_ccd(path, unit):
    import warnings

    from astropy.nddata import CCDData

    try:
        with warnings.catch_warnings():
            # A truncated file is unusable, not a warning.
            warnings.filterwarnings('error', message='.*truncated')
            ccd = CCDData.read(path, unit=unit)
    except ValueError as exc:
        msg = (f"image {str(path)!r}: {str(exc).rstrip('.')}. Pass --unit "
               '(e.g. --unit '
               'electron) when the header has no BUNIT')
        raise ValueError(msg) from None
    except (TypeError, OSError, IndexError, Warning) as exc:
        msg = f'image {str(path)!r} could not be read as an image: {exc}'
        raise ValueError(msg) from None
    if ccd.ndim != 2:
        msg = (f'image {str(path)!r} has {ccd.ndim} dimensions '
               f'{ccd.shape}; give a 2-D image')
        raise ValueError(msg)
    return ccd


def _check_inputs(paths, outputs):
    """The input images exist and are FITS; no output is an input."""
    from .core.output import check_fits_input

    images = [check_fits_input(path, name='image') for path in paths]
    for option, output in outputs:
        for image in images:
            if os.path.exists(output) and os.path.samefile(output, image):
                msg = f'{option} {str(output)!r} is also an input image'
                raise ValueError(msg)
    return images


class _WriteError(OSError):
    """Writing the outputs failed; none of them was changed."""


def _write_failed(exc, paths):
    names = ', '.join(repr(str(path)) for path in paths)
    msg = f'writing {names} failed ({exc}); no output file was changed'
    return _WriteError(msg)


def _check_bands(args, estimator, multiband):
    if args.bands is None:
        if len(args.image) > 1:
            msg = (f'{len(args.image)} images need --bands, the band of '
                   'each, e.g. --bands g r i')
            raise ValueError(msg)
        return {}
    if not multiband:
        msg = (f'--bands is for the multi-band estimators, not '
               f'{args.estimator}')
        raise ValueError(msg)
    if len(args.bands) != len(args.image):
        msg = (f'--bands has {len(args.bands)} names for '
               f'{len(args.image)} images')
        raise ValueError(msg)
    known = tuple(getattr(estimator, 'bands', ()))
    unknown = [band for band in args.bands if known and band not in known]
    if unknown:
        msg = (f'--bands {unknown} are not bands of {args.estimator}; '
               f'choose from {list(known)}')
        raise ValueError(msg)
    if len(set(args.bands)) != len(args.bands):
        msg = f'--bands has repeated names: {args.bands}'
        raise ValueError(msg)
    return {'bands': tuple(args.bands)}


def _check_regions_output(args, output, images):
    """``--regions``: a new ``.reg`` file, not ``--output`` or an input."""
    import importlib.util

    from .core.output import check_output_path

    if args.regions is None:
        return None
    regions = check_output_path(args.regions, overwrite=args.overwrite,
                                name='--regions')
    if regions.suffix.lower() != '.reg':
        msg = (f'--regions {args.regions!r} is written as a DS9 region '
               'file; give it the extension .reg')
        raise ValueError(msg)
    if os.path.abspath(regions) == os.path.abspath(output):
        msg = f'--regions {args.regions!r} is also --output'
        raise ValueError(msg)
    for image in images:
        if regions.exists() and os.path.samefile(regions, image):
            msg = f'--regions {args.regions!r} is also an input image'
            raise ValueError(msg)
    if importlib.util.find_spec('regions') is None:
        msg = '--regions needs the regions package, which is not installed'
        raise ValueError(msg)
    return regions


def catalog_regions(table):
    """
    DS9 regions of a catalog, one per row with finite values, each with
    the row's ``label`` as its ``text``.

    galaxy-structure tables give ellipses (``r_eff``, ``axis_ratio``,
    ``position_angle``); others give points at the centroid (in the sky
    when the table has ``sky_centroid``).

    Returns
    -------
    regions : list
    n_skipped : int
        Rows left out for non-finite values (or ellipse axes that are not
        positive).
    """
    import numpy as np
    from astropy import units as u
    from regions import PixCoord, PointPixelRegion, PointSkyRegion

    if {'r_eff', 'axis_ratio', 'position_angle'} <= set(table.colnames):
        from .structure import structure_regions

        # An ellipse needs finite, positive axes (a region refuses others).
        sizes = [np.asarray(u.Quantity(table[name]).value, float)
                 for name in ('r_eff', 'axis_ratio')]
        angle = np.asarray(u.Quantity(table['position_angle']).value, float)
        drawable = ((sizes[0] > 0) & (sizes[1] > 0) & np.isfinite(angle)
                    & np.isfinite(sizes[0]) & np.isfinite(sizes[1]))
        regions = structure_regions(table[drawable])
        for region in regions:
            region.meta['text'] = str(region.meta.get('label', ''))
        return regions, len(table) - len(regions)
    sky = 'sky_centroid' in table.colnames
    regions = []
    for row in table:
        x = u.Quantity(row['x_centroid']).value
        y = u.Quantity(row['y_centroid']).value
        meta = {'text': str(row['label'])}
        if sky:
            centre = row['sky_centroid']
            if not (np.isfinite(centre.spherical.lon.value)
                    and np.isfinite(centre.spherical.lat.value)):
                continue
            regions.append(PointSkyRegion(centre, meta=meta))
        elif np.isfinite(x) and np.isfinite(y):
            regions.append(PointPixelRegion(PixCoord(x, y), meta=meta))
    return regions, len(table) - len(regions)


def _deblend_segmentation(args, data, segm):
    """``--deblend dl``: the package's deblender on the detected segments."""
    from .deblending.finder import deblend_sources_dl

    return deblend_sources_dl(data, segm, args.n_pixels, progress_bar=True,
                              psf_fwhm=args.psf_fwhm)


def _predict(args):
    import numpy as np

    from .core.output import (
        atomic_outputs,
        check_output_path,
        table_write_format,
        write_table_file,
    )

    if _estimator_class(args.estimator).family == '1-d':
        return _predict_series(args)
    # Every check before the work, so that a run is not lost at the end.
    output = check_output_path(args.output, overwrite=args.overwrite,
                               name='--output')
    table_format = table_write_format(output, args.format, name='--output',
                                      format_name='--format')
    images = _check_inputs(args.image, [('--output', output)])
    regions_path = _check_regions_output(args, output, images)
    positions = _read_positions(args.positions, output)
    from . import get_estimator

    estimator_class = _estimator_class(args.estimator)
    multiband = bool(getattr(estimator_class, 'bands', ()))
    companions = _check_with(args, estimator_class)
    prior_target = _check_class_prior(args, estimator_class, companions)
    if len(args.image) > 1 and not multiband:
        msg = (f'{args.estimator} measures one image; got '
               f'{len(args.image)}')
        raise ValueError(msg)
    # Unreadable images and missing units are refused before TensorFlow.
    ccds = [_read_ccd(path, args.unit) for path in args.image]
    _load_tensorflow(args.verbose)
    from .core.detection import subtract_background_and_detect

    estimator = get_estimator(args.estimator)
    if prior_target == 'main':
        estimator.set_params(class_prior=tuple(args.class_prior))
    elif prior_target is not None:
        companion = get_estimator(companions[prior_target])
        companion.set_params(class_prior=tuple(args.class_prior))
        companions[prior_target] = companion
    kwargs = _check_bands(args, estimator, multiband)
    # Detect on the reference band (r when given), subtract every band.
    reference = 0
    if args.bands and 'r' in args.bands:
        reference = list(args.bands).index('r')
    subtracted = []
    segm = None
    for index, ccd in enumerate(ccds):
        data, band_segm, _ = subtract_background_and_detect(
            ccd, n_sigma=args.n_sigma, n_pixels=args.n_pixels,
            deblend=args.deblend == 'photutils')
        subtracted.append(data)
        if index == reference:
            segm = band_segm
    where = {'segmentation_image': segm}
    if positions is not None:
        where = {'positions': positions}
    elif segm is None:
        print('No sources detected; nothing written.')
        return
    elif args.deblend == 'dl':
        segm = _deblend_segmentation(args, subtracted[reference], segm)
        where = {'segmentation_image': segm}
    if args.psf_fwhm is not None:
        kwargs['psf_fwhm'] = args.psf_fwhm
    if args.pixel_scale is not None:
        from astropy import units as u

        kwargs['pixel_scale'] = args.pixel_scale * u.arcsec / u.pix
    kwargs.update(companions)
    data = subtracted if multiband else subtracted[0]
    table = estimator.predict(data, n_samples=args.n_samples,
                              seed=args.seed, progress_bar=True, **where,
                              **kwargs)
    # The file names of the inputs (the Python API cannot know them).
    table.meta['input_files'] = [os.path.basename(str(path))
                                 for path in args.image]
    paths = [output] if regions_path is None else [output, regions_path]
    n_skipped = 0
    try:
        with atomic_outputs(paths, overwrite=args.overwrite) as temporaries:
            write_table_file(table, temporaries[0], table_format)
            if regions_path is not None:
                from regions import Regions

                regions, n_skipped = catalog_regions(table)
                Regions(regions).write(str(temporaries[1]), format='ds9',
                                       overwrite=True)
    except OSError as exc:
        raise _write_failed(exc, paths) from exc
    flagged = np.asarray(table['flag']) > 0
    print(f'{len(table)} sources measured ({int(flagged.sum())} flagged, '
          f'see the flag column); wrote {args.output}')
    if regions_path is not None:
        skipped = (f' ({n_skipped} rows with NaN or zero sizes skipped)'
                   if n_skipped else '')
        print(f'{len(table) - n_skipped} regions{skipped}; wrote '
              f'{args.regions}')
    if 'class' in table.colnames:
        names, counts = np.unique(np.asarray(table['class'])[~flagged],
                                  return_counts=True)
        print('unflagged classes: ' + ', '.join(
            f'{n or "(unusable)"} {c}' for n, c in zip(names, counts)))


def _read_positions(path, output):
    """
    ``--positions``: a catalog with ``x_centroid`` and ``y_centroid``
    (pixels, 0-based) or ``sky_centroid`` (a SkyCoord column); `None`
    without the option.
    """
    if path is None:
        return None
    if not os.path.isfile(path):
        msg = f'--positions {path!r} does not exist'
        raise ValueError(msg)
    if os.path.exists(output) and os.path.samefile(output, path):
        msg = f'--output {str(output)!r} is also the --positions catalog'
        raise ValueError(msg)
    from astropy.table import QTable

    try:
        table = QTable.read(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure
        msg = f'--positions {path!r} is not a table astropy can read ({exc})'
        raise ValueError(msg) from None
    if {'x_centroid', 'y_centroid'} <= set(table.colnames):
        return table[['x_centroid', 'y_centroid']]
    if 'sky_centroid' in table.colnames:
        return table['sky_centroid']
    msg = (f'--positions {path!r} needs x_centroid and y_centroid columns '
           f'(pixels) or a sky_centroid column; it has {table.colnames}')
    raise ValueError(msg)


#: ``--with`` companions: the estimator run alongside, and the keyword of
#: the main estimator's ``predict`` that runs it.
_COMPANIONS = {'lens-finder': 'finder'}


def _check_with(args, estimator_class):
    """
    ``--with NAME``: the main estimator's ``predict`` keywords that run
    NAME on the same sources (refused where it has none).
    """
    kwargs = {}
    for name in args.with_estimators or ():
        keyword = _COMPANIONS.get(name)
        if keyword is None or keyword not in getattr(
                estimator_class, 'predict_options', {}):
            usable = [f'{main} --with {companion}' for main, companion in
                      (('lens-parameters', 'lens-finder'),)]
            msg = (f'--with {name} is not supported by {args.estimator}; '
                   f"supported: {', '.join(usable)}")
            raise ValueError(msg)
        kwargs[keyword] = name
    return kwargs


def _check_class_prior(args, estimator_class, companions):
    """
    ``--class-prior``: ``'main'`` for a classifier, the ``predict``
    keyword of a classifier companion (``--with lens-finder``), or None
    without the option; refused for estimators without classes and for
    the wrong number of fractions.
    """
    if args.class_prior is None:
        return None
    targets = [('main', estimator_class)] + [
        (keyword, _estimator_class(name))
        for keyword, name in companions.items()]
    for target, cls in targets:
        if hasattr(cls, 'prior_weights'):
            from .classification.estimator import check_class_prior

            try:
                check_class_prior(args.class_prior, tuple(cls.classes))
            except ValueError as error:
                msg = f'--class-prior: {error}'
                raise ValueError(msg) from None
            return target
    msg = (f'--class-prior is for classifiers; {args.estimator} has no '
           'classes (with lens-parameters, add --with lens-finder)')
    raise ValueError(msg)


def _predict_series(args):
    """``astrodl predict`` for the 1-D family: one row per input file."""
    import numpy as np

    from .core.output import (
        atomic_outputs,
        check_output_path,
        table_write_format,
        write_table_file,
    )

    output = check_output_path(args.output, overwrite=args.overwrite,
                               name='--output')
    table_format = table_write_format(output, args.format, name='--output',
                                      format_name='--format')
    estimator_class = _estimator_class(args.estimator)
    # Unreadable files are refused before TensorFlow loads.
    data = [estimator_class.read_file(path) for path in args.image]
    _load_tensorflow(args.verbose)
    from . import get_estimator

    estimator = get_estimator(args.estimator)
    table = estimator.predict(data, n_samples=args.n_samples, seed=args.seed)
    names = [os.path.basename(str(path)) for path in args.image]
    table.add_column([names[i] for i in table['index']], name='file',
                     index=0)
    table.meta['input_files'] = names
    try:
        with atomic_outputs([output], overwrite=args.overwrite) as temporaries:
            write_table_file(table, temporaries[0], table_format)
    except OSError as exc:
        raise _write_failed(exc, [output]) from exc
    shown = table[[name for name in table.colnames
                   if np.ndim(table[name][0]) == 0][:8] + ['flag']]
    print(shown)
    print(f'{len(table)} rows from {len(names)} files; wrote {args.output}')


def _estimator_class(name):
    """The registered class of ``name`` (without loading its networks)."""
    from .registry import get_estimator_class

    return get_estimator_class(name)


def _check_deblend_outputs(args):
    from .core.output import (
        check_fits_output,
        check_output_path,
        table_write_format,
    )

    outputs = [('--output', check_output_path(
        args.output, overwrite=args.overwrite, name='--output'))]
    check_fits_output(args.output, name='--output')
    table_format = None
    if args.catalog is not None:
        catalog = check_output_path(args.catalog, overwrite=args.overwrite,
                                    name='--catalog')
        if os.path.abspath(catalog) == os.path.abspath(args.output):
            msg = f'--catalog {args.catalog!r} is also --output'
            raise ValueError(msg)
        table_format = table_write_format(
            catalog, args.catalog_format, name='--catalog',
            format_name='--catalog-format')
        outputs.append(('--catalog', catalog))
    elif args.catalog_format is not None:
        msg = '--catalog-format needs --catalog'
        raise ValueError(msg)
    return outputs, table_format


def _deblend(args):
    from astropy.io import fits

    from .core.output import atomic_outputs, write_fits_file, write_table_file

    # Every check before the work, so that a run is not lost at the end.
    outputs, table_format = _check_deblend_outputs(args)
    _check_inputs([args.image], outputs)
    _load_tensorflow(args.verbose)
    from .core.detection import subtract_background_and_detect

    ccd = _read_ccd(args.image, args.unit)
    data, segm, _ = subtract_background_and_detect(
        ccd, n_sigma=args.n_sigma, n_pixels=args.n_pixels)
    if segm is None:
        print('No sources detected; nothing written.')
        return
    from . import get_estimator

    deblender = get_estimator('deblender')
    result = deblender.deblend(data, segm, args.n_pixels,
                               n_samples=args.n_samples, seed=args.seed,
                               progress_bar=True,
                               fluxes=args.catalog is not None)
    header = ccd.wcs.to_header() if ccd.wcs is not None else fits.Header()
    header['EXTNAME'] = 'SEGMENTATION'
    header['COMMENT'] = ('astrodl deblend: deblended segmentation image '
                         f'({segm.n_labels} detected, '
                         f'{result.segmentation_image.n_labels} after '
                         'deblending)')
    paths = [path for _, path in outputs]
    # All or nothing: both temporaries are written before either is renamed.
    try:
        with atomic_outputs(paths, overwrite=args.overwrite) as temporaries:
            write_fits_file(result.segmentation_image.data, temporaries[0],
                        header=header)
            if args.catalog is not None:
                write_table_file(result.table, temporaries[1], table_format)
    except OSError as exc:
        raise _write_failed(exc, paths) from exc
    print(f'{segm.n_labels} segments detected, '
          f'{result.segmentation_image.n_labels} after deblending; wrote '
          f'{args.output}')
    if args.catalog:
        print(f'{len(result.table)} sources measured; wrote {args.catalog}')


def _short_name(name, width=28):
    """``name`` cut to ``width`` characters, its middle elided."""
    if len(name) <= width:
        return name
    half = (width - 3) // 2
    return f'{name[:half]}...{name[-(width - 3 - half):]}'


def _transit(args):
    import numpy as np

    from .core.output import (
        atomic_outputs,
        check_output_path,
        table_write_format,
        write_table_file,
    )
    from .transits.io import read_light_curve

    # Every check before the work, so that a run is not lost at the end.
    output = table_format = None
    if args.output is not None:
        output = check_output_path(args.output, overwrite=args.overwrite,
                                   name='--output')
        table_format = table_write_format(output, args.format,
                                          name='--output',
                                          format_name='--format')
    plot_dir = None
    if args.plot:
        plot_dir = Path(args.plot_dir or (os.path.dirname(str(output))
                                          if output else '.') or '.')
        if not plot_dir.is_dir():
            msg = f'--plot-dir {str(plot_dir)!r} is not a directory'
            raise ValueError(msg)
        stems = [Path(path).stem for path in args.lightcurve]
        existing = [p.name for stem in stems
                    for p in plot_dir.glob(f'{stem}_candidate*.png')]
        if existing and not args.overwrite:
            msg = (f'plots {existing[:3]} exist in {str(plot_dir)!r}; give '
                   '--overwrite to replace them')
            raise ValueError(msg)
    if (args.time_format is None) != (args.time_scale is None):
        msg = '--time-format and --time-scale go together'
        raise ValueError(msg)
    # Unreadable files are refused before TensorFlow loads.
    curves = [read_light_curve(path, time_format=args.time_format,
                               time_scale=args.time_scale,
                               instrument=args.instrument)
              for path in args.lightcurve]
    _load_tensorflow(args.verbose)
    from . import get_estimator

    estimator = get_estimator('transit')
    if args.class_prior is not None:
        estimator.set_params(class_prior=tuple(args.class_prior))
    table = estimator.predict(
        curves if len(curves) > 1 else curves[0], n_samples=args.n_samples,
        seed=args.seed, method=args.method, period_min=args.period_min,
        period_max=args.period_max, max_candidates=args.max_candidates)
    names = [os.path.basename(str(path)) for path in args.lightcurve]
    table.add_column([names[i] for i in table['index']], name='file',
                     index=0)
    table.meta['input_files'] = names
    shown = table['file', 'candidate', 'period', 'duration', 'depth', 'snr',
                  'p_planet', 'p_planet_err', 'flag']
    for name in ('period', 'duration', 'depth', 'snr', 'p_planet',
                 'p_planet_err'):
        shown[name].info.format = '.4f' if name == 'period' else '.3g'
    # Mission file names (tess2018234235059-s0002-...-s_lc.fits) would push
    # p_planet off the screen: shortened on screen, whole in the catalog.
    shown.replace_column('file', [_short_name(n) for n in shown['file']])
    print(shown if len(table) else 'No transit-like signal found.')
    planets = np.asarray(table['p_planet']) >= 0.5
    unflagged = np.asarray(table['flag']) == 0
    print(f'{len(table)} candidates in {len(curves)} light curves; '
          f'{int(np.sum(planets & unflagged))} unflagged with p_planet >= '
          '0.5')
    if output is not None:
        try:
            with atomic_outputs([output],
                                overwrite=args.overwrite) as temporaries:
                write_table_file(table, temporaries[0], table_format)
        except OSError as exc:
            raise _write_failed(exc, [output]) from exc
        print(f'wrote {args.output}')
    if plot_dir is not None:
        from .transits.io import plot_candidate

        for row in table:
            if row['flag'] & 8:  # UNUSABLE: nothing to draw
                continue
            stem = Path(args.lightcurve[row['index']]).stem
            path = plot_dir / f"{stem}_candidate{int(row['candidate'])}.png"
            try:
                with atomic_outputs([path], overwrite=True) as temporaries:
                    plot_candidate(
                        curves[row['index']], row, temporaries[0],
                        title=f"{row['file']} candidate "
                              f"{int(row['candidate'])}",
                        others=table[table['index'] == row['index']])
            except OSError as exc:
                raise _write_failed(exc, [path]) from exc
            print(f'wrote {path}')


#: The training recipe of each shipped preset (``module:object``, a
#: `~astrodl_plugins.training.recipe.Recipe`).
_TRAINERS = {
    'galaxy-structure': 'astrodl_plugins.structure.recipe:RECIPE',
    'star-galaxy': 'astrodl_plugins.classification.recipe:RECIPES:star-galaxy',
    'star-galaxy-sky':
        'astrodl_plugins.classification.recipe:RECIPES:star-galaxy-sky',
    'galaxy-morphology':
        'astrodl_plugins.classification.recipe:RECIPES:galaxy-morphology',
    'deblender': 'astrodl_plugins.deblending.recipe:RECIPE',
    'lens-finder': 'astrodl_plugins.lenses.recipe:RECIPES:lens-finder',
    'lens-parameters':
        'astrodl_plugins.lenses.recipe:RECIPES:lens-parameters',
    'transit': 'astrodl_plugins.transits.recipe:RECIPES:transit',
    'spec-redshift': 'astrodl_plugins.specz.recipe:RECIPES:spec-redshift',
}


def _recipe(estimator):
    if estimator not in _TRAINERS:
        msg = (f'no training recipe for {estimator!r}; available: '
               f'{sorted(_TRAINERS)}')
        raise ValueError(msg)
    from importlib import import_module

    module, _, name = _TRAINERS[estimator].partition(':')
    name, _, key = name.partition(':')
    recipe = getattr(import_module(module), name)
    return recipe[key] if key else recipe


def _familiarity(args):
    from .core.store import check_output_directory
    from .registry import get_estimator

    check_output_directory(args.output, args.overwrite)
    _load_tensorflow(args.verbose)
    recipe = _recipe(args.estimator)
    estimator = get_estimator(args.estimator)
    if not recipe.familiarity_from_simulations(
            estimator, seed=args.seed, n=args.n, cache_dir=args.cache_dir):
        msg = f'{args.estimator!r} has no familiarity model'
        raise ValueError(msg)
    estimator.save(args.output, overwrite=args.overwrite)
    threshold = estimator.card_['familiarity']['threshold']
    print(f'Saved to {args.output} (ood_score threshold {threshold:.4g}).')


def _train(args):
    from .simulate.common import require_galsim

    require_galsim()  # before any work: training simulates its data
    _load_tensorflow(args.verbose)
    recipe = _recipe(args.estimator)
    kwargs = {'seed': args.seed, 'output': args.output,
              'cache_dir': args.cache_dir, 'overwrite': args.overwrite}
    if args.n_train is not None:
        kwargs['n_train'] = args.n_train
    if args.epochs is not None:
        kwargs['epochs'] = args.epochs
    if args.refine_epochs is not None:
        kwargs['refine_epochs'] = args.refine_epochs
    estimator = recipe.run(**kwargs)
    print(f'Saved to {args.output}.')
    metrics = estimator.card_['metrics']
    if 'snr_gt_50' in metrics:
        print('Held-out metrics at S/N > 50:')
        for key, value in metrics['snr_gt_50'].items():
            print(f'  {key}: {value:.4g}')
    for table in estimator.card_.get('tables', [])[:1]:
        print(table['title'] + ':')
        print('  ' + ' | '.join(table['header']))
        for row in table['rows']:
            print('  ' + ' | '.join(f'{v:.4g}' if isinstance(v, float)
                                    else str(v) for v in row))


def _make_sample_field(args):
    from .datasets import SAMPLE_FIELD_SEED, write_sample_field
    from .simulate.common import require_galsim

    require_galsim()

    seed = SAMPLE_FIELD_SEED if args.seed is None else args.seed
    directory = write_sample_field(args.output_dir, seed=seed,
                                   overwrite=args.overwrite)
    print(f'Wrote sample_field.fits and sample_field_truth.ecsv to '
          f'{directory}')


def _number(kind, minimum, *, strict=False, maximum=None):
    """An argparse ``type``: a finite ``kind`` >= (or >) ``minimum``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            what = 'an integer' if kind is int else 'a number'
            msg = f'expected {what}, got {text!r}'
            raise argparse.ArgumentTypeError(msg) from None
        low = value <= minimum if strict else value < minimum
        if (not math.isfinite(value) or low
                or (maximum is not None and value > maximum)):
            bound = f'> {minimum}' if strict else f'>= {minimum}'
            if maximum is not None:
                bound += f' and <= {maximum}'
            what = 'an integer' if kind is int else 'a finite number'
            msg = f'must be {what} {bound}, got {text!r}'
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


_POSITIVE = _number(float, 0, strict=True)
_FRACTION = _number(float, 0, strict=True, maximum=1)
_AT_LEAST_ONE = _number(int, 1)
_COUNT = _number(int, 0)
_SEED = _number(int, 0, maximum=2**32 - 1)


def _unit(text):
    """An argparse ``type``: an astropy unit."""
    from astropy import units as u

    try:
        return u.Unit(text)
    except (ValueError, TypeError):
        msg = f'{text!r} is not a unit astropy understands (e.g. electron)'
        raise argparse.ArgumentTypeError(msg) from None


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show an option's default, unless it has none (None) or is required."""

    def _get_help_string(self, action):
        if (action.default is None or action.required
                or action.default is argparse.SUPPRESS
                or isinstance(action, argparse._VersionAction)):
            return action.help
        return super()._get_help_string(action)


class _DeblendAction(argparse.Action):
    """``--deblend [METHOD]``; ``--deblend`` alone is ``photutils``."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None:
            print("astrodl predict: note: '--deblend' alone means "
                  "'--deblend photutils' (photutils' deblend_sources); "
                  "'--deblend dl' runs the package's deblender network. "
                  'Give the method: --deblend without one is deprecated.',
                  file=sys.stderr)
            values = 'photutils'
        setattr(namespace, self.dest, values)


def _estimator_names():
    """Registered estimator names, for the help (no TensorFlow import)."""
    try:
        from .registry import estimator_names

        return estimator_names()
    except Exception:  # noqa: BLE001 - a broken registry is reported later
        return None


def _add_common_options(parser, *, overwrite=True):
    parser.add_argument('-v', '--verbose', action='store_true',
                        default=argparse.SUPPRESS,
                        help="also show TensorFlow's log messages")
    if overwrite:
        parser.add_argument('--overwrite', action='store_true',
                            help='replace existing output files')


def _add_detection_options(parser, n_samples, n_pixels):
    parser.add_argument('--unit', type=_unit, default=None,
                        help='data unit if the header has no BUNIT')
    parser.add_argument('--n-samples', type=_COUNT, default=n_samples,
                        help='MC-dropout draws (0: one deterministic pass)')
    parser.add_argument('--seed', type=_SEED, default=0,
                        help='random seed of the MC-dropout draws')
    parser.add_argument('--n-sigma', type=_POSITIVE, default=1.5,
                        help='detection threshold, background RMS (> 0)')
    parser.add_argument('--n-pixels', type=_AT_LEAST_ONE, default=n_pixels,
                        help='minimum connected pixels of a source (>= 1)')
    _add_common_options(parser)


def _parser(with_names=True):
    from . import __version__

    parser = argparse.ArgumentParser(
        prog='astrodl', formatter_class=_HelpFormatter,
        description='Deep-learning estimators for astronomy '
        '(astrodl_plugins).')
    parser.add_argument('--version', action='version',
                        version=f'%(prog)s {__version__}')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help="also show TensorFlow's log messages")
    sub = parser.add_subparsers(dest='command', required=True)

    def command(name, **kwargs):
        return sub.add_parser(name, formatter_class=_HelpFormatter,
                              description=kwargs.get('help'), **kwargs)

    demo = command('demo', help='galaxy-structure on the shipped sample '
                   'field')
    demo.add_argument('--output-dir', default='.',
                      help='directory of catalog.ecsv, galaxies.reg and '
                      'demo.png')
    # The demo reports 16 and 84 % quantiles: they need 6 draws or more.
    demo.add_argument('--n-samples', type=_number(int, 6), default=50,
                      help='MC-dropout draws (at least 6: the demo reports '
                      '16 and 84 %% quantiles)')
    demo.add_argument('--seed', type=_SEED, default=0,
                      help='random seed of the MC-dropout draws')
    _add_common_options(demo)
    demo.set_defaults(func=_demo)

    listing = command('list', help='registered estimators')
    _add_common_options(listing, overwrite=False)
    listing.set_defaults(func=_list)

    # The registered names load every estimator class (numpy, astropy):
    # only for the help, so that a bad call is refused fast. Otherwise
    # the name is checked after the files, still before TensorFlow.
    names = _estimator_names() if with_names else None
    predict = command('predict', help='detect sources in a FITS image and '
                      'measure them')
    predict.add_argument(
        'estimator', choices=names, metavar='estimator',
        help='registered estimator'
        + (f" (one of: {', '.join(names)})" if names else ''))
    predict.add_argument('image', nargs='+', help='FITS image(s); the '
                         'classifiers take one per band; a 1-D estimator '
                         '(spec-redshift) takes files of spectra, a row '
                         'each')
    predict.add_argument('--output', required=True, help='catalog, e.g. '
                         'catalog.ecsv; the format from the extension: '
                         '.ecsv, .fits or .h5, the formats that keep '
                         'units, sky coordinates and metadata')
    predict.add_argument('--format', default=None,
                         choices=('ascii.ecsv', 'fits', 'hdf5'),
                         help='table format of --output (default: from its '
                         'extension)')
    predict.add_argument('--bands', nargs='+', default=None,
                         help='band of each image (classifiers), e.g. g r i')
    predict.add_argument(
        '--deblend', action=_DeblendAction, nargs='?', default='none',
        choices=_DEBLEND_METHODS, metavar='{none,photutils,dl}',
        help="split blended sources before measuring them: 'photutils' "
        "runs photutils' deblend_sources (multi-thresholding and "
        "watershed), 'dl' the package's deblender network (astrodl "
        "deblend); 'none' keeps the detected segments")
    predict.add_argument('--regions', default=None,
                         help='also write a DS9 region file (.reg) of the '
                         "sources, each labelled with its catalog 'label'")
    predict.add_argument('--psf-fwhm', type=_POSITIVE, default=None,
                         help="PSF FWHM in pixels (default: the header's "
                         'PSF_FWHM, else estimated from the image)')
    predict.add_argument('--positions', default=None,
                         help='measure the sources of this catalog (.ecsv, '
                         '.fits...: x_centroid and y_centroid in pixels, or '
                         'sky_centroid) instead of detecting them')
    predict.add_argument('--pixel-scale', type=_POSITIVE, default=None,
                         help='arcsec per pixel when the header has no '
                         'celestial WCS (outputs in arcsec need it)')
    predict.add_argument('--with', dest='with_estimators', action='append',
                         default=None, choices=sorted(_COMPANIONS),
                         metavar='ESTIMATOR',
                         help='also run ESTIMATOR on the same sources: '
                         'lens-parameters --with lens-finder adds p_lens '
                         'and flags NOT_LENS the rows unlikely to be '
                         'lenses')
    predict.add_argument('--class-prior', type=_FRACTION, nargs='+',
                         default=None, metavar='FRACTION',
                         help="a classifier's class fractions among the "
                         'sources, in its class order (lens-finder: lens '
                         'non_lens, default 0.001 0.999; star-galaxy: star '
                         'galaxy, default those of its simulations); with '
                         '--with lens-finder, the finder\'s')
    _add_detection_options(predict, n_samples=50, n_pixels=10)
    predict.set_defaults(func=_predict)

    deblend = command('deblend', help='detect sources in a FITS image and '
                      'deblend them with the deblender network')
    deblend.add_argument('image', help='FITS image')
    deblend.add_argument('--output', required=True,
                         help='FITS file of the deblended segmentation image')
    deblend.add_argument('--catalog', default=None,
                         help='also measure fluxes and write this catalog '
                         '(.ecsv, .fits or .h5)')
    deblend.add_argument('--catalog-format', default=None,
                         choices=('ascii.ecsv', 'fits', 'hdf5'),
                         help='table format of --catalog (default: from its '
                         'extension)')
    _add_detection_options(deblend, n_samples=20, n_pixels=5)
    deblend.set_defaults(func=_deblend)

    recipes = sorted(_TRAINERS)
    transit = command('transit', help='search light curves for '
                      'periodic transits and vet each candidate')
    transit.add_argument('lightcurve', nargs='+', help='Kepler, K2 or TESS '
                         'light-curve FITS files, or tables (CSV, ECSV, '
                         'text) with time and flux columns')
    transit.add_argument('--output', default=None, help='catalog of the '
                         'candidates, e.g. candidates.ecsv (default: only '
                         'printed)')
    transit.add_argument('--format', default=None,
                         help='astropy table format of --output')
    transit.add_argument('--plot', action='store_true', help='write a '
                         'figure per candidate, <file>_candidate<k>.png')
    transit.add_argument('--plot-dir', default=None, help='where --plot '
                         "writes (default: --output's directory, or here)")
    transit.add_argument('--time-format', default=None,
                         choices=('jd', 'mjd', 'btjd', 'bkjd'),
                         help="what a table's plain-number times are")
    transit.add_argument('--time-scale', default=None, help='their time '
                         'scale (tdb for barycentric times, utc...)')
    transit.add_argument('--instrument', default=None, help='keep the rows '
                         "of this instrument of a table whose text column "
                         'names several (K2, LCOGT...)')
    transit.add_argument('--method', choices=('bls', 'tls'), default='bls',
                         help="period search: astropy's box least squares "
                         'or transitleastsquares')
    transit.add_argument('--period-min', type=_POSITIVE, default=0.5,
                         help='shortest period searched, days')
    transit.add_argument('--period-max', type=_POSITIVE, default=30.0,
                         help='longest period searched, days')
    transit.add_argument('--max-candidates', type=_AT_LEAST_ONE, default=5,
                         help='most candidates per light curve')
    transit.add_argument('--n-samples', type=_COUNT, default=50,
                         help='MC-dropout draws (0: one deterministic pass)')
    transit.add_argument('--seed', type=_SEED, default=0,
                         help='random seed of the MC-dropout draws')
    transit.add_argument('--class-prior', type=_FRACTION, nargs=2,
                         default=None, metavar='FRACTION',
                         help='fractions of planets and false positives '
                         'among the candidates (default: those of the '
                         'simulations)')
    _add_common_options(transit)
    transit.set_defaults(func=_transit)

    train = command('train', help='simulate, train, calibrate and save an '
                    'estimator')
    train.add_argument('estimator', choices=recipes, metavar='estimator',
                       help=f"preset to train (one of: {', '.join(recipes)})")
    train.add_argument('--output', required=True,
                       help='directory of the saved preset')
    train.add_argument('--n-train', type=_AT_LEAST_ONE, default=None,
                       help="training stamps or blends (default: the "
                       "recipe's: 100000 for galaxy-structure, 40000 for "
                       "the classifiers and lens-parameters, 60000 for "
                       "lens-finder, 12000 blends for the deblender)")
    train.add_argument('--seed', type=_SEED, default=1,
                       help='random seed of the simulations and training')
    train.add_argument('--epochs', type=_AT_LEAST_ONE, default=None,
                       help='maximum epochs (early stopping; default 24 '
                       'for galaxy-structure, 15 for the classifiers, 6 '
                       'for lens-finder after 4 on its clear lenses, 12 '
                       'for lens-parameters)')
    train.add_argument('--refine-epochs', type=_COUNT, default=None,
                       help='stage-2 epochs at a lower learning rate '
                       '(default 8 for galaxy-structure, 3 for '
                       'lens-parameters, 0 for the classifiers)')
    train.add_argument('--cache-dir', default=None,
                       help='keep and reuse the simulated sets here')
    _add_common_options(train)
    train.set_defaults(func=_train)

    familiar = command(
        'familiarity', help="fit a preset's out-of-distribution model "
        '(ood_score) on its simulator and save the preset with it')
    familiar.add_argument('estimator', choices=recipes, metavar='estimator',
                          help=f"preset (one of: {', '.join(recipes)})")
    familiar.add_argument('--output', required=True,
                          help='directory of the saved preset')
    familiar.add_argument('--seed', type=_SEED, default=1,
                          help='random seed of the simulations')
    familiar.add_argument('--n', type=_number(int, 2), default=6000,
                          help='simulated examples to fit on (half as '
                          'many calibrate the threshold)')
    familiar.add_argument('--cache-dir', default=None,
                          help='keep and reuse the simulated sets here')
    _add_common_options(familiar)
    familiar.set_defaults(func=_familiarity)

    sample = command('make-sample-field', help="regenerate the demo's "
                     'sample field')
    sample.add_argument('--output-dir', required=True,
                        help='directory of sample_field.fits and '
                        'sample_field_truth.ecsv')
    sample.add_argument('--seed', type=_SEED, default=None,
                        help='random seed (default: that of the shipped '
                        'field)')
    _add_common_options(sample)
    sample.set_defaults(func=_make_sample_field)
    return parser


def main(argv=None):
    """
    Run the ``astrodl`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 on success; 2 for a usage error (a bad option value, a missing or
        non-FITS input, an output that exists without ``--overwrite`` or
        cannot be written), found before any computation; 1 when writing
        the outputs failed, which leaves every output file as it was.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    wants_help = any(arg in ('-h', '--help') for arg in argv)
    try:
        args = _parser(with_names=wants_help).parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 0
    _quiet_environment(args.verbose)
    try:
        args.func(args)
    except _WriteError as exc:
        print(f'astrodl {args.command}: error: {exc}', file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError) as exc:
        print(f'astrodl {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except ImportError as exc:  # an optional dependency (GalSim: [train])
        print(f'astrodl {args.command}: error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
