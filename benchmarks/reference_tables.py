# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Fixed-seed tables of every shipped preset, recorded and compared: the
check that a refactor changes no number.

Record on one commit, record on another, compare::

    python benchmarks/reference_tables.py record before.pkl
    python benchmarks/reference_tables.py record after.pkl
    python benchmarks/reference_tables.py compare after.pkl before.pkl

``record`` runs 19 calls on the shipped sample field (galaxy-structure:
segmentation, positions, stamps, tta, quantiles, uncertainty parts; both
classifiers: PSF given and estimated, one and three bands, tta, stamps;
the deblender: ``deblend``, ``predict`` and ``deblend_sources_dl``);
``--parts gs,cls,db`` records some of them. ``compare`` prints every
column, unit or meta entry of the first file that differs in the second,
and the count.
"""

import argparse
import pickle
import warnings

import numpy as np


def _stamps(data, x, y, size):
    from astropy.nddata.utils import extract_array

    return np.stack([extract_array(np.asarray(data), (size, size),
                                   (int(round(yi)), int(round(xi))),
                                   mode='partial', fill_value=np.nan)
                     for xi, yi in zip(x, y)])


def record(output, parts):
    """Run the calls and pickle their tables to ``output``."""
    warnings.simplefilter('ignore')
    from astrodl_plugins.core.detection import subtract_background_and_detect
    from astrodl_plugins.datasets import load_sample_field

    ccd, _ = load_sample_field()
    sub, segm, cat = subtract_background_and_detect(ccd)
    x, y = cat.x_centroid, cat.y_centroid
    results = {}
    if 'gs' in parts:
        from astrodl_plugins.structure import GalaxyStructure

        gs = GalaxyStructure.from_preset('galaxy-structure')
        results['gs_segm'] = gs.predict(
            sub, segmentation_image=segm, n_samples=10, seed=0,
            quantiles=(0.16, 0.84), uncertainty_parts=True)
        results['gs_tta'] = gs.predict(sub, segmentation_image=segm,
                                       n_samples=5, seed=1, tta=True)
        results['gs_pos'] = gs.predict(
            sub, positions=np.column_stack([x, y])[:8], n_samples=0, seed=2)
        results['gs_stamps'], results['gs_stamps_draws'] = gs.predict_stamps(
            _stamps(sub.data, x[:6], y[:6], 64), psf_fwhm=3.0, n_samples=8,
            seed=3, return_samples=True)
    if 'cls' in parts:
        from astrodl_plugins.classification import (
            GalaxyMorphology,
            StarGalaxyClassifier,
        )

        for cls, name in ((StarGalaxyClassifier, 'star-galaxy'),
                          (GalaxyMorphology, 'galaxy-morphology')):
            est = cls.from_preset(name)
            results[f'{name}_segm'] = est.predict(
                sub, segmentation_image=segm, n_samples=10, seed=0,
                quantiles=(0.5,))
            results[f'{name}_nopsf'] = est.predict(
                sub.data * sub.unit, segmentation_image=segm, n_samples=4,
                seed=4)
            results[f'{name}_3band'] = est.predict(
                [sub, sub, sub], bands=('g', 'r', 'i'),
                segmentation_image=segm, n_samples=6, seed=5, tta=True)
            results[f'{name}_stamps'] = est.predict_stamps(
                _stamps(sub.data, x[:6], y[:6], est.stamp_size),
                psf_fwhm=3.0, n_samples=5, seed=6)
    if 'db' in parts:
        from astrodl_plugins.deblending import Deblender, deblend_sources_dl

        db = Deblender.from_preset('deblender')
        result = db.deblend(sub, segm, 5, n_samples=5, seed=0)
        results['db_table'] = result.table
        results['db_segm'] = np.asarray(result.segmentation_image.data)
        results['db_map'] = dict(
            result.segmentation_image.deblended_label_to_parent)
        results['db_models'] = [np.asarray(m.data)
                                for m in result.model_images]
        results['db_predict'] = db.predict(sub, segmentation_image=segm,
                                           n_samples=3, seed=7)
        results['dl_segm'] = np.asarray(deblend_sources_dl(sub, segm,
                                                           5).data)
    for value in results.values():
        if hasattr(value, 'meta'):
            value.meta.pop('date_predicted', None)
    with open(output, 'wb') as handle:
        pickle.dump(results, handle)
    print(f'wrote {len(results)} results to {output}')


def _values(column):
    if getattr(column, 'frame', None) is not None:  # SkyCoord
        return np.asarray([column.spherical.lon.deg,
                           column.spherical.lat.deg])
    return np.asarray(getattr(column, 'value', column))


def _same(first, second):
    a, b = _values(first), _values(second)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in 'fc':
        return np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


def _differences(key, first, second):
    """Lines describing how ``second`` differs from ``first``."""
    if hasattr(first, 'colnames'):
        if first.colnames != second.colnames:
            return [f'{key}: columns {first.colnames} != {second.colnames}']
        out = [f'{key}.{name}: values differ' for name in first.colnames
               if not _same(first[name], second[name])]
        out += [f'{key}.{name}: unit {first[name].unit} != '
                f'{second[name].unit}' for name in first.colnames
                if getattr(first[name], 'unit', None)
                != getattr(second[name], 'unit', None)]
        for name in sorted(set(first.meta) | set(second.meta)):
            if name != 'model_sha256' and str(first.meta.get(name)) != str(
                    second.meta.get(name)):
                out.append(f'{key}: meta {name!r} differs')
        return out
    if isinstance(first, dict):
        out = []
        for name in sorted(set(first) | set(second), key=str):
            if name not in first or name not in second:
                out.append(f'{key}: entry {name!r} missing')
            else:
                out += _differences(f'{key}.{name}', first[name],
                                    second[name])
        return out
    if isinstance(first, list):
        if len(first) != len(second):
            return [f'{key}: {len(first)} items != {len(second)}']
        return [line for i, (a, b) in enumerate(zip(first, second))
                for line in _differences(f'{key}[{i}]', a, b)]
    return [] if _same(first, second) else [f'{key}: values differ']


def compare(first, second):
    """Print the differences of two recordings; return their count."""
    with open(first, 'rb') as handle:
        a = pickle.load(handle)
    with open(second, 'rb') as handle:
        b = pickle.load(handle)
    lines = []
    for key in a:
        if key not in b:
            lines.append(f'{key}: missing from {second}')
        else:
            lines += _differences(key, a[key], b[key])
    for line in lines:
        print(line)
    print('DIFFERENCES:', len(lines))
    return len(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    rec = sub.add_parser('record')
    rec.add_argument('output')
    rec.add_argument('--parts', default='gs,cls,db')
    com = sub.add_parser('compare')
    com.add_argument('first')
    com.add_argument('second')
    args = parser.parse_args()
    if args.command == 'record':
        record(args.output, set(args.parts.split(',')))
    else:
        compare(args.first, args.second)


if __name__ == '__main__':
    main()
