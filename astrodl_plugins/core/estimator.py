# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The estimator base class shared by every model."""

import inspect
import time
from importlib import import_module

import numpy as np

from ..exceptions import NotFittedError
from . import store
from .inputs import FLAGS, cut_stamps, locate_sources, read_image
from .table import build_table, summarize_draws

__all__ = ['Estimator']


class Estimator:
    """
    Base class of every astrodl_plugins estimator.

    Subclasses follow scikit-learn habits: ``__init__`` only stores its
    keyword arguments; validation happens where data arrive; ``fit``
    returns ``self``; fitted state ends in ``_`` (``model_``, ``history_``).
    A trained estimator is saved as a directory (`save`) and loaded by a
    preset name or that directory (`from_preset`).

    `predict` is shared: it reads the image (unit, mask, uncertainty,
    WCS), finds the sources (segmentation image or positions), cuts
    stamps, draws MC-dropout samples with `~astrodl_plugins.core.MCDropoutEngine`
    and assembles a `~astropy.table.QTable`. Subclasses provide the
    network inputs (``_network_inputs``), the decoding of the draws
    (``_decode``) and the range checks (``_range_flags``).

    Class attributes read by the plugin registry:

    * ``name``: registry name, short kebab-case noun (``'galaxy-structure'``).
    * ``task``: what it does (``'regression'``, ``'classification'``, ...).
    * ``version``: the estimator's version string.
    * ``description``: one line for `~astrodl_plugins.list_estimators`.
    * ``default_preset``: preset loaded by `~astrodl_plugins.get_estimator`
      (`None`: the estimator is built with its default parameters).
    """

    name = None
    task = None
    version = None
    description = ''
    default_preset = None
    #: Output names, in table order.
    output_names = ()
    #: Square stamp side in pixels.
    stamp_size = 64

    # -- parameters and config (scikit-learn / keras-hub habits) ---------

    @classmethod
    def _param_names(cls):
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                 inspect.Parameter.KEYWORD_ONLY)
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values()
                if p.name != 'self' and p.kind in kinds]

    def get_params(self, deep=True):
        """Constructor parameters, as a dict."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters; returns ``self``."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                msg = (f'{key!r} is not a parameter of '
                       f'{type(self).__name__}; valid: {valid}')
                raise ValueError(msg)
            setattr(self, key, value)
        return self

    def _get_state(self):
        """Fitted state other than the Keras model (JSON-serializable)."""
        return {}

    def _set_state(self, state):
        pass

    def get_config(self):
        """JSON-serializable config: class, parameters and fitted state."""
        params = {key: list(value) if isinstance(value, tuple) else value
                  for key, value in self.get_params().items()}
        return {'class': f'{type(self).__module__}.{type(self).__qualname__}',
                'name': self.name, 'version': self.version, 'params': params,
                'state': self._get_state(), 'card': getattr(self, 'card_', {})}

    @classmethod
    def from_config(cls, config):
        """Rebuild an estimator (without its Keras model) from `get_config`."""
        params = {key: tuple(value) if isinstance(value, list) else value
                  for key, value in config.get('params', {}).items()}
        estimator = cls(**params)
        estimator._set_state(config.get('state', {}))
        estimator.card_ = config.get('card', {})
        return estimator

    # -- fit, predict, save, load ------------------------------------------

    def fit(self, *args, **kwargs):
        """Train or fine-tune; implemented by each estimator."""
        msg = f'{type(self).__name__} does not implement fit'
        raise NotImplementedError(msg)

    def predict(self, data, *, segmentation_image=None, positions=None,
                n_samples=50, seed=None, batch_size=64, device='auto',
                quantiles=None, progress_bar=False, pixel_scale=None,
                return_samples=False, uncertainty_parts=False, **kwargs):
        """
        Measure every source in an image, with MC-dropout uncertainties.

        Parameters
        ----------
        data : `~astropy.nddata.NDData`, `~astropy.units.Quantity` or array
            Background-subtracted 2-D image. Unit, mask, uncertainty and
            WCS are honoured.
        segmentation_image : `~photutils.segmentation.SegmentationImage`, optional
            One row per label; the ``label`` column equals photutils' label,
            so the table joins ``SourceCatalog.to_table()``.
        positions : array, `~astropy.table.Table` or SkyCoord, optional
            ``(N, 2)`` pixel x, y, a table with ``x_centroid`` and
            ``y_centroid``, or sky positions (needs a WCS).
        n_samples : int, optional
            MC-dropout draws; ``0`` is one deterministic pass, dropout off.
        seed : int, optional
            Seed of the dropout masks and quantile draws: the same seed
            gives the same table. `None` draws one (stored in the meta).
        batch_size : int, optional
            Sources per batch; memory grows as ``batch_size * n_samples``.
        device : str, optional
            ``'auto'``, ``'cpu'``, ``'gpu'`` or ``'gpu:N'``.
        quantiles : sequence of float, optional
            Quantiles of each output's predictive distribution, e.g.
            ``(0.16, 0.84)`` gives ``<name>_q16`` and ``<name>_q84``.
        progress_bar : bool, optional
            Show a `tqdm` progress bar.
        pixel_scale : `~astropy.units.Quantity`, optional
            Angle per pixel when the data have no celestial WCS.
        return_samples : bool, optional
            Also return the MC draws of each output (dict of ``(N, T)``
            Quantities).
        uncertainty_parts : bool, optional
            Add ``<name>_err_epistemic`` (MC-dropout spread) and
            ``<name>_err_aleatoric`` (predicted noise) columns, before the
            calibration scale that ``<name>_err`` includes.
        **kwargs
            Estimator-specific keywords (e.g. ``psf_fwhm``).

        Returns
        -------
        table : `~astropy.table.QTable`
            ``label``, ``x_centroid``, ``y_centroid``, ``sky_centroid``
            (with a WCS), each output with ``_err`` (and quantiles), and
            ``flag`` (bits in ``table.meta['flags']``).
        """
        self._check_fitted()
        n_samples, batch_size, quantiles, seed = self._check_predict_args(
            n_samples, batch_size, quantiles, seed)
        from .device import resolve_device

        device_name = resolve_device(device)
        image, sources, stamps, errors, flags = self._read_and_cut(
            data, segmentation_image, positions, pixel_scale, kwargs)
        columns, flags, draws, context = self._measure(
            stamps, errors, flags, image, sources, n_samples=n_samples,
            seed=seed, batch_size=batch_size, device_name=device_name,
            quantiles=quantiles, progress_bar=progress_bar,
            uncertainty_parts=uncertainty_parts, **kwargs)
        table = build_table(self._leading_columns(image, sources), columns,
                            flags, self._meta(image, n_samples, seed,
                                              device_name, quantiles,
                                              context))
        if return_samples:
            return table, draws
        return table

    def predict_stamps(self, stamps, *, n_samples=50, seed=None,
                       batch_size=64, device='auto', quantiles=None,
                       return_samples=False, uncertainty_parts=False,
                       **kwargs):
        """
        Measure sources already cut into centred stamps (pixel units).

        The training, calibration and benchmark code use this; so can a
        user with their own stamps. Keywords as in `predict`.

        Parameters
        ----------
        stamps : array
            ``(N, stamp_size, stamp_size)``; NaN marks bad pixels
            (multi-band estimators also take a band axis last).

        Returns
        -------
        table : `~astropy.table.QTable`
            As `predict` without positions; lengths in pixels, angles from
            +x counter-clockwise.
        """
        from .device import resolve_device
        from .inputs import ImageData, Sources

        self._check_fitted()
        n_samples, batch_size, quantiles, seed = self._check_predict_args(
            n_samples, batch_size, quantiles, seed)
        device_name = resolve_device(device)
        stamps = self._stamp_array(stamps, kwargs)
        n = len(stamps)
        image = ImageData(np.zeros((1, 1)), np.zeros((1, 1), bool), None,
                          None, None, None, {})
        center = np.full(n, (self.stamp_size - 1) / 2)
        sources = Sources(np.arange(1, n + 1), center, center)
        flags = np.where(np.isfinite(stamps).reshape(n, -1).all(axis=1), 0,
                         1).astype(np.int32)
        columns, flags, draws, context = self._measure(
            stamps, None, flags, image, sources,
            n_samples=n_samples, seed=seed, batch_size=batch_size,
            device_name=device_name, quantiles=quantiles,
            progress_bar=False, uncertainty_parts=uncertainty_parts,
            **kwargs)
        table = build_table({'label': sources.label}, columns, flags,
                            self._meta(image, n_samples, seed, device_name,
                                       quantiles, context))
        if return_samples:
            return table, draws
        return table

    def _stamp_array(self, stamps, kwargs):
        """
        Check the stamps given to `predict_stamps`; a float32 array.

        Multi-band estimators override this (and may read or set entries of
        ``kwargs``, e.g. ``bands``).
        """
        stamps = np.array(stamps, dtype=np.float32, ndmin=3)
        size = self.stamp_size
        if stamps.ndim != 3 or stamps.shape[1:] != (size, size):
            msg = (f'stamps must have shape (N, {size}, {size}), got '
                   f'{stamps.shape}')
            raise ValueError(msg)
        return stamps

    def _measure(self, stamps, errors, flags, image, sources, *, n_samples,
                 seed, batch_size, device_name, quantiles, progress_bar,
                 uncertainty_parts=False, **kwargs):
        """
        Stamps -> output columns, flags and MC draws (full length), and
        the context `_prepare` made (for `_meta`).
        """
        usable = self._usable(stamps)
        flags = flags.copy()
        flags[~usable] |= 8
        context = self._prepare(stamps[usable],
                                None if errors is None else errors[usable],
                                image, sources, usable, **kwargs)
        raw = self._sample(context['inputs'], n_samples, seed, batch_size,
                           device_name, progress_bar)
        rng = np.random.default_rng(seed)
        draws, aleatoric, predictive = self._decode(raw, context, rng)
        units = self._output_units(image)
        columns, parts = summarize_draws(
            draws, aleatoric, units=units, periods=self._periods(),
            error_scale=self._error_scale(context), quantiles=quantiles,
            predictive=predictive)
        if uncertainty_parts:
            for name in draws:
                for part in ('epistemic', 'aleatoric'):
                    columns[f'{name}_err_{part}'] = (
                        parts[f'{name}_{part}'] * units[name])
        flags[usable] |= self._range_flags(draws, context)
        # Unusable sources get NaN rows (flag 8), never an exception.
        columns = {key: _expand(value.value, usable, value.unit)
                   for key, value in columns.items()}
        draws = {key: _expand(value, usable, units[key])
                 for key, value in draws.items()}
        return columns, flags, draws, context

    def save(self, directory, *, overwrite=False):
        """
        Save the fitted estimator as a directory usable by `from_preset`.

        Parameters
        ----------
        directory : path-like
            Created if needed; an existing non-empty directory is only
            replaced with ``overwrite=True``.
        overwrite : bool, optional
            Replace an existing directory's files.
        """
        self._check_fitted()
        return store.write_saved(directory, self.model_, self.get_config(),
                                 overwrite=overwrite,
                                 extra_models=self._extra_models())

    def _extra_models(self):
        """Networks saved next to ``model_`` (name -> `keras.Model`)."""
        return {}

    def _load_extra_models(self, directory):
        """Load what `_extra_models` saved (``directory`` is verified)."""

    @classmethod
    def from_preset(cls, preset):
        """
        Load a shipped preset, a plugin's preset, or a saved directory.

        The weight file is checked against the preset's sha256 manifest and
        loaded with Keras' ``safe_mode``; ``.h5`` files are refused.

        Parameters
        ----------
        preset : str or path-like
            Preset name (e.g. ``'galaxy-structure'``) or directory.
        """
        directory = store.find_preset(preset)
        config, model, sha = store.read_saved(directory)
        target = _class_from_path(config['class'])
        if not issubclass(target, cls):
            msg = (f'preset {str(preset)!r} holds a {target.__name__}, not a '
                   f'{cls.__name__}')
            raise TypeError(msg)
        estimator = target.from_config(config)
        estimator.model_ = model
        estimator.model_sha256_ = sha
        estimator._load_extra_models(directory)
        return estimator

    # -- shared private helpers -------------------------------------------

    def _read_and_cut(self, data, segmentation_image, positions,
                      pixel_scale, kwargs):
        """
        Read the data, locate the sources and cut their stamps.

        Multi-band estimators override this (and may consume entries of
        ``kwargs``, e.g. ``bands``).
        """
        image = read_image(data, pixel_scale=pixel_scale)
        sources = locate_sources(image, segmentation_image=segmentation_image,
                                 positions=positions)
        stamps, errors, flags = cut_stamps(image, sources, self.stamp_size)
        return image, sources, stamps, errors, flags

    def _check_fitted(self):
        if getattr(self, 'model_', None) is None:
            msg = (f'{type(self).__name__} has no trained model: load one '
                   f'with from_preset({self.default_preset!r}) or call fit')
            raise NotFittedError(msg)

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
            quantiles = tuple(float(q) for q in np.atleast_1d(quantiles))
            if not all(0.0 < q < 1.0 for q in quantiles):
                msg = f'quantiles must lie in (0, 1), got {quantiles}'
                raise ValueError(msg)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % 2**31)
        elif isinstance(seed, bool) or not isinstance(
                seed, (int, np.integer)) or seed < 0:
            msg = f'seed must be None or an integer >= 0, got {seed!r}'
            raise ValueError(msg)
        return int(n_samples), int(batch_size), quantiles, int(seed)

    def _usable(self, stamps):
        """Sources with finite pixels near the centre of their stamp."""
        size = stamps.shape[1]
        core = stamps[:, size // 2 - 3:size // 2 + 3,
                      size // 2 - 3:size // 2 + 3]
        return np.isfinite(core).reshape(len(stamps), -1).mean(1) >= 0.5

    def _engine(self):
        from .mc import MCDropoutEngine

        engine = getattr(self, '_engine_cache', None)
        if engine is None or engine[0] is not self.model_:
            engine = (self.model_, MCDropoutEngine(self.model_))
            self._engine_cache = engine
        return engine[1]

    def _sample(self, inputs, n_samples, seed, batch_size, device_name,
                progress_bar):
        import keras

        n_objects = len(inputs[0])
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_objects, desc=self.name, unit='source')
        try:
            with keras.device(device_name):
                return self._engine().sample(
                    inputs, n_samples, seed=seed, batch_size=batch_size,
                    progress=None if bar is None else bar.update)
        finally:
            if bar is not None:
                bar.close()

    def _periods(self):
        return {}

    def _error_scale(self, context):
        """Calibration factor of each ``_err`` (scalar or per source)."""
        return {}

    def _leading_columns(self, image, sources):
        from astropy import units as u

        columns = {'label': sources.label,
                   'x_centroid': sources.x * u.pix,
                   'y_centroid': sources.y * u.pix}
        if image.wcs is not None and getattr(image.wcs, 'has_celestial',
                                             False):
            columns['sky_centroid'] = image.wcs.pixel_to_world(sources.x,
                                                               sources.y)
        return columns

    def _meta(self, image, n_samples, seed, device_name, quantiles,
              context):
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
            'n_samples': n_samples,
            'seed': seed,
            'quantiles': list(quantiles or ()),
            'device': device_name,
            'backend': backend,
            'backend_version': backend_version,
            'keras_version': keras.__version__,
            'date_predicted': time.strftime('%Y-%m-%dT%H:%M:%S'),
            'flags': dict(FLAGS),
        }
        return meta


def _expand(values, usable, unit):
    """Rows of the usable sources -> all sources, NaN for the others."""
    out = np.full((len(usable),) + values.shape[1:], np.nan)
    out[usable] = values
    return out * unit


def _class_from_path(path):
    module, _, qualname = path.rpartition('.')
    try:
        return getattr(import_module(module), qualname)
    except (ImportError, AttributeError) as exc:
        msg = f'cannot import estimator class {path!r}: {exc}'
        raise ValueError(msg) from None
