# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The redshift network: a 1-D CNN over the log-wavelength grid (a redshift
is a shift along it) that classifies into redshift bins (Stivaktakis et
al. 2019), with an MC-dropout dense head.
"""

__all__ = ['build_redshift_network', 'N_CHANNELS']

#: Input channels: normalised flux, good-pixel indicator, scaled S/N.
N_CHANNELS = 3


def build_redshift_network(n_pixels, n_bins, *, widths=(32, 64, 128),
                           dense=256, dropout=0.2):
    """
    A new, untrained redshift network.

    Parameters
    ----------
    n_pixels : int
        Pixels of the model's wavelength grid.
    n_bins : int
        Redshift bins (outputs).
    widths : sequence of int, optional
        Filters of the convolutional blocks (two convolutions each, then
        max pooling by 2).
    dense : int, optional
        Units of the dense layer.
    dropout : float, optional
        MC-dropout rate.

    Returns
    -------
    model : `keras.Model`
        Input ``spectrum`` ``(n_pixels, N_CHANNELS)``; output ``n_bins``
        logits.
    """
    import keras
    from keras import layers

    from ..core.mc import MCDropout

    spectrum = keras.Input((n_pixels, N_CHANNELS), name='spectrum')
    x = spectrum
    for k, width in enumerate(widths):
        for j in range(2):
            x = layers.Conv1D(width, 7 if k == 0 else 5, padding='same',
                              activation='relu', name=f'conv{k}{j}')(x)
        x = layers.MaxPooling1D(2, padding='same', name=f'pool{k}')(x)
    x = layers.Flatten(name='flatten')(x)
    x = layers.Dense(dense, activation='relu', name='dense')(x)
    x = MCDropout(dropout, name='mc_dropout')(x)
    logits = layers.Dense(n_bins, name='logits')(x)
    return keras.Model(spectrum, logits, name='spec_redshift')
