# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The lens simulator, the lens-finder and lens-parameters estimators."""

import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData
from astropy.wcs import WCS

from astrodl_plugins.core.dihedral import apply_dihedral
from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.lenses import LensFinder, LensParameters
from astrodl_plugins.lenses import network as net

pytest.importorskip('lenstronomy')
pytest.importorskip('galsim')

STAMP = 24
#: Einstein radii that fit a 24-pixel stamp.
SMALL = {'theta_e_arcsec': (0.5, 1.2), 'psf_fwhm_arcsec': (0.5, 0.8)}


def _simulate(n, seed, **kwargs):
    from astrodl_plugins.simulate import simulate_lens_stamps

    return simulate_lens_stamps(n, seed=seed, stamp_size=STAMP,
                                n_processes=1, ranges=SMALL, **kwargs)


@pytest.fixture(scope='module')
def lens_data():
    return _simulate(96, 3)


@pytest.fixture(scope='module')
def tiny_finder(lens_data):
    import keras

    keras.utils.set_random_seed(0)
    images, truth = lens_data
    finder = LensFinder(stamp_size=STAMP, widths=(4, 8), blocks=(1, 1),
                        dense=8)
    finder.fit(images, truth['label'], psf_fwhm=truth['psf_fwhm'],
               epochs=1, batch_size=32, seed=0)
    return finder


@pytest.fixture(scope='module')
def tiny_parameters(lens_data):
    import keras

    keras.utils.set_random_seed(0)
    images, truth = _simulate(64, 4, lens_fraction=1.0)
    estimator = LensParameters(stamp_size=STAMP, widths=(4, 8),
                               blocks=(1, 1), dense=8)
    estimator.fit(images, truth, epochs=1, batch_size=32, seed=0)
    return estimator


# -- simulator -------------------------------------------------------------------


def test_simulator_shapes_truth_and_determinism(lens_data):
    images, truth = lens_data
    assert images.shape == (96, STAMP, STAMP, 3)
    assert np.isfinite(images).all()
    lens = truth['label'] == 0
    assert 0 < lens.sum() < len(truth)
    assert set(truth['kind'][~lens]) <= {
        'elliptical', 'ring', 'spiral', 'merger', 'group', 'edge_on',
        'star_galaxy', 'blue_companion', 'stars'}
    # Lens parameters for lenses only, in range.
    assert np.isfinite(truth['theta_e'][lens]).all()
    assert np.isnan(truth['theta_e'][~lens]).all()
    theta = truth['theta_e_arcsec'][lens]
    assert ((theta >= 0.5) & (theta <= 1.2)).all()
    np.testing.assert_allclose(truth['theta_e'][lens] * truth['pixel_scale'][
        lens], theta)
    assert (truth['snr'][lens] >= 5).all()
    again, truth_again = _simulate(96, 3)
    np.testing.assert_array_equal(images, again)
    assert (truth['kind'] == truth_again['kind']).all()


def test_simulator_lenses_are_brighter_where_the_arcs_are():
    """The lensed source adds light at about theta_E from the lens."""
    from astrodl_plugins.simulate import simulate_lens_stamps

    kwargs = {'seed': 5, 'n_processes': 1, 'stamp_size': 48,
              'ranges': {'snr': (150, 200), 'galaxy_snr': (30, 40),
                         'theta_e_arcsec': (2.0, 2.5)}}
    lenses, truth = simulate_lens_stamps(16, lens_fraction=1.0, **kwargs)
    plain, _ = simulate_lens_stamps(16, lens_fraction=0.0,
                                    negative_kinds={'elliptical': 1.0},
                                    **kwargs)
    yy, xx = np.mgrid[:48, :48] - 23.5
    radius = np.hypot(xx, yy)
    theta = np.asarray(truth['theta_e'])[:, None, None]
    ring = np.abs(radius[None] - theta) < 2
    noise = np.asarray(truth['noise_r'])
    lensed = np.array([lenses[i, ..., 1][ring[i]].mean() / noise[i]
                       for i in range(16)])
    unlensed = np.array([plain[i, ..., 1][ring[i]].mean() / noise[i]
                         for i in range(16)])
    assert np.median(lensed) > np.median(unlensed) + 0.5


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'bands': ('z',)}, 'bands'),
    ({'lens_fraction': 1.5}, 'lens_fraction'),
    ({'negative_kinds': {'cluster': 1.0}}, 'negative_kinds'),
])
def test_simulator_refuses_bad_arguments(kwargs, match):
    from astrodl_plugins.simulate import simulate_lens_stamps

    with pytest.raises(ValueError, match=match):
        simulate_lens_stamps(2, seed=0, n_processes=1, **kwargs)


# -- targets under rotations and flips -----------------------------------------


@pytest.mark.parametrize('k', range(4))
@pytest.mark.parametrize('flip', [False, True])
def test_dihedral_targets_follow_the_image(k, flip):
    """Offsets and spin-2 ellipticities move as the pixels do."""
    size = 41
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    dx, dy, q, phi = 3.0, -5.0, 0.5, 0.4
    u_ = (xx - dx) * np.cos(phi) + (yy - dy) * np.sin(phi)
    v_ = -(xx - dx) * np.sin(phi) + (yy - dy) * np.cos(phi)
    image = np.exp(-0.5 * (u_ ** 2 + (v_ / q) ** 2) / 2.0 ** 2)
    e = (1 - q) / (1 + q)
    targets = np.array([[0.0, e * np.cos(2 * phi), e * np.sin(2 * phi), 0.01,
                         -0.02, dx, dy]])
    turned = apply_dihedral(image[None, ..., None], k, flip)[0, ..., 0]
    expected = net.dihedral_targets(targets, np.array([k]),
                                    np.array([flip]))[0]
    weight = turned / turned.sum()
    mx, my = (weight * xx).sum(), (weight * yy).sum()
    np.testing.assert_allclose([mx, my], expected[5:], atol=1e-3)
    cxx = (weight * (xx - mx) ** 2).sum()
    cyy = (weight * (yy - my) ** 2).sum()
    cxy = (weight * (xx - mx) * (yy - my)).sum()
    angle = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
    assert np.sign(np.cos(2 * angle)) == np.sign(expected[1])
    assert np.sign(np.sin(2 * angle)) == np.sign(expected[2])
    assert abs(expected[3]) == 0.01 and abs(expected[4]) == 0.02


# -- estimators --------------------------------------------------------------------


def _field(images, scale=0.2, wcs=True):
    """A small 3-band field of 4 simulated stamps in a row."""
    n = 4
    field = np.zeros((3, STAMP + 8, n * (STAMP + 8)), np.float32)
    for i in range(n):
        field[:, 4:4 + STAMP, i * (STAMP + 8) + 4:i * (STAMP + 8) + 4
              + STAMP] = np.moveaxis(images[i], -1, 0)
    positions = np.array([[i * (STAMP + 8) + 4 + (STAMP - 1) / 2,
                           4 + (STAMP - 1) / 2] for i in range(n)])
    ccds = []
    for band, plane in zip('gri', field):
        kwargs = {'unit': 'electron', 'meta': {'BAND': band}}
        if wcs:
            w = WCS(naxis=2)
            w.wcs.ctype = ['RA---TAN', 'DEC--TAN']
            w.wcs.cdelt = [-scale / 3600, scale / 3600]
            w.wcs.crval = [150.0, 2.0]
            kwargs['wcs'] = w
        ccds.append(CCDData(plane, **kwargs))
    return ccds, positions


def test_finder_columns_and_band_subsets(tiny_finder, lens_data):
    images, truth = lens_data
    table = tiny_finder.predict_stamps(images[:8], psf_fwhm=truth[
        'psf_fwhm'][:8], n_samples=5, seed=1)
    for name in ('p_lens', 'p_lens_err', 'p_non_lens', 'class', 'entropy',
                 'mutual_information', 'flag'):
        assert name in table.colnames
    p = np.asarray(table['p_lens'])
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p + np.asarray(table['p_non_lens']), 1.0,
                               atol=1e-6)
    # One band works too (trained on band subsets).
    one = tiny_finder.predict_stamps(images[:8, ..., 1], bands=('r',),
                                     psf_fwhm=truth['psf_fwhm'][:8],
                                     n_samples=5, seed=1)
    assert np.isfinite(one['p_lens']).all()


def test_finder_refuses_untrained_bands(tiny_finder, lens_data):
    images, truth = lens_data
    ccds, positions = _field(images)
    with pytest.raises(ValueError, match='band'):
        tiny_finder.predict(ccds[:1], bands=('z',), positions=positions,
                            psf_fwhm=3.0)


def test_parameters_on_an_image_with_wcs(tiny_parameters, tiny_finder,
                                         lens_data):
    images, truth = lens_data
    ccds, positions = _field(images, scale=0.2)
    table = tiny_parameters.predict(ccds, bands=('g', 'r', 'i'),
                                    positions=positions, psf_fwhm=3.0,
                                    n_samples=5, seed=2)
    assert table['theta_e'].unit == u.arcsec
    assert table['theta_e_err'].unit == u.arcsec
    for name in ('e1', 'e2', 'gamma1', 'gamma2'):
        assert not hasattr(table[name], 'unit') or table[name].unit in (
            None, u.dimensionless_unscaled)
    # The refined centre is near the given one and is where sky_centroid is.
    shift = np.hypot(table['x_centroid'] - positions[:, 0],
                     table['y_centroid'] - positions[:, 1])
    assert (shift < STAMP / 2).all()
    sky = ccds[0].wcs.pixel_to_world(table['x_centroid'], table['y_centroid'])
    assert sky.separation(table['sky_centroid']).max() < 1e-6 * u.arcsec
    # With the finder: p_lens and NOT_LENS below min_p_lens.
    both = tiny_parameters.predict(ccds, bands=('g', 'r', 'i'),
                                   positions=positions, psf_fwhm=3.0,
                                   n_samples=5, seed=2, finder=tiny_finder,
                                   min_p_lens=1.0)
    assert 'p_lens' in both.colnames and 'p_lens_err' in both.colnames
    assert (np.asarray(both['flag']) & SourceFlags.NOT_LENS).all()
    np.testing.assert_allclose(both['theta_e'], table['theta_e'])
    none = tiny_parameters.predict(ccds, bands=('g', 'r', 'i'),
                                   positions=positions, psf_fwhm=3.0,
                                   n_samples=5, seed=2, finder=tiny_finder,
                                   min_p_lens=0.0)
    assert not (np.asarray(none['flag']) & SourceFlags.NOT_LENS).any()


def test_parameters_pixel_scale_from_keyword(tiny_parameters, lens_data):
    images, _ = lens_data
    ccds, positions = _field(images, wcs=False)
    with pytest.raises(ValueError, match='pixel_scale'):
        tiny_parameters.predict(ccds, bands=('g', 'r', 'i'),
                                positions=positions, psf_fwhm=3.0,
                                n_samples=2, seed=0)
    table = tiny_parameters.predict(ccds, bands=('g', 'r', 'i'),
                                    positions=positions, psf_fwhm=3.0,
                                    n_samples=2, seed=0,
                                    pixel_scale=0.25 * u.arcsec / u.pix)
    pixels = tiny_parameters.predict_stamps(
        np.stack([images[i] for i in range(4)]), psf_fwhm=3.0, n_samples=2,
        seed=0)
    assert pixels['theta_e'].unit == u.pix
    np.testing.assert_allclose(table['theta_e'].value,
                               pixels['theta_e'].value * 0.25, rtol=1e-4)


@pytest.mark.parametrize(('kwargs', 'error', 'match'), [
    ({'min_p_lens': 2.0}, ValueError, 'min_p_lens'),
    ({'min_p_lens': True}, ValueError, 'min_p_lens'),
    ({'finder': 3}, TypeError, 'finder'),
])
def test_parameters_refuse_bad_finder_options(tiny_parameters, lens_data,
                                              kwargs, error, match):
    images, _ = lens_data
    with pytest.raises(error, match=match):
        tiny_parameters.predict_stamps(images[:2], psf_fwhm=3.0,
                                       n_samples=2, seed=0, **kwargs)


def test_stamps_of_the_wrong_size_are_refused(tiny_parameters):
    with pytest.raises(ValueError, match='stamps must have shape'):
        tiny_parameters.predict_stamps(np.zeros((2, 16, 16, 3)),
                                       psf_fwhm=3.0)


def test_parameters_refuse_labels_without_lens_columns(lens_data):
    images, truth = lens_data
    estimator = LensParameters(stamp_size=STAMP, widths=(4,), blocks=(1,),
                               dense=4)
    with pytest.raises(ValueError, match='theta_e'):
        estimator.fit(images[:4], truth[['psf_fwhm']][:4], epochs=1)
    # Non-lenses have no lens parameters.
    with pytest.raises(ValueError, match='lenses only'):
        estimator.fit(images[:8], truth[:8], epochs=1)


def test_parameters_save_and_reload(tiny_parameters, lens_data, tmp_path):
    images, truth = lens_data
    path = tiny_parameters.save(tmp_path / 'params')
    again = LensParameters.from_preset(path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        first = tiny_parameters.predict_stamps(images[:4], psf_fwhm=3.0,
                                               n_samples=3, seed=4)
        second = again.predict_stamps(images[:4], psf_fwhm=3.0, n_samples=3,
                                      seed=4)
    np.testing.assert_allclose(first['theta_e'], second['theta_e'])


def test_residual_channels_remove_point_symmetric_light():
    size = 24
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2 - 0.3
    galaxy = np.exp(-0.5 * (xx ** 2 / 2.25 + yy ** 2 / 1.0))
    arc = np.exp(-0.5 * ((np.hypot(xx, yy) - 6.0) ** 2 / 0.5)) * (xx > 2)
    x = np.stack([galaxy, galaxy + 0.3 * arc], axis=0)[..., None]
    out = net.with_residuals(x)
    assert out.shape == (2, size, size, 2)
    np.testing.assert_allclose(out[..., 0], x[..., 0], rtol=1e-5, atol=1e-7)
    # The symmetric galaxy mostly cancels (bilinear resampling of its
    # sharp core leaves a little); the one-sided arc stays.
    leftover = np.abs(out[0, ..., 1]).max()
    assert leftover < 0.2
    on_arc = arc > 0.5
    assert out[1, ..., 1][on_arc].mean() > 0.2
    assert np.abs(out[0, ..., 1][on_arc]).max() < 0.05


def test_colour_residual_removes_a_one_colour_deflector():
    size = 24
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    galaxy = np.exp(-0.5 * (xx ** 2 + yy ** 2) / 4.0)
    arc = np.exp(-0.5 * ((np.hypot(xx, yy) - 7.0) ** 2 / 0.5)) * (xx > 2)
    red = np.stack([0.5 * galaxy, galaxy, 1.6 * galaxy], axis=-1)
    blue_arc = np.stack([arc, 0.6 * arc, 0.3 * arc], axis=-1)
    x = np.stack([red, red + blue_arc])
    out = net.colour_residual(x)
    assert out.shape == (2, size, size, 1)
    # The deflector (one colour) cancels; the blue arc stays.
    assert np.abs(out[0]).max() < 1e-5
    assert out[1, ..., 0][arc > 0.5].mean() > 0.5
    # Fewer than two bands: zeros; two bands: bluest minus reddest.
    one = x.copy()
    one[..., [0, 2]] = 0.0
    assert not net.colour_residual(one).any()
    two = x.copy()
    two[..., 0] = 0.0
    assert np.abs(net.colour_residual(two)[0]).max() < 1e-5
    channels = net.finder_channels(x)
    assert channels.shape == (2, size, size, 7)
    assert net.finder_channels(x, colour=False).shape == (2, size, size, 6)


def test_simulator_reports_arc_visibility(lens_data):
    from astrodl_plugins.lenses.evaluate import ARC_PIXELS_VISIBLE, findable

    _, truth = lens_data
    arcs = np.asarray(truth['arc_pixels'])
    contrast = np.asarray(truth['arc_contrast'])
    assert (arcs >= 0).all() and ((contrast >= 0) & (contrast <= 1)).all()
    # No feature, no arc pixels.
    plain = np.isin(truth['kind'], ['elliptical', 'spiral', 'edge_on'])
    assert not arcs[plain].any()
    lens = np.asarray(truth['label']) == 0
    keep = findable(truth)
    assert keep[~lens].all()
    np.testing.assert_array_equal(keep[lens],
                                  arcs[lens] >= ARC_PIXELS_VISIBLE)
    # Bright arcs far from the deflector are visible.
    from astrodl_plugins.simulate import simulate_lens_stamps

    _, bright = simulate_lens_stamps(
        8, seed=6, n_processes=1, lens_fraction=1.0,
        ranges={'snr': (150, 200), 'galaxy_snr': (30, 40),
                'theta_e_arcsec': (2.0, 2.5)})
    assert (np.asarray(bright['arc_pixels']) >= ARC_PIXELS_VISIBLE).all()


def test_finder_class_prior_is_bayes_rule(tiny_finder, lens_data):
    images, truth = lens_data
    kwargs = {'psf_fwhm': truth['psf_fwhm'][:16], 'n_samples': 1, 'seed': 1}
    finder = LensFinder(stamp_size=STAMP)
    assert finder.class_prior == (1e-3, 1 - 1e-3)
    params = tiny_finder.get_params()
    assert params['class_prior'] == (1e-3, 1 - 1e-3)
    try:
        tiny_finder.set_params(class_prior=None)
        balanced = tiny_finder.predict_stamps(images[:16], **kwargs)
        assert balanced.meta['class_prior'] is None
        tiny_finder.set_params(class_prior={'lens': 0.1, 'non_lens': 0.9})
        rare = tiny_finder.predict_stamps(images[:16], **kwargs)
        assert rare.meta['class_prior'] == {'lens': 0.1, 'non_lens': 0.9}
    finally:
        tiny_finder.set_params(class_prior=(1e-3, 1 - 1e-3))
    # One draw: the odds change by the ratio of the priors exactly.
    p, q = np.asarray(balanced['p_lens']), np.asarray(rare['p_lens'])
    trained = getattr(tiny_finder, 'training_prior_', None) or [0.5, 0.5]
    factor = (0.1 / 0.9) / (trained[0] / trained[1])
    np.testing.assert_allclose(q / (1 - q), factor * p / (1 - p), rtol=1e-6)
    assert (q < p).all()


@pytest.mark.parametrize('prior', [
    (0.5,), (0.6, 0.6), (0.0, 1.0), {'lens': 0.5}, {'lens': 0.5, 'x': 0.5},
    'rare', (np.nan, 0.5)])
def test_finder_refuses_bad_class_priors(tiny_finder, lens_data, prior):
    images, truth = lens_data
    original = tiny_finder.class_prior
    tiny_finder.set_params(class_prior=prior)
    try:
        with pytest.raises(ValueError, match='class_prior'):
            tiny_finder.predict_stamps(images[:2],
                                       psf_fwhm=truth['psf_fwhm'][:2],
                                       n_samples=1)
    finally:
        tiny_finder.set_params(class_prior=original)


def test_finder_recipe_trains_on_findable_stamps(tmp_path):
    """A tiny run of the lens-finder recipe: the card, the prior, reload."""
    from astrodl_plugins.lenses.evaluate import findable
    from astrodl_plugins.lenses.recipe import LensFinderRecipe

    class Tiny(LensFinderRecipe):
        curriculum_epochs = 1

        def make_estimator(self):
            return LensFinder(stamp_size=STAMP, widths=(4, 8),
                              blocks=(1, 1), dense=8)

        def simulate(self, n, seed, cache_dir=None):
            return _simulate(n, seed)

    recipe = Tiny()
    validation = recipe.simulate(48, 2)
    estimator = recipe.run(output=tmp_path / 'finder', n_train=96,
                           n_validation=48, n_test=64, epochs=1, verbose=0)
    card = estimator.card_
    # Calibrated on the findable validation stamps; their lens fraction
    # is what class_prior is relative to.
    keep = findable(validation[1])
    fraction = np.mean(np.asarray(validation[1]['label'])[keep] == 0)
    assert estimator.training_prior_[0] == pytest.approx(fraction)
    assert card['calibration']['training_prior'] == estimator.training_prior_
    assert 'p_lens' in card['conventions']
    metrics = card['metrics']['gri']
    assert metrics['n_visible'] <= metrics['n_lenses']
    assert 0.0 <= metrics['auc_visible'] <= 1.0
    assert card['tables'][0]['header'][5] == 'AUC visible'
    again = LensFinder.from_preset(tmp_path / 'finder')
    assert again.training_prior_ == estimator.training_prior_
    assert again.colour_residual is True
    assert again.class_prior == (1e-3, 1 - 1e-3)


def test_parameters_with_residual_channels(lens_data):
    import keras

    keras.utils.set_random_seed(1)
    images, truth = _simulate(48, 8, lens_fraction=1.0)
    estimator = LensParameters(stamp_size=STAMP, widths=(4,), blocks=(1,),
                               dense=8, residuals=True)
    estimator.fit(images, truth, epochs=1, batch_size=16, seed=0)
    assert estimator.model_.inputs[0].shape[-1] == 7
    table = estimator.predict_stamps(images[:4, ..., 1], bands=('r',),
                                     psf_fwhm=truth['psf_fwhm'][:4],
                                     n_samples=3, seed=0)
    assert np.isfinite(np.asarray(table['theta_e'])).all()
