# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Monte Carlo dropout (Gal & Ghahramani 2016) with a fast, seeded engine.

Dropout stays on at inference through `MCDropout`, a layer whose ``call``
always drops. The model itself is always called with ``training=False``, so
BatchNormalization keeps using (and never updates) its moving statistics;
calling a Keras model with ``training=True`` to get MC samples would corrupt
them.

`MCDropoutEngine` splits a model at its first `MCDropout` layer. The layers
before it contain no randomness: they run once per batch. The ``n_samples``
draws of the rest run as one enlarged batch (``batch_size * n_samples``
rows), so every row gets an independent dropout mask.

The engine is safe to share between threads: the dropout layers' random
state and their on/off switch belong to the model, so one call's draws
run under the engine's lock and concurrent calls give exactly the serial
result. The memory of the draws is checked before any is made, against
``conf.memory_budget`` (GiB, an `astropy.config` item of this package).
"""

import threading

import keras
import numpy as np
from astropy import config as _config

__all__ = ['MCDropout', 'MCDropoutEngine', 'Conf', 'conf',
           'check_draws_memory']


class Conf(_config.ConfigNamespace):
    """Configuration of the MC-dropout engine (``astrodl_plugins.conf``)."""

    memory_budget = _config.ConfigItem(
        4.0, 'Largest memory, in GiB, that the MC draws of one predict call '
        'may take (the draws and their summaries, in float64); a call that '
        'would need more is refused before any network runs.')
    max_rows = _config.ConfigItem(
        16384, 'Largest number of rows (sources x draws) in one call of the '
        'network head; more draws run in chunks.')


conf = Conf()

#: float64 arrays of the draws' size alive at once while they are
#: decoded and summarized (draws, predictive draws, sorted copies).
_DRAW_COPIES = 4


def check_draws_memory(n_objects, n_draws, n_outputs):
    """
    Refuse a call whose MC draws would not fit ``conf.memory_budget``.

    Parameters
    ----------
    n_objects, n_draws, n_outputs : int
        Rows, draws per row (``n_samples``, times the test-time
        augmentations) and network outputs per draw.

    Raises
    ------
    ValueError
        Naming ``n_samples`` and the memory it would need.
    """
    need = float(n_objects) * n_draws * n_outputs * 8 * _DRAW_COPIES
    budget = float(conf.memory_budget) * 2**30
    if need > budget:
        msg = (f'n_samples: {n_draws} draws of {n_objects} sources would '
               f'need about {need / 2**30:.3g} GiB for the MC draws, more '
               f'than the memory budget of {conf.memory_budget:g} GiB: ask '
               'for fewer samples, predict fewer sources per call, or raise '
               'astrodl_plugins.conf.memory_budget')
        raise ValueError(msg)


@keras.saving.register_keras_serializable(package='astrodl_plugins')
class MCDropout(keras.layers.Layer):
    """
    Dropout that stays active at inference.

    Parameters
    ----------
    rate : float
        Fraction of units dropped, in [0, 1).
    seed : int, optional
        Initial seed of the layer's `keras.random.SeedGenerator`.
    **kwargs
        Passed to `keras.layers.Layer`.

    Notes
    -----
    The public attribute ``mc_enabled`` (default `True`) lets the engine make
    one deterministic pass; it is a Python attribute read at call time, so it
    only acts on eager calls, which is how the engine calls the model.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            msg = f'rate must be in [0, 1), got {rate!r}'
            raise ValueError(msg)
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.mc_enabled = True

    def call(self, inputs, training=None):
        """Drop units unless ``mc_enabled`` is False (``training`` ignored)."""
        if not self.mc_enabled or self.rate == 0.0:
            return inputs
        return keras.random.dropout(inputs, self.rate,
                                    seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape

    def get_config(self):
        """Layer config, with ``rate`` and ``seed``."""
        config = super().get_config()
        config.update({'rate': self.rate, 'seed': self.seed})
        return config

    def reseed(self, seed):
        """Reset the random state so the next masks are set by ``seed``."""
        state = self.seed_generator.state
        value = np.array([seed % 2**31, (seed // 2**31) % 2**31])
        state.assign(keras.ops.cast(value, state.dtype))


def _mc_layers(model):
    return [layer for layer in _walk(model) if isinstance(layer, MCDropout)]


def _walk(layer):
    yield layer
    for sub in getattr(layer, 'layers', []):
        yield from _walk(sub)


class MCDropoutEngine:
    """
    Draw MC-dropout samples of a Keras model's output.

    Parameters
    ----------
    model : `keras.Model`
        A functional model containing at least one `MCDropout` layer
        (models without one give a single deterministic draw).

    Attributes
    ----------
    split : bool
        Whether the model could be split at its first `MCDropout` layer. If
        not (e.g. a subclassed model), every draw is a full forward pass: the
        result is the same, only slower.
    """

    def __init__(self, model):
        # Cutting a model adds inbound nodes to its layers, after which
        # Keras can no longer save it: cut a copy instead (same weights,
        # so a later fit of the original needs a new engine).
        try:
            clone = keras.models.clone_model(model)
            clone.set_weights(model.get_weights())
            model = clone
        except Exception:  # noqa: BLE001 - subclassed models: no clone
            pass
        self.model = model
        # The dropout layers' random state and on/off switch belong to the
        # model: one call's draws hold the lock (concurrent = serial).
        self._lock = threading.RLock()
        self.dropout_layers = _mc_layers(model)
        self.trunk, self.head, self.head_extra = self._split(model)
        self.split = self.trunk is not None

    def _split(self, model):
        """Cut a functional model at the input of its first MCDropout."""
        first = next((layer for layer in model.layers
                      if isinstance(layer, MCDropout)), None)
        if first is None or not hasattr(model, 'inputs'):
            return None, None, None
        try:
            cut = first.input
            trunk_inputs = [t for t in model.inputs
                            if _depends_on(cut, t)]
            extra = [i for i, t in enumerate(model.inputs)
                     if not _depends_on(cut, t)]
            trunk = keras.Model(trunk_inputs, cut)
            head = keras.Model([cut] + [model.inputs[i] for i in extra],
                               model.outputs)
        except Exception:  # noqa: BLE001 - any failure: use full passes
            return None, None, None
        trunk_index = [i for i, t in enumerate(model.inputs)
                       if _depends_on(cut, t)]
        return (trunk, trunk_index), head, extra

    def sample(self, inputs, n_samples, *, seed, batch_size=256,
               progress=None, features=None):
        """
        Run the model ``n_samples`` times with independent dropout masks.

        Parameters
        ----------
        inputs : list of `~numpy.ndarray`
            The model inputs, in the order of ``model.inputs``; all share the
            first (object) axis.
        n_samples : int
            Number of MC draws; ``0`` gives one deterministic pass with
            dropout off.
        seed : int
            Seed of the dropout masks: the same seed gives the same output.
        batch_size : int, optional
            Objects per batch; the enlarged batch has
            ``batch_size * n_samples`` rows, which bounds the memory.
        progress : callable, optional
            Called with the number of objects done after each batch.
        features : list, optional
            When given (and the model is split), the trunk's output of each
            batch is appended to it: the features the head sees, computed
            once anyway (see `features`).

        Returns
        -------
        draws : `~numpy.ndarray`
            Shape ``(n_objects, max(n_samples, 1), n_outputs)``.

        Raises
        ------
        ValueError
            The draws would not fit ``conf.memory_budget``.
        """
        try:
            n_out = int(np.prod(self.model.outputs[0].shape[1:]))
        except (AttributeError, IndexError, TypeError):
            n_out = 1  # a subclassed model: its outputs are not declared
        check_draws_memory(len(inputs[0]), max(n_samples, 1), n_out)
        with self._lock:
            return self._sample(inputs, n_samples, seed, batch_size,
                                progress, features)

    def _sample(self, inputs, n_samples, seed, batch_size, progress,
                features):
        n_objects = len(inputs[0])
        deterministic = n_samples == 0
        n_draws = max(n_samples, 1)
        for layer in self.dropout_layers:
            layer.mc_enabled = not deterministic
        outputs = []
        try:
            for index, start in enumerate(range(0, n_objects, batch_size)):
                batch = [np.asarray(x[start:start + batch_size])
                         for x in inputs]
                for number, layer in enumerate(self.dropout_layers):
                    layer.reseed(seed * 1_000_003 + index * 101 + number)
                outputs.append(self._draw_batch(batch, n_draws, features))
                if progress is not None:
                    progress(len(batch[0]))
        finally:
            for layer in self.dropout_layers:
                layer.mc_enabled = True
        if not outputs:
            n_out = self.model.outputs[0].shape[-1]
            return np.empty((0, n_draws, n_out), dtype=np.float32)
        return np.concatenate(outputs)

    def _run(self, model, inputs, random=True):
        """
        One forward pass in inference mode, as a NumPy array.

        ``predict_on_batch`` runs a compiled (traced) function, ~30 %
        faster than an eager call on CPU. It is traced with the dropout
        layers on, so the deterministic pass (dropout off) is eager.
        """
        if random or not self.dropout_layers:
            return np.asarray(model.predict_on_batch(inputs))
        return keras.ops.convert_to_numpy(model(inputs, training=False))

    def features(self, inputs, *, batch_size=256):
        """
        The trunk's output (the input of the first `MCDropout`) of each
        object: deterministic features, or `None` for an unsplit model.
        """
        if not self.split:
            return None
        trunk, trunk_index = self.trunk
        with self._lock:
            out = [np.asarray(trunk.predict_on_batch(
                [np.asarray(inputs[i][start:start + batch_size])
                 for i in trunk_index]))
                for start in range(0, len(inputs[0]), batch_size)]
        if not out:
            return np.empty((0,) + tuple(trunk.outputs[0].shape[1:]),
                            np.float32)
        return np.concatenate(out)

    def _draw_batch(self, batch, n_draws, collect=None):
        size = len(batch[0])
        random = all(layer.mc_enabled for layer in self.dropout_layers)
        if not self.split:
            draws = [self._run(self.model, batch, random)
                     for _ in range(n_draws)]
            return np.stack(draws, axis=1)
        trunk, trunk_index = self.trunk
        features = np.asarray(trunk.predict_on_batch(
            [batch[i] for i in trunk_index]))
        if collect is not None:
            collect.append(features)
        if n_draws == 1:
            repeated = [features] + [batch[i] for i in self.head_extra]
            return self._run(self.head, repeated, random).reshape(size, 1, -1)
        # At most conf.max_rows rows per head call: many draws run in
        # chunks of draws (the same masks as one call: the dropout seed
        # generator advances from chunk to chunk).
        chunk = max(1, int(conf.max_rows) // max(size, 1))
        out = []
        for first in range(0, n_draws, chunk):
            count = min(chunk, n_draws - first)
            repeated = [np.repeat(features, count, axis=0)]
            repeated += [np.repeat(batch[i], count, axis=0)
                         for i in self.head_extra]
            out.append(self._run(self.head, repeated, random).reshape(
                size, count, -1))
        return np.concatenate(out, axis=1)

    def naive_sample(self, inputs, n_samples, *, seed):
        """
        Reference implementation: ``n_samples`` full forward passes.

        Used by the tests (the same distribution) and the benchmark (the
        speed-up); not by the estimators. It runs the same compiled
        forward pass as `sample`, so the benchmark compares like with like.
        """
        with self._lock:
            for number, layer in enumerate(self.dropout_layers):
                layer.reseed(seed + number)
            draws = [self._run(self.model, inputs) for _ in range(n_samples)]
        return np.stack(draws, axis=1)


def _depends_on(tensor, source):
    """Whether the symbolic ``tensor`` is computed from ``source``."""
    seen = set()
    stack = [tensor]
    while stack:
        current = stack.pop()
        if current is source:
            return True
        key = id(current)
        if key in seen:
            continue
        seen.add(key)
        history = getattr(current, '_keras_history', None)
        if history is None:
            continue
        operation = history[0]
        node = operation._inbound_nodes[history[1]]
        stack.extend(node.input_tensors)
    return False
