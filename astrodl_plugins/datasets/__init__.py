# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Small sample data made by the package's own simulators.

``sample_field.fits`` is the demo's embedded default: a 512x512 CCDData
field (electrons, sky not subtracted, TAN WCS at 0.2 arcsec/pix,
uncertainty, ``PSF_FWHM`` = 3 pix in the header) with 30 galaxies and 20
stars, made by `~astrodl_plugins.simulate.simulate_field` with
``seed=2026``; ``sample_field_truth.ecsv`` is its truth table.
Loading them needs no GalSim (the demo runs on a plain install);
regenerating both with ``astrodl make-sample-field`` needs the ``train``
extra.
"""

from pathlib import Path

__all__ = ['load_sample_field', 'write_sample_field', 'SAMPLE_FIELD_SEED']

_HERE = Path(__file__).resolve().parent
SAMPLE_FIELD_SEED = 2026


def load_sample_field():
    """
    Load the shipped sample field and its truth table.

    Returns
    -------
    ccd : `~astropy.nddata.CCDData`
    truth : `~astropy.table.QTable`

    Examples
    --------
    >>> from astrodl_plugins.datasets import load_sample_field
    >>> ccd, truth = load_sample_field()
    >>> ccd.shape, str(ccd.unit), len(truth)
    ((512, 512), 'electron', 50)
    """
    from astropy.nddata import CCDData
    from astropy.table import QTable

    ccd = CCDData.read(_HERE / 'sample_field.fits')
    truth = QTable.read(_HERE / 'sample_field_truth.ecsv')
    return ccd, truth


def write_sample_field(directory=_HERE, *, seed=SAMPLE_FIELD_SEED,
                       overwrite=False):
    """Simulate the sample field and write its two files to ``directory``."""
    from ..core.output import atomic_outputs, write_table_file
    from ..simulate.field import simulate_field

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ccd, truth = simulate_field(seed=seed)
    paths = [directory / 'sample_field.fits',
             directory / 'sample_field_truth.ecsv']
    with atomic_outputs(paths, overwrite=overwrite) as temporaries:
        ccd.write(temporaries[0], overwrite=True)
        write_table_file(truth, temporaries[1], 'ascii.ecsv')
    return directory
