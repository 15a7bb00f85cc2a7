# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The deblending pipeline: segments in, children, model images and fluxes out.

For every parent segment:

1. The *detector* U-Net turns a crop around the segment into a heat map of
   source centres; its local maxima above the threshold inside the
   segment are the children's centres (crops of seven sizes, 256-pixel
   tiles without seams over larger segments; see
   `~astrodl_plugins.deblending.centres.find_centres`).
2. When a segment has two or more centres, the *extractor* U-Net predicts
   each child's own noise-free image (its *model*) from a 48-pixel stamp
   centred on it.

   Both networks see their input twice, as it is and turned by 180
   degrees (about the segment's centre, about the child's pixel), and the
   heat map and models are the means of the two: exactly equivariant, so
   a blend that is its own image under the turn (two equal sources) is
   split into two mirror halves.
3. Each pixel of the segment goes to the child whose model is brightest
   there; children smaller than ``n_pixels`` are removed (their light goes
   to the others) until none is left. Children therefore tile their
   parent's footprint exactly.
4. Fluxes (the estimator only): inside the footprint the data are shared
   in proportion to the models (so the fluxes add up to the data), beyond
   it each child's model supplies its faint wings. MC-dropout draws of the
   models give ``flux_err``, together with the propagated pixel noise.
   With a familiarity model, each child also gets the extractor's
   features of its stamp (``ood_score``).

Masked and non-finite pixels are *unusable*: they never make a centre
(see `~astrodl_plugins.deblending.centres`), the networks see them filled
smoothly from their neighbours, and in the fluxes each child's model
stands in for the data there. A segment without a usable pixel is not
searched and gets one child with NaN fluxes (``usable`` False in its
row).

`~astrodl_plugins.deblending.deblend_sources_dl` (in ``finder``),
photutils' call shape, runs the pipeline without fluxes and numbers the
children as photutils does.
"""


import numpy as np

from .centres import crop_jobs, cut_window, fill_unusable, find_centres
from .network import extractor_inputs

__all__ = ['noise_sigma', 'deblend_image']


def noise_sigma(image, segm_data):
    """
    Background noise per pixel: the image's uncertainty when it has one,
    otherwise a sigma-clipped standard deviation of the pixels outside all
    segments (a scalar).

    A noiseless image (simulated, or a model) has no noise to scale by:
    it is treated as one of the highest signal-to-noise the networks were
    trained on, a peak of 300 times the noise.

    Raises
    ------
    ValueError
        An uncertainty of zero or less at an unmasked pixel (the data would
        be divided by it).
    """
    from astropy.stats import sigma_clipped_stats

    if image.error is not None:
        error = np.where(np.isfinite(image.error) & ~image.mask,
                         image.error, np.nan)
        with np.errstate(invalid='ignore'):
            bad = error <= 0
        if bad.any():
            y, x = np.argwhere(bad)[0]
            msg = (f'data.uncertainty must be > 0 at every unmasked pixel; '
                   f'{int(bad.sum())} pixels are <= 0 (the first at x={x}, '
                   f'y={y}: {float(error[y, x])}); mask them or give their '
                   'noise')
            raise ValueError(msg)
        return error
    sky = (segm_data == 0) & ~image.mask
    if sky.sum() < 100:
        sky = ~image.mask
    values = image.data[sky]
    if values.size > 200_000:
        values = values[:: values.size // 200_000]
    _, _, std = sigma_clipped_stats(values, sigma=3.0, stdfunc='mad_std')
    if not np.isfinite(std) or std <= 0:
        std = np.nanstd(values)
    inside = image.data[(segm_data > 0) & ~image.mask]
    peak = float(np.nanmax(np.abs(inside))) if inside.size else 0.0
    if not np.isfinite(std) or std <= 1e-6 * peak:
        std = peak / 300.0
    return float(std) if std > 0 else 1.0


def _is_flat(data, segm_data, sl, label):
    """Whether the finite pixels of a segment all have the same value."""
    values = data[sl][segm_data[sl] == label]
    values = values[np.isfinite(values)]
    return values.size == 0 or values.min() == values.max()


def _has_usable(data, segm_data, sl, label):
    """Whether a segment has a finite (unmasked) pixel."""
    return bool(np.isfinite(data[sl][segm_data[sl] == label]).any())


def _segment_centroid(data, segm_data, sl, label):
    """Flux-weighted centroid of a segment's positive pixels."""
    footprint = segm_data[sl] == label
    values = np.where(footprint, np.nan_to_num(data[sl]), 0.0).clip(0)
    if values.sum() <= 0:
        values = footprint.astype(float)
    yy, xx = np.mgrid[sl]
    total = values.sum()
    return float((values * xx).sum() / total), float((values * yy).sum()
                                                       / total)


def deblend_image(detector, engine, image, segm, labels, n_pixels, *,
                  threshold, stamp_size, n_samples, seed, batch_size, fluxes,
                  factor=1, progress_bar=False, pool_features=None):
    """
    Run the pipeline on an image; see the module docstring.

    Parameters
    ----------
    detector : `keras.Model`
        The centre-detector U-Net.
    engine : `~astrodl_plugins.core.mc.MCDropoutEngine`
        The engine of the extractor U-Net.
    image : `~astrodl_plugins.core.inputs.ImageData`
    segm : `~photutils.segmentation.SegmentationImage`
    labels : `~numpy.ndarray`
        Parents to deblend; the other labels are copied unchanged.
    n_pixels : int
        Minimum pixels of a child.
    threshold : float
        Detection threshold of the centre heat map.
    stamp_size : int
        Side of the extractor's stamps.
    n_samples, seed, batch_size : int
        MC-dropout settings of the extractor.
    fluxes : bool
        Measure fluxes: run the extractor on every source, also in the
        segments with a single centre.
    factor : int, optional
        Bin the image by this factor for the centre detection.
    progress_bar : bool, optional
        Show a `tqdm` progress bar over the segments.
    pool_features : callable, optional
        Reduces the extractor's feature maps of a batch of stamps (the
        input of its MC-dropout layer, ``(b, size, size, c)``) to
        ``(b, d)``; when given, the rows with models also get
        ``features``, those of their own stamp.

    Returns
    -------
    rows : list of dict
        One per child, in new-label order: ``label``, ``parent``, ``x``,
        ``y``, ``detected``, ``n_children``, and with ``fluxes``
        ``flux_draws``, ``flux_noise_var``, ``model``, ``origin``,
        ``usable`` (and ``features`` with ``pool_features``; None for a
        child of a segment without usable pixels, whose fluxes are NaN
        and model zero).
        Segments not deblended have a row with ``pixels`` None.
    segm_data : `~numpy.ndarray`
        The deblended label image.
    """
    from tqdm.auto import tqdm

    segm_data = segm.data
    data = np.where(image.mask, np.nan, image.data)
    sigma = noise_sigma(image, segm_data)
    slices = dict(zip(segm.labels.tolist(), segm.slices))
    labels = [int(label) for label in labels]
    unusable = {label for label in labels
                if not _has_usable(data, segm_data, slices[label], label)}
    if fluxes:
        search = labels
    else:
        # A segment of fewer than 2 * n_pixels pixels cannot hold two
        # children: it is kept whole without looking for centres.
        areas = dict(zip(segm.labels.tolist(), segm.areas.tolist()))
        search = [label for label in labels if areas[label] >= 2 * n_pixels]
    # A segment whose pixels all have one value has no structure to split
    # (photutils keeps it whole too); the networks never saw one. Nor is
    # one without a usable pixel searched.
    search = [label for label in search
              if not _is_flat(data, segm_data, slices[label], label)]
    # Two bars, each counting what it says: the detector's crops (a large
    # segment is cut into several tiles; each crop and its 180-degree twin
    # are one step), then the segments through the extractor, once each.
    n_crops = len(crop_jobs(slices, search, factor))
    with tqdm(total=n_crops, desc='finding centres', unit='crop',
              disable=not progress_bar or not n_crops) as bar:
        xs, ys, parents = find_centres(
            detector, data, sigma, segm_data, slices, search,
            threshold=threshold, factor=factor,
            progress=bar.update)
    with tqdm(total=len(labels), desc='deblending', unit='segment',
              disable=not progress_bar) as bar:
        by_parent = {label: [] for label in labels}
        for i, label in enumerate(parents.tolist()):
            by_parent[label].append(i)
        rows = []
        # Parents go through the extractor in chunks of about
        # 4 * batch_size sources: memory is bounded by the chunk.
        chunk, n_sources = [], 0
        for number, label in enumerate(labels):
            chunk.append(label)
            n_sources += max(len(by_parent[label]), 1)
            if n_sources >= 4 * batch_size or number == len(labels) - 1:
                rows.extend(_process_chunk(
                    engine, data, sigma, segm_data, slices, chunk, xs, ys,
                    by_parent, stamp_size, n_pixels, n_samples,
                    seed + number, batch_size, fluxes, pool_features,
                    unusable))
                bar.update(len(chunk))
                chunk, n_sources = [], 0
    # Labels not deblended are copied as they are.
    for label in sorted(set(slices) - set(labels)):
        rows.append({'parent': label, 'order': 0, 'pixels': None})
    rows.sort(key=lambda row: (row['parent'], row['order']))
    # The input's integer type, unless it cannot hold the new labels.
    dtype = np.promote_types(segm_data.dtype, np.min_scalar_type(len(rows)))
    out = np.zeros(segm_data.shape, dtype=dtype)
    for new_label, row in enumerate(rows, start=1):
        row['label'] = new_label
        if row['pixels'] is None:
            sl = slices[row['parent']]
            out[sl][segm_data[sl] == row['parent']] = new_label
        else:
            out[row['pixels']] = new_label
    return rows, out


def _process_chunk(engine, data, sigma, segm_data, slices, chunk, xs, ys,
                   by_parent, size, n_pixels, n_samples, seed, batch_size,
                   fluxes, pool_features=None, unusable=frozenset()):
    """
    Deblend the parents of one chunk; one row dict per child. The parents
    in ``unusable`` (no usable pixel) are not run through the extractor.
    """
    half = size // 2
    # Per parent: its children's (x, y, detected); a parent without a
    # detected centre gets one child at its centroid.
    members = {}
    for label in chunk:
        if by_parent[label]:
            members[label] = [(xs[i], ys[i], True) for i in by_parent[label]]
        else:
            x, y = _segment_centroid(data, segm_data, slices[label], label)
            members[label] = [(x, y, False)]
    run = [label for label in chunk if label not in unusable
           and (fluxes or len(members[label]) >= 2)]
    targets = [member for label in run for member in members[label]]
    models = {label: None for label in chunk}
    origins = {label: None for label in chunk}
    features = {label: None for label in chunk}
    if targets:
        # Each source's stamp, and its twin: the stamp turned by 180
        # degrees about the source's pixel (the window one pixel further,
        # reversed). The model is the mean of the two predictions, so two
        # sources that are each other's image under a turn get models that
        # are too (the network is only nearly equivariant).
        n = len(targets)
        stamps = np.empty((2 * n, size, size), np.float32)
        noise = np.empty(2 * n)
        sx = np.empty(2 * n)
        sy = np.empty(2 * n)
        corners = np.empty((n, 2), np.int64)
        sigma_map = np.ndim(sigma) == 2
        for k, (x, y, _) in enumerate(targets):
            x0 = int(np.floor(x + 0.5)) - half
            y0 = int(np.floor(y + 0.5)) - half
            for j, first in ((k, 0), (n + k, 1)):
                # Unusable pixels inside the image are filled from their
                # neighbours; off the image stays NaN, as before.
                stamp = fill_unusable(
                    cut_window(data, y0 + first, x0 + first, size, np.nan),
                    _inside(y0 + first, x0 + first, size, data.shape))
                noise[j] = (_stamp_noise(sigma, y0 + first, x0 + first, size)
                            if sigma_map else sigma)
                if first:
                    stamp = stamp[::-1, ::-1]
                    sx[j], sy[j] = size - (x - x0), size - (y - y0)
                else:
                    sx[j], sy[j] = x - x0, y - y0
                stamps[j] = stamp
            corners[k] = x0, y0
        inputs, scale = extractor_inputs(stamps, noise, sx, sy)
        # The MC head runs on batch * n_samples full-resolution stamps:
        # cap the rows so that memory stays well under a gigabyte.
        rows_cap = max(1, min(batch_size, 256 // max(n_samples, 1)))
        collect = None if pool_features is None else _Pooled(pool_features)
        draws = engine.sample([inputs], n_samples, seed=seed,
                              batch_size=rows_cap, features=collect)
        # The features of the stamps as cut (the first n rows), not of
        # their turned twins.
        pooled = np.concatenate(collect)[:n] if collect else None
        draws = draws.reshape(2 * n, -1, size, size)
        draws = np.clip(draws * scale[:, None, None, None], 0, None)
        draws = _mean_with_twin(draws[:n], draws[n:])
        start = 0
        for label in run:
            stop = start + len(members[label])
            models[label] = draws[start:stop]
            origins[label] = corners[start:stop]
            if pooled is not None:
                features[label] = pooled[start:stop]
            start = stop
    rows = []
    for label in chunk:
        children = _assemble(label, members[label], models[label],
                             origins[label], data, sigma, segm_data,
                             slices[label], size, n_pixels, fluxes,
                             features[label])
        if fluxes and label in unusable:
            _mark_unusable(children, size, max(n_samples, 1))
        rows.extend(children)
    return rows


def _mark_unusable(rows, size, n_draws):
    """NaN fluxes and a zero model for the child of an unusable segment."""
    for row in rows:
        x0 = int(np.floor(row['x'] + 0.5)) - size // 2
        y0 = int(np.floor(row['y'] + 0.5)) - size // 2
        row.update(flux_draws=np.full(n_draws, np.nan), flux_noise_var=np.nan,
                   model=np.zeros((size, size), np.float32),
                   origin=(x0, y0), usable=False, features=None)


def _inside(y0, x0, size, shape):
    """Where a ``size`` window at ``(y0, x0)`` lies inside the image."""
    rows = np.arange(y0, y0 + size)
    cols = np.arange(x0, x0 + size)
    return (((rows >= 0) & (rows < shape[0]))[:, None]
            & ((cols >= 0) & (cols < shape[1]))[None, :])


def _stamp_noise(sigma, y0, x0, size):
    """
    Median noise of a stamp's window; of the whole map when the window has
    no pixel of known noise.
    """
    window = cut_window(sigma, y0, x0, size, np.nan)
    known = window[np.isfinite(window)]
    if known.size:
        return float(np.median(known))
    return float(np.nanmedian(sigma))


class _Pooled(list):
    """
    The ``features`` list of `MCDropoutEngine.sample`, pooled batch by
    batch as the engine appends them: the full-resolution maps of a chunk
    would take hundreds of megabytes.
    """

    def __init__(self, pool):
        super().__init__()
        self.pool = pool

    def append(self, maps):
        """Keep the pooled features of a batch's maps."""
        super().append(np.asarray(self.pool(maps)))


def _mean_with_twin(models, twins):
    """
    Mean of the models of the stamps and of their turned twins (turned
    back, one pixel further): ``(n, T, size, size)`` on the stamps' grid.
    Row and column 0, which the twins do not cover, are zero, so that each
    model's support is symmetric about its source's pixel.
    """
    out = np.zeros_like(models)
    out[..., 1:, 1:] = 0.5 * (models[..., 1:, 1:]
                              + twins[..., ::-1, ::-1][..., :-1, :-1])
    return out


def _regions(origins, size, shape):
    """Per child: (window slice, stamp slice) of its stamp inside the window."""
    out = []
    for py0, px0 in origins:
        a0, b0 = max(py0, 0), max(px0, 0)
        a1, b1 = min(py0 + size, shape[0]), min(px0 + size, shape[1])
        out.append(((slice(a0, a1), slice(b0, b1)),
                    (slice(a0 - py0, a1 - py0), slice(b0 - px0, b1 - px0))))
    return out


def _owners(mean_models, regions, footprint, cx, cy):
    """
    Index of the child whose model is brightest at each footprint pixel
    (-1 outside the footprint); pixels no model reaches go to the nearest
    centre. Memory: a few arrays of the window's shape.
    """
    from scipy import ndimage

    best = np.zeros(footprint.shape, np.float32)
    owner = np.full(footprint.shape, -1, np.int64)
    for k, (model, (window, stamp)) in enumerate(zip(mean_models, regions)):
        values = model[stamp]
        better = values > best[window]
        best[window][better] = values[better]
        owner[window][better] = k
    unreached = footprint & (owner < 0)
    if unreached.any():
        seeds = np.zeros(footprint.shape, bool)
        iy = np.clip(np.round(cy).astype(int), 0, footprint.shape[0] - 1)
        ix = np.clip(np.round(cx).astype(int), 0, footprint.shape[1] - 1)
        index_map = np.full(footprint.shape, -1, np.int64)
        index_map[iy, ix] = np.arange(len(cx))
        seeds[iy, ix] = True
        _, (ny, nx) = ndimage.distance_transform_edt(~seeds,
                                                     return_indices=True)
        owner[unreached] = index_map[ny[unreached], nx[unreached]]
    owner[~footprint] = -1
    return owner


def _assemble(label, members, models, origins, data, sigma, segm_data, sl,
              size, n_pixels, fluxes, features=None):
    """
    Children of one parent: pixels, and flux draws when asked.

    ``members`` are the children's ``(x, y, detected)``; ``models`` their
    ``(n, T, size, size)`` model draws, ``origins`` the ``(x0, y0)`` of
    their stamps and ``features`` the extractor's features of them, or
    None when the extractor did not run (or no features were asked for).
    """
    sy, sx = sl
    has_models = models is not None
    ylo, yhi, xlo, xhi = sy.start, sy.stop, sx.start, sx.stop
    if has_models:
        ylo, yhi = min(ylo, origins[:, 1].min()), max(yhi, origins[:, 1].max()
                                                      + size)
        xlo, xhi = min(xlo, origins[:, 0].min()), max(xhi, origins[:, 0].max()
                                                      + size)
    ny, nx = segm_data.shape
    wy = slice(max(int(ylo), 0), min(int(yhi), ny))
    wx = slice(max(int(xlo), 0), min(int(xhi), nx))
    footprint = segm_data[wy, wx] == label
    cx = np.array([m[0] for m in members]) - wx.start
    cy = np.array([m[1] for m in members]) - wy.start
    keep = np.arange(len(members))
    if has_models:
        mean = models.mean(axis=1)
        regions = _regions([(y0 - wy.start, x0 - wx.start)
                            for x0, y0 in origins], size, footprint.shape)
    if has_models and len(members) >= 2:
        # Children below n_pixels give their pixels to the others.
        while True:
            owner = _owners([mean[k] for k in keep],
                            [regions[k] for k in keep], footprint,
                            cx[keep], cy[keep])
            areas = np.bincount(owner[footprint], minlength=len(keep))
            small = areas < n_pixels
            if len(keep) == 1 or not small.any():
                break
            if small.all():
                keep = keep[[int(np.argmax(areas))]]
            else:
                keep = keep[~small]
    else:
        owner = np.where(footprint, 0, -1)
    rows = []
    if fluxes and has_models:
        flux_draws, noise_var = _fluxes(
            models[keep], [regions[k] for k in keep],
            owner, footprint, data[wy, wx],
            (np.nan_to_num(sigma[wy, wx]) if np.ndim(sigma) == 2
             else np.full(footprint.shape, sigma)))
    for k, member_index in enumerate(keep):
        x, y, detected = members[member_index]
        pixels = np.nonzero(owner == k)
        row = {'parent': label, 'order': k, 'x': x, 'y': y,
               'detected': detected,
               'pixels': (pixels[0] + wy.start, pixels[1] + wx.start),
               'n_children': len(keep)}
        if fluxes and has_models:
            row['flux_draws'] = flux_draws[k]
            row['flux_noise_var'] = noise_var[k]
            row['model'] = mean[member_index]
            row['origin'] = tuple(int(v) for v in origins[member_index])
            row['usable'] = True
            if features is not None:
                row['features'] = features[member_index]
        rows.append(row)
    return rows


def _fluxes(child_models, regions, owner, footprint, data, sigma):
    """
    Flux draws of each child: inside the footprint the data shared in
    proportion to the models (a pixel no model reaches goes to its owner),
    outside it, and at unusable (NaN) pixels inside it, the model itself.
    Also a variance per child: the pixel noise propagated through the
    shares, plus the square of the contested light (``sum share * (1 -
    share) * |data|`` over the usable footprint).
    """
    usable = np.isfinite(data)
    data = np.where(usable, data, 0.0)
    n_draws = child_models[0].shape[0]
    total = np.zeros((n_draws,) + footprint.shape, np.float32)
    for model, (window, stamp) in zip(child_models, regions):
        total[(slice(None),) + window] += model[(slice(None),) + stamp]
    flux = np.zeros((len(child_models), n_draws))
    noise_var = np.zeros(len(child_models))
    for k, (model, (window, stamp)) in enumerate(zip(child_models,
                                                     regions)):
        m = model[(slice(None),) + stamp]
        t = total[(slice(None),) + window]
        inside = footprint[window] & usable[window]
        with np.errstate(invalid='ignore', divide='ignore'):
            share = np.where(t > 0, m / t, 0.0)
        d = data[window]
        flux[k] = np.where(inside, share * d, m).sum(axis=(1, 2))
        mean_share = share.mean(axis=0)
        noise_var[k] = ((mean_share * sigma[window]) ** 2 * inside).sum()
        # Light in pixels the child shares with others is the least
        # certain part of its flux: it enters the error as a variance.
        contested = (mean_share * (1 - mean_share) * np.abs(d) * inside)
        noise_var[k] += contested.sum() ** 2
    # Footprint pixels that no model reaches (in a draw) go to their owner.
    empty = (footprint & usable)[None] & (total <= 0)
    if empty.any():
        fraction = empty.mean(axis=0)
        for k in range(len(child_models)):
            mine = owner == k
            flux[k] += (empty * (mine * data)[None]).sum(axis=(1, 2))
            noise_var[k] += (sigma ** 2 * fraction * mine).sum()
    return flux, noise_var
