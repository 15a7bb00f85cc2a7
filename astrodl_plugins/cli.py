# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The ``astrodl`` command.

Subcommands: ``demo``, ``list``, ``predict``, ``deblend``, ``train``,
``familiarity``,
``make-sample-field``. ``astrodl <subcommand> --help`` describes each.
"""

import argparse
import os
import sys

import numpy as np

__all__ = ['main']


def _demo(args):
    from .demo import run_demo

    run_demo(args.output_dir, overwrite=args.overwrite,
             n_samples=args.n_samples, seed=args.seed)


def _list(args):
    from . import list_estimators

    list_estimators().pprint(max_width=-1, max_lines=-1)


def _read_ccd(path, unit):
    from astropy.nddata import CCDData

    try:
        return CCDData.read(path, unit=unit)
    except ValueError as exc:
        msg = (f'{path}: {exc}. Pass --unit (e.g. --unit electron) '
               'when the header has no BUNIT')
        raise ValueError(msg) from None


def _predict(args):
    from astropy import units as u

    from . import get_estimator
    from .core.detection import subtract_background_and_detect

    if os.path.exists(args.output) and not args.overwrite:
        msg = f'{args.output!r} exists; pass --overwrite to replace it'
        raise FileExistsError(msg)
    unit = u.Unit(args.unit) if args.unit else None
    estimator = get_estimator(args.estimator)
    multiband = hasattr(estimator, 'classes')
    if len(args.image) > 1 and not multiband:
        msg = (f'{args.estimator} measures one image; got '
               f'{len(args.image)}')
        raise ValueError(msg)
    ccds = [_read_ccd(path, unit) for path in args.image]
    kwargs = {}
    if args.bands:
        if not multiband:
            msg = f'--bands is for the classifiers, not {args.estimator}'
            raise ValueError(msg)
        kwargs['bands'] = tuple(args.bands)
    # Detect on the reference band (r when given), subtract every band.
    reference = 0
    if args.bands and 'r' in args.bands:
        reference = list(args.bands).index('r')
    subtracted = []
    segm = None
    for index, ccd in enumerate(ccds):
        data, band_segm, _ = subtract_background_and_detect(
            ccd, n_sigma=args.n_sigma, n_pixels=args.n_pixels,
            deblend=args.deblend)
        subtracted.append(data)
        if index == reference:
            segm = band_segm
    if segm is None:
        print('No sources detected; nothing written.')
        return
    if args.psf_fwhm is not None:
        kwargs['psf_fwhm'] = args.psf_fwhm
    data = subtracted if multiband else subtracted[0]
    table = estimator.predict(data, segmentation_image=segm,
                              n_samples=args.n_samples, seed=args.seed,
                              progress_bar=True, **kwargs)
    table.write(args.output, overwrite=args.overwrite)
    flagged = np.asarray(table['flag']) > 0
    print(f'{len(table)} sources measured ({int(flagged.sum())} flagged, '
          f'see the flag column); wrote {args.output}')
    if multiband:
        names, counts = np.unique(np.asarray(table['class'])[~flagged],
                                  return_counts=True)
        print('unflagged classes: ' + ', '.join(
            f'{n or "(unusable)"} {c}' for n, c in zip(names, counts)))


def _deblend(args):
    from astropy import units as u
    from astropy.io import fits

    from . import get_estimator
    from .core.detection import subtract_background_and_detect

    outputs = [args.output] + ([args.catalog] if args.catalog else [])
    for path in outputs:
        if os.path.exists(path) and not args.overwrite:
            msg = f'{path!r} exists; pass --overwrite to replace it'
            raise FileExistsError(msg)
    unit = u.Unit(args.unit) if args.unit else None
    ccd = _read_ccd(args.image, unit)
    data, segm, _ = subtract_background_and_detect(
        ccd, n_sigma=args.n_sigma, n_pixels=args.n_pixels)
    if segm is None:
        print('No sources detected; nothing written.')
        return
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
    fits.writeto(args.output, result.segmentation_image.data, header,
                 overwrite=args.overwrite)
    print(f'{segm.n_labels} segments detected, '
          f'{result.segmentation_image.n_labels} after deblending; wrote '
          f'{args.output}')
    if args.catalog:
        result.table.write(args.catalog, overwrite=args.overwrite)
        print(f'{len(result.table)} sources measured; wrote {args.catalog}')


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

    recipe = _recipe(args.estimator)
    check_output_directory(args.output, args.overwrite)
    estimator = get_estimator(args.estimator)
    if not recipe.familiarity_from_simulations(
            estimator, seed=args.seed, n=args.n, cache_dir=args.cache_dir):
        msg = f'{args.estimator!r} has no familiarity model'
        raise ValueError(msg)
    estimator.save(args.output, overwrite=args.overwrite)
    threshold = estimator.card_['familiarity']['threshold']
    print(f'Saved to {args.output} (ood_score threshold {threshold:.4g}).')


def _train(args):
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

    seed = SAMPLE_FIELD_SEED if args.seed is None else args.seed
    directory = write_sample_field(args.output_dir, seed=seed,
                                   overwrite=args.overwrite)
    print(f'Wrote sample_field.fits and sample_field_truth.ecsv to '
          f'{directory}')


def _parser():
    parser = argparse.ArgumentParser(
        prog='astrodl', description='Deep-learning estimators for '
        'astronomy (astrodl_plugins).')
    sub = parser.add_subparsers(dest='command', required=True)

    demo = sub.add_parser('demo', help='galaxy-structure on the shipped '
                          'sample field')
    demo.add_argument('--output-dir', default='.')
    demo.add_argument('--overwrite', action='store_true',
                      help='replace existing output files')
    demo.add_argument('--n-samples', type=int, default=50)
    demo.add_argument('--seed', type=int, default=0)
    demo.set_defaults(func=_demo)

    listing = sub.add_parser('list', help='registered estimators')
    listing.set_defaults(func=_list)

    predict = sub.add_parser('predict', help='detect sources in a FITS '
                             'image and measure them')
    predict.add_argument('estimator')
    predict.add_argument('image', nargs='+', help='FITS image(s); the '
                         'classifiers take one per band')
    predict.add_argument('--bands', nargs='+', default=None,
                         help='band of each image (classifiers), e.g. g r i')
    predict.add_argument('--deblend', action='store_true',
                         help="split blended sources with photutils' "
                         'deblend_sources (crowded fields)')
    predict.add_argument('--output', required=True, help='ECSV catalog')
    predict.add_argument('--psf-fwhm', type=float, default=None,
                         help="PSF FWHM in pixels (default: the header's "
                         'PSF_FWHM)')
    predict.add_argument('--unit', default=None,
                         help='data unit if the header has no BUNIT')
    predict.add_argument('--n-samples', type=int, default=50)
    predict.add_argument('--seed', type=int, default=0)
    predict.add_argument('--n-sigma', type=float, default=1.5)
    predict.add_argument('--n-pixels', type=int, default=10)
    predict.add_argument('--overwrite', action='store_true')
    predict.set_defaults(func=_predict)

    deblend = sub.add_parser('deblend', help='detect sources in a FITS '
                             'image and deblend them with the deblender')
    deblend.add_argument('image', help='FITS image')
    deblend.add_argument('--output', required=True,
                         help='FITS file of the deblended segmentation image')
    deblend.add_argument('--catalog', default=None,
                         help='also measure fluxes and write this ECSV '
                         'catalog')
    deblend.add_argument('--unit', default=None,
                         help='data unit if the header has no BUNIT')
    deblend.add_argument('--n-samples', type=int, default=20)
    deblend.add_argument('--seed', type=int, default=0)
    deblend.add_argument('--n-sigma', type=float, default=1.5)
    deblend.add_argument('--n-pixels', type=int, default=5)
    deblend.add_argument('--overwrite', action='store_true')
    deblend.set_defaults(func=_deblend)

    train = sub.add_parser('train', help='simulate, train, calibrate and '
                           'save an estimator')
    train.add_argument('estimator')
    train.add_argument('--n-train', type=int, default=None,
                       help='training stamps (default: 100000 for '
                       'galaxy-structure, 40000 for the classifiers) or '
                       'blends (deblender: 12000)')
    train.add_argument('--seed', type=int, default=1)
    train.add_argument('--epochs', type=int, default=None,
                       help='maximum epochs (early stopping; default 24 '
                       'for galaxy-structure, 15 for the classifiers)')
    train.add_argument('--refine-epochs', type=int, default=None,
                       help='stage-2 epochs at a lower learning rate '
                       '(default 8 for galaxy-structure, 0 for the '
                       'classifiers)')
    train.add_argument('--output', required=True)
    train.add_argument('--cache-dir', default=None,
                       help='keep and reuse the simulated sets here')
    train.add_argument('--overwrite', action='store_true')
    train.set_defaults(func=_train)

    familiar = sub.add_parser(
        'familiarity', help="fit a preset's out-of-distribution model "
        '(ood_score) on its simulator and save the preset with it')
    familiar.add_argument('estimator')
    familiar.add_argument('--seed', type=int, default=1)
    familiar.add_argument('--n', type=int, default=6000,
                          help='simulated examples to fit on (half as '
                          'many calibrate the threshold)')
    familiar.add_argument('--output', required=True)
    familiar.add_argument('--cache-dir', default=None)
    familiar.add_argument('--overwrite', action='store_true')
    familiar.set_defaults(func=_familiarity)

    sample = sub.add_parser('make-sample-field', help='regenerate the '
                            "demo's sample field")
    sample.add_argument('--output-dir', required=True)
    sample.add_argument('--seed', type=int, default=None)
    sample.add_argument('--overwrite', action='store_true')
    sample.set_defaults(func=_make_sample_field)
    return parser


def main(argv=None):
    """Run the ``astrodl`` command; returns the exit status."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as exc:
        print(f'astrodl {args.command}: error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
