# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The PSF FWHM estimated from an image's own point sources."""

import numpy as np
import pytest

from astrodl_plugins.core.inputs import read_image
from astrodl_plugins.core.psf import estimate_image_psf


def star_field(fwhm, n_stars=40, n_galaxies=0, shape=(200, 200), seed=0,
               hot_pixels=0):
    """Pixel-integrated Gaussian stars (and wider 'galaxies') on unit noise."""
    from photutils.psf import CircularGaussianPRF

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    data = rng.normal(0.0, 1.0, shape)
    for i in range(n_stars + n_galaxies):
        x, y = rng.uniform(15, shape[1] - 15), rng.uniform(15, shape[0] - 15)
        width = fwhm if i < n_stars else 3 * fwhm
        data += CircularGaussianPRF(flux=rng.uniform(300, 3000), x_0=x,
                                    y_0=y, fwhm=width)(xx, yy)
    for _ in range(hot_pixels):
        data[rng.integers(10, shape[0] - 10),
             rng.integers(10, shape[1] - 10)] += 500.0
    return data


@pytest.mark.parametrize('fwhm', [1.2, 2.0, 3.5, 6.0])
def test_recovers_the_fwhm(fwhm):
    found = estimate_image_psf(read_image(star_field(fwhm)))
    assert found.fwhm == pytest.approx(fwhm, rel=0.15)
    assert found.n_stars >= 5
    assert not found.uncertain


def test_galaxies_do_not_widen_it():
    found = estimate_image_psf(read_image(star_field(2.5, n_stars=15,
                                                     n_galaxies=40)))
    assert found.fwhm == pytest.approx(2.5, rel=0.15)


def test_hot_pixels_are_not_stars():
    found = estimate_image_psf(read_image(star_field(3.0, hot_pixels=60)))
    assert found.fwhm == pytest.approx(3.0, rel=0.15)


def test_few_stars_are_uncertain():
    found = estimate_image_psf(read_image(star_field(3.0, n_stars=3)))
    assert found.uncertain
    assert 'point sources found in the image' in found.description


def test_no_source_is_a_clear_error():
    with pytest.raises(ValueError, match='give psf_fwhm'):
        estimate_image_psf(read_image(np.random.default_rng(1).normal(
            size=(100, 100))))
