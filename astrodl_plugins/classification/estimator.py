# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The multi-band source classifiers: star/galaxy and galaxy morphology.

Both are fill-ins of the *source stamps* family
(`~astrodl_plugins.core.stamps.SourceStampEstimator`), which reads one
image per band, estimates the PSF when it is not given and tiles the
rotations and flips for ``tta=True``; they add the scaling of the stamps
(`_prepare`), the calibrated probabilities (`_decode`), the ``class`` and
entropy columns, and the training hooks of
`~astrodl_plugins.training.mixin.TrainableMixin`.
"""

import numpy as np

from ..core.base import Draws
from ..core.dihedral import pool_views
from ..core.stamps import SourceStampEstimator
from ..training.mixin import TrainableMixin, TrainingTask
from . import network as net

__all__ = ['ClassProbabilities', 'class_indices', 'SourceClassifier',
           'StarGalaxyClassifier', 'GalaxyMorphology', 'check_class_prior']


def check_class_prior(prior, classes):
    """
    A classifier's ``class_prior`` as an array in ``classes`` order.

    Parameters
    ----------
    prior : sequence, dict or None
        One fraction per class (a sequence in ``classes`` order, or a dict
        by class name).
    classes : tuple of str
        The classifier's classes.

    Returns
    -------
    `~numpy.ndarray` or None
        `None` for ``prior=None``.

    Raises
    ------
    ValueError
        If ``prior`` is not one fraction in (0, 1) per class summing to 1.
    """
    if prior is None:
        return None
    n = len(classes)
    if isinstance(prior, dict):
        if sorted(prior) != sorted(classes):
            msg = (f'class_prior must give a fraction for each of '
                   f'{tuple(classes)}, got keys {sorted(prior)}')
            raise ValueError(msg)
        prior = [prior[name] for name in classes]
    try:
        values = np.asarray(prior, np.float64)
    except (TypeError, ValueError):
        values = np.array([])
    if (values.shape != (n,) or not np.all(np.isfinite(values))
            or np.any(values <= 0) or np.any(values >= 1)
            or abs(values.sum() - 1.0) > 1e-6):
        msg = (f'class_prior must be {n} fractions in (0, 1), one per class '
               f'of {tuple(classes)}, summing to 1; got {prior!r}')
        raise ValueError(msg)
    return values


class ClassProbabilities:
    """
    Calibrated class probabilities from a network's logits: the part of
    a classifier that does not depend on its input family.

    Mixed into `SourceClassifier` (source stamps) and the transit vetter
    (1-D): ``classes`` names the network's outputs; ``p_<class>`` is the
    MC-dropout mean of the temperature-calibrated softmax (``temperature_``)
    with ``p_<class>_err`` the spread of the draws; ``class`` (the most
    probable), ``entropy`` (of the mean probabilities, nats) and
    ``mutual_information`` (its epistemic part: entropy of the mean
    minus mean entropy of the draws; Gal 2016) follow. ``class_prior``
    (a constructor parameter of the estimator) turns the probabilities
    into those of another population by Bayes' rule, draw by draw
    (Saerens et al. 2002).
    """

    #: Class names, in the network's output order.
    classes = ()
    class_prior = None

    @property
    def output_names(self):
        """Probability columns, ``p_<class>``."""
        return tuple(f'p_{name}' for name in self.classes)

    # -- state ---------------------------------------------------------------

    def _get_state(self):
        state = {'temperature': float(getattr(self, 'temperature_', 1.0))}
        if getattr(self, 'training_prior_', None) is not None:
            state['training_prior'] = [float(v) for v in
                                       self.training_prior_]
        return state

    def _set_state(self, state):
        self.temperature_ = float(state.get('temperature', 1.0))
        if state.get('training_prior') is not None:
            self.training_prior_ = [float(v)
                                    for v in state['training_prior']]

    def prior_weights(self):
        """
        The factors that turn the calibrated probabilities into those of a
        population with ``class_prior``: ``class_prior`` over the class
        fractions of the calibration set (``training_prior_``; equal
        fractions if unknown), one per class; `None` when ``class_prior``
        is `None`.

        Raises
        ------
        ValueError
            If ``class_prior`` is not one fraction in (0, 1) per class
            (a sequence in ``classes`` order or a dict by class name)
            summing to 1.
        """
        prior = self._class_prior_values()
        if prior is None:
            return None
        n = len(self.classes)
        trained = getattr(self, 'training_prior_', None)
        return prior / np.asarray(trained if trained is not None
                                  else np.full(n, 1.0 / n), np.float64)

    def _class_prior_values(self):
        """``class_prior`` checked, as an array in class order (or None)."""
        return check_class_prior(self.class_prior, self.classes)

    def _probability_draws(self, raw):
        """Logit draws ``(n, T, k)`` -> `Draws` of the probabilities."""
        probabilities = net.softmax(raw, getattr(self, 'temperature_', 1.0))
        weights = self.prior_weights()
        if weights is not None:
            # Bayes' rule for another population, draw by draw.
            probabilities = probabilities * weights
            probabilities /= probabilities.sum(-1, keepdims=True)
        values = {name: probabilities[..., k]
                  for k, name in enumerate(self.output_names)}
        zeros = {key: np.zeros_like(value) for key, value in values.items()}
        return Draws(values, zeros, values)

    def _extra_columns(self, columns, draws, context):
        out = {key: value for name in self.output_names
               for key, value in columns.items()
               if key == name or key.startswith(f'{name}_')}
        probabilities = np.stack([np.asarray(draws[name])
                                  for name in self.output_names], axis=-1)
        mean = probabilities.mean(axis=1)
        with np.errstate(invalid='ignore', divide='ignore'):
            entropy = -np.sum(np.where(mean > 0, mean * np.log(mean), 0.0),
                              axis=-1)
            each = -np.sum(np.where(probabilities > 0,
                                    probabilities * np.log(probabilities),
                                    0.0), axis=-1)
        good = np.isfinite(mean).all(-1)
        best = np.argmax(np.where(np.isfinite(mean), mean, -1), axis=-1)
        out['class'] = np.where(good, np.asarray(self.classes)[best], '')
        # Plain columns, like the probabilities (nats: meta entropy_unit).
        out['entropy'] = np.where(good, entropy, np.nan)
        mutual = np.clip(entropy - each.mean(-1), 0.0, None)
        out['mutual_information'] = np.where(good, mutual, np.nan)
        return out

    def _extra_meta(self, context):
        return {'classes': list(self.classes),
                'temperature': float(getattr(self, 'temperature_', 1.0)),
                'class_prior': (None if self.class_prior is None else dict(
                    zip(self.classes,
                        self._class_prior_values().tolist()))),
                'entropy_unit': 'nat'}


class SourceClassifier(ClassProbabilities, TrainableMixin,
                       SourceStampEstimator):
    """
    Base class of the multi-band classifiers with MC-dropout probabilities.

    `predict` takes one image per band (or a cube) and returns, for each
    class ``c`` of ``classes``, ``p_<c>`` (the MC-dropout mean of the
    temperature-calibrated softmax) with ``p_<c>_err`` (the spread of the
    draws), then ``class`` (the most probable), ``entropy`` (of the mean
    probabilities, nats) and ``mutual_information`` (its epistemic part:
    entropy of the mean minus mean entropy of the draws; Gal 2016).
    The probabilities are calibrated for the class fractions of the
    simulated calibration set; ``class_prior`` (one fraction per class, a
    sequence in ``classes`` order or a dict, as scikit-learn's
    ``GaussianNB(priors=...)``) gives those of the population you measure
    instead (Bayes' rule, draw by draw; Saerens et al. 2002): a field
    where nine sources in ten are stars, or lenses that are one galaxy in
    a thousand. `predict_stamps` takes stamps ``(N, size, size[, bands])`` and
    ``psf_fwhm`` (pixels, reference band).

    ``fit(stamps, labels, psf_fwhm=..., bands=None, ...)`` trains from
    scratch, or fine-tunes the loaded model: ``labels`` are class names or
    indices, ``psf_fwhm`` the PSF FWHM (pixels, reference band) of each
    stamp, ``bands`` the band of each channel (default: the reference band
    for one). From scratch with all bands, training draws random band
    subsets so that any subset works at prediction; batches are randomly
    rotated and flipped (Dieleman et al. 2015) unless ``augment=False``.
    ``validation_data`` is ``(stamps, labels, psf_fwhm)``. ``freeze``
    (fine-tuning): ``'conv'`` freezes every convolutional layer, ``k`` the
    first ``k`` convolutional blocks. Defaults: 15 epochs, batches of
    256, patience 3, learning rate 1e-3 (1e-4 when fine-tuning).
    """

    task = 'classification'
    version = '1.0'
    bands = ('g', 'r', 'i')
    default_band = 'r'
    psf = 'estimate'
    supports_tta = True
    range_margins = {'psf_fwhm': (0.05, 0.05)}
    #: Scatter (natural log) of the factor by which training multiplies
    #: the PSF FWHM given to the network (0: exact). A PSF estimated from
    #: real stars is approximate, and a network told the exact PSF in
    #: training draws a star/galaxy boundary that moves with it (on real
    #: images, 20 % on the PSF moved a tenth of a field's calls). The
    #: shipped presets were trained with 0.
    psf_jitter = 0.0

    def __init__(self, stamp_size=32, widths=(16, 32, 64), dense=128,
                 dropout=0.25, scaling='flux', class_prior=None):
        self.stamp_size = stamp_size
        self.widths = widths
        self.dense = dense
        self.dropout = dropout
        self.scaling = scaling
        self.class_prior = class_prior

    # -- hooks of the source-stamps family -----------------------------------

    def _prepare(self, stamps, errors, context):
        self._class_prior_values()  # a bad prior fails before the network
        psf = context.psf_fwhm[context.usable]
        context.aux['psf_fwhm'] = psf
        arrays, npix = net.input_arrays(
            net.to_model_bands(stamps, context.bands), psf)
        return net.scaled_inputs(arrays, npix,
                                 net.present_bands(stamps, context.bands),
                                 self.scaling)

    def _decode(self, raw, context, rng):
        if context.options['tta']:
            raw = pool_views(raw)
        return self._probability_draws(raw)

    def _extra_meta(self, context):
        return {**super()._extra_meta(context),
                'bands': list(context.bands), 'tta': context.options['tta']}

    # -- hooks of TrainableMixin ---------------------------------------------

    def _training_data(self, stamps, labels, psf_fwhm, bands=None):
        """
        ``(stamps, labels, psf_fwhm, present)``: stamps in the model's band
        order, class indices, PSF FWHM and band-presence flags per stamp.
        """
        stamps, bands = self._stamp_array(stamps, bands)
        targets = class_indices(labels, self.classes)
        if len(targets) != len(stamps):
            msg = f'{len(targets)} labels for {len(stamps)} stamps'
            raise ValueError(msg)
        psf = np.broadcast_to(np.asarray(psf_fwhm, np.float32),
                              (len(stamps),)).copy()
        return (net.to_model_bands(stamps, bands), targets, psf,
                net.presence(bands, len(stamps)))

    def _training_tasks(self, train, validation, *, new, augment, seed):
        import keras

        from ..training.augment import random_dihedral

        stamps, targets, psf, present = train
        arrays, npix = net.input_arrays(stamps, psf)
        jitter = float(self.psf_jitter)
        # The validation set gets the same (fixed) PSF errors.
        val_psf = validation[2] * np.exp(np.random.default_rng(
            seed + 2).normal(0.0, jitter, len(validation[2])))
        val_arrays, _ = net.input_arrays(validation[0],
                                         val_psf.astype(np.float32))
        # All bands given: random band subsets, so that any subset works.
        all_bands = bool(np.all(present == 1))
        val_present = (net.random_band_subsets(np.random.default_rng(
            seed + 1), len(validation[0])) if all_bands else validation[3])
        scaling = self.scaling

        def prepare(inputs, batch_targets, rng):
            *batch, batch_present = inputs
            if jitter:
                batch[3] = (batch[3] * np.exp(rng.normal(
                    0.0, jitter, len(batch_targets)))).astype(np.float32)
            if all_bands:
                batch_present = net.random_band_subsets(rng,
                                                        len(batch_targets))
            x, conditions = net.scaled_inputs(batch, npix, batch_present,
                                              scaling)
            if augment:
                x = random_dihedral(x, rng)[0]
            return [x, conditions], batch_targets

        build = self._build_network

        if new:
            self.temperature_ = 1.0
        return [TrainingTask(
            'model', build, train=([*arrays, present], targets),
            validation=(net.scaled_inputs(val_arrays, npix, val_present,
                                          scaling), validation[1]),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            prepare=prepare, epochs=15, batch_size=256, patience=3,
            learning_rate=1e-3)]

    def _build_network(self):
        """A new, untrained network (the VGG-like classifier)."""
        return net.build_classifier(
            self.stamp_size, len(self.classes), widths=self.widths,
            dense=self.dense, dropout=self.dropout)

    def _freeze(self, network, freeze):
        """``'conv'``: every convolution; ``k``: the first ``k`` blocks."""
        import keras

        if freeze is None:
            return
        convs = [layer for layer in network.layers
                 if isinstance(layer, keras.layers.Conv2D)]
        if freeze == 'conv':
            n_convs = len(convs)
        elif isinstance(freeze, (int, np.integer)) and not isinstance(
                freeze, bool) and freeze >= 0:
            n_convs = 2 * int(freeze)  # two convolutions per block
        else:
            msg = ("freeze must be None, 'conv' or an integer >= 0, got "
                   f'{freeze!r}')
            raise ValueError(msg)
        if not n_convs:
            return
        # Everything up to the last frozen convolution's block (its BN too).
        stop = network.layers.index(convs[n_convs - 1]) + 2
        for layer in network.layers[:stop]:
            layer.trainable = False


def class_indices(labels, classes):
    """Class names or indices -> integer indices, checked (clear errors)."""
    labels = np.asarray(labels)
    if labels.dtype.kind in 'US':
        unknown = sorted(set(labels.tolist()) - set(classes))
        if unknown:
            msg = f'labels {unknown} are not classes of the model: {classes}'
            raise ValueError(msg)
        lookup = {name: k for k, name in enumerate(classes)}
        return np.array([lookup[name] for name in labels], np.int64)
    if labels.dtype.kind not in 'iu':
        msg = f'labels must be class names or integers, got {labels.dtype}'
        raise TypeError(msg)
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        msg = f'labels must lie in 0..{len(classes) - 1}'
        raise ValueError(msg)
    return labels.astype(np.int64)


class StarGalaxyClassifier(SourceClassifier):
    """
    Star/galaxy separation from multi-band stamps with a CNN and MC dropout.

    Returns ``p_star`` and ``p_galaxy`` (each with ``_err``, the MC-dropout
    spread), ``class``, ``entropy`` and ``mutual_information``. Works with
    any subset of the bands ``g``, ``r``, ``i`` (one band too): the
    network was trained on random band subsets. The probabilities are
    temperature-calibrated on held-out simulations.

    The shipped preset ``'star-galaxy'`` was trained by
    ``astrodl train star-galaxy`` on GalSim simulations (see its model
    card): PSF FWHM 1.5-6 pix, S/N 5-1000 in the reference band,
    galaxies with half-light radii of 0.35-5 PSF FWHM. Sources whose PSF
    is outside that range are flagged ``OUT_OF_RANGE``.

    Parameters
    ----------
    stamp_size : int, optional
        Side of the square stamp around each source, pixels.
    widths : tuple of int, optional
        Filters of the convolutional blocks.
    dense : int, optional
        Units of the dense layers.
    dropout : float, optional
        MC-dropout rate.
    scaling : {'flux', 'noise', 'hybrid'}, optional
        How stamps are scaled for the network (see
        ``classification.network.network_inputs``); default ``'hybrid'``.
    class_prior : sequence or dict, optional
        Fractions of stars and galaxies among the sources measured
        (default: those of the simulations, half and half).

    Examples
    --------
    >>> import astrodl_plugins as adl
    >>> est = adl.get_estimator('star-galaxy')
    >>> est.output_names
    ('p_star', 'p_galaxy')
    """

    name = 'star-galaxy'
    description = ('Star/galaxy separation from 1-3 bands (g, r, i) with '
                   'calibrated MC-dropout probabilities (Kim & Brunner 2016)')
    default_preset = 'star-galaxy'
    classes = ('star', 'galaxy')

    def __init__(self, stamp_size=32, widths=(16, 32, 64), dense=128,
                 dropout=0.25, scaling='hybrid', class_prior=None):
        super().__init__(stamp_size=stamp_size, widths=widths, dense=dense,
                         dropout=dropout, scaling=scaling,
                         class_prior=class_prior)


class GalaxyMorphology(SourceClassifier):
    """
    Visual-like morphology (CANDELS scheme) from a CNN with MC dropout.

    Classes: ``spheroid``, ``disk``, ``irregular``, ``point_source`` and
    ``unclassifiable`` (too faint, an artefact, or cut by the detector
    edge), after Huertas-Company et al. (2015), with the rotation and flip
    augmentation of Dieleman et al. (2015) in training and optionally at
    prediction (``tta=True``). Returns ``p_<class>`` with ``_err`` for each
    class, ``class``, ``entropy`` and ``mutual_information``. Works with
    any subset of the bands ``g``, ``r``, ``i``.

    The shipped preset ``'galaxy-morphology'`` was trained by
    ``astrodl train galaxy-morphology`` on GalSim simulations (see its
    model card): PSF FWHM 1.5-5 pix, galaxies with half-light radii of
    0.8-3.5 PSF FWHM and S/N 20-1000. Sources whose PSF is outside that
    range are flagged ``OUT_OF_RANGE``.

    Parameters
    ----------
    stamp_size : int, optional
        Side of the square stamp around each source, pixels.
    widths : tuple of int, optional
        Filters of the convolutional blocks.
    dense : int, optional
        Units of the dense layers.
    dropout : float, optional
        MC-dropout rate.
    scaling : {'flux', 'noise'}, optional
        How stamps are scaled for the network (see
        ``classification.network.network_inputs``); default ``'flux'``.

    Examples
    --------
    >>> import astrodl_plugins as adl
    >>> est = adl.get_estimator('galaxy-morphology')
    >>> est.classes
    ('spheroid', 'disk', 'irregular', 'point_source', 'unclassifiable')
    """

    name = 'galaxy-morphology'
    description = ('Spheroid / disk / irregular / point source / '
                   'unclassifiable from 1-3 bands, calibrated MC-dropout '
                   'probabilities (Huertas-Company et al. 2015)')
    default_preset = 'galaxy-morphology'
    classes = ('spheroid', 'disk', 'irregular', 'point_source',
               'unclassifiable')

    def __init__(self, stamp_size=48, widths=(16, 32, 64), dense=128,
                 dropout=0.25, scaling='flux', class_prior=None):
        super().__init__(stamp_size=stamp_size, widths=widths, dense=dense,
                         dropout=dropout, scaling=scaling,
                         class_prior=class_prior)
