# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The files of a saved estimator: sha256 digests, manifests, configs and
``.keras`` archives, each checked with an error that names the file and
what is wrong with it. The public names are re-exported by
`astrodl_plugins.core.store`.
"""

import hashlib
import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path

from ..exceptions import ModelIntegrityError

__all__ = ['ModelFileError', 'FILES', 'SEPARATORS', 'sha256', 'refuse_hdf5',
           'read_json', 'manifest_files', 'verify', 'load_keras_model',
           'check_output_directory', 'write_saved']

#: The files of every saved estimator (the extra networks come on top).
FILES = ('model.keras', 'config.json')
#: Path separators of this platform.
SEPARATORS = tuple({'/', os.sep, os.altsep} - {None})


class ModelFileError(ModelIntegrityError):
    """
    A file of a saved estimator is malformed or cannot be loaded.

    A manifest or config that is not the expected JSON, a ``.keras`` file
    that is empty or not a zip archive, or a network with a layer class
    that is not registered with Keras.
    """


def sha256(path):
    """Hex sha256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def refuse_hdf5(path):
    if Path(path).suffix.lower() in {'.h5', '.hdf5'}:
        msg = (f'{str(path)!r} is an HDF5 weight file: these are refused '
               'because Keras cannot load them safely (safe_mode does not '
               'apply); save models in the .keras format')
        raise ValueError(msg)


def read_json(path, what):
    try:
        value = json.loads(path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = (f'{str(path)!r} is not a valid {what} (not JSON: {exc}); the '
               'saved estimator is damaged: re-save it')
        raise ModelFileError(msg) from None
    if not isinstance(value, dict):
        msg = (f'{str(path)!r} is not a valid {what}: a JSON object is '
               f'expected, got {type(value).__name__}')
        raise ModelFileError(msg)
    return value


def manifest_files(manifest, path):
    """File names of a manifest: the two files, then the extra models."""
    digests = manifest.get('sha256')
    if not isinstance(digests, dict) or not all(
            isinstance(key, str) and isinstance(value, str)
            for key, value in digests.items()):
        msg = (f'{str(path)!r} is not a valid manifest: "sha256" must map '
               f'file names to hex digests, got {digests!r:.80}')
        raise ModelFileError(msg)
    extra = manifest.get('extra_models', [])
    if not isinstance(extra, list) or not all(
            isinstance(name, str) and name.endswith('.keras')
            and name == Path(name).name and name not in FILES
            and not any(sep in name for sep in SEPARATORS)
            for name in extra):
        msg = (f'{str(path)!r} is not a valid manifest: "extra_models" must '
               f'list .keras file names of the same directory, got '
               f'{extra!r:.80}')
        raise ModelFileError(msg)
    return (*FILES, *extra)


def verify(directory, expected=None):
    """Check the files against the manifest (and ``expected`` digests)."""
    manifest_path = directory / 'manifest.json'
    if not manifest_path.is_file():
        msg = f'{str(directory)!r} has no manifest.json: not a saved estimator'
        raise ModelIntegrityError(msg)
    manifest = read_json(manifest_path, 'manifest')
    files = manifest_files(manifest, manifest_path)
    if expected is not None and set(files) != set(expected):
        msg = (f'{str(manifest_path)!r} lists {sorted(files)}, but the '
               f'package recorded {sorted(expected)} for this shipped preset: '
               'reinstall the package')
        raise ModelIntegrityError(msg)
    for name in files:
        path = directory / name
        digest = manifest['sha256'].get(name)
        if digest is None or not path.is_file():
            msg = f'{str(path)!r} is missing or not in the manifest'
            raise ModelIntegrityError(msg)
        actual = sha256(path)
        if actual != digest:
            msg = (f'{str(path)!r} does not match its manifest: sha256 '
                   f'{actual} != {digest}. The file was modified or '
                   'corrupted; reinstall the package or re-save the model')
            raise ModelIntegrityError(msg)
        if expected is not None and actual != expected[name]:
            msg = (f'{str(path)!r} of a shipped preset does not match the '
                   f'sha256 recorded in the package ({actual} != '
                   f'{expected[name]}), although it matches its manifest: '
                   'the file was replaced; reinstall the package')
            raise ModelIntegrityError(msg)
    return manifest


def _layer_names(path, class_name):
    """Names of the layers of class ``class_name`` in a ``.keras`` file."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read('config.json'))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    names, stack = [], [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get('class_name') == class_name and isinstance(
                    item.get('config'), dict):
                names.append(item['config'].get('name'))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(str(name) for name in names if name is not None)


def _load_error(path, exc):
    message = str(exc)
    marker = "Could not locate class '"
    if marker in message:
        class_name = message.split(marker, 1)[1].split("'", 1)[0]
        layers = _layer_names(path, class_name)
        where = f' (layer {", ".join(map(repr, layers))})' if layers else ''
        msg = (f'{str(path)!r} uses the layer class {class_name!r}{where}, '
               'which is not registered with Keras: import the module that '
               'defines it (decorated with '
               '@keras.saving.register_keras_serializable) before loading')
    else:
        msg = f'{str(path)!r} cannot be loaded by Keras: {message}'
    return ModelFileError(msg)


def load_keras_model(path):
    """
    Load a ``.keras`` file with ``safe_mode=True`` (no ``.h5``).

    Parameters
    ----------
    path : path-like
        A ``.keras`` file.

    Returns
    -------
    model : `keras.Model`

    Raises
    ------
    ValueError
        If ``path`` is not a ``.keras`` file.
    FileNotFoundError
        If it does not exist.
    ModelFileError
        If it is empty, not a zip archive, or cannot be deserialized (e.g.
        a layer class that is not registered with Keras).
    """
    refuse_hdf5(path)
    path = Path(path)
    if path.suffix != '.keras':
        msg = f'{str(path)!r}: only .keras model files can be loaded'
        raise ValueError(msg)
    if not path.is_file():
        msg = f'model file {str(path)!r} does not exist'
        raise FileNotFoundError(msg)
    if path.stat().st_size == 0:
        msg = f'model file {str(path)!r} is empty (0 bytes)'
        raise ModelFileError(msg)
    if not zipfile.is_zipfile(path):
        msg = (f'model file {str(path)!r} is not a .keras zip archive '
               '(truncated or another format)')
        raise ModelFileError(msg)
    import keras

    from . import mc  # noqa: F401 - registers MCDropout for deserialization

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except (TypeError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise _load_error(path, exc) from exc


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


def _inference_copy(model):
    """
    ``model`` without its optimizer state (a functional model's layers,
    shared, in an uncompiled model): a saved estimator holds what
    prediction needs, and fine-tuning compiles a fresh optimizer.
    """
    import keras

    if getattr(model, 'optimizer', None) is None:
        return model
    try:
        # ``input``/``output`` keep the structure the model was built
        # with (one tensor, a list, a dict): a single-input model rebuilt
        # from ``inputs`` would expect a list and warn on a tensor.
        return keras.Model(model.input, model.output, name=model.name)
    except (AttributeError, ValueError, TypeError):  # not functional
        return model


def _write_files(directory, model, config, extra_models):
    _inference_copy(model).save(directory / 'model.keras')
    (directory / 'config.json').write_text(json.dumps(config, indent=2),
                                           encoding='utf-8')
    extra = [f'{name}.keras' for name in extra_models]
    for name, extra_model in extra_models.items():
        _inference_copy(extra_model).save(directory / f'{name}.keras')
    manifest = {'sha256': {name: sha256(directory / name)
                           for name in (*FILES, *extra)}}
    if extra:
        manifest['extra_models'] = extra
    (directory / 'manifest.json').write_text(json.dumps(manifest, indent=2),
                                             encoding='utf-8')


def write_saved(directory, model, config, *, overwrite=False,
                extra_models=None):
    """
    Write ``model.keras``, ``config.json`` and ``manifest.json``, atomically.

    The files are written into a temporary directory next to ``directory``
    that is then renamed into place: a failure leaves neither a
    half-written estimator nor, with ``overwrite=True``, a damaged old one.
    With ``overwrite=True`` the old estimator's files (``.keras``,
    ``config.json``, ``manifest.json``) are replaced and its other files
    (figures) kept.

    Parameters
    ----------
    directory : path-like
        Created if needed; an existing non-empty directory is only
        replaced with ``overwrite=True``.
    model : `keras.Model`
    config : dict
        JSON-serializable estimator config.
    overwrite : bool, optional
        Replace an existing non-empty directory.
    extra_models : dict, optional
        Name -> `keras.Model`, written as ``<name>.keras`` and listed in
        the manifest, e.g. the ``deblender``'s detector.

    Returns
    -------
    directory : `~pathlib.Path`
    """
    directory = Path(directory)
    refuse_hdf5(directory)
    if directory.exists() and not directory.is_dir():
        msg = (f'directory {str(directory)!r} is a file; give a directory to '
               'save the estimator in')
        raise NotADirectoryError(msg)
    check_output_directory(directory, overwrite)
    # Absolute and normalized, so that '.' or 'a/..' have a parent to
    # write the temporary directory in.
    target = Path(os.path.abspath(directory))
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    partial = target.parent / f'.{target.name}.partial-{tag}'
    partial.mkdir()
    try:
        _write_files(partial, model, config, extra_models or {})
        if target.is_dir():
            _keep_other_files(target, partial)
        _move_into_place(partial, target, tag)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return directory


def _keep_other_files(old, partial):
    """Copy what is not part of a saved estimator (figures, notes)."""
    for path in old.iterdir():
        if (path.name in ('manifest.json', 'config.json')
                or path.suffix == '.keras' or (partial / path.name).exists()):
            continue
        if path.is_dir():
            shutil.copytree(path, partial / path.name, symlinks=True)
        else:
            shutil.copy2(path, partial / path.name, follow_symlinks=False)


def _move_into_place(partial, directory, tag):
    """Rename ``partial`` to ``directory``, keeping the old one on failure."""
    if not directory.exists():
        partial.rename(directory)
        return
    old = directory.parent / f'.{directory.name}.old-{tag}'
    directory.rename(old)
    try:
        partial.rename(directory)
    except BaseException:
        old.rename(directory)
        raise
    shutil.rmtree(old, ignore_errors=True)
