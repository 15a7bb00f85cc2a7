# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The model store: saved estimators, checked against sha256 manifests.

A saved estimator is a directory holding ``model.keras`` (Keras' zip
format, loaded with ``safe_mode=True``), ``config.json`` (the estimator's
parameters, fitted state and model card) and ``manifest.json`` (the sha256
digest of both). Shipped presets live in ``astrodl_plugins/models/<name>/``;
plugins can add theirs through the ``astrodl_register_presets`` hook.
HDF5 (``.h5``) weights are refused: Keras ignores ``safe_mode`` for them.
"""

import hashlib
import json
from pathlib import Path

from ..exceptions import ModelIntegrityError

__all__ = ['MODELS_DIR', 'sha256', 'find_preset', 'register_preset_finder',
           'load_keras_model', 'write_saved', 'read_saved', 'read_extra_model',
           'check_output_directory']

MODELS_DIR = Path(__file__).resolve().parent.parent / 'models'
_FILES = ('model.keras', 'config.json')
_PRESET_FINDERS = []


def register_preset_finder(finder):
    """
    Add a lookup of preset names that are not shipped presets.

    The registry registers one that asks the plugins' presets
    (``astrodl_register_presets``), so that the store does not import the
    registry.

    Parameters
    ----------
    finder : callable
        ``finder(name)`` returns a directory, or `None` if it does not know
        ``name``.
    """
    if finder not in _PRESET_FINDERS:
        _PRESET_FINDERS.append(finder)


def sha256(path):
    """Hex sha256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _refuse_hdf5(path):
    if Path(path).suffix.lower() in {'.h5', '.hdf5'}:
        msg = (f'{str(path)!r} is an HDF5 weight file: these are refused '
               'because Keras cannot load them safely (safe_mode does not '
               'apply); save models in the .keras format')
        raise ValueError(msg)


def find_preset(preset):
    """
    The directory of a preset name or path.

    Parameters
    ----------
    preset : str or path-like
        A shipped or plugin preset name, or a directory written by
        ``BaseEstimator.save``.
    """
    _refuse_hdf5(preset)
    path = Path(preset)
    if path.is_dir():
        return path
    shipped = MODELS_DIR / str(preset)
    if (shipped / 'manifest.json').exists():
        return shipped
    for finder in _PRESET_FINDERS:
        plugin_dir = finder(str(preset))
        if plugin_dir is not None:
            return Path(plugin_dir)
    names = sorted(p.parent.name for p in MODELS_DIR.glob('*/manifest.json'))
    msg = (f'preset {str(preset)!r} is neither a directory nor a known '
           f'preset; shipped presets: {names}')
    raise ValueError(msg)


def _verify(directory):
    manifest_path = directory / 'manifest.json'
    if not manifest_path.exists():
        msg = f'{str(directory)!r} has no manifest.json: not a saved estimator'
        raise ModelIntegrityError(msg)
    manifest = json.loads(manifest_path.read_text())
    for name in (*_FILES, *manifest.get('extra_models', [])):
        path = directory / name
        expected = manifest.get('sha256', {}).get(name)
        if expected is None or not path.exists():
            msg = f'{str(path)!r} is missing or not in the manifest'
            raise ModelIntegrityError(msg)
        actual = sha256(path)
        if actual != expected:
            msg = (f'{str(path)!r} does not match its manifest: sha256 '
                   f'{actual} != {expected}. The file was modified or '
                   'corrupted; reinstall the package or re-save the model')
            raise ModelIntegrityError(msg)
    return manifest


def load_keras_model(path):
    """Load a ``.keras`` file with ``safe_mode=True`` (no ``.h5``)."""
    _refuse_hdf5(path)
    if Path(path).suffix != '.keras':
        msg = f'{str(path)!r}: only .keras model files can be loaded'
        raise ValueError(msg)
    import keras

    from . import mc  # noqa: F401 - registers MCDropout for deserialization

    return keras.saving.load_model(path, safe_mode=True, compile=False)


def read_saved(directory):
    """
    Verify and read a saved estimator directory.

    Returns
    -------
    config : dict
        Contents of ``config.json``.
    model : `keras.Model`
    sha : str
        sha256 of ``model.keras``.
    """
    directory = Path(directory)
    manifest = _verify(directory)
    config = json.loads((directory / 'config.json').read_text())
    model = load_keras_model(directory / 'model.keras')
    return config, model, manifest['sha256']['model.keras']


def check_output_directory(directory, overwrite=False):
    """
    Refuse to write into an existing, non-empty directory unless asked.

    The training recipes call it before training, so a run is not lost at
    the end; `write_saved` calls it again.
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not overwrite:
        msg = (f'{str(directory)!r} exists and is not empty; pass '
               'overwrite=True to replace it')
        raise FileExistsError(msg)
    return directory


def read_extra_model(directory, name):
    """
    Load the extra network ``<name>.keras`` of a saved estimator.

    The file must be listed in (and match) the directory's manifest.
    """
    directory = Path(directory)
    manifest = _verify(directory)
    filename = f'{name}.keras'
    if filename not in manifest.get('extra_models', []):
        msg = f'{str(directory)!r} has no extra model {name!r} in its manifest'
        raise ModelIntegrityError(msg)
    return load_keras_model(directory / filename)


def write_saved(directory, model, config, *, overwrite=False,
                extra_models=None):
    """
    Write ``model.keras``, ``config.json`` and ``manifest.json``.

    ``extra_models`` (a dict name -> `keras.Model`) are written as
    ``<name>.keras`` and listed in the manifest, e.g. the ``deblender``'s
    detector next to its extractor.
    """
    directory = Path(directory)
    _refuse_hdf5(directory)
    check_output_directory(directory, overwrite)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / 'model.keras')
    (directory / 'config.json').write_text(json.dumps(config, indent=2))
    extra = [f'{name}.keras' for name in (extra_models or {})]
    for name, extra_model in (extra_models or {}).items():
        extra_model.save(directory / f'{name}.keras')
    manifest = {'sha256': {name: sha256(directory / name)
                           for name in (*_FILES, *extra)}}
    if extra:
        manifest['extra_models'] = extra
    (directory / 'manifest.json').write_text(json.dumps(manifest, indent=2))
    return directory
