# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The galaxy-structure estimator (Tuccillo et al. 2018)."""

import numpy as np
from astropy import units as u

from ..core.estimator import Estimator
from ..core.inputs import resolve_psf_fwhm
from ..simulate.stamps import GALAXY_STRUCTURE_RANGES
from ..training.augment import apply_dihedral
from . import _network as net

__all__ = ['GalaxyStructure', 'structure_regions']

_R_EFF_DOC = 'half-light radius along the semi-major axis'
#: The eight rotations (quarter turns) and flips of a square stamp.
_DIHEDRAL = tuple((k, flip) for k in range(4) for flip in (False, True))


class GalaxyStructure(Estimator):
    """
    Sersic structural parameters of galaxies from a CNN with MC dropout.

    Measures, for each source, the Sersic index ``sersic_n``, the
    half-light radius along the semi-major axis ``r_eff`` (arcsec when the
    pixel scale is known, else pixels), ``axis_ratio`` (b/a),
    ``position_angle`` (degrees, east of north with a celestial WCS, else
    counter-clockwise from +x) and the total ``flux`` (in the data's
    unit), each with an ``_err`` combining the MC-dropout (epistemic)
    spread with the network's predicted (aleatoric) variance, calibrated
    on held-out simulations.

    The shipped preset ``'galaxy-structure'`` was trained by
    ``astrodl train galaxy-structure`` on GalSim simulations (see its
    model card): Sersic n 0.5-6, r_eff 1.5-15 pix, axis ratio 0.2-1, Moffat
    PSF FWHM 2-5 pix, S/N 10-1000. Sources outside these ranges are
    flagged (bit 4).

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
    ranges = GALAXY_STRUCTURE_RANGES

    def __init__(self, stamp_size=64, widths=(32, 64, 128), dense=256,
                 dropout=0.1):
        self.stamp_size = stamp_size
        self.widths = widths
        self.dense = dense
        self.dropout = dropout

    def fit(self, stamps, labels, *, psf_fwhm=None, validation_data=None,
            validation_fraction=0.1, epochs=24, batch_size=256,
            learning_rate=None, patience=5, freeze=None, augment=True,
            seed=0, verbose=0):
        """
        Train from scratch, or fine-tune the loaded model on labelled stamps.

        Parameters
        ----------
        stamps : array
            ``(N, stamp_size, stamp_size)`` background-subtracted stamps
            centred on the galaxies.
        labels : `~astropy.table.Table`
            ``sersic_n``, ``r_eff`` (pix, semi-major axis), ``axis_ratio``,
            ``position_angle`` (deg from +x, counter-clockwise), ``flux``
            (the stamps' unit); optionally ``psf_fwhm`` (pix).
        psf_fwhm : float or array, optional
            PSF FWHM in pixels (default: ``labels['psf_fwhm']``).
        validation_data : tuple, optional
            ``(stamps, labels)`` for early stopping; default: a random
            ``validation_fraction`` of the training stamps.
        epochs, batch_size, patience : int, optional
            Maximum epochs, mini-batch size, early-stopping patience.
        learning_rate : float, optional
            Default 1e-3 from scratch, 1e-4 when fine-tuning.
        freeze : None, 'conv', or int, optional
            Layers kept fixed while fine-tuning: ``'conv'`` freezes every
            convolutional block (only the dense layers learn); an integer
            ``k`` freezes the stem and the first ``k - 1`` blocks.
        augment : bool, optional
            Random quarter-turn rotations and flips (Dieleman et al. 2015).
        seed : int, optional
            Seed of the initialization, split and augmentation.
        verbose : int, optional
            Keras verbosity.

        Returns
        -------
        self : `GalaxyStructure`
        """
        import keras

        from ._training import fit_structure_network, prepare_inputs, target_statistics

        stamps = np.asarray(stamps, dtype=np.float32)
        psf = self._label_psf(labels, psf_fwhm, len(stamps))
        if validation_data is None:
            rng = np.random.default_rng(seed)
            order = rng.permutation(len(stamps))
            n_val = max(1, int(round(validation_fraction * len(stamps))))
            val_rows, train_rows = order[:n_val], order[n_val:]
            validation_data = (stamps[val_rows], labels[val_rows],
                               psf[val_rows])
            stamps, labels, psf = (stamps[train_rows], labels[train_rows],
                                   psf[train_rows])
        else:
            val_stamps, val_labels = validation_data[:2]
            val_psf = self._label_psf(val_labels, validation_data[2]
                                      if len(validation_data) > 2 else None,
                                      len(val_stamps))
            validation_data = (np.asarray(val_stamps, np.float32),
                               val_labels, val_psf)
        train = prepare_inputs(stamps, labels, psf)
        validation = prepare_inputs(*validation_data)
        new = getattr(self, 'model_', None) is None
        if new:
            self.target_mean_, self.target_std_ = target_statistics(train[1])
            keras.utils.set_random_seed(seed)
            self.model_ = net.build_network(self.stamp_size, self.widths,
                                            self.dense, self.dropout)
            self.error_scale_ = {}
            self.error_scale_tta_ = {}
            self.model_sha256_ = None
        self._freeze(freeze)
        self.history_ = fit_structure_network(
            self.model_, train, validation, target_mean=self.target_mean_,
            target_std=self.target_std_, epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate or (1e-3 if new else 1e-4),
            patience=patience, seed=seed, augment=augment, verbose=verbose)
        for layer in self.model_.layers:
            layer.trainable = True
        self._engine_cache = None
        self.model_sha256_ = None
        return self

    # -- hooks of Estimator.predict ---------------------------------------

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

    def _periods(self):
        return {'position_angle': 180.0}

    def _error_scale(self, context):
        """
        Per-source calibration of ``_err``: one factor per output and bin
        of the S/N estimated from the stamp (``error_scale_['snr_edges']``).
        """
        scales = getattr(self, 'error_scale_tta_' if context['tta']
                         else 'error_scale_', {})
        if not scales:
            return {}
        edges = np.asarray(scales['snr_edges'], np.float64)
        index = np.clip(np.digitize(context['snr'], edges) - 1, 0,
                        len(edges) - 2)
        return {name: np.asarray(value)[index]
                for name, value in scales.items() if name != 'snr_edges'}

    def _output_units(self, image):
        return {'sersic_n': u.dimensionless_unscaled,
                'r_eff': u.arcsec if image.pixel_scale is not None
                else u.pix,
                'axis_ratio': u.dimensionless_unscaled,
                'position_angle': u.deg,
                'flux': image.unit or u.dimensionless_unscaled}

    def _prepare(self, stamps, errors, image, sources, usable, psf_fwhm=None,
                 tta=False):
        """
        Network inputs. ``psf_fwhm`` (pixels or an angle; default
        ``data.meta['PSF_FWHM']``) is required. ``tta=True`` (test-time
        augmentation) also feeds the seven other rotations and flips of
        each stamp; their draws are mapped back and pooled, so each output
        has ``8 * n_samples`` draws (8 times the trunk's cost).
        """
        psf = self._resolve_psf(psf_fwhm, image, len(usable))[usable]
        features, norm, sigma = net.stamp_features(stamps)
        if errors is None:
            errors = sigma[:, None, None]
        psf_input = net.psf_feature(psf)
        if tta:
            features = np.concatenate([apply_dihedral(features, k, flip)
                                       for k, flip in _DIHEDRAL])
            psf_input = np.tile(psf_input, (len(_DIHEDRAL), 1))
        return {'inputs': [features, psf_input], 'norm': norm, 'tta': tta,
                'psf': psf, 'snr': _snr(stamps, errors), 'image': image,
                'x': sources.x[usable], 'y': sources.y[usable]}

    def _decode(self, raw, context, rng):
        k = len(net.TARGET_NAMES)
        mean = raw[..., :k] * np.asarray(self.target_std_) \
            + np.asarray(self.target_mean_)
        variance = np.exp(np.clip(raw[..., k:], -12, 8)) \
            * np.asarray(self.target_std_) ** 2
        if context['tta']:
            mean, variance = _pool_orientations(mean, variance)
        norm = context['norm']
        draws = net.decode_samples(mean, variance, norm)
        context['pixel_draws'] = dict(draws)  # before any unit change
        aleatoric = net.aleatoric_variances(mean, variance, norm)
        predictive = net.decode_samples(mean, variance, norm, rng)
        image = context['image']
        for values in (draws, aleatoric, predictive):
            if image.pixel_scale is not None:
                scale = image.pixel_scale.to_value(u.arcsec / u.pix)
                values['r_eff'] = values['r_eff'] * (
                    scale ** 2 if values is aleatoric else scale)
        if _celestial(image.wcs):
            offset, sign = _sky_angle_frame(image.wcs, context['x'],
                                            context['y'])
            for values in (draws, predictive):
                values['position_angle'] = (
                    offset[:, None] + sign[:, None]
                    * values['position_angle']) % 180.0
        return draws, aleatoric, predictive

    def _range_flags(self, draws, context):
        pixel = {key: np.mean(value, axis=-1)
                 for key, value in context['pixel_draws'].items()}
        r = self.ranges
        out = np.zeros(len(context['norm']), bool)
        out |= pixel['sersic_n'] < r['sersic_n'][0] * 0.95
        out |= pixel['sersic_n'] > r['sersic_n'][1] * 1.05
        out |= pixel['r_eff'] < r['r_eff'][0] * 0.95
        out |= pixel['r_eff'] > r['r_eff'][1] * 1.05
        out |= pixel['axis_ratio'] < r['axis_ratio'][0] - 0.02
        out |= context['psf'] < r['psf_fwhm'][0] * 0.95
        out |= context['psf'] > r['psf_fwhm'][1] * 1.05
        out |= context['snr'] < r['snr'][0]
        return np.where(out, 4, 0).astype(np.int32)

    def _meta(self, image, n_samples, seed, device_name, quantiles,
              context):
        meta = super()._meta(image, n_samples, seed, device_name, quantiles,
                             context)
        meta['r_eff_convention'] = _R_EFF_DOC
        celestial = _celestial(image.wcs)
        meta['angle_convention'] = ('east of north' if celestial
                                    else 'counter-clockwise from +x')
        meta['r_eff_unit'] = ('arcsec' if image.pixel_scale is not None
                              else 'pix (no WCS or pixel_scale given)')
        if image.pixel_scale is not None:
            meta['pixel_scale'] = str(image.pixel_scale)
        return meta

    # -- private helpers ----------------------------------------------------

    @staticmethod
    def _label_psf(labels, psf_fwhm, n):
        if psf_fwhm is None:
            if 'psf_fwhm' not in labels.colnames:
                msg = ('psf_fwhm is required: give it or a psf_fwhm column '
                       'in labels (pixels)')
                raise ValueError(msg)
            psf_fwhm = labels['psf_fwhm']
        psf = np.broadcast_to(np.asarray(u.Quantity(psf_fwhm).value,
                                         np.float64), (n,))
        return psf.copy()

    def _resolve_psf(self, psf_fwhm, image, n):
        """PSF FWHM in pixels, one per source."""
        return resolve_psf_fwhm(psf_fwhm, image, n)

    def _freeze(self, freeze):
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
        for layer in self.model_.layers:
            if any(layer.name.startswith(p) for p in prefixes):
                layer.trainable = False


def _pool_orientations(mean, variance):
    """
    ``(8 n, T, k)`` draws of the 8 orientations -> ``(n, 8 T, k)`` draws
    in the original frame (the target transforms are sign flips, their own
    inverse).
    """
    n_orient = len(_DIHEDRAL)
    total, n_draws, k = mean.shape
    n = total // n_orient
    turns = np.repeat([d[0] for d in _DIHEDRAL], n * n_draws)
    flips = np.repeat([d[1] for d in _DIHEDRAL], n * n_draws)
    mean = net.dihedral_targets(mean.reshape(-1, k), turns, flips)

    def pooled(values):
        values = values.reshape(n_orient, n, n_draws, k)
        return values.transpose(1, 0, 2, 3).reshape(n, n_orient * n_draws, k)

    return pooled(mean), pooled(variance)


def _celestial(wcs):
    return wcs is not None and getattr(wcs, 'has_celestial', False)


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


def _snr(stamps, errors, radius=8):
    """
    Matched-filter S/N estimate in the central disc: sqrt(sum (I/s)^2 - N).

    ``s`` is the uncertainty when given, else the MAD noise of the stamp's
    outer frame.
    """
    size = stamps.shape[-1]
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disc = np.hypot(xx, yy) <= radius
    if errors is None:
        sigma, _ = net.stamp_scales(stamps)
        sigma = sigma[:, None, None]
    else:
        sigma = errors
    with np.errstate(all='ignore'):
        ratio = np.where(disc, stamps / sigma, 0.0)
        chi2 = np.nansum(ratio ** 2, axis=(1, 2)) - disc.sum()
    return np.sqrt(np.clip(chi2, 0.0, None))


def structure_regions(table):
    """
    DS9-ready ellipses of a galaxy-structure table (``regions`` objects).

    The semi-major axis is ``r_eff``, the semi-minor ``axis_ratio *
    r_eff``, oriented by ``position_angle``. With sky columns (a table
    measured with a celestial WCS) the ellipses are
    `~regions.EllipseSkyRegion` (whose angle is counted from the
    longitude axis, i.e. ``position_angle - 90 deg``); otherwise
    `~regions.EllipsePixelRegion`. Rows with NaN values are skipped.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        Output of `GalaxyStructure.predict`.

    Returns
    -------
    regions : list
        Write them with ``regions.Regions(regions).write(path,
        format='ds9')``; ``region.to_pixel(wcs)`` gives pixel ellipses.
    """
    from regions import EllipsePixelRegion, EllipseSkyRegion, PixCoord

    sky = 'sky_centroid' in table.colnames and table['r_eff'].unit == u.arcsec
    regions = []
    for row in table:
        values = [u.Quantity(row[name]).value for name in
                  ('r_eff', 'axis_ratio', 'position_angle')]
        if not np.all(np.isfinite(values)):
            continue
        width = 2 * row['r_eff']
        height = width * row['axis_ratio']
        meta = {'label': f"{row['label']}"}
        if sky:
            region = EllipseSkyRegion(row['sky_centroid'], width, height,
                                      angle=row['position_angle'] - 90 * u.deg,
                                      meta=meta)
        else:
            center = PixCoord(u.Quantity(row['x_centroid']).value,
                              u.Quantity(row['y_centroid']).value)
            region = EllipsePixelRegion(center, width.value, height.value,
                                        angle=row['position_angle'],
                                        meta=meta)
        regions.append(region)
    return regions
