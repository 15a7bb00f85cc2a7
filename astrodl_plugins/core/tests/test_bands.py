# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""read_bands, and multi-band source-stamp estimators (``bands``)."""

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, NDData, StdDevUncertainty

from astrodl_plugins.core.flags import SourceFlags
from astrodl_plugins.core.inputs import ImageData, read_bands
from astrodl_plugins.core.tests.tiny import (
    CENTERS,
    SCALE,
    STAMP,
    blob_stamps,
    image_data,
    make_wcs,
)
from astrodl_plugins.core.tests.tiny import (
    SHAPE as IMAGE_SHAPE,
)

KWARGS = dict(n_samples=5, seed=2, psf_fwhm=3.0)
OUTPUTS = ('flux', 'size')


@pytest.fixture(scope='module')
def estimator(tiny_multiband):
    return tiny_multiband


def band_image(band, seed):
    data = image_data(amplitude={'g': 60.0, 'r': 100.0, 'i': 80.0}[band],
                      seed=seed)
    return CCDData(data, unit='electron/s', wcs=make_wcs(),
                   meta={'BAND': band})


@pytest.fixture(scope='module')
def images():
    return {band: band_image(band, seed)
            for seed, band in enumerate(('g', 'r', 'i'))}


def assert_same(first, second):
    for name in OUTPUTS:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
        np.testing.assert_array_equal(first[f'{name}_err'],
                                      second[f'{name}_err'], err_msg=name)


class TestPredict:
    def test_three_bands(self, estimator, images):
        table = estimator.predict([images['g'], images['r'], images['i']],
                                  bands=('g', 'r', 'i'), positions=CENTERS,
                                  **KWARGS)
        assert table.colnames == ['label', 'x_centroid', 'y_centroid',
                                  'sky_centroid', 'flux', 'flux_err', 'size',
                                  'size_err', 'rescale', 'flag']
        assert table['size'].unit == u.arcsec
        assert table['flux'].unit == u.electron / u.s
        for name in OUTPUTS:
            assert np.isfinite(table[name]).all()
        np.testing.assert_array_equal(table['flag'], 0)

    def test_band_order_does_not_matter(self, estimator, images):
        # Each image goes to its band's channel, whatever the list order.
        first = estimator.predict([images['g'], images['i']],
                                  bands=('g', 'i'), positions=CENTERS,
                                  **KWARGS)
        second = estimator.predict([images['i'], images['g']],
                                   bands=('i', 'g'), positions=CENTERS,
                                   **KWARGS)
        assert_same(first, second)
        swapped = estimator.predict([images['i'], images['g']],
                                    bands=('g', 'i'), positions=CENTERS,
                                    **KWARGS)
        assert not np.array_equal(swapped['size'], first['size'])

    def test_bands_from_meta(self, estimator, images):
        given = estimator.predict([images['r'], images['i']],
                                  bands=('r', 'i'), positions=CENTERS,
                                  **KWARGS)
        from_meta = estimator.predict([images['r'], images['i']],
                                      positions=CENTERS, **KWARGS)
        assert_same(given, from_meta)

    def test_single_image_is_reference_band(self, estimator, images):
        alone = estimator.predict(images['r'], positions=CENTERS, **KWARGS)
        named = estimator.predict([images['r']], bands=['r'],
                                  positions=CENTERS, **KWARGS)
        assert_same(alone, named)
        other = estimator.predict(images['r'], bands='g', positions=CENTERS,
                                  **KWARGS)
        assert not np.array_equal(other['size'], alone['size'])

    def test_cube(self, estimator, images):
        cube = np.stack([images[b].data for b in ('g', 'r', 'i')])
        as_list = estimator.predict([images['g'].data, images['r'].data,
                                     images['i'].data],
                                    bands=('g', 'r', 'i'), positions=CENTERS,
                                    **KWARGS)
        as_cube = estimator.predict(cube, bands=('g', 'r', 'i'),
                                    positions=CENTERS, **KWARGS)
        assert_same(as_list, as_cube)
        nddata = estimator.predict(NDData(cube, unit='electron/s'),
                                   bands=('g', 'r', 'i'), positions=CENTERS,
                                   **KWARGS)
        np.testing.assert_array_equal(nddata['flux'].value,
                                      as_cube['flux'].value)
        assert nddata['flux'].unit == u.electron / u.s

    def test_reference_band_gives_sky_and_scale(self, estimator, images):
        # The reference band (r) has the WCS; the other has none.
        g = CCDData(images['g'].data, unit='electron/s')
        table = estimator.predict([g, images['r']], bands=('g', 'r'),
                                  positions=CENTERS, **KWARGS)
        assert 'sky_centroid' in table.colnames
        assert table['size'].unit == u.arcsec
        pix = estimator.predict([images['g'], CCDData(images['r'].data,
                                                      unit='electron/s')],
                                bands=('g', 'r'), positions=CENTERS,
                                **KWARGS)
        assert pix['size'].unit == u.pix

    def test_masked_band_flags_source(self, estimator, images):
        g = images['g'].copy()
        g.mask = np.zeros(g.shape, bool)
        x, y = CENTERS[0].astype(int)
        g.mask[y + 5, x + 5] = True
        table = estimator.predict([g, images['r']], bands=('g', 'r'),
                                  positions=CENTERS, **KWARGS)
        np.testing.assert_array_equal(table['flag'],
                                      [SourceFlags.MASKED, 0, 0])

    def test_usable_if_one_band_is(self, estimator, images):
        g = images['g'].data.copy()
        r = images['r'].data.copy()
        x, y = CENTERS[0].astype(int)
        g[y - 6:y + 7, x - 6:x + 7] = np.nan
        for x, y in CENTERS[1:].astype(int):
            g[y - 6:y + 7, x - 6:x + 7] = np.nan
            r[y - 6:y + 7, x - 6:x + 7] = np.nan
        table = estimator.predict([g, r], bands=('g', 'r'),
                                  positions=CENTERS, **KWARGS)
        flags = table['flag']
        assert flags[0] & SourceFlags.MASKED
        assert not flags[0] & SourceFlags.UNUSABLE
        assert np.all(flags[1:] & SourceFlags.UNUSABLE)
        assert np.isfinite(table['flux'][0])

    def test_psf_angle_uses_reference_scale(self, estimator, images):
        pixels = estimator.predict([images['g'], images['r']],
                                   bands=('g', 'r'), positions=CENTERS,
                                   **KWARGS)
        angle = estimator.predict([images['g'], images['r']],
                                  bands=('g', 'r'), positions=CENTERS,
                                  **{**KWARGS,
                                     'psf_fwhm': 3.0 * SCALE * u.arcsec})
        np.testing.assert_allclose(angle['size'], pixels['size'], rtol=1e-5)


class TestErrors:
    def test_unknown_band(self, estimator, images):
        with pytest.raises(ValueError, match=r"bands \['z'\] are not bands "
                                             'the model was trained for'):
            estimator.predict([images['g'], images['r']], bands=('g', 'z'),
                              positions=CENTERS, **KWARGS)

    def test_too_many_images(self, estimator, images):
        with pytest.raises(ValueError, match='data has 4 bands; the model '
                                             'was trained for at most 3'):
            estimator.predict([images['g']] * 4, positions=CENTERS, **KWARGS)

    def test_names_needed(self, estimator):
        with pytest.raises(ValueError, match='give bands='):
            estimator.predict([image_data(), image_data()],
                              positions=CENTERS, **KWARGS)

    def test_repeated_band(self, estimator, images):
        with pytest.raises(ValueError, match='repeated names'):
            estimator.predict([images['g'], images['r']], bands=('g', 'g'),
                              positions=CENTERS, **KWARGS)

    def test_other_shape(self, estimator, images):
        with pytest.raises(ValueError, match='every band must share one '
                                             'pixel grid'):
            estimator.predict([images['g'], np.ones((40, 40))],
                              bands=('g', 'r'), positions=CENTERS, **KWARGS)

    def test_other_grid(self, estimator, images):
        shifted = make_wcs()
        shifted.wcs.crpix = [53.0, 40.0]
        r = CCDData(images['r'].data, unit='electron/s', wcs=shifted)
        with pytest.raises(ValueError, match='on another pixel grid'):
            estimator.predict([images['g'], r], bands=('g', 'r'),
                              positions=CENTERS, **KWARGS)

    def test_mixed_units(self, estimator, images):
        r = CCDData(images['r'].data, unit='Jy', wcs=make_wcs())
        with pytest.raises(ValueError, match='mixed units'):
            estimator.predict([images['g'], r], bands=('g', 'r'),
                              positions=CENTERS, **KWARGS)

    def test_empty_list(self, estimator):
        with pytest.raises(ValueError, match='empty list'):
            estimator.predict([], positions=CENTERS, **KWARGS)


class TestPredictStamps:
    def test_channels_follow_bands(self, estimator):
        stamps, _ = blob_stamps(3, bands=2)
        first = estimator.predict_stamps(stamps, bands=('i', 'g'), **KWARGS)
        second = estimator.predict_stamps(stamps[..., ::-1],
                                          bands=('g', 'i'), **KWARGS)
        assert_same(first, second)

    def test_default_bands(self, estimator):
        stamps, _ = blob_stamps(3, bands=2)
        default = estimator.predict_stamps(stamps, **KWARGS)
        named = estimator.predict_stamps(stamps, bands=('g', 'r'), **KWARGS)
        assert_same(default, named)
        one, _ = blob_stamps(3)
        alone = estimator.predict_stamps(one, **KWARGS)
        reference = estimator.predict_stamps(one[..., None], bands=['r'],
                                             **KWARGS)
        assert_same(alone, reference)

    def test_three_bands(self, estimator):
        stamps, _ = blob_stamps(4, bands=3)
        table = estimator.predict_stamps(stamps, quantiles=(0.5,), **KWARGS)
        assert len(table) == 4
        assert 'size_q50' in table.colnames

    @pytest.mark.parametrize('bands, match', [
        (('g',), 'do not match the 2 channels'),
        (('g', 'z'), r"are not among \('g', 'r', 'i'\)"),
    ])
    def test_bad_bands(self, estimator, bands, match):
        stamps, _ = blob_stamps(2, bands=2)
        with pytest.raises(ValueError, match=match):
            estimator.predict_stamps(stamps, bands=bands, **KWARGS)

    def test_bad_shape(self, estimator):
        with pytest.raises(ValueError, match=rf'stamps must have shape \(N, '
                                             rf'{STAMP}, {STAMP}\[, bands\]'):
            estimator.predict_stamps(np.ones((2, 8, 8, 2)), **KWARGS)

    def test_tta(self, estimator):
        stamps, _ = blob_stamps(2, bands=3)
        table, samples = estimator.predict_stamps(
            stamps, tta=True, return_samples=True, **KWARGS)
        assert samples['size'].shape == (2, 8 * KWARGS['n_samples'])
        assert np.isfinite(table['size']).all()


class TestReadBands:
    kwargs = dict(known_bands=('g', 'r', 'i'), default_band='r')

    def test_single_image_default_band(self):
        images, bands = read_bands(image_data(), **self.kwargs)
        assert bands == ('r',)
        assert len(images) == 1 and isinstance(images[0], ImageData)

    def test_single_image_named(self):
        _, bands = read_bands(image_data(), bands='i', **self.kwargs)
        assert bands == ('i',)

    def test_string_of_band_letters(self):
        _, bands = read_bands([image_data(), image_data()], bands='gi', **self.kwargs)
        assert bands == ('g', 'i')

    def test_meta_filter(self):
        items = [CCDData(image_data(), unit='adu', meta={'FILTER': ' i '}),
                 CCDData(image_data(), unit='adu', meta={'BAND': 'g'})]
        _, bands = read_bands(items, **self.kwargs)
        assert bands == ('i', 'g')

    def test_units_converted_to_first(self):
        error = np.full(IMAGE_SHAPE, 2.0)
        items = [NDData(image_data(), unit='Jy'),
                 NDData(np.ones(IMAGE_SHAPE), unit='mJy',
                        uncertainty=StdDevUncertainty(error))]
        images, _ = read_bands(items, bands=('g', 'r'), **self.kwargs)
        assert images[1].unit == u.Jy
        np.testing.assert_allclose(images[1].data, 1e-3)
        np.testing.assert_allclose(images[1].error, 2e-3)
        # The caller's arrays are not scaled.
        np.testing.assert_array_equal(items[1].data, 1.0)

    def test_cube_nddata(self):
        cube = np.stack([image_data(), 2 * image_data(), 3 * image_data()])
        mask = np.zeros(cube.shape, bool)
        mask[1, 3, 4] = True
        nd = NDData(cube, unit='adu', mask=mask,
                    uncertainty=StdDevUncertainty(np.ones(cube.shape)))
        images, bands = read_bands(nd, bands=('g', 'r', 'i'), **self.kwargs)
        assert bands == ('g', 'r', 'i')
        np.testing.assert_array_equal(images[2].data, 3 * image_data())
        assert images[1].mask[3, 4] and not images[0].mask.any()
        np.testing.assert_array_equal(images[0].error, 1.0)

    def test_cube_quantity(self):
        cube = np.stack([image_data(), image_data()]) * u.Jy
        images, _ = read_bands(cube, bands=('r', 'g'), **self.kwargs)
        assert [image.unit for image in images] == [u.Jy, u.Jy]

    def test_same_wcs_accepted(self):
        items = [CCDData(image_data(), unit='adu', wcs=make_wcs()),
                 CCDData(image_data(), unit='adu', wcs=make_wcs())]
        images, _ = read_bands(items, bands=('g', 'r'), **self.kwargs)
        assert images[0].pixel_scale == images[1].pixel_scale

    def test_names_in_errors(self):
        with pytest.raises(TypeError, match=r"data\['i'\] must be numeric"):
            read_bands([image_data(), np.ones(IMAGE_SHAPE, bool)], bands=('g', 'i'),
                       **self.kwargs)

    def test_wrong_number_of_names(self):
        with pytest.raises(ValueError, match='bands has 1 names for 2 '
                                             'images'):
            read_bands([image_data(), image_data()], bands=['g'], **self.kwargs)
