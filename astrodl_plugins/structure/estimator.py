# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The galaxy-structure estimator (Tuccillo et al. 2018)."""

import numpy as np
from astropy import units as u

from ..core.base import Draws
from ..core.dihedral import DIHEDRAL, pool_views
from ..core.flags import SourceFlags
from ..core.stamps import SourceStampEstimator
from ..training.mixin import TrainableMixin, TrainingTask
from . import network as net

__all__ = ['GalaxyStructure']

_R_EFF_DOC = 'half-light radius along the semi-major axis'
#: Largest ratio of the local pixel scales (the singular values of the WCS
#: Jacobian) at which the network's pixel-space shape is trusted.
MAX_PIXEL_ANISOTROPY = 1.2

#: Largest |z| of a source's log flux-to-stamp ratio, in units of the
#: training targets' spread, before the row is flagged OUT_OF_RANGE.
MAX_FLUX_Z = 6.0

_SKY_SHAPE_DOC = ('r_eff, axis_ratio and position_angle are the pixel-space '
                  'ellipse mapped through the local WCS Jacobian at each '
                  'source; OUT_OF_RANGE where the ratio of the local pixel '
                  f'scales exceeds {MAX_PIXEL_ANISOTROPY}')


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

    With a celestial WCS the network's pixel-space ellipse (``r_eff``,
    ``axis_ratio``, ``position_angle``) is mapped to the sky through the
    local Jacobian of the WCS at each source, so a skewed or anisotropic
    pixel grid gives the sky's axis ratio and angle. The network was
    trained on square pixels, though: where the local pixel scales differ
    by more than a factor ``MAX_PIXEL_ANISOTROPY`` (1.2) the source is
    also flagged ``OUT_OF_RANGE`` (its PSF, round on the sky, is not round
    in pixels).

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

    def _range_flags(self, values, context):
        """
        The card's ranges, and ``OUT_OF_RANGE`` where the local pixel grid
        is more anisotropic than `MAX_PIXEL_ANISOTROPY`.
        """
        flags = super()._range_flags(values, context)
        # The flux has no card range: its ratio to the stamp's own sum
        # must lie within what was trained (|z| <= 6 of the training
        # targets); a wild one (1e215 on pure noise) is flagged.
        if 'flux' in values and 'norm' in context.aux:
            with np.errstate(divide='ignore', invalid='ignore'):
                ratio = np.log(np.mean(values['flux'], axis=-1)
                               / np.asarray(context.aux['norm'], np.float64))
            k = net.TARGET_NAMES.index('log_flux_ratio')
            z = (ratio - self.target_mean_[k]) / self.target_std_[k]
            flags[~(np.abs(z) <= MAX_FLUX_Z)] |= SourceFlags.OUT_OF_RANGE
        jacobian = self._jacobian(context)
        if jacobian is not None:
            skewed = pixel_anisotropy(jacobian) > MAX_PIXEL_ANISOTROPY
            flags[skewed] |= SourceFlags.OUT_OF_RANGE
        return flags

    def _to_output_units(self, draws, context):
        """
        With a celestial WCS, the ellipse mapped to the sky through the
        local Jacobian (``r_eff`` in arcsec, angles east of north);
        otherwise ``r_eff`` in arcsec with a pixel scale.
        """
        values, aleatoric, predictive = (dict(part) for part in draws)
        jacobian = self._jacobian(context)
        if jacobian is not None:
            r_eff, axis_ratio, angle = sky_shape(
                jacobian[:, None], values['r_eff'], values['axis_ratio'],
                values['position_angle'])
            # The predictive draws and aleatoric variances follow the
            # same change as the draw they belong to.
            r_ratio = _ratio(r_eff, values['r_eff'])
            q_ratio = _ratio(axis_ratio, values['axis_ratio'])
            turn = angle - values['position_angle']
            values.update(r_eff=r_eff, axis_ratio=axis_ratio,
                          position_angle=angle)
            predictive['r_eff'] = predictive['r_eff'] * r_ratio
            predictive['axis_ratio'] = np.clip(
                predictive['axis_ratio'] * q_ratio, 0.0, 1.0)
            predictive['position_angle'] = (predictive['position_angle']
                                            + turn) % 180.0
            aleatoric['r_eff'] = aleatoric['r_eff'] * r_ratio ** 2
            aleatoric['axis_ratio'] = aleatoric['axis_ratio'] * q_ratio ** 2
            return Draws(values, aleatoric, predictive)
        scale = _arcsec_per_pixel(context.image)
        if scale is not None:
            values['r_eff'] = values['r_eff'] * scale
            predictive['r_eff'] = predictive['r_eff'] * scale
            aleatoric['r_eff'] = aleatoric['r_eff'] * scale ** 2
        return Draws(values, aleatoric, predictive)

    def _jacobian(self, context):
        """
        ``(n, 2, 2)`` local WCS Jacobian at the usable sources (computed
        once per call), `None` without a celestial WCS.
        """
        if not _celestial(context.image):
            return None
        if 'wcs_jacobian' not in context.aux:
            context.aux['wcs_jacobian'] = local_jacobian(
                context.image.wcs, context.aux['x'], context.aux['y'])
        return context.aux['wcs_jacobian']

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
        if _celestial(image):
            meta['sky_shape'] = _SKY_SHAPE_DOC
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


def _ratio(new, old):
    """``new / old``, 1 where ``old`` is 0."""
    old = np.asarray(old, np.float64)
    return np.divide(new, old, out=np.ones(np.broadcast(new, old).shape),
                     where=old != 0)


def local_jacobian(wcs, x, y, step=0.5):
    """
    The local Jacobian of a celestial WCS at pixel positions.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS`
        A 2-D celestial WCS.
    x, y : array
        0-based pixel positions.
    step : float, optional
        Half the pixel step of the central differences.

    Returns
    -------
    jacobian : `~numpy.ndarray`
        ``(n, 2, 2)``: rows the offsets towards east and north (arcsec),
        columns per pixel along x and y, from the offsets on the sky
        (`~astropy.coordinates.SkyCoord.spherical_offsets_to`) of the
        points half a step either side.

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> from astrodl_plugins.structure.estimator import local_jacobian
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    >>> (local_jacobian(wcs, [0.0], [0.0]).round(6) + 0.0).tolist()
    [[[-0.2, 0.0], [0.0, 0.2]]]
    """
    x = np.atleast_1d(np.asarray(x, np.float64))
    y = np.atleast_1d(np.asarray(y, np.float64))
    centre = wcs.pixel_to_world(x, y)
    jacobian = np.empty((len(x), 2, 2))
    for axis, (dx, dy) in enumerate(((step, 0.0), (0.0, step))):
        east_1, north_1 = centre.spherical_offsets_to(
            wcs.pixel_to_world(x + dx, y + dy))
        east_0, north_0 = centre.spherical_offsets_to(
            wcs.pixel_to_world(x - dx, y - dy))
        jacobian[:, 0, axis] = (east_1 - east_0).to_value(u.arcsec) / (
            2 * step)
        jacobian[:, 1, axis] = (north_1 - north_0).to_value(u.arcsec) / (
            2 * step)
    return jacobian


def pixel_anisotropy(jacobian):
    """
    Ratio of the largest to the smallest local pixel scale: the singular
    values of each ``(2, 2)`` Jacobian (1 for square pixels, however
    turned or flipped; above 1 for rectangular or skewed ones).
    """
    jacobian = np.asarray(jacobian, np.float64)
    frobenius = np.sum(jacobian ** 2, axis=(-2, -1))
    determinant = np.abs(np.linalg.det(jacobian))
    spread = np.sqrt(np.maximum(frobenius ** 2 - 4 * determinant ** 2, 0))
    largest = np.sqrt((frobenius + spread) / 2)
    smallest = np.sqrt(np.maximum((frobenius - spread) / 2, 0))
    return np.divide(largest, smallest, out=np.full(largest.shape, np.inf),
                     where=smallest > 0)


def sky_shape(jacobian, r_eff, axis_ratio, position_angle):
    """
    A pixel-space ellipse on the sky, through a local WCS Jacobian.

    The ellipse of semi-axes ``a = r_eff`` and ``b = axis_ratio * a``, at
    ``position_angle`` from +x (counter-clockwise), has the second-moment
    matrix ``R diag(a**2, b**2) R.T``; on the sky it is ``J R diag(a**2,
    b**2) R.T J.T``, whose eigenvalues give the sky's semi-axes and whose
    major eigenvector the position angle east of north. A half-light
    ellipse maps to the half-light ellipse (the map is linear).

    Parameters
    ----------
    jacobian : `~numpy.ndarray`
        ``(..., 2, 2)`` from `local_jacobian` (arcsec per pixel).
    r_eff, axis_ratio, position_angle : `~numpy.ndarray`
        Pixel-space semi-major half-light radius, b/a and angle (degrees
        from +x, counter-clockwise), broadcast against ``jacobian[..., 0,
        0]``.

    Returns
    -------
    r_eff, axis_ratio, position_angle : `~numpy.ndarray`
        Semi-major half-light radius (arcsec), b/a and position angle
        (degrees east of north, in [0, 180)) on the sky.

    Examples
    --------
    North up, east left: the +x axis points west (270 = 90 east of north).

    >>> import numpy as np
    >>> from astrodl_plugins.structure.estimator import sky_shape
    >>> jacobian = np.array([[-0.2, 0.0], [0.0, 0.2]])
    >>> [round(float(v), 6) for v in sky_shape(jacobian, 10.0, 0.5, 0.0)]
    [2.0, 0.5, 90.0]
    """
    jacobian = np.asarray(jacobian, np.float64)
    theta = np.deg2rad(position_angle)
    a2 = np.asarray(r_eff, np.float64) ** 2
    b2 = a2 * np.asarray(axis_ratio, np.float64) ** 2
    cos, sin = np.cos(theta), np.sin(theta)
    # Images of the major (cos, sin) and minor (-sin, cos) axis directions.
    major_e = jacobian[..., 0, 0] * cos + jacobian[..., 0, 1] * sin
    major_n = jacobian[..., 1, 0] * cos + jacobian[..., 1, 1] * sin
    minor_e = -jacobian[..., 0, 0] * sin + jacobian[..., 0, 1] * cos
    minor_n = -jacobian[..., 1, 0] * sin + jacobian[..., 1, 1] * cos
    ee = a2 * major_e ** 2 + b2 * minor_e ** 2
    nn = a2 * major_n ** 2 + b2 * minor_n ** 2
    en = a2 * major_e * major_n + b2 * minor_e * minor_n
    half_trace = (ee + nn) / 2
    spread = np.hypot((ee - nn) / 2, en)
    largest = half_trace + spread
    smallest = np.maximum(half_trace - spread, 0.0)
    sky_r_eff = np.sqrt(largest)
    sky_ratio = np.sqrt(np.divide(smallest, largest,
                                  out=np.ones(np.shape(largest)),
                                  where=largest > 0))
    # The major axis is at angle phi from east towards north.
    phi = 0.5 * np.rad2deg(np.arctan2(2 * en, ee - nn))
    return sky_r_eff, sky_ratio, (90.0 - phi) % 180.0
