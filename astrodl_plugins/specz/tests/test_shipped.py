# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The shipped ``spec-redshift`` preset: simulated galaxies of seeds it was
not trained, calibrated or evaluated on, stars and quasars (out of
distribution), and the command line.
"""

import numpy as np
import pytest
from astropy.nddata import StdDevUncertainty
from astropy.table import QTable

import astrodl_plugins as adl
from astrodl_plugins.core.flags import SourceFlags

pytest.importorskip('specutils')
pytest.importorskip('galsim')

#: Seeds 1-4 made the preset's sets; 90 on are new.
_SEED = 90


@pytest.fixture(scope='module')
def estimator():
    return adl.get_estimator('spec-redshift')


@pytest.fixture(scope='module')
def galaxies():
    from astrodl_plugins.simulate.spectra import simulate_spectra

    return simulate_spectra(120, seed=_SEED, snr_range=(5.0, 50.0))


@pytest.fixture(scope='module')
def galaxy_table(estimator, galaxies):
    spectra, _ = galaxies
    return estimator.predict(spectra, n_samples=20, seed=0)


def test_redshifts_of_bright_galaxies(galaxy_table, galaxies):
    from astrodl_plugins.specz.evaluate import redshift_metrics

    _, truth = galaxies
    metrics = redshift_metrics(galaxy_table['z'], truth['z'],
                               galaxy_table['z_q16'], galaxy_table['z_q84'])
    # Loose bounds that catch a broken model (the card has the real
    # numbers, on 5000 spectra).
    assert metrics['sigma_nmad'] < 0.005
    assert metrics['outlier_fraction'] < 0.3
    assert metrics['coverage_68'] > 0.5
    width = np.asarray(galaxy_table['z_q84'] - galaxy_table['z_q16'])
    assert np.median(width) < 0.02


@pytest.mark.xfail(reason='the shipped model flags almost no simulated star '
                   'or quasar UNFAMILIAR (model card: 0 % and 0.2 %)',
                   strict=True)
def test_stars_and_quasars_are_unfamiliar(estimator, galaxy_table):
    from astrodl_plugins.simulate.spectra import simulate_spectra

    others, truth = simulate_spectra(60, seed=_SEED + 1,
                                     kinds=('star', 'qso'),
                                     snr_range=(10.0, 50.0))
    table = estimator.predict(others, n_samples=10, seed=0)
    unfamiliar = (np.asarray(table['flag']) & SourceFlags.UNFAMILIAR) > 0
    galaxies = (np.asarray(galaxy_table['flag'])
                & SourceFlags.UNFAMILIAR) > 0
    assert np.isfinite(table['ood_score']).all()
    assert unfamiliar.mean() > 0.5
    assert galaxies.mean() < 0.1


def test_command_line(tmp_path, galaxies, estimator):
    from astrodl_plugins.cli import main
    from astrodl_plugins.specz._resample import spectrum_class

    spectra, truth = galaxies
    paths = []
    for k in range(2):
        s = spectra[k]
        ivar = s.uncertainty.array
        # specutils writes standard deviations; NaN where there is no data.
        error = np.full(ivar.shape, np.nan)
        error[ivar > 0] = 1 / np.sqrt(ivar[ivar > 0])
        spectrum = spectrum_class()(
            spectral_axis=s.meta['spectral_axis'], flux=s.data * s.unit,
            uncertainty=StdDevUncertainty(error), mask=s.mask)
        path = tmp_path / f'spectrum{k}.fits'
        spectrum.write(path, format='tabular-fits')
        paths.append(str(path))
    output = tmp_path / 'z.ecsv'
    assert main(['predict', 'spec-redshift', *paths, '--output',
                 str(output)]) == 0
    table = QTable.read(output)
    assert list(table['file']) == ['spectrum0.fits', 'spectrum1.fits']
    # What predict gives on the same spectra (the command's defaults:
    # 50 draws, seed 0).
    direct = estimator.predict(spectra[:2], n_samples=50, seed=0)
    np.testing.assert_allclose(table['z'], direct['z'], atol=1e-3)
    assert table['posterior'].shape == (2, 900)


def test_command_line_refuses_a_file_that_is_not_a_spectrum(tmp_path,
                                                             capsys):
    from astrodl_plugins.cli import main

    path = tmp_path / 'notes.txt'
    path.write_text('not a spectrum')
    status = main(['predict', 'spec-redshift', str(path), '--output',
                   str(tmp_path / 'z.ecsv')])
    assert status != 0
    assert 'not a spectrum file' in capsys.readouterr().err
