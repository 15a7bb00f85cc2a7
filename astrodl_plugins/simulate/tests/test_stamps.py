# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the galaxy stamp and field simulators."""

import numpy as np
import pytest
from astropy import units as u

from astrodl_plugins.simulate import GALAXY_STRUCTURE_RANGES, simulate_galaxy_stamps
from astrodl_plugins.simulate.field import simulate_field


class TestSimulateGalaxyStamps:
    def test_reproducible_by_seed_whatever_the_processes(self):
        a, ta = simulate_galaxy_stamps(300, seed=4, n_processes=1)
        b, tb = simulate_galaxy_stamps(300, seed=4, n_processes=2)
        c, _ = simulate_galaxy_stamps(300, seed=5, n_processes=1)
        assert np.array_equal(a, b)
        assert np.array_equal(ta['r_eff'], tb['r_eff'])
        assert not np.array_equal(a, c)

    def test_ranges_and_columns(self):
        images, truth = simulate_galaxy_stamps(200, seed=1, n_processes=1)
        assert images.shape == (200, 64, 64)
        assert images.dtype == np.float32
        for name in ('sersic_n', 'r_eff', 'axis_ratio', 'snr', 'psf_fwhm'):
            low, high = GALAXY_STRUCTURE_RANGES[name]
            assert truth[name].min() >= low * 0.999
            assert truth[name].max() <= high * 1.001
        assert 0.15 < truth['has_neighbour'].mean() < 0.45

    def test_range_override(self):
        _, truth = simulate_galaxy_stamps(50, seed=1, n_processes=1,
                                          ranges={'snr': (50, 60)})
        assert truth['snr'].min() >= 50 and truth['snr'].max() <= 60

    def test_noise_level(self):
        images, truth = simulate_galaxy_stamps(
            40, seed=2, n_processes=1, neighbour_fraction=0.0)
        sigma = np.asarray(truth['noise_sigma'])
        border = np.concatenate([images[:, :4].reshape(40, -1),
                                 images[:, -4:].reshape(40, -1)], axis=1)
        assert np.allclose(border.std(axis=1), sigma, rtol=0.25)

    def test_r_eff_is_semi_major_axis(self):
        import galsim

        # The simulator converts r_eff (semi-major) to GalSim's circularized
        # half-light radius r_eff * sqrt(q); shear keeps the area.
        r_eff, q = 6.0, 0.4
        profile = galsim.Sersic(1.0, half_light_radius=r_eff * np.sqrt(q))
        sheared = profile.shear(q=q, beta=0 * galsim.degrees)
        image = sheared.drawImage(nx=200, ny=200, scale=0.25,
                                  method='no_pixel').array
        y, x = (np.mgrid[:200, :200] - 99.5) * 0.25
        # Elliptical radius with semi-major axis along x.
        radius = np.hypot(x, y / q)
        inside = image[radius <= r_eff].sum() / image.sum()
        assert inside == pytest.approx(0.5, abs=0.02)

    def test_bad_size(self):
        with pytest.raises(ValueError, match='n_stamps'):
            simulate_galaxy_stamps(0, seed=1)


class TestSimulateField:
    def test_field(self):
        ccd, truth = simulate_field(seed=3, shape=(200, 200), n_galaxies=4,
                                    n_stars=3)
        assert ccd.shape == (200, 200)
        assert ccd.unit == u.electron
        assert ccd.wcs.has_celestial
        assert ccd.meta['PSF_FWHM'] == 3.0
        assert len(truth) == 7
        assert set(truth['kind']) == {'galaxy', 'star'}
        # Sources are where the truth says: flux is concentrated there.
        data = ccd.data - ccd.meta['SKYLEVEL']
        for row in truth:
            x, y = int(round(row['x'].value)), int(round(row['y'].value))
            assert data[y, x] > 3 * ccd.meta['RDNOISE']

    def test_same_seed_same_field(self):
        a, _ = simulate_field(seed=3, shape=(100, 100), n_galaxies=2,
                              n_stars=1)
        b, _ = simulate_field(seed=3, shape=(100, 100), n_galaxies=2,
                              n_stars=1)
        assert np.array_equal(a.data, b.data)
