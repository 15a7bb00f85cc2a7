# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The walkthrough of ``docs/fine_tuning.rst``, run as written at a small
scale, and the claims the page makes about the API.

The page's ``.. code-block:: python`` blocks are executed in order in one
namespace; the first block sets the sizes, which are replaced by `SMALL`.
"""

import copy
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u

pytest.importorskip('galsim')

DOC = Path('docs') / 'fine_tuning.rst'
#: The sizes of the page's first block, made small.
SMALL = {'n_simulated': 160, 'n_validation': 64, 'n_calibration': 64,
         'epochs': 1, 'n_samples': 4}
#: Inputs that no step of the walkthrough may change.
WATCHED = ('ccd', 'labelled', 'stamps', 'train_images', 'train_truth',
           'val_images', 'val_truth', 'real_stamps', 'X', 'y', 'psf')


def doc_path(config):
    """The page in the source tree (the tests may run an installed copy)."""
    for root in (config.rootpath, Path(__file__).resolve().parents[3]):
        if (root / DOC).is_file():
            return root / DOC
    pytest.skip(f'{DOC} is not in this tree (installed package)')


def code_blocks(text):
    """The ``.. code-block:: python`` blocks of a reST page, dedented."""
    blocks = []
    for match in re.finditer(r'^\.\. code-block:: python\n\n((?:(?: {4}.*)?'
                             r'\n)+)', text, flags=re.MULTILINE):
        blocks.append(textwrap.dedent(match.group(1)))
    return blocks


def snapshot(value):
    """A copy to compare with later (the arrays of an NDData)."""
    if hasattr(value, 'uncertainty'):
        return (value.data.copy(), value.uncertainty.array.copy(),
                dict(value.meta))
    return copy.deepcopy(value)


def same(a, b):
    """Whether a value equals its snapshot (NaN equal to NaN)."""
    if isinstance(a, tuple):
        return all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if hasattr(a, 'colnames'):
        return a.colnames == b.colnames and all(
            same(a[name], b[name]) for name in a.colnames)
    if hasattr(a, 'ra'):
        return same((a.ra.deg, a.dec.deg), (b.ra.deg, b.dec.deg))
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in 'fc':
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return a.shape == b.shape and np.array_equal(a, b)


@pytest.fixture(scope='module')
def walkthrough(request, tmp_path_factory):
    """The page's namespace after all its blocks ran, and the snapshots."""
    blocks = code_blocks(doc_path(request.config).read_text())
    directory = tmp_path_factory.mktemp('fine_tuning')
    namespace = {}
    snapshots = {}
    with pytest.MonkeyPatch.context() as patch:
        # The page saves 'my-star-galaxy' in the working directory.
        patch.chdir(directory)
        for index, block in enumerate(blocks):
            exec(compile(block, f'{DOC} block {index + 1}', 'exec'),
                 namespace)
            if index == 0:
                sizes = {key: value for key, value in namespace.items()
                         if key != '__builtins__'}
                namespace.update(SMALL)
            for name in WATCHED:
                if name in namespace and name not in snapshots:
                    snapshots[name] = snapshot(namespace[name])
    namespace['_sizes'] = sizes
    namespace['_blocks'] = blocks
    namespace['_directory'] = directory
    namespace['_snapshots'] = snapshots
    return namespace


class TestPage:
    def test_blocks_found(self, walkthrough):
        assert len(walkthrough['_blocks']) >= 10

    def test_first_block_sets_the_sizes_only(self, walkthrough):
        # The page's own sizes are large; the test replaced each of them.
        assert set(walkthrough['_sizes']) == set(SMALL)
        assert walkthrough['_sizes']['n_simulated'] > 1000


class TestSurvey:
    def test_pixel_scale_and_psf(self, walkthrough):
        assert u.isclose(walkthrough['pixel_scale'], 0.2 * u.arcsec / u.pix)
        assert walkthrough['psf_fwhm'] == 3.0
        # The page quotes the estimate: 3.3 pixels from 20 stars.
        estimate = walkthrough['estimate']
        assert round(estimate.fwhm, 1) == 3.3
        assert estimate.n_stars == 20
        assert not estimate.uncertain

    def test_depth_and_crowding(self, walkthrough):
        # The page: matched-filter S/N 1.5-2 times the segment S/N, and
        # 0.2 neighbours per stamp.
        ratio = (np.median(walkthrough['truth']['snr'])
                 / np.median(walkthrough['snr']))
        assert 1.3 < ratio < 2.2
        assert round(walkthrough['neighbours'], 1) == 0.2

    def test_simulator_configured(self, walkthrough):
        ranges = walkthrough['survey']['ranges']
        assert ranges['psf_fwhm'] == pytest.approx((2.55, 3.45))
        assert ranges['r_eff'] == pytest.approx((0.5, 10.0))
        truth = walkthrough['train_truth']
        low, high = ranges['psf_fwhm']
        assert np.all((truth['psf_fwhm'] >= low) & (truth['psf_fwhm'] <= high))
        assert np.all((truth['snr'] >= ranges['snr'][0])
                      & (truth['snr'] <= ranges['snr'][1]))
        assert set(truth['psf_kind']) <= {'moffat', 'kolmogorov'}
        assert walkthrough['train_images'].shape == (SMALL['n_simulated'],
                                                     32, 32, 1)


class TestTrainingSet:
    def test_held_out_sources_are_not_trained_on(self, walkthrough):
        train, test = walkthrough['train_rows'], walkthrough['test_rows']
        assert not np.any(train & test)
        classes = walkthrough['labelled']['class']
        for name in ('star', 'galaxy'):
            assert np.count_nonzero(test & (classes == name)) >= 5
            assert np.count_nonzero(train & (classes == name)) >= 5

    def test_real_stamps_oversampled(self, walkthrough):
        n_real = len(walkthrough['real_stamps'])
        repeats = walkthrough['repeats']
        n = SMALL['n_simulated'] + repeats * n_real
        assert len(walkthrough['X']) == len(walkthrough['y']) == n
        assert len(walkthrough['psf']) == n
        assert repeats * n_real >= 0.1 * SMALL['n_simulated']
        # The real stamps are those of the image, whole.
        assert np.isfinite(walkthrough['real_stamps']).all()
        np.testing.assert_array_equal(walkthrough['X'][-n_real:],
                                      walkthrough['real_stamps'])


class TestFineTuned:
    def test_convolutions_frozen_head_trained(self, walkthrough):
        import keras

        base = walkthrough['base'].model_
        tuned = walkthrough['tuned'].model_
        changed = {}
        for old, new in zip(base.layers, tuned.layers, strict=True):
            if old.weights:
                changed[type(old)] = changed.get(type(old), []) + [
                    any(not np.array_equal(a, b) for a, b
                        in zip(old.get_weights(), new.get_weights()))]
        assert not any(changed[keras.layers.Conv2D])
        assert not any(changed[keras.layers.BatchNormalization])
        assert all(changed[keras.layers.Dense])
        # Every layer can be trained again afterwards.
        assert all(layer.trainable for layer in tuned.layers)

    def test_scores(self, walkthrough):
        for result in (walkthrough['before'], walkthrough['after']):
            assert set(result) == {'accuracy', 'flagged', 'confident_errors'}
            assert 0 <= result['flagged'] <= 1
            # The page: the shipped preset classifies nearly all the
            # sample field's sources, and fine-tuning breaks nothing.
            assert result['accuracy'] >= 0.9
        assert len(walkthrough['tuned'].history_['loss']) == SMALL['epochs']

    def test_temperature_kept(self, walkthrough):
        assert (walkthrough['tuned'].temperature_
                == walkthrough['base'].temperature_)

    def test_familiarity_refitted(self, walkthrough):
        base = walkthrough['base'].familiarity_
        tuned = walkthrough['tuned'].familiarity_
        assert tuned.threshold != base.threshold
        assert not np.allclose(tuned.mean, base.mean)
        # 1 is the 99th percentile of the calibration set.
        scores = tuned.score(walkthrough['calibration_features'])
        assert np.quantile(scores, tuned.quantile) == pytest.approx(1.0)
        n_fit = (len(walkthrough['sim_features'])
                 + len(walkthrough['real_features']))
        assert walkthrough['card']['familiarity']['n_fit'] == n_fit

    def test_refusals_leave_estimator_unchanged(self, walkthrough):
        import astrodl_plugins as adl

        estimator = adl.get_estimator('star-galaxy')
        before = [w.copy() for w in estimator.model_.get_weights()]
        X, y, psf = (walkthrough[key][:8] for key in ('X', 'y', 'psf'))
        with pytest.raises(ValueError, match='freeze'):
            estimator.fit(X, y, psf_fwhm=psf, bands=('r',), freeze='dense')
        with pytest.raises(ValueError, match='not classes'):
            estimator.fit(X, np.full(8, 'quasar'), psf_fwhm=psf,
                          bands=('r',), freeze='conv')
        with pytest.raises(ValueError, match='stamps must have shape'):
            estimator.fit(X[:, :16, :16], y, psf_fwhm=psf, bands=('r',),
                          freeze='conv')
        for old, new in zip(before, estimator.model_.get_weights()):
            np.testing.assert_array_equal(old, new)
        assert all(layer.trainable for layer in estimator.model_.layers)


class TestSavedPreset:
    def test_reloads(self, walkthrough):
        from astrodl_plugins.classification import StarGalaxyClassifier

        mine, tuned = walkthrough['mine'], walkthrough['tuned']
        assert type(mine) is StarGalaxyClassifier
        assert mine.model_sha256_ is not None
        assert mine.model_sha256_ != walkthrough['base'].model_sha256_
        assert mine.get_params() == tuned.get_params()
        assert mine.temperature_ == tuned.temperature_
        assert mine.familiarity_.threshold == pytest.approx(
            tuned.familiarity_.threshold, rel=1e-5)
        assert mine.card_['training']['freeze'] == 'conv'
        assert mine.valid_ranges['psf_fwhm'] == pytest.approx((2.55, 3.45))
        for old, new in zip(tuned.model_.get_weights(),
                            mine.model_.get_weights()):
            np.testing.assert_array_equal(old, new)

    def test_same_predictions_after_reload(self, walkthrough):
        from astrodl_plugins.core.familiarity import Familiarity

        stamps = walkthrough['real_stamps']
        kwargs = dict(psf_fwhm=walkthrough['psf_fwhm'], bands=('r',),
                      n_samples=4, seed=1)
        tuned, mine = walkthrough['tuned'], walkthrough['mine']
        saved = tuned.predict_stamps(stamps, **kwargs)
        loaded = mine.predict_stamps(stamps, **kwargs)
        for name in ('p_galaxy', 'p_galaxy_err', 'mutual_information'):
            np.testing.assert_allclose(loaded[name], saved[name], rtol=1e-6)
        np.testing.assert_array_equal(loaded['class'], saved['class'])
        # The familiarity model is saved rounded to 6 digits (to_dict);
        # the reloaded scores are those of the rounded model.
        assert mine.familiarity_.to_dict() == tuned.familiarity_.to_dict()
        features, _ = tuned.network_features(
            stamps, psf_fwhm=walkthrough['psf_fwhm'], bands=('r',))
        rounded = Familiarity.from_dict(tuned.familiarity_.to_dict())
        np.testing.assert_allclose(loaded['ood_score'],
                                   rounded.score(features), rtol=1e-6)

    def test_table(self, walkthrough):
        table = walkthrough['table']
        assert len(table) == walkthrough['segm'].n_labels
        for name in ('class', 'p_galaxy', 'ood_score', 'flag'):
            assert name in table.colnames
        assert np.isfinite(table['ood_score']).any()
        assert set(table['class']) <= {'star', 'galaxy', ''}
        assert table.meta['model_sha256'] == walkthrough['mine'].model_sha256_

    def test_psf_in_arcsec_flagged(self, walkthrough):
        from astrodl_plugins.core import SourceFlags

        # The page: a seeing in arcsec passed as pixels is OUT_OF_RANGE.
        table = walkthrough['mine'].predict_stamps(
            walkthrough['real_stamps'], psf_fwhm=0.6, bands=('r',),
            n_samples=0)
        assert np.all(table['flag'] & SourceFlags.OUT_OF_RANGE)
        table = walkthrough['mine'].predict_stamps(
            walkthrough['real_stamps'], psf_fwhm=walkthrough['psf_fwhm'],
            bands=('r',), n_samples=0)
        assert not np.any(table['flag'] & SourceFlags.OUT_OF_RANGE)

    def test_card_renders(self, walkthrough):
        from astrodl_plugins.core.cards import render_model_card

        directory = walkthrough['_directory'] / 'my-star-galaxy'
        config = json.loads((directory / 'config.json').read_text())
        text = render_model_card(config)
        assert 'fine-tuned to my survey' in text
        assert 'Held-out real sources' in text
        assert 'fine_tuned_from' in text
        # The shipped card's figures and command are not carried over.
        assert 'figure::' not in text
        assert 'astrodl train' not in text


class TestInputs:
    @pytest.mark.parametrize('name', WATCHED)
    def test_not_mutated(self, walkthrough, name):
        assert name in walkthrough['_snapshots']
        assert same(walkthrough['_snapshots'][name],
                    snapshot(walkthrough[name]))
