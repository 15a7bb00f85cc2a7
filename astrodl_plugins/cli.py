# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The ``astrodl`` command.

Subcommands: ``demo``, ``list``, ``predict``, ``train``,
``make-sample-field``. ``astrodl <subcommand> --help`` describes each.
"""

import argparse
import os
import sys

__all__ = ['main']


def _demo(args):
    from .demo import run_demo

    run_demo(args.output_dir, overwrite=args.overwrite,
             n_samples=args.n_samples, seed=args.seed)


def _list(args):
    from . import list_estimators

    list_estimators().pprint(max_width=-1, max_lines=-1)


def _predict(args):
    from astropy import units as u
    from astropy.nddata import CCDData

    from . import get_estimator
    from .core.detection import subtract_background_and_detect

    if os.path.exists(args.output) and not args.overwrite:
        msg = f'{args.output!r} exists; pass --overwrite to replace it'
        raise FileExistsError(msg)
    unit = u.Unit(args.unit) if args.unit else None
    try:
        ccd = CCDData.read(args.image, unit=unit)
    except ValueError as exc:
        msg = (f'{args.image}: {exc}. Pass --unit (e.g. --unit electron) '
               'when the header has no BUNIT')
        raise ValueError(msg) from None
    subtracted, segm, _ = subtract_background_and_detect(
        ccd, n_sigma=args.n_sigma, n_pixels=args.n_pixels)
    if segm is None:
        print('No sources detected; nothing written.')
        return
    estimator = get_estimator(args.estimator)
    kwargs = {}
    if args.psf_fwhm is not None:
        kwargs['psf_fwhm'] = args.psf_fwhm
    table = estimator.predict(subtracted, segmentation_image=segm,
                              n_samples=args.n_samples, seed=args.seed,
                              progress_bar=True, **kwargs)
    table.write(args.output, overwrite=args.overwrite)
    print(f'{len(table)} sources measured; wrote {args.output}')


def _train(args):
    trainers = {'galaxy-structure': 'astrodl_plugins.structure.train:'
                                    'train_galaxy_structure'}
    if args.estimator not in trainers:
        msg = (f'no training recipe for {args.estimator!r}; available: '
               f'{sorted(trainers)}')
        raise ValueError(msg)
    from importlib import import_module

    module, _, name = trainers[args.estimator].partition(':')
    train = getattr(import_module(module), name)
    estimator = train(n_train=args.n_train, seed=args.seed,
                      output=args.output, epochs=args.epochs,
                      refine_epochs=args.refine_epochs,
                      cache_dir=args.cache_dir, overwrite=args.overwrite)
    metrics = estimator.card_['metrics']['snr_gt_50']
    print(f'Saved to {args.output}. Held-out metrics at S/N > 50:')
    for key, value in metrics.items():
        print(f'  {key}: {value:.4g}')


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
    predict.add_argument('image')
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

    train = sub.add_parser('train', help='simulate, train, calibrate and '
                           'save an estimator')
    train.add_argument('estimator')
    train.add_argument('--n-train', type=int, default=100_000)
    train.add_argument('--seed', type=int, default=1)
    train.add_argument('--epochs', type=int, default=24,
                       help='stage-1 epochs (early stopping)')
    train.add_argument('--refine-epochs', type=int, default=8,
                       help='stage-2 epochs at a lower learning rate')
    train.add_argument('--output', required=True)
    train.add_argument('--cache-dir', default=None,
                       help='keep and reuse the simulated sets here')
    train.add_argument('--overwrite', action='store_true')
    train.set_defaults(func=_train)

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
