# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The base of every estimator: parameters, config, model store, MC engine.

`BaseEstimator` holds what does not depend on the kind of input; the three
input *families* (`~astrodl_plugins.core.stamps.SourceStampEstimator`,
`~astrodl_plugins.core.image.ImageToImageEstimator`,
`~astrodl_plugins.core.series.SeriesEstimator`) add ``predict`` and declare
the hooks an estimator fills in. See :doc:`/design`.
"""

import inspect
import sys
import tempfile
import threading
import time
from collections import namedtuple
from importlib import import_module
from pathlib import Path

import numpy as np

from ..exceptions import NotFittedError
from . import store
from .flags import SourceFlags, flag_descriptions
from .table import output_column, summarize_draws

#: Seeds are integers in ``[0, MAX_SEED)``: every one gives its own dropout
#: masks (larger ones would alias).
MAX_SEED = 2**32

__all__ = ['BaseEstimator', 'Draws']

#: What ``_decode`` returns: ``(n, T)`` arrays per output name of the MC
#: draws of the network's estimate (``values``), of its predicted
#: (aleatoric) variance, and of predictive draws (estimate plus aleatoric
#: noise, for the quantiles).
Draws = namedtuple('Draws', ['values', 'aleatoric', 'predictive'])


class BaseEstimator:
    """
    Base class of every astrodl_plugins estimator.

    scikit-learn habits: ``__init__`` only stores its keyword arguments;
    validation happens where data arrive; ``fit`` returns ``self``; fitted
    state ends in ``_`` (``model_``, ``history_``). keras-hub habits: a
    trained estimator is saved as a directory (`save`) and loaded by a
    preset name or that directory (`from_preset`).

    Subclass one of the input families, not this class directly; the
    family's docstring lists the hooks to write.

    Class attributes (read by the registry, the pipeline and the docs):

    * ``name``: registry name, short kebab-case noun (``'galaxy-structure'``).
    * ``task``: what it does (``'regression'``, ``'classification'``, ...).
    * ``version``: the estimator's version string.
    * ``description``: one line for `~astrodl_plugins.list_estimators`.
    * ``default_preset``: preset loaded by `~astrodl_plugins.get_estimator`
      (`None`: the estimator is built with its default parameters).
    * ``family``: the input family (set by the family class).
    * ``output_names``: output columns, in table order.
    * ``networks``: names of the fitted Keras networks; each is the
      attribute ``<name>_`` and is saved as ``<name>.keras``.
    * ``predict_options``: estimator keywords of ``predict`` and their
      defaults; any other keyword is refused with a clear error.
    * ``flag_names``: the `~astrodl_plugins.core.flags.SourceFlags` bits
      the estimator can set (listed in ``table.meta['flags']``).
    * ``range_margins``: quantities checked against the preset's
      ``valid_ranges`` (see `valid_ranges`), each with the fractional
      margin allowed below the low and above the high bound (`None`: that
      side is not checked).
    * ``periods``: period of each circular output (180 for an axis angle
      in degrees).
    """

    name = None
    task = None
    version = None
    description = ''
    default_preset = None
    family = None
    output_names = ()
    networks = ('model',)
    predict_options = {}
    flag_names = ('MASKED', 'EDGE', 'OUT_OF_RANGE', 'UNUSABLE')
    range_margins = {}
    periods = {}

    # -- parameters and config (scikit-learn / keras-hub habits) ---------

    @classmethod
    def _param_names(cls):
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                 inspect.Parameter.KEYWORD_ONLY)
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values()
                if p.name != 'self' and p.kind in kinds]

    def get_params(self, deep=True):
        """
        Constructor parameters, as a dict.

        Parameters
        ----------
        deep : bool, optional
            Also return the parameters of parameters that are estimators
            themselves, as ``<parameter>__<name>`` (scikit-learn's rule).
        """
        params = {}
        for name in self._param_names():
            value = getattr(self, name)
            params[name] = value
            if deep and hasattr(value, 'get_params') and not isinstance(
                    value, type):
                for key, sub in value.get_params(deep=True).items():
                    params[f'{name}__{key}'] = sub
        return params

    def set_params(self, **params):
        """
        Set constructor parameters; returns ``self``.

        ``<parameter>__<name>`` sets a parameter of a nested estimator.
        """
        valid = self._param_names()
        nested = {}
        for key, value in params.items():
            name, _, sub = key.partition('__')
            if name not in valid:
                msg = (f'{name!r} is not a parameter of '
                       f'{type(self).__name__}; valid: {valid}')
                raise ValueError(msg)
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self):
        """``Name(param=value)`` with the parameters that differ from the defaults."""
        signature = inspect.signature(type(self).__init__)
        changed = []
        for name in self._param_names():
            default = signature.parameters[name].default
            value = getattr(self, name)
            if default is inspect.Parameter.empty or not _same(value,
                                                               default):
                changed.append(f'{name}={value!r}')
        return f'{type(self).__name__}({", ".join(changed)})'

    def _get_state(self):
        """Fitted state other than the Keras networks (JSON-serializable)."""
        return {}

    def _set_state(self, state):
        """Restore what `_get_state` returned."""

    def get_config(self):
        """JSON-serializable config: class, parameters and fitted state."""
        params = {key: list(value) if isinstance(value, tuple) else value
                  for key, value in self.get_params(deep=False).items()}
        config = {'class': f'{type(self).__module__}.{type(self).__qualname__}',
                  'name': self.name, 'version': self.version,
                  'params': params, 'state': self._get_state(),
                  'card': getattr(self, 'card_', {})}
        if self._familiarity() is not None:
            config['familiarity'] = self._familiarity().to_dict()
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuild an estimator (without its networks) from `get_config`."""
        params = {key: tuple(value) if isinstance(value, list) else value
                  for key, value in config.get('params', {}).items()}
        estimator = cls(**params)
        estimator._set_state(config.get('state', {}))
        estimator.card_ = config.get('card', {})
        if 'familiarity' in config:
            from .familiarity import Familiarity

            estimator.familiarity_ = Familiarity.from_dict(
                config['familiarity'])
        return estimator

    @property
    def valid_ranges(self):
        """
        Ranges the model was trained on, from its preset's model card.

        The ``OUT_OF_RANGE`` flag compares the quantities of
        ``range_margins`` with these ranges. A fine-tuned model keeps the
        card of the preset it started from; set
        ``card_['valid_ranges']`` when a model is trained on other data.
        An estimator without a card checks no range.
        """
        ranges = getattr(self, 'card_', {}).get('valid_ranges', {})
        return {key: tuple(value) for key, value in ranges.items()
                if isinstance(value, (list, tuple)) and len(value) == 2}

    # -- familiarity (out-of-distribution score) -------------------------

    def _familiarity(self):
        return getattr(self, 'familiarity_', None)

    def fit_familiarity(self, features, labels=None, held_out=None, *,
                        n_components=32, quantile=0.99):
        """
        Learn how the training data look to the network (``ood_score``).

        Fits a `~astrodl_plugins.core.familiarity.Familiarity` on the
        network features of simulated training-like inputs (see the
        family's ``network_features``), calibrated on held-out ones: then
        every table gets an ``ood_score`` column (1 at the ``quantile`` of
        the held-out simulations) and rows above 1 are flagged
        ``UNFAMILIAR``. Saved with the estimator.

        Parameters
        ----------
        features : array
            ``(n, d)`` features of training-like inputs.
        labels : array, optional
            Their classes (classifiers: one centre per class).
        held_out : array, optional
            Features of other simulated inputs, for the threshold.
        n_components : int, optional
            Principal axes kept.
        quantile : float, optional
            Fraction of held-out inputs scored at most 1.

        Returns
        -------
        self
        """
        from .familiarity import Familiarity

        self.familiarity_ = Familiarity.fit(
            features, labels, held_out, n_components=n_components,
            quantile=quantile)
        return self

    # -- save and load ----------------------------------------------------

    def save(self, directory, *, overwrite=False):
        """
        Save the fitted estimator as a directory usable by `from_preset`.

        Parameters
        ----------
        directory : path-like
            Created if needed; an existing non-empty directory is only
            replaced with ``overwrite=True``.
        overwrite : bool, optional
            Replace the estimator in an existing non-empty directory (other
            files, such as figures, are kept).

        Returns
        -------
        directory : `~pathlib.Path`

        Notes
        -----
        The files are written into a temporary directory next to
        ``directory`` and renamed into place: a failure leaves no
        half-written estimator and keeps the old one.
        """
        self._check_fitted()
        extra = {name: getattr(self, f'{name}_') for name in self.networks
                 if name != 'model'}
        return store.write_saved(directory, self.model_, self.get_config(),
                                 overwrite=overwrite, extra_models=extra)

    @classmethod
    def from_preset(cls, preset):
        """
        Load a shipped preset, a plugin's preset, or a saved directory.

        Every network file is checked against the preset's sha256 manifest
        and loaded with Keras' ``safe_mode``; ``.h5`` files are refused. A
        shipped preset is also checked against the digests recorded in the
        package's code; any other preset is loaded *unverified*, with an
        `~astrodl_plugins.core.store.UnverifiedPresetWarning`. The class
        named in ``config.json`` must be a registered estimator class (or
        an estimator class already defined): no module is imported on its
        behalf.

        Parameters
        ----------
        preset : str or path-like
            Preset name (e.g. ``'galaxy-structure'``), never looked up in
            the current directory, or a directory written by `save`, given
            as a `pathlib.Path` or a str with a path separator
            (``'./galaxy-structure'``).

        Returns
        -------
        estimator : `BaseEstimator`
            Its tables' ``meta`` say which preset it is: ``preset`` (the
            name, `None` for a path), ``preset_path``, ``preset_source``
            (``'shipped'``, ``'plugin'`` or ``'directory'``) and
            ``preset_verified``.

        Raises
        ------
        ValueError
            If ``preset`` is an unknown name or an HDF5 file, or the config
            names a class that is not a registered estimator.
        FileNotFoundError
            If a path does not exist.
        TypeError
            If the preset holds an estimator that is not a ``cls``.
        ~astrodl_plugins.exceptions.ModelIntegrityError
            If a file is missing, malformed or does not match its digest.
        """
        saved = store.read_preset(preset)
        config_path = saved.directory / 'config.json'
        target = _class_from_path(saved.config['class'], config_path)
        if not issubclass(target, cls):
            msg = (f'preset {str(preset)!r} holds a {target.__name__}, not a '
                   f'{cls.__name__}')
            raise TypeError(msg)
        estimator = target.from_config(saved.config)
        estimator.model_ = store.read_network(saved, 'model')
        estimator.model_sha256_ = saved.manifest['sha256']['model.keras']
        for name in target.networks:
            if name != 'model':
                setattr(estimator, f'{name}_', store.read_network(saved, name))
        estimator.preset_info_ = {**saved.meta,
                                  'model_sha256': estimator.model_sha256_}
        store.warn_if_unverified(saved)
        return estimator

    # -- pickling (multiprocessing, Dask) ----------------------------------

    def __getstate__(self):
        """
        The estimator's attributes, each Keras network as its ``.keras`` bytes.

        The networks travel in the saved-model format of `save`; the
        provenance (``preset_info_``, ``model_sha256_``) and the fitted
        state travel as they are. The MC engines and their lock are not
        pickled: `mc_engine` rebuilds them on first use.
        """
        state = {key: value for key, value in self.__dict__.items()
                 if key not in _UNPICKLED}
        if 'keras' in sys.modules:
            import keras

            for key, value in state.items():
                if isinstance(value, keras.Model):
                    state[key] = _KerasBytes(_keras_to_bytes(value))
        return state

    def __setstate__(self, state):
        """Restore what `__getstate__` returned (networks loaded safely)."""
        state = dict(state)
        for key, value in state.items():
            if isinstance(value, _KerasBytes):
                state[key] = _keras_from_bytes(value.data)
        self.__dict__.update(state)

    # -- the MC-dropout engine ------------------------------------------------

    def mc_engine(self, network='model'):
        """
        The `~astrodl_plugins.core.mc.MCDropoutEngine` of a fitted network.

        Built once per network and kept until the network is replaced (a
        new `fit`).

        Parameters
        ----------
        network : str, optional
            One of ``networks``.
        """
        from .mc import MCDropoutEngine

        model = getattr(self, f'{network}_')
        # A lock per estimator: concurrent first calls build one engine.
        lock = self.__dict__.setdefault('_engine_lock', threading.Lock())
        with lock:
            engines = self.__dict__.setdefault('_engines', {})
            cached = engines.get(network)
            if cached is None or cached[0] is not model:
                cached = (model, MCDropoutEngine(model))
                engines[network] = cached
        return cached[1]

    def _forget_engines(self):
        """Drop the cached engines (their weights are copies): after a fit."""
        self.__dict__.pop('_engines', None)

    def _sample(self, inputs, context, network='model'):
        """MC draws ``(n, T, k)`` of a network on the device of ``context``."""
        import keras

        n_objects = len(inputs[0])
        bar = None
        if context.progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_objects, desc=self.name, unit='source')
        collect = [] if self._familiarity() is not None else None
        try:
            with keras.device(context.device):
                raw = self.mc_engine(network).sample(
                    inputs, context.n_samples, seed=context.seed,
                    batch_size=context.batch_size,
                    progress=None if bar is None else bar.update,
                    features=collect)
        finally:
            if bar is not None:
                bar.close()
        if collect:
            # With test-time augmentation the first rows are the stamps as
            # given (the identity comes first).
            n = int(np.count_nonzero(context.usable))
            context.features = np.concatenate(collect)[:n].reshape(n, -1)
        return raw

    # -- from network outputs to columns (every family) ------------------

    def _decode(self, raw, context, rng):
        """
        Network output draws -> `Draws` per output name, in model units.

        **Required hook.** ``raw`` is ``(n, T, k)`` (the MC draws of the
        usable sources); ``rng`` is seeded from ``seed`` for predictive
        draws. Model units are those of the training set (pixels, angles
        from +x): the range check reads them; `_to_output_units` converts.
        """
        msg = f'{type(self).__name__} must implement _decode'
        raise NotImplementedError(msg)

    def _from_model_pixels(self, draws, context):
        """
        `Draws` measured on a resampled stamp -> native pixels (the stamp
        family's size-aware stamps); default: unchanged.
        """
        return draws

    def _to_output_units(self, draws, context):
        """
        `Draws` in model units -> the table's units and frames (pixels to
        arcsec, angles east of north...). Default: unchanged.
        """
        return draws

    def _output_units(self, context):
        """Unit of each output column. Default: dimensionless."""
        from astropy import units as u

        return {name: u.dimensionless_unscaled for name in self.output_names}

    def _error_scale(self, context):
        """Calibration factor of each ``_err`` (scalar or per source)."""
        return {}

    def _range_quantities(self, values, context):
        """
        Per-source quantities compared with `valid_ranges`: the mean of
        each output's draws (model units) and the per-source arrays in
        ``context.aux`` (e.g. ``psf_fwhm``, ``snr``).
        """
        quantities = dict(context.aux)
        quantities.update({key: np.mean(value, axis=-1)
                           for key, value in values.items()})
        return quantities

    def _range_flags(self, values, context):
        """``OUT_OF_RANGE`` bits of the usable sources (see ``range_margins``)."""
        ranges = self.valid_ranges
        quantities = self._range_quantities(values, context)
        out = np.zeros(int(np.count_nonzero(context.usable)), bool)
        for name, (low_margin, high_margin) in self.range_margins.items():
            if name not in ranges or name not in quantities:
                continue
            low, high = ranges[name]
            value = np.asarray(quantities[name], np.float64)
            if low_margin is not None:
                out |= value < low * (1 - low_margin)
            if high_margin is not None:
                out |= value > high * (1 + high_margin)
        return np.where(out, SourceFlags.OUT_OF_RANGE, 0).astype(np.int32)

    def _extra_columns(self, columns, draws, context):
        """
        Final output columns (all sources, NaN where unusable) from the
        summarized ones and the draws; default: unchanged. The classifiers
        add ``class`` and the entropies here.
        """
        return columns

    def _measure(self, context):
        """
        ``context.inputs`` -> output columns, flags and draws of all rows:
        MC draws of the network, `_decode`, then `_columns_from_draws`.
        """
        raw = self._sample(context.inputs, context)
        rng = np.random.default_rng(context.seed)
        return self._columns_from_draws(self._decode(raw, context, rng),
                                        context)

    def _columns_from_draws(self, draws, context):
        """
        `Draws` of the usable rows (model units) -> columns, flags, draws.

        Shared by the families: the range check, `_to_output_units`, the
        summaries (``<name>``, ``_err``, quantiles, uncertainty parts),
        NaN rows with ``UNUSABLE`` for the unusable ones, `_extra_columns`.
        """
        usable = context.usable
        range_flags = self._range_flags(draws.values, context)
        draws = self._to_output_units(self._from_model_pixels(draws, context),
                                      context)
        units = self._output_units(context)
        columns, parts = summarize_draws(
            draws.values, draws.aleatoric, units=units, periods=self.periods,
            error_scale=self._error_scale(context),
            quantiles=context.quantiles, predictive=draws.predictive)
        if context.uncertainty_parts:
            for name in draws.values:
                for part in ('epistemic', 'aleatoric'):
                    columns[f'{name}_err_{part}'] = output_column(
                        parts[f'{name}_{part}'], units[name])
        flags = context.flags.copy()
        flags[~usable] |= SourceFlags.UNUSABLE
        flags[usable] |= range_flags
        columns = {key: _expand(value, usable, getattr(value, 'unit', None))
                   for key, value in columns.items()}
        values = {key: _expand(value, usable, units[key])
                  for key, value in draws.values.items()}
        columns = self._extra_columns(columns, values, context)
        # Nothing non-finite leaves unflagged (an overflowing network
        # output, an input beyond float32): the row is UNUSABLE.
        for value in columns.values():
            value = np.asarray(getattr(value, 'value', value))
            if (value.dtype.kind == 'f' and value.shape[:1] == flags.shape
                    and value.size):
                bad = ~np.isfinite(value)
                flags[bad.reshape(len(flags), -1).any(axis=1)] |= (
                    SourceFlags.UNUSABLE)
        familiarity = self._familiarity()
        if familiarity is not None and context.features is not None:
            score = familiarity.score(context.features)
            columns['ood_score'] = np.full(len(usable), np.nan)
            columns['ood_score'][usable] = score
            flags[usable] |= np.where(score > 1, SourceFlags.UNFAMILIAR,
                                      0).astype(np.int32)
        return columns, flags, values

    # -- shared checks and meta --------------------------------------------

    def _is_fitted(self):
        return all(getattr(self, f'{name}_', None) is not None
                   for name in self.networks)

    def _check_fitted(self):
        for name in self.networks:
            if getattr(self, f'{name}_', None) is None:
                msg = (f'{type(self).__name__} has no trained {name} network: '
                       f'load one with from_preset({self.default_preset!r}) '
                       'or call fit')
                raise NotFittedError(msg)

    def _options(self, options):
        """Estimator keywords of ``predict``, defaults filled in; unknown refused."""
        unknown = sorted(set(options) - set(self.predict_options))
        if unknown:
            known = sorted(self.predict_options)
            msg = (f'{type(self).__name__}.predict got unexpected keyword '
                   f'argument(s) {unknown}; its own keywords are {known}')
            raise TypeError(msg)
        return {**self.predict_options, **options}

    @staticmethod
    def _check_predict_args(n_samples, batch_size, quantiles, seed):
        if isinstance(n_samples, bool) or not isinstance(
                n_samples, (int, np.integer)) or n_samples < 0:
            msg = f'n_samples must be an integer >= 0, got {n_samples!r}'
            raise ValueError(msg)
        if isinstance(batch_size, bool) or not isinstance(
                batch_size, (int, np.integer)) or batch_size < 1:
            msg = f'batch_size must be an integer >= 1, got {batch_size!r}'
            raise ValueError(msg)
        if quantiles is not None:
            try:
                if isinstance(quantiles, (str, bytes)):
                    raise TypeError
                quantiles = tuple(float(q) for q in np.atleast_1d(quantiles))
            except (TypeError, ValueError):
                msg = ('quantiles must be a number or a sequence of numbers '
                       f'in (0, 1), got {quantiles!r}')
                raise ValueError(msg) from None
            if not all(0.0 < q < 1.0 for q in quantiles):
                msg = f'quantiles must lie in (0, 1), got {quantiles}'
                raise ValueError(msg)
        if quantiles:
            # A quantile q needs draws on both sides of it: about one
            # draw expected beyond it (n min(q, 1 - q) >= 0.9), and three
            # draws at least; with fewer it is an extreme draw, not an
            # estimate (0-2 draws gave q16 = q84).
            tail = min(min(q, 1.0 - q) for q in quantiles)
            needed = max(3, int(np.ceil(0.9 / tail - 1e-9)))
            if n_samples < needed:
                msg = (f'quantiles {list(quantiles)} need n_samples >= '
                       f'{needed} MC draws (about one draw beyond each '
                       f'quantile), got n_samples={n_samples}')
                raise ValueError(msg)
        else:
            quantiles = None
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % 2**31)
        elif isinstance(seed, bool) or not isinstance(
                seed, (int, np.integer)) or not 0 <= seed < MAX_SEED:
            msg = (f'seed must be None or an integer in [0, 2**32), got '
                   f'{seed!r}')
            raise ValueError(msg)
        return int(n_samples), int(batch_size), quantiles, int(seed)

    def _extra_meta(self, context):
        """Estimator-specific entries of ``table.meta``; default none."""
        return {}

    def _meta(self, context):
        import keras

        backend = keras.backend.backend()
        try:
            backend_version = import_module(backend).__version__
        except (ImportError, AttributeError):
            backend_version = 'unknown'
        meta = {
            'estimator': self.name,
            'estimator_version': self.version,
            'model_sha256': getattr(self, 'model_sha256_', None),
            'astrodl_plugins_version': _package_version(),
            'n_samples': context.n_samples,
            'seed': context.seed,
            'device': context.device,
            'backend': backend,
            'backend_version': backend_version,
            'keras_version': keras.__version__,
            'date_predicted': time.strftime('%Y-%m-%dT%H:%M:%S'),
            'flags': flag_descriptions(self.flag_names),
        }
        if context.quantiles:
            meta['quantiles'] = list(context.quantiles)
        if self._familiarity() is not None:
            meta['ood_score'] = (
                'distance of the network features to those of the training '
                'simulations, in units of its '
                f'{100 * self._familiarity().quantile:g}th percentile on '
                'held-out simulations; above 1: flag UNFAMILIAR')
        image = context.image
        if getattr(image, 'pixel_scale', None) is not None:
            meta['pixel_scale'] = image.pixel_scale
        if context.psf_source:
            meta['psf_fwhm_source'] = context.psf_source
        if context.rescale is not None:
            meta['rescale'] = (
                'block-sum factor of the image each row was measured on '
                '(1: native sampling; >1: the footprint did not fit the '
                'stamp or the PSF was broader than trained); pixel outputs '
                'and centroids are in native pixels')
        meta.update(store.preset_meta(self))
        meta.update(self._extra_meta(context))
        return meta


#: Caches rebuilt on first use, never pickled (a lock cannot be).
_UNPICKLED = ('_engines', '_engine_lock')


class _KerasBytes(namedtuple('_KerasBytes', ['data'])):
    """A pickled Keras network: the bytes of its ``.keras`` file."""

    __slots__ = ()


def _keras_to_bytes(model):
    """The ``.keras`` file `BaseEstimator.save` would write, as bytes."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / 'model.keras'
        model.save(path)
        return path.read_bytes()


def _keras_from_bytes(data):
    """A network from `_keras_to_bytes`, loaded as `from_preset` loads one."""
    from ._saved_files import load_keras_model

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / 'model.keras'
        path.write_bytes(data)
        return load_keras_model(path)


def _package_version():
    from .. import __version__

    return __version__


def _same(value, default):
    try:
        return bool(value == default) and type(value) is type(default)
    except (TypeError, ValueError):
        return False


def _expand(values, usable, unit):
    """
    Rows of the usable sources -> all sources, NaN for the others: an
    `output_column` (a plain array where ``unit`` is dimensionless).
    """
    values = np.asarray(getattr(values, 'value', values))
    out = np.full((len(usable),) + values.shape[1:], np.nan)
    out[usable] = values
    return output_column(out, unit)


def _class_from_path(path, source=None):
    """
    The estimator class a config names, without importing anything.

    Only subclasses of `BaseEstimator` that are already defined and the
    registered estimator classes (`store.registered_estimators`, which
    loads the plugins) are candidates: a crafted ``config.json`` cannot
    make the package import a module.
    """
    defined, stack = [], [BaseEstimator]
    while stack:
        cls = stack.pop()
        defined.append(cls)
        stack.extend(cls.__subclasses__())
    # A class defined again (same path) replaces the older one.
    for cls in reversed(defined):
        if f'{cls.__module__}.{cls.__qualname__}' == path:
            return cls
    for cls in store.registered_estimators():
        if f'{cls.__module__}.{cls.__qualname__}' == path:
            return cls
    where = '' if source is None else f' named in {str(source)!r}'
    msg = (f'cannot import estimator class {path!r}{where}: it is neither a '
           'registered estimator class nor a defined subclass of '
           'BaseEstimator, and a preset config never makes the package '
           'import a module; register the class with the '
           'astrodl_register_estimators hook, or import it before loading')
    raise ValueError(msg)
