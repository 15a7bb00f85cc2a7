# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The strong-lens estimators: ``lens-finder`` and ``lens-parameters``.

Both are fill-ins of the *source stamps* family
(`~astrodl_plugins.core.stamps.SourceStampEstimator`) and read multi-band
stamps as the source classifiers do (any subset of ``g``, ``r``, ``i``;
the PSF estimated from the image's point sources when not given).
`LensFinder` is a `~astrodl_plugins.classification.SourceClassifier` with
a residual trunk; `LensParameters` regresses the lens model with an
aleatoric head and MC dropout.
"""

import os

import numpy as np
from astropy import units as u

from ..classification import network as cnet
from ..classification.estimator import SourceClassifier
from ..core.base import Draws
from ..core.flags import SourceFlags
from ..core.stamps import SourceStampEstimator
from ..training.mixin import TrainableMixin, TrainingTask
from . import network as net

__all__ = ['LensFinder', 'LensParameters', 'SURVEY_LENS_FRACTION']

_FRAME_DOC = ('e1, e2 (SIE ellipticity, (1 - q) / (1 + q) times cos/sin '
              'of twice the major-axis angle) and gamma1, gamma2 (external '
              'shear) are in the pixel frame, angles counter-clockwise '
              'from +x (lenstronomy conventions)')


#: The default fraction of lenses among the sources given to the lens
#: finder: of order one in a thousand massive galaxies (Collett 2015;
#: Metcalf et al. 2019), fewer among all the sources of a survey.
SURVEY_LENS_FRACTION = 1e-3


class LensFinder(SourceClassifier):
    """
    Galaxy-scale strong-lens finder: a residual CNN with MC dropout.

    Returns ``p_lens`` and ``p_non_lens`` (each with ``_err``, the
    MC-dropout spread), ``class``, ``entropy`` and ``mutual_information``
    (nats), ``ood_score`` and ``flag`` (``UNFAMILIAR`` for stamps unlike
    the training simulations), for each source of an image (from
    ``positions`` or a ``segmentation_image``). Works with any subset of
    the bands ``g``, ``r``, ``i`` (one band too: trained on random band
    subsets). The probabilities are temperature-calibrated on held-out
    simulations and then given for the population the finder is run on:
    ``class_prior`` defaults to one lens in a thousand sources
    (`SURVEY_LENS_FRACTION`; strong lenses are of order one in a thousand
    massive galaxies and rarer among all sources), so ``p_lens`` is the
    probability that this source is a lens, not the score of a balanced
    test set, and a ``p_lens`` above 0.5 needs evidence a thousand times
    stronger than a coin flip. For a preselected sample pass its own
    fraction (``class_prior=(0.1, 0.9)``); for the score of the balanced
    simulations, ``class_prior=None``. The ranking, and every metric of
    the model card, are the same for any prior: sort by ``p_lens`` and
    inspect the top candidates.

    The shipped preset ``'lens-finder'`` was trained by ``astrodl train
    lens-finder`` on lenstronomy simulations
    (`~astrodl_plugins.simulate.simulate_lens_stamps`: SIE + shear lenses
    of knotty Sersic sources, and eight classes of lens-like non-lenses;
    see its model card): Einstein radii of 0.5-3 arcsec at 0.16-0.27
    arcsec per pixel, PSF FWHM 0.5-1.2 arcsec, lensed-source S/N 5-200.
    Stamps are 48 pixels: a larger source is measured on the image
    block-summed to fit (column ``rescale``).

    Parameters
    ----------
    stamp_size : int, optional
        Side of the square stamp around each source, pixels.
    widths : tuple of int, optional
        Filters of the residual stages.
    blocks : tuple of int, optional
        Residual blocks per stage.
    dense : int, optional
        Units of the dense layers.
    dropout : float, optional
        MC-dropout rate.
    scaling : {'noise', 'flux', 'hybrid'}, optional
        How stamps are scaled for the network (see
        ``classification.network.network_inputs``); default ``'noise'``
        (faint arcs stay linear next to a bright deflector).
    colour_residual : bool, optional
        Add the colour-difference image (bluest band minus the scaled
        reddest, which removes the deflector's light; ``lenses.network.
        colour_residual``) to the input channels.
    class_prior : sequence or dict, optional
        Fractions of lenses and non-lenses among the sources measured;
        default ``(SURVEY_LENS_FRACTION, 1 - SURVEY_LENS_FRACTION)``;
        `None` for those of the calibration simulations.

    Examples
    --------
    >>> import astrodl_plugins as adl
    >>> est = adl.get_estimator('lens-finder')
    >>> est.output_names
    ('p_lens', 'p_non_lens')
    """

    name = 'lens-finder'
    description = ('Galaxy-scale strong-lens finder from 1-3 bands, '
                   'calibrated MC-dropout p_lens (Lanusse et al. 2018)')
    default_preset = 'lens-finder'
    classes = ('lens', 'non_lens')

    def __init__(self, stamp_size=48, widths=(16, 32, 64), blocks=(1, 2, 2),
                 dense=128, dropout=0.25, scaling='noise',
                 colour_residual=True,
                 class_prior=(SURVEY_LENS_FRACTION,
                              1.0 - SURVEY_LENS_FRACTION)):
        super().__init__(stamp_size=stamp_size, widths=widths, dense=dense,
                         dropout=dropout, scaling=scaling,
                         class_prior=class_prior)
        self.blocks = blocks
        self.colour_residual = colour_residual

    def _build_network(self):
        """A new residual network with two logits."""
        return net.build_resnet(self.stamp_size, len(self.classes),
                                channels=2 * len(self.bands)
                                + int(bool(self.colour_residual)),
                                widths=self.widths, blocks=self.blocks,
                                dense=self.dense, dropout=self.dropout,
                                name='lens_finder')

    def _prepare(self, stamps, errors, context):
        """The classifiers' inputs, with the point-symmetric residuals."""
        x, conditions = super()._prepare(stamps, errors, context)
        return [net.finder_channels(x, self.colour_residual), conditions]

    def _training_tasks(self, train, validation, *, new, augment, seed):
        """
        The classifiers' training, with the residual channels added to
        every (augmented) batch, batches of 128.
        """
        tasks = super()._training_tasks(train, validation, new=new,
                                        augment=augment, seed=seed)
        task = tasks[0]
        inner = task.prepare

        def prepare(inputs, targets, rng):
            (x, conditions), targets = inner(inputs, targets, rng)
            return [net.finder_channels(x, self.colour_residual),
                    conditions], targets

        (x, conditions), targets = task.validation
        task.validation = ([net.finder_channels(x, self.colour_residual),
                            conditions], targets)
        task.prepare = prepare
        task.batch_size = 128
        return tasks

    def _freeze(self, network, freeze):
        """``'conv'``: the whole trunk; ``k``: the stem and ``k`` stages."""
        _freeze_resnet(network, freeze, len(self.widths))


class LensParameters(TrainableMixin, SourceStampEstimator):
    """
    Lens-model parameters of galaxy-scale strong lenses, with MC dropout.

    For each source (a lens or lens candidate, from ``positions`` or a
    ``segmentation_image``) measures the singular isothermal ellipsoid +
    external shear model: the Einstein radius ``theta_e`` (arcsec: the
    image needs a celestial WCS or ``pixel_scale=``), the mass ellipticity
    ``e1``, ``e2``, the external shear ``gamma1``, ``gamma2`` (pixel frame,
    lenstronomy conventions) and the refined lens centre ``x_centroid``,
    ``y_centroid`` (and ``sky_centroid`` with a WCS), each with an
    ``_err`` combining the MC-dropout spread with the network's predicted
    (aleatoric) variance, calibrated on held-out simulations so that
    ``value +- _err`` covers the truth 68 % of the time.

    The values are meaningful for lenses only: run the finder as well
    (``finder='lens-finder'``, or ``astrodl predict lens-parameters --with
    lens-finder``) to add ``p_lens`` and ``p_lens_err`` and flag
    ``NOT_LENS`` the rows with ``p_lens < min_p_lens``.

    The shipped preset ``'lens-parameters'`` was trained by ``astrodl
    train lens-parameters`` on lenstronomy simulations of lenses alone
    (see its model card and the ``lens-finder`` docstring for the ranges).

    Parameters
    ----------
    stamp_size : int, optional
        Side of the square stamp around each source, pixels.
    widths : tuple of int, optional
        Filters of the residual stages.
    blocks : tuple of int, optional
        Residual blocks per stage.
    dense : int, optional
        Units of the dense layers.
    dropout : float, optional
        MC-dropout rate.
    scaling : {'noise', 'flux', 'hybrid'}, optional
        Stamp scaling, as for `LensFinder`.
    residuals : bool, optional
        Add the finder's point-symmetric and colour-difference residuals
        (``lenses.network.finder_channels``), where the arcs stand out,
        to the input channels. Off in the shipped preset: trained with
        them for 8 + 2 epochs the network measured theta_E to 18.7 %
        against 16.7 % without them in 12 + 3 (see the docs' "Strong
        lenses" page).

    Notes
    -----
    ``fit(stamps, labels, psf_fwhm=None, bands=None, ...)`` trains from
    scratch or fine-tunes: ``labels`` is a table with ``theta_e``
    (pixels), ``e1``, ``e2``, ``gamma1``, ``gamma2``, ``x_lens`` and
    ``y_lens`` (the lens centre's offset from the stamp centre, pixels) and
    optionally ``psf_fwhm`` (pixels, the default of ``psf_fwhm``).
    Defaults: 20 epochs, batches of 256, patience 4, learning rate 1e-3,
    random quarter turns and flips with the matching change of the
    targets, random band subsets.

    Examples
    --------
    >>> import astrodl_plugins as adl
    >>> est = adl.get_estimator('lens-parameters')
    >>> est.output_names
    ('theta_e', 'e1', 'e2', 'gamma1', 'gamma2', 'x_centroid', 'y_centroid')
    """

    name = 'lens-parameters'
    task = 'regression'
    version = '1.0'
    description = ('Einstein radius, ellipticity, shear and centre of '
                   'strong lenses, calibrated MC-dropout errors (Hezaveh '
                   'et al. 2017)')
    default_preset = 'lens-parameters'
    output_names = net.PARAMETER_NAMES
    bands = ('g', 'r', 'i')
    default_band = 'r'
    psf = 'estimate'
    pixel_outputs = {'theta_e': 1}
    flag_names = (*SourceStampEstimator.flag_names, 'NOT_LENS')
    predict_options = {'finder': None, 'min_p_lens': 0.5}
    range_margins = {'psf_fwhm': (0.05, 0.05), 'theta_e': (0.1, 0.05)}

    def __init__(self, stamp_size=48, widths=(16, 32, 64), blocks=(1, 2, 2),
                 dense=128, dropout=0.1, scaling='noise', residuals=False):
        self.stamp_size = stamp_size
        self.widths = widths
        self.blocks = blocks
        self.dense = dense
        self.dropout = dropout
        self.scaling = scaling
        self.residuals = residuals

    def _channels(self, x):
        """The network's input channels of scaled stamps ``x``."""
        return net.finder_channels(x) if self.residuals else x

    # -- fitted state ----------------------------------------------------------

    def _get_state(self):
        return {'target_mean': [float(v) for v in self.target_mean_],
                'target_std': [float(v) for v in self.target_std_],
                'error_scale': dict(getattr(self, 'error_scale_', {}))}

    def _set_state(self, state):
        self.target_mean_ = list(state['target_mean'])
        self.target_std_ = list(state['target_std'])
        self.error_scale_ = dict(state.get('error_scale', {}))

    # -- the finder alongside (a companion of the stamps family) ------------

    def _companions(self, options):
        """
        ``finder`` (`None`, ``True``, a preset name or directory, or a
        fitted `LensFinder`): run the lens finder on the same sources,
        add ``p_lens`` and ``p_lens_err`` and flag ``NOT_LENS`` the rows
        with ``p_lens < min_p_lens`` (default 0.5).
        """
        finder = options.get('finder')
        min_p = options.get('min_p_lens', 0.5)
        if isinstance(min_p, bool) or not isinstance(
                min_p, (int, float, np.integer, np.floating)) or not (
                0.0 <= float(min_p) <= 1.0):
            msg = f'min_p_lens must be a number in [0, 1], got {min_p!r}'
            raise ValueError(msg)
        if finder is None or finder is False:
            return []
        if finder is True:
            finder = 'lens-finder'
        if isinstance(finder, (str, os.PathLike)):
            finder = LensFinder.from_preset(finder)
        if not isinstance(finder, LensFinder):
            msg = ('finder must be None, True, a lens-finder preset name or '
                   f'directory, or a LensFinder, got {type(finder).__name__}')
            raise TypeError(msg)
        min_p = float(min_p)
        return [(finder, lambda table, found: _add_finder(table, found,
                                                          min_p))]

    # -- hooks of the source-stamps family -----------------------------------

    def _prepare(self, stamps, errors, context):
        """
        Network inputs as the classifiers' (bands, scale, PSF); the PSF
        and each stamp's pixel origin (for the refined centre) go in
        ``context.aux``.
        """
        if context.image is not None and context.image.pixel_scale is None:
            msg = ('lens-parameters gives theta_e in arcsec: the image needs '
                   'a celestial WCS or pixel_scale= (an angle per pixel)')
            raise ValueError(msg)
        usable = context.usable
        psf = context.psf_fwhm[usable]
        context.aux['psf_fwhm'] = psf
        factor = context.rescale[usable].astype(np.float64)
        half = self.stamp_size // 2
        origin = []
        for coordinate in (context.sources.x, context.sources.y):
            scaled = (np.asarray(coordinate, np.float64)[usable] + 0.5) / (
                factor) - 0.5
            origin.append(np.floor(scaled + 0.5) - half)
        context.aux['origin'] = origin
        arrays, npix = cnet.input_arrays(
            cnet.to_model_bands(stamps, context.bands), psf)
        x, conditions = cnet.scaled_inputs(
            arrays, npix, cnet.present_bands(stamps, context.bands),
            self.scaling)
        return [self._channels(x), conditions]

    def _decode(self, raw, context, rng):
        """
        Draws of ``theta_e`` (model pixels), the ellipticity and shear, and
        the lens centre in the image's native pixels.
        """
        k = len(net.TARGET_NAMES)
        std = np.asarray(self.target_std_, np.float64)
        mean = raw[..., :k] * std + np.asarray(self.target_mean_, np.float64)
        variance = np.exp(np.clip(raw[..., k:], -12.0, 8.0)) * std ** 2
        factor = context.rescale[context.usable].astype(np.float64)[:, None]
        centre = (self.stamp_size - 1) / 2

        def physical(sample):
            out = net.decode_targets(sample)
            for axis, origin in zip('xy', context.aux['origin']):
                position = origin[:, None] + centre + out.pop(f'd{axis}')
                out[f'{axis}_centroid'] = (position + 0.5) * factor - 0.5
            return out

        def physical_ordered(sample):
            out = physical(sample)
            return {name: out[name] for name in self.output_names}

        values = physical_ordered(mean)
        aleatoric = {'theta_e': values['theta_e'] ** 2 * variance[..., 0]}
        for index, name in enumerate(('e1', 'e2', 'gamma1', 'gamma2')):
            aleatoric[name] = variance[..., index + 1]
        aleatoric['x_centroid'] = variance[..., 5] * factor ** 2
        aleatoric['y_centroid'] = variance[..., 6] * factor ** 2
        predictive = physical_ordered(mean + np.sqrt(variance)
                              * rng.standard_normal(mean.shape))
        return Draws(values, aleatoric, predictive)

    def _to_output_units(self, draws, context):
        """``theta_e`` in arcsec where the pixel scale is known."""
        scale = _arcsec_per_pixel(context.image)
        if scale is None:
            return draws
        values, aleatoric, predictive = (dict(part) for part in draws)
        values['theta_e'] = values['theta_e'] * scale
        predictive['theta_e'] = predictive['theta_e'] * scale
        aleatoric['theta_e'] = aleatoric['theta_e'] * scale ** 2
        return Draws(values, aleatoric, predictive)

    def _output_units(self, context):
        units = {name: u.dimensionless_unscaled for name in self.output_names}
        units['theta_e'] = (u.pix if _arcsec_per_pixel(context.image) is None
                            else u.arcsec)
        return units

    def _error_scale(self, context):
        return dict(getattr(self, 'error_scale_', {}))

    def _extra_columns(self, columns, draws, context):
        """The sky position of the refined centre, with a celestial WCS."""
        image = context.image
        wcs = None if image is None else image.wcs
        if wcs is not None and getattr(wcs, 'has_celestial', False):
            x = np.asarray(columns['x_centroid'], np.float64)
            y = np.asarray(columns['y_centroid'], np.float64)
            good = np.isfinite(x) & np.isfinite(y)
            sources = context.sources
            # Unusable rows keep the input position.
            columns['sky_centroid'] = wcs.pixel_to_world(
                np.where(good, x, sources.x), np.where(good, y, sources.y))
        return columns

    def _extra_meta(self, context):
        scale = _arcsec_per_pixel(context.image)
        return {'frame': _FRAME_DOC,
                'theta_e_unit': ('arcsec' if scale is not None
                                 else 'pix (stamps given directly)'),
                'centroid': ('x_centroid, y_centroid: the refined lens '
                             'centre (pixels, 0-based); sky_centroid from '
                             'it')}

    # -- hooks of fit ------------------------------------------------------------

    def _training_data(self, stamps, labels, psf_fwhm=None, bands=None):
        """Stamps in model bands, raw targets, PSF and band presence."""
        stamps, bands = self._stamp_array(stamps, bands)
        missing = [name for name in ('theta_e', 'e1', 'e2', 'gamma1',
                                     'gamma2', 'x_lens', 'y_lens')
                   if name not in labels.colnames]
        if missing:
            msg = f'labels lacks the columns {missing}'
            raise ValueError(msg)
        if psf_fwhm is None:
            if 'psf_fwhm' not in labels.colnames:
                msg = ('psf_fwhm is required: give it or a psf_fwhm column '
                       'in labels (pixels)')
                raise ValueError(msg)
            psf_fwhm = labels['psf_fwhm']
        targets = net.encode_targets(
            *(np.asarray(labels[name], np.float64) for name in (
                'theta_e', 'e1', 'e2', 'gamma1', 'gamma2', 'x_lens',
                'y_lens')))
        if len(targets) != len(stamps) or not np.isfinite(targets).all():
            msg = ('labels must give finite lens parameters, one row per '
                   'stamp (lenses only)')
            raise ValueError(msg)
        psf = np.broadcast_to(np.asarray(u.Quantity(psf_fwhm).value,
                                         np.float32), (len(stamps),)).copy()
        return (cnet.to_model_bands(stamps, bands), targets, psf,
                cnet.presence(bands, len(stamps)))

    def _training_tasks(self, train, validation, *, new, augment, seed):
        from ..training.augment import random_dihedral
        from ..training.losses import GaussianBetaNLL

        stamps, targets, psf, present = train
        arrays, npix = cnet.input_arrays(stamps, psf)
        val_arrays, _ = cnet.input_arrays(validation[0], validation[2])
        all_bands = bool(np.all(present == 1))
        val_present = (cnet.random_band_subsets(np.random.default_rng(
            seed + 1), len(validation[0])) if all_bands else validation[3])
        if new:
            self.target_mean_ = [float(v) for v in targets.mean(axis=0)]
            self.target_std_ = [float(v) for v in targets.std(axis=0) + 1e-6]
            self.error_scale_ = {}
        mean = np.asarray(self.target_mean_, np.float32)
        std = np.asarray(self.target_std_, np.float32)
        scaling = self.scaling

        def prepare(inputs, batch_targets, rng):
            *batch, batch_present = inputs
            if all_bands:
                batch_present = cnet.random_band_subsets(
                    rng, len(batch_targets))
            x, conditions = cnet.scaled_inputs(batch, npix, batch_present,
                                               scaling)
            if augment:
                x, k, flip = random_dihedral(x, rng)
                batch_targets = net.dihedral_targets(batch_targets, k, flip)
            return [self._channels(x), conditions], (batch_targets
                                                     - mean) / std

        def prepare_validation(inputs, batch_targets, rng):
            return inputs, (batch_targets - mean) / std

        def build():
            return net.build_resnet(
                self.stamp_size, 2 * len(net.TARGET_NAMES),
                channels=(2 * len(self.bands) + 1 if self.residuals
                          else None),
                widths=self.widths, blocks=self.blocks, dense=self.dense,
                dropout=self.dropout, name='lens_parameters')

        val_x, val_conditions = cnet.scaled_inputs(val_arrays, npix,
                                                   val_present, scaling)
        return [TrainingTask(
            'model', build, train=([*arrays, present], targets),
            validation=([self._channels(val_x), val_conditions],
                        validation[1]),
            loss=GaussianBetaNLL(0.5), prepare=prepare,
            prepare_validation=prepare_validation, epochs=20,
            batch_size=256, patience=4, learning_rate=1e-3)]

    def _freeze(self, network, freeze):
        """``'conv'``: the whole trunk; ``k``: the stem and ``k`` stages."""
        _freeze_resnet(network, freeze, len(self.widths))


def _add_finder(table, found, min_p):
    """``p_lens`` (with ``_err``) from the finder, and ``NOT_LENS`` flags."""
    table = table.copy()
    table['p_lens'] = found['p_lens']
    table['p_lens_err'] = found['p_lens_err']
    low = ~(np.asarray(found['p_lens'], np.float64) >= min_p)
    flag = np.asarray(table['flag'])
    table['flag'] = np.where(low, flag | int(SourceFlags.NOT_LENS),
                             flag).astype(np.int32)
    table.meta['min_p_lens'] = min_p
    table.meta['finder'] = {'name': 'lens-finder',
                            'preset': found.meta.get('preset', '')}
    return table


def _arcsec_per_pixel(image):
    if image is None or image.pixel_scale is None:
        return None
    return image.pixel_scale.to_value(u.arcsec / u.pix)


def _freeze_resnet(network, freeze, n_stages):
    """
    Freeze the residual trunk: ``'conv'`` all of it, an integer ``k`` the
    stem and the first ``k`` stages.
    """
    if freeze is None:
        return
    if freeze == 'conv':
        count = n_stages
    elif isinstance(freeze, (int, np.integer)) and not isinstance(
            freeze, bool) and freeze >= 0:
        count = int(freeze)
    else:
        msg = f"freeze must be None, 'conv' or an integer >= 0, got {freeze!r}"
        raise ValueError(msg)
    prefixes = ['stem'] + [f'stage{s}_' for s in range(count)]
    if count >= n_stages:
        prefixes.append('head_bn')
    for layer in network.layers:
        if any(layer.name.startswith(prefix) for prefix in prefixes):
            layer.trainable = False
