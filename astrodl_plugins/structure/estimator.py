# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The galaxy-structure estimator (Tuccillo et al. 2018)."""

import numpy as np
from astropy import units as u

from ..core.base import Draws
from ..core.dihedral import DIHEDRAL, pool_views
from ..core.stamps import SourceStampEstimator
from ..training.mixin import TrainableMixin, TrainingTask
from . import network as net

__all__ = ['GalaxyStructure']

_R_EFF_DOC = 'half-light radius along the semi-major axis'


class GalaxyStructure(TrainableMixin, SourceStampEstimator):
    """
    Sersic structural parameters of galaxies from a CNN with MC dropout.

    Measures, for each source, the Sersic index ``sersic_n``, the
    half-light radius along the semi-major axis ``r_eff`` (arcsec when the
    pixel scale is known, else pixels), ``axis_ratio`` (b/a),
    ``position_angle`` (degrees, east of north with a celestial WCS, else
    counter-clockwise from +x) and the total ``flux`` (in the data's
    unit), each with an ``_err`` combining the MC-dropout (epistemic)
    spread with the network's predicted (aleatoric) variance, calibrated
    on held-out simulations. ``predict`` needs the PSF FWHM (``psf_fwhm=``
    or ``data.meta['PSF_FWHM']``).

    The shipped preset ``'galaxy-structure'`` was trained by
    ``astrodl train galaxy-structure`` on GalSim simulations (see its
    model card): Sersic n 0.5-6, r_eff 1.5-15 pix, axis ratio 0.2-1, Moffat
    PSF FWHM 2-5 pix, S/N 10-1000. Sources outside these ranges (the
    card's ``valid_ranges``) are flagged ``OUT_OF_RANGE``.

    Parameters
    ----------
    stamp_size : int, optional
        Side of the square stamp around each source, pixels.
    widths : tuple of int, optional
        Filters of the three convolutional blocks.
    dense : int, optional
        Units of the dense layers.
    dropout : float, optional
        MC-dropout rate.

    Notes
    -----
    ``fit(stamps, labels, psf_fwhm=None, ...)`` trains from scratch or
    fine-tunes the loaded model. ``stamps`` are ``(N, stamp_size,
    stamp_size)`` background-subtracted stamps centred on the galaxies;
    ``labels`` a table with ``sersic_n``, ``r_eff`` (pix, semi-major
    axis), ``axis_ratio``, ``position_angle`` (deg from +x,
    counter-clockwise), ``flux`` (the stamps' unit) and optionally
    ``psf_fwhm`` (pix), the default of the ``psf_fwhm`` keyword.
    ``validation_data`` is ``(stamps, labels[, psf_fwhm])``. Defaults:
    24 epochs, batches of 256, patience 5, learning rate 1e-3 from
    scratch (1e-4 when fine-tuning), random quarter turns and flips
    (Dieleman et al. 2015). ``freeze='conv'`` keeps every convolutional
    block fixed (only the dense layers learn); an integer ``k`` freezes
    the stem and the first ``k - 1`` blocks.

    Examples
    --------
    >>> import astrodl_plugins as adl
    >>> est = adl.get_estimator('galaxy-structure')
    >>> est.output_names
    ('sersic_n', 'r_eff', 'axis_ratio', 'position_angle', 'flux')
    """

    name = 'galaxy-structure'
    task = 'regression'
    version = '1.0'
    description = ('Sersic index, effective radius, axis ratio, position '
                   'angle and flux of galaxies (Tuccillo et al. 2018)')
    default_preset = 'galaxy-structure'
    output_names = net.OUTPUT_NAMES
    psf = 'required'
    supports_tta = True
    periods = {'position_angle': 180.0}
    pixel_outputs = {'r_eff': 1}
    #: Fractional margins around the card's ``valid_ranges`` (pixels).
    range_margins = {'sersic_n': (0.05, 0.05), 'r_eff': (0.05, 0.05),
                     'axis_ratio': (0.1, None), 'psf_fwhm': (0.05, 0.05),
                     'snr': (0.0, None)}

    def __init__(self, stamp_size=64, widths=(32, 64, 128), dense=256,
                 dropout=0.1):
        self.stamp_size = stamp_size
        self.widths = widths
        self.dense = dense
        self.dropout = dropout

    # -- fitted state -------------------------------------------------------

    def _get_state(self):
        return {'target_mean': list(self.target_mean_),
                'target_std': list(self.target_std_),
                'error_scale': dict(getattr(self, 'error_scale_', {})),
                'error_scale_tta': dict(getattr(self, 'error_scale_tta_', {}))}

    def _set_state(self, state):
        self.target_mean_ = state['target_mean']
        self.target_std_ = state['target_std']
        self.error_scale_ = state.get('error_scale', {})
        self.error_scale_tta_ = state.get('error_scale_tta', {})

    # -- hooks of predict ---------------------------------------------------

    def _prepare(self, stamps, errors, context):
        """
        Network inputs (two image channels and the PSF FWHM); the PSF, the
        S/N estimated from the stamp, the flux normalisation and the
        positions go in ``context.aux``.
        """
        features, norm, sigma = net.stamp_features(stamps)
        if errors is None:
            errors = sigma[:, None, None]
        usable = context.usable
        psf = context.psf_fwhm[usable]
        context.aux.update(psf_fwhm=psf, snr=net.stamp_snr(stamps, errors),
                           norm=norm, x=context.sources.x[usable],
                           y=context.sources.y[usable])
        return [features, net.psf_feature(psf)]

    def _decode(self, raw, context, rng):
        """
        Draws in pixels, angles from +x; with ``tta`` the eight
        orientations are mapped back and pooled (``8 * n_samples`` draws).
        """
        mean, variance = net.destandardize(raw, self.target_mean_,
                                           self.target_std_)
        if context.options['tta']:
            mean, variance = _pool_orientations(mean, variance)
        norm = context.aux['norm']
        values = net.decode_samples(mean, variance, norm)
        aleatoric = net.aleatoric_variances(mean, variance, norm)
        predictive = net.decode_samples(mean, variance, norm, rng)
        return Draws(values, aleatoric, predictive)

    def _to_output_units(self, draws, context):
        """``r_eff`` in arcsec with a pixel scale; angles east of north."""
        values, aleatoric, predictive = (dict(part) for part in draws)
        image = context.image
        scale = _arcsec_per_pixel(image)
        if scale is not None:
            values['r_eff'] = values['r_eff'] * scale
            predictive['r_eff'] = predictive['r_eff'] * scale
            aleatoric['r_eff'] = aleatoric['r_eff'] * scale ** 2
        if _celestial(image):
            offset, sign = _sky_angle_frame(image.wcs, context.aux['x'],
                                            context.aux['y'])
            for part in (values, predictive):
                part['position_angle'] = (
                    offset[:, None] + sign[:, None]
                    * part['position_angle']) % 180.0
        return Draws(values, aleatoric, predictive)

    def _output_units(self, context):
        image = context.image
        flux_unit = None if image is None else image.unit
        return {'sersic_n': u.dimensionless_unscaled,
                'r_eff': (u.pix if _arcsec_per_pixel(image) is None
                          else u.arcsec),
                'axis_ratio': u.dimensionless_unscaled,
                'position_angle': u.deg,
                'flux': flux_unit or u.dimensionless_unscaled}

    def _error_scale(self, context):
        """
        Per-source calibration of ``_err``: one factor per output and bin
        of the S/N estimated from the stamp (``error_scale_['snr_edges']``).
        """
        scales = getattr(self, 'error_scale_tta_' if context.options['tta']
                         else 'error_scale_', {})
        if not scales:
            return {}
        edges = np.asarray(scales['snr_edges'], np.float64)
        index = np.clip(np.digitize(context.aux['snr'], edges) - 1, 0,
                        len(edges) - 2)
        return {name: np.asarray(value)[index]
                for name, value in scales.items() if name != 'snr_edges'}

    def _extra_meta(self, context):
        image = context.image
        scaled = _arcsec_per_pixel(image) is not None
        meta = {'r_eff_convention': _R_EFF_DOC,
                'angle_convention': ('east of north' if _celestial(image)
                                     else 'counter-clockwise from +x'),
                'r_eff_unit': ('arcsec' if scaled
                               else 'pix (no WCS or pixel_scale given)')}
        if scaled:
            meta['pixel_scale'] = str(image.pixel_scale)
        return meta

    # -- hooks of fit -------------------------------------------------------

    def _training_data(self, stamps, labels, psf_fwhm=None):
        """
        Stamps (float32), labels and the PSF FWHM (pixels, one per stamp;
        default ``labels['psf_fwhm']``).
        """
        stamps = np.asarray(stamps, dtype=np.float32)
        if psf_fwhm is None:
            if 'psf_fwhm' not in labels.colnames:
                msg = ('psf_fwhm is required: give it or a psf_fwhm column '
                       'in labels (pixels)')
                raise ValueError(msg)
            psf_fwhm = labels['psf_fwhm']
        psf = np.broadcast_to(np.asarray(u.Quantity(psf_fwhm).value,
                                         np.float64), (len(stamps),))
        return stamps, labels, psf.copy()

    def _training_tasks(self, train, validation, *, new, augment, seed):
        """
        The network, fitted with the beta-weighted Gaussian NLL on
        standardized targets, with random quarter turns and flips of the
        stamps (and the matching change of the targets).
        """
        from ..training.augment import random_dihedral
        from ..training.losses import GaussianBetaNLL

        train = net.prepare_inputs(*train)
        validation = net.prepare_inputs(*validation)
        if new:
            self.target_mean_, self.target_std_ = net.target_statistics(
                train[1])
            self.error_scale_ = {}
            self.error_scale_tta_ = {}
        mean = np.asarray(self.target_mean_, np.float32)
        std = np.asarray(self.target_std_, np.float32)

        def prepare(inputs, targets, rng):
            image, psf = inputs
            if augment:
                image, k, flip = random_dihedral(image, rng)
                targets = net.dihedral_targets(targets, k, flip)
            return [image, psf], (targets - mean) / std

        def prepare_validation(inputs, targets, rng):
            return inputs, (targets - mean) / std

        def build():
            return net.build_network(self.stamp_size, self.widths,
                                     self.dense, self.dropout)

        return [TrainingTask('model', build, train, validation,
                             loss=GaussianBetaNLL(0.5), prepare=prepare,
                             prepare_validation=prepare_validation,
                             epochs=24, batch_size=256, patience=5,
                             learning_rate=1e-3)]

    def _freeze(self, network, freeze):
        """
        ``'conv'``: every convolutional block; an integer ``k``: the stem
        and the first ``k - 1`` blocks.
        """
        if freeze is None:
            return
        prefixes = ['stem']
        if freeze == 'conv':
            prefixes += [f'block{i}' for i in range(len(self.widths))]
        elif isinstance(freeze, (int, np.integer)) and 0 <= freeze:
            prefixes = ['stem'] + [f'block{i}' for i in range(freeze - 1)]
            prefixes = prefixes[:freeze]
        else:
            msg = f"freeze must be None, 'conv' or an integer >= 0, got {freeze!r}"
            raise ValueError(msg)
        for layer in network.layers:
            if any(layer.name.startswith(p) for p in prefixes):
                layer.trainable = False


def _pool_orientations(mean, variance):
    """
    ``(8 n, T, k)`` draws of the 8 orientations (`DIHEDRAL` order) ->
    ``(n, 8 T, k)`` draws in the original frame (the target transforms are
    sign flips, their own inverse; variances are unchanged).
    """
    rows = mean.size // (len(DIHEDRAL) * mean.shape[-1])
    turns = np.repeat([k for k, _ in DIHEDRAL], rows)
    flips = np.repeat([flip for _, flip in DIHEDRAL], rows)
    mean = net.dihedral_targets(mean.reshape(-1, mean.shape[-1]), turns,
                                flips).reshape(mean.shape)
    return pool_views(mean), pool_views(variance)


def _arcsec_per_pixel(image):
    """The pixel scale in arcsec per pixel, or `None` when unknown."""
    if image is None or image.pixel_scale is None:
        return None
    return image.pixel_scale.to_value(u.arcsec / u.pix)


def _celestial(image):
    return (image is not None and image.wcs is not None
            and getattr(image.wcs, 'has_celestial', False))


def _sky_angle_frame(wcs, x, y, step=1.0):
    """
    Map pixel angles (from +x, counter-clockwise) to east of north.

    Returns the position angle of the +x direction and the handedness
    (+1 when pixel angles increase towards the east, -1 for a flipped
    WCS), measured at each source from the WCS itself.
    """
    center = wcs.pixel_to_world(x, y)
    along_x = wcs.pixel_to_world(x + step, y)
    along_y = wcs.pixel_to_world(x, y + step)
    pa_x = center.position_angle(along_x).to_value(u.deg)
    pa_y = center.position_angle(along_y).to_value(u.deg)
    sign = np.where(((pa_y - pa_x) % 360.0) < 180.0, 1.0, -1.0)
    return np.atleast_1d(pa_x), np.atleast_1d(sign)
