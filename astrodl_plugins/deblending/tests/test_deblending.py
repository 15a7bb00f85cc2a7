# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The deblender: photutils contract, bad input, tiling, shipped quality."""


import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.wcs import WCS
from photutils.segmentation import (
    SegmentationImage,
    SourceCatalog,
    detect_sources,
)

import astrodl_plugins as adl
from astrodl_plugins.core.store import UnverifiedPresetWarning
from astrodl_plugins.deblending import (
    Deblender,
    DeblendResult,
    SourceFinderDL,
    deblend_sources_dl,
)
from astrodl_plugins.deblending.centres import crop_jobs
from astrodl_plugins.deblending.evaluate import detect, photutils_deblend, score
from astrodl_plugins.exceptions import AstrodlUserWarning
from astrodl_plugins.simulate import (
    simulate_blend_field,
    simulate_blend_stamps,
)


@pytest.fixture(scope='module')
def deblender():
    return adl.get_estimator('deblender')


@pytest.fixture(scope='module')
def field():
    """A small held-out blend field (seed 3), its truth and detection."""
    image, truth, sigma = simulate_blend_field(seed=3, shape=(560, 560),
                                               n_processes=1)
    segm, convolved = detect(image, sigma)
    return image, truth, sigma, segm, convolved


def _ccd(image, sigma):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [image.shape[1] / 2, image.shape[0] / 2]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    return CCDData(image, unit=u.electron, wcs=wcs,
                   uncertainty=StdDevUncertainty(np.full(image.shape, sigma)))


class TestPhotutilsContract:
    def test_children_tile_their_parents(self, deblender, field):
        image, _, _, segm, _ = field
        before = segm.data.copy()
        out = deblend_sources_dl(image, segm, 5, preset=deblender)
        assert isinstance(out, SegmentationImage)
        assert np.array_equal(segm.data, before)  # input not modified
        # Same footprint, each child inside one parent.
        assert np.array_equal(out.data > 0, segm.data > 0)
        parents = out.deblended_label_to_parent
        for child in out.labels:
            under = np.unique(segm.data[out.data == child])
            assert under.size == 1
            if child in parents:
                assert parents[child] == under[0]
        # Consecutive labels; more sources than were detected.
        assert np.array_equal(out.labels, np.arange(1, out.n_labels + 1))
        assert out.n_labels > segm.n_labels
        assert set(out.parent_to_deblended_labels) <= set(segm.labels)
        for child in out.labels:
            assert out.areas[child - 1] >= 5

    def test_any_connectivity(self, deblender, field):
        """
        photutils' "Deblending failed ... same pixel connectivity" error
        (photutils#803) cannot happen: children are assigned pixel by pixel
        inside the parent, whatever connectivity made the segments.
        """
        image, _, sigma, _, convolved = field
        segm4 = detect_sources(convolved, 1.5 * sigma, 5, connectivity=4)
        out = deblend_sources_dl(image, segm4, 5, preset=deblender)
        assert np.array_equal(out.data > 0, segm4.data > 0)
        assert out.n_labels >= segm4.n_labels

    def test_labels_keyword_leaves_the_others(self, deblender, field):
        image, _, _, segm, _ = field
        biggest = segm.labels[np.argmax(segm.areas)]
        out = deblend_sources_dl(image, segm, 5, labels=biggest,
                                 preset=deblender)
        assert out.n_labels >= segm.n_labels
        others = segm.data != biggest
        # The other segments keep their pixels (relabelled).
        assert np.array_equal(out.data[others] > 0, segm.data[others] > 0)
        assert set(out.parent_to_deblended_labels) <= {biggest}

    def test_source_finder(self, deblender, field):
        image, _, sigma, segm, convolved = field
        finder = SourceFinderDL(5, preset=deblender)
        assert 'SourceFinderDL' in repr(finder)
        out = finder(image, 1.5 * sigma, convolved_data=convolved)
        assert np.array_equal(out.data > 0, segm.data > 0)
        assert out.n_labels > segm.n_labels
        assert SourceFinderDL(5, deblend=False, preset=deblender)(
            image, 1.5 * sigma, convolved_data=convolved).n_labels == (
                segm.n_labels)


class TestBadInput:
    def test_segmentation_of_another_shape(self, deblender, field):
        image, _, _, segm, _ = field
        with pytest.raises(ValueError, match='segmentation_image has shape'):
            deblend_sources_dl(image[:100], segm, 5, preset=deblender)

    def test_non_integer_labels(self, deblender):
        data = np.zeros((64, 64))
        segm = np.zeros((64, 64))
        segm[10:20, 10:20] = 1.5
        with pytest.raises(ValueError, match='integer labels'):
            deblend_sources_dl(data, segm, 5, preset=deblender)
        with pytest.raises(TypeError, match='integer array'):
            deblend_sources_dl(data, segm.astype(bool), 5, preset=deblender)

    def test_labels_not_present(self, deblender, field):
        image, _, _, segm, _ = field
        with pytest.raises(ValueError, match=r'labels \[9999\] are not in'):
            deblend_sources_dl(image, segm, 5, labels=[1, 9999],
                               preset=deblender)

    def test_empty_segmentation_warns(self, deblender):
        data = np.random.default_rng(0).normal(size=(64, 64))
        with pytest.warns(AstrodlUserWarning, match='no source'):
            out = deblend_sources_dl(data, np.zeros((64, 64), int), 5,
                                     preset=deblender)
        assert out is None
        with pytest.warns(AstrodlUserWarning, match='no source'):
            table = deblender.predict(data, segmentation_image=np.zeros(
                (64, 64), int))
        assert len(table) == 0
        assert 'flux_err' in table.colnames

    @pytest.mark.parametrize('n_pixels', [0, 2.5, True])
    def test_bad_n_pixels(self, deblender, field, n_pixels):
        image, _, _, segm, _ = field
        with pytest.raises(ValueError, match='n_pixels'):
            deblend_sources_dl(image, segm, n_pixels, preset=deblender)

    def test_bad_data_and_keywords(self, deblender, field):
        image, _, _, segm, _ = field
        with pytest.raises(TypeError, match='boolean'):
            deblend_sources_dl(image > 0, segm, 5, preset=deblender)
        with pytest.raises(ValueError, match='segmentation_image is required'):
            deblender.predict(image)
        background = np.argwhere(segm.data == 0)[0][::-1]
        with pytest.raises(ValueError, match='on no segment'):
            deblender.predict(image, segmentation_image=segm,
                              positions=[background])
        with pytest.raises(ValueError, match='at most one of labels and '
                           'positions'):
            deblender.predict(image, segmentation_image=segm,
                              positions=[[1, 2]], labels=[1])
        with pytest.raises(ValueError, match='positions need a '
                           'segmentation_image'):
            deblender.predict(image, positions=[[1, 2]])


class TestTiles:
    def test_tile_cores_partition_a_large_segment(self):
        slices = {1: (slice(100, 700), slice(50, 400))}
        jobs = crop_jobs(slices, [1])
        assert len(jobs) > 1
        owner = np.zeros((600, 350), int)
        for _, y0, x0, size, (ylo, yhi, xlo, xhi), turn in jobs:
            assert size == 256
            assert y0 <= ylo and yhi <= y0 + size
            assert x0 <= xlo and xhi <= x0 + size
            assert turn == (0, 0)  # tiles turn about their own centres
            owner[ylo - 100:yhi - 100, xlo - 50:xhi - 50] += 1
        assert np.all(owner == 1)

    @pytest.mark.parametrize('factor', [1, 3, 5])
    def test_binned_tiles_and_crops(self, factor):
        """
        Binned crops: the tile cores still partition the segment, and a
        single crop is centred on the segment, its turned twin on the same
        binning grid.
        """
        slices = {1: (slice(100, 100 + 300 * factor),
                      slice(50, 50 + 120 * factor)),
                  2: (slice(10, 31), slice(20, 40))}
        jobs = crop_jobs(slices, [1], factor)
        owner = np.zeros((300 * factor, 120 * factor), int)
        for job in jobs:
            ylo, yhi, xlo, xhi = job.core
            assert job.y0 <= ylo and yhi <= job.y0 + job.size * factor
            assert job.x0 <= xlo and xhi <= job.x0 + job.size * factor
            assert (job.y0 - jobs[0].y0) % factor == 0
            owner[ylo - 100:yhi - 100, xlo - 50:xhi - 50] += 1
        assert np.all(owner == 1)
        (job,) = crop_jobs(slices, [2], factor)
        length = job.size * factor
        # Window and twin are each other's turn about the box centre.
        for first, turn, (lo, hi) in ((job.y0, job.turn[0], (10, 31)),
                                      (job.x0, job.turn[1], (20, 40))):
            assert turn in (0, factor)
            assert (first + turn) + (first + length - 1) == lo + hi - 1
        with pytest.raises(ValueError, match='factor must be an odd'):
            crop_jobs(slices, [2], 2)

    def test_chain_across_tiles_has_no_duplicates(self, deblender):
        """A 600-pixel chain of stars, one segment: one child per star."""
        import galsim

        rng = np.random.default_rng(1)
        image = np.zeros((80, 640))
        xs = np.arange(20, 620, 15.0) + rng.uniform(-0.5, 0.5, 40)
        psf = galsim.Moffat(beta=3.0, fwhm=3.0)
        for x in xs:
            stamp = psf.withFlux(2e4).drawImage(
                nx=41, ny=41, scale=1.0, offset=(x % 1 - 0.5, 0.3))
            ix = int(x)
            image[20:61, ix - 20:ix + 21] += stamp.array
        image += 0.5 * np.exp(-0.5 * ((np.arange(80) - 40) / 6.0) ** 2)[
            :, None] * 200  # a bridge of light joins the stars
        image += rng.normal(0, 5.0, image.shape)
        segm = detect_sources(image, 15.0, 5)
        assert segm.n_labels == 1
        result = deblender.deblend(image, segm, 5, n_samples=0, seed=0)
        out = result.segmentation_image
        # Exactly one child centred on every star (tile seams at x ~ 232
        # and 456); the ends of the bridge, cut by the image edges, may add
        # one each.
        centroids = np.sort(result.table['x_centroid'].value)
        distance = np.abs(centroids[:, None] - xs[None, :])
        assert np.all((distance < 3).sum(axis=0) == 1)
        assert out.n_labels <= len(xs) + 4
        assert np.min(np.diff(centroids)) > 5


class TestWidePSF:
    def test_wide_psf_is_binned_for_detection(self, deblender):
        """Close pairs under a 12-pixel PSF (beyond the trained 5 pixels)."""
        import galsim

        rng = np.random.default_rng(0)
        image = np.zeros((200, 400))
        psf = galsim.Moffat(beta=3.0, fwhm=12.0)
        for cx in (60, 160, 260, 340):
            sep, angle = rng.uniform(8, 14), rng.uniform(0, np.pi)
            for side in (-0.5, 0.5):
                x = cx + side * sep * np.cos(angle)
                y = 100 + side * sep * np.sin(angle)
                stamp = psf.withFlux(rng.uniform(2e4, 6e4)).drawImage(
                    nx=81, ny=81, scale=1.0,
                    offset=(x % 1 - 0.5, y % 1 - 0.5))
                image[int(y) - 40:int(y) + 41,
                      int(x) - 40:int(x) + 41] += stamp.array
        image += rng.normal(0, 5, image.shape)
        segm = detect_sources(image, 15, 5)
        binned = deblender.deblend(image, segm, 5, n_samples=0,
                                   psf_fwhm=12.0, fluxes=False)
        assert binned.binning == 3
        plain = deblender.deblend(image, segm, 5, n_samples=0,
                                  psf_fwhm=4.0, fluxes=False)
        assert plain.binning == 1
        assert binned.segmentation_image.n_labels >= 7
        assert (binned.segmentation_image.n_labels
                > plain.segmentation_image.n_labels)


class TestEstimator:
    def test_table_models_and_join(self, deblender, field):
        image, truth, sigma, segm, _ = field
        ccd = _ccd(image, sigma)
        result = deblender.deblend(ccd, segm, 5, n_samples=10, seed=1,
                                   quantiles=(0.16, 0.84))
        assert isinstance(result, DeblendResult)
        table = result.table
        assert table.colnames[:5] == ['label', 'x_centroid', 'y_centroid',
                                      'sky_centroid', 'parent_label']
        assert table['flux'].unit == u.electron
        assert np.all(table['flux_err'] > 0)
        assert np.all(table['flux_q16'] < table['flux_q84'])
        assert np.array_equal(table['label'],
                              result.segmentation_image.labels)
        # Joins the photutils catalog of the input segmentation.
        catalog = SourceCatalog(image, segm).to_table()
        joined = np.isin(table['parent_label'], catalog['label'])
        assert joined.all()
        # One model per child, with its WCS and place in the image.
        models = result.model_images
        assert len(models) == len(table)
        assert isinstance(models[0], NDData)
        assert models[0].meta['label'] == table['label'][0]
        assert models[0].wcs is not None
        # The models explain the data: the residual inside the segments is
        # small compared with the data.
        residual = image - result.model_image(image.shape)
        inside = segm.data > 0
        assert (np.abs(residual[inside]).sum()
                < 0.35 * np.abs(image[inside]).sum())

    def test_fluxes_add_up_to_the_data(self, deblender, field):
        """Children share their parent's data; model wings only add."""
        image, _, _, segm, _ = field
        table = deblender.predict(image, segmentation_image=segm,
                                  n_samples=0, seed=0)
        split = np.unique(table['parent_label'][table['n_children'] > 1])
        assert split.size >= 5
        for parent in split:
            total = table['flux'][table['parent_label'] == parent].sum()
            inside = image[segm.data == parent].sum()
            # Faint sources can have as much light beyond the 1.5-sigma
            # isophote as inside it.
            assert inside <= total < 3 * inside

    def test_same_seed_same_fluxes(self, deblender, field):
        image, _, _, segm, _ = field
        a = deblender.predict(image, segmentation_image=segm, n_samples=5,
                              seed=3)
        b = deblender.predict(image, segmentation_image=segm, n_samples=5,
                              seed=3)
        assert np.array_equal(a['flux'], b['flux'])

    def test_masked_pixels_flagged(self, deblender, field):
        image, _, sigma, segm, _ = field
        mask = np.zeros(image.shape, bool)
        x, y = 48, 48
        mask[y - 2:y + 2, x - 2:x + 2] = True
        table = deblender.predict(NDData(image, mask=mask),
                                  segmentation_image=segm, n_samples=3,
                                  seed=0)
        near = np.hypot(table['x_centroid'].value - x,
                        table['y_centroid'].value - y) < 10
        assert near.any()
        assert np.all(table['flag'][near] & 1)
        assert np.all(np.isfinite(table['flux']))


class TestPredictKeywords:
    """``positions``, ``return_samples`` and ``uncertainty_parts``."""

    def test_positions_select_the_segments_under_them(self, deblender,
                                                       field):
        image, truth, _, segm, _ = field
        xy = np.column_stack([truth['x'], truth['y']])
        row, col = np.floor(xy[:, ::-1] + 0.5).astype(int).T
        under = segm.data[row, col]
        xy = xy[under > 0][:3]
        parents = np.unique(under[under > 0][:3])
        table = deblender.predict(image, segmentation_image=segm,
                                  positions=xy, n_samples=0, seed=0)
        assert set(table['parent_label'].tolist()) == set(parents.tolist())
        by_label = deblender.predict(image, segmentation_image=segm,
                                     labels=parents, n_samples=0, seed=0)
        assert np.array_equal(table['flux'], by_label['flux'])
        assert np.array_equal(table['parent_label'],
                              by_label['parent_label'])

    def test_return_samples_and_uncertainty_parts(self, deblender, field):
        image, _, _, segm, _ = field
        biggest = segm.labels[np.argsort(segm.areas)[-3:]]
        table, draws = deblender.predict(
            image, segmentation_image=segm, labels=biggest, n_samples=4,
            seed=0, return_samples=True, uncertainty_parts=True)
        assert set(draws) == {'flux'}
        assert draws['flux'].shape == (len(table), 4)
        # The column's convention (plain where dimensionless).
        assert getattr(draws['flux'], 'unit', None) == table['flux'].unit
        assert np.allclose(draws['flux'].mean(axis=1), table['flux'])
        epistemic = table['flux_err_epistemic']
        aleatoric = table['flux_err_aleatoric']
        assert np.all(epistemic >= 0) and np.all(aleatoric > 0)
        assert np.allclose(epistemic, draws['flux'].std(axis=1))
        assert np.allclose(table['flux_err'],
                           deblender.flux_error_scale_
                           * np.hypot(epistemic, aleatoric))
        # One deterministic pass has no epistemic part.
        single = deblender.predict(image, segmentation_image=segm,
                                   labels=biggest, n_samples=0, seed=0,
                                   uncertainty_parts=True)
        assert np.all(single['flux_err_epistemic'] == 0)
        assert 'flux_err_epistemic' not in deblender.predict(
            image, segmentation_image=segm, labels=biggest, n_samples=0,
            seed=0).colnames

    def test_no_predict_stamps(self, deblender):
        """Deblending needs an image and its segments, not stamps."""
        assert not hasattr(deblender, 'predict_stamps')


@pytest.fixture(scope='module')
def scores(deblender):
    """Our and photutils' scores on a held-out field (seed 3, 64 blends)."""
    image, truth, sigma = simulate_blend_field(seed=3, shape=(896, 896),
                                               n_processes=1)
    segm, convolved = detect(image, sigma)
    px, py, pflux, _, _ = photutils_deblend(image, convolved, segm)
    ours = deblender.predict(image, segmentation_image=segm, n_samples=10,
                             seed=0)
    return (score(truth, ours['x_centroid'].value, ours['y_centroid'].value,
                  ours['flux'].value, flux_err=ours['flux_err'].value)[-1],
            score(truth, px, py, pflux)[-1])


class TestShippedQuality:
    """
    The shipped model against photutils on a held-out field (seed 3, 64
    blends, about 180 sources). The thresholds sit below what the shipped
    model measures there (recall 0.77 against 0.54, over-splitting 0.02
    against 0.03, median flux error 0.21 against 0.32, coverage 0.71);
    the model card has the full held-out numbers.
    """

    def test_recall_and_over_splitting(self, scores):
        ours, theirs = scores
        assert ours['recall'] >= theirs['recall'] + 0.15
        assert ours['over_splitting'] <= theirs['over_splitting'] + 0.02

    def test_flux_error_and_coverage(self, scores):
        ours, theirs = scores
        assert ours['flux_error_median'] < theirs['flux_error_median']
        assert ours['flux_error_median'] <= 0.27
        assert 0.6 <= ours['coverage_68'] <= 0.85

    def test_score_is_not_trivial(self, field):
        """The scoring gives 0 recall to an empty catalogue, 1 to truth."""
        _, truth, _, _, _ = field
        empty = score(truth, [], [], [])[-1]
        assert empty['recall'] == 0
        perfect = score(truth, truth['x'], truth['y'], truth['flux'])[-1]
        assert perfect['recall'] == 1
        assert perfect['over_splitting'] == 0
        assert perfect['flux_error_median'] == 0


class TestFit:
    def test_tiny_fit_saves_and_loads(self, tmp_path):
        """``fit`` on a few blends (1 epoch, small U-Nets), then a round trip."""
        stamps, models, truth = simulate_blend_stamps(
            6, seed=0, stamp_size=32, single_fraction=0.15, n_processes=1)
        deblender = Deblender(stamp_size=32, widths=(4, 8),
                              detector_widths=(4, 8))
        assert deblender.fit(stamps, truth, models, epochs=1, seed=0,
                             verbose=0) is deblender
        assert set(deblender.history_) == {'detector', 'model'}
        assert all(len(history['loss']) == 1
                   for history in deblender.history_.values())
        assert deblender.threshold_ == 0.3
        assert deblender.flux_error_scale_ == 1.0
        # Saved here: intact, but not a shipped preset.
        with pytest.warns(UnverifiedPresetWarning, match='not a shipped'):
            loaded = Deblender.from_preset(deblender.save(tmp_path / 'tiny'))
        assert loaded.get_params() == deblender.get_params()
        assert loaded.threshold_ == deblender.threshold_
        for name in Deblender.networks:
            for a, b in zip(getattr(deblender, f'{name}_').get_weights(),
                            getattr(loaded, f'{name}_').get_weights()):
                assert np.array_equal(a, b)
        image, _, sigma = simulate_blend_field(seed=5, shape=(128, 128),
                                               n_processes=1)
        segm, _ = detect(image, sigma)
        a = deblender.deblend(image, segm, 5, n_samples=2, seed=0)
        b = loaded.deblend(image, segm, 5, n_samples=2, seed=0)
        assert len(a.table) >= segm.n_labels
        assert np.array_equal(a.segmentation_image.data,
                              b.segmentation_image.data)
        assert np.array_equal(a.table['flux'], b.table['flux'])

    def test_bad_training_data(self):
        stamps, models, truth = simulate_blend_stamps(
            2, seed=0, stamp_size=32, n_processes=1)
        with pytest.raises(ValueError, match=r'stamps must have shape'):
            Deblender().fit(stamps, truth, models)
        with pytest.raises(ValueError, match='must match the stamps'):
            Deblender(stamp_size=32).fit(stamps, truth, models[:-1])


@pytest.mark.slow
class TestRecipe:
    def test_one_epoch_recipe_writes_a_loadable_preset(self, tmp_path):
        """The whole recipe, tiny: train, tune, calibrate, test, save."""
        from astrodl_plugins.deblending.recipe import RECIPE, train_deblender
        from astrodl_plugins.simulate import BLEND_RANGES

        assert RECIPE.n_test == 0 and RECIPE.epochs is None
        output = tmp_path / 'preset'
        trained = train_deblender(n_train=20, n_validation=10, epochs=1,
                                  n_fields=1, output=output, verbose=0)
        # Saved here: intact, but not a shipped preset.
        with pytest.warns(UnverifiedPresetWarning, match='not a shipped'):
            loaded = Deblender.from_preset(output)
        assert loaded.threshold_ == trained.threshold_
        assert loaded.threshold_ in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
        assert np.isfinite(loaded.flux_error_scale_)
        assert loaded.flux_error_scale_ > 0
        card = loaded.card_
        assert card['error_scale']['flux'] == loaded.flux_error_scale_
        assert card['metrics']['all']['threshold'] == loaded.threshold_
        assert [row[0] for row in card['tables'][0]['rows']][-1] == 'all'
        assert card['training_data']['blends'] == 20
        assert card['training_data']['test_field_seeds'] == [3000]
        assert card['command'] == ('astrodl train deblender --n-train 20 '
                                   '--seed 1 --epochs 1 --refine-epochs 0 '
                                   '--output DIR')
        assert loaded.valid_ranges['psf_fwhm'] == BLEND_RANGES['psf_fwhm']
        assert set(card['training']) == {'detector', 'model', 'seconds'}
        assert set(card['figures']) == {'history_detector.png',
                                        'history_model.png', 'example.png'}
        for name in card['figures']:
            assert (output / name).stat().st_size > 0


class TestLikePhotutils:
    """photutils' symmetric-pair case: two equal Gaussians, 3 sigma apart."""

    @pytest.mark.parametrize('sigma', [2.5, 5.0])
    @pytest.mark.parametrize('noise', [0.0, 0.01])
    def test_two_equal_gaussians_split(self, sigma, noise):
        from astropy.modeling.models import Gaussian2D
        from photutils.segmentation import detect_sources

        yy, xx = np.mgrid[:101, :101]
        offset = 1.5 * sigma
        image = (Gaussian2D(1, 50 - offset, 50, sigma, sigma)(xx, yy)
                 + Gaussian2D(1, 50 + offset, 50, sigma, sigma)(xx, yy))
        image += np.random.default_rng(0).normal(0, noise, image.shape)
        segm = detect_sources(image, 0.1, n_pixels=5)
        children = deblend_sources_dl(image, segm, 5)
        assert children.n_labels == 2
        areas = np.sort(children.areas)
        assert areas[0] / areas[1] > 0.8
