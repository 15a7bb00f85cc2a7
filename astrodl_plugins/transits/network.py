# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The vetting network: AstroNet's two 1-D convolutional columns (Shallue &
Vanderburg 2018) on the global view and on the local, odd, even and
secondary views (ExoMiner's extra views, Valizadegan et al. 2022), joined
with scalar features, and an MC-dropout dense head.
"""

from .search import SCALAR_NAMES, VIEW_NAMES

__all__ = ['build_vetter']


def _column(x, widths, pool, name):
    from keras import layers

    for k, width in enumerate(widths):
        for j in range(2):
            x = layers.Conv1D(width, 5, padding='same', activation='relu',
                              name=f'{name}_conv{k}{j}')(x)
        x = layers.MaxPooling1D(pool, strides=2, padding='same',
                                name=f'{name}_pool{k}')(x)
    return layers.Flatten(name=f'{name}_flatten')(x)


def build_vetter(n_global=2001, n_local=201, *, n_classes=2,
                 global_widths=(16, 32, 64, 128), local_widths=(16, 32),
                 dense=128, dropout=0.3):
    """
    A new, untrained vetting network.

    Inputs: ``global_view`` ``(n_global, 1)``, ``local_views``
    ``(n_local, 4)`` (local, odd, even, secondary) and ``scalars``
    (``len(SCALAR_NAMES)``). Output: ``n_classes`` logits.
    """
    import keras
    from keras import layers

    from ..core.mc import MCDropout

    global_view = keras.Input((n_global, 1), name='global_view')
    local_views = keras.Input((n_local, len(VIEW_NAMES) - 1),
                              name='local_views')
    scalars = keras.Input((len(SCALAR_NAMES),), name='scalars')
    x = layers.Concatenate(name='join')([
        _column(global_view, global_widths, 5, 'global'),
        _column(local_views, local_widths, 7, 'local'), scalars])
    for k in range(2):
        x = layers.Dense(dense, activation='relu', name=f'dense{k}')(x)
        x = MCDropout(dropout, name=f'mc_dropout{k}')(x)
    logits = layers.Dense(n_classes, name='logits')(x)
    return keras.Model([global_view, local_views, scalars], logits,
                       name='transit_vetter')
