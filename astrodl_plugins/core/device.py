# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Device dispatch: ``'auto'``, ``'cpu'``, ``'gpu'`` or ``'gpu:N'``."""

import re

__all__ = ['resolve_device', 'available_gpus']


def available_gpus():
    """Number of GPUs the Keras backend can see."""
    import keras

    backend = keras.backend.backend()
    if backend == 'tensorflow':
        import tensorflow as tf

        return len(tf.config.list_physical_devices('GPU'))
    if backend == 'jax':
        import jax

        return sum(d.platform == 'gpu' for d in jax.devices())
    if backend == 'torch':
        import torch

        return torch.cuda.device_count()
    return 0


def resolve_device(device='auto'):
    """
    Turn a ``device`` keyword into a Keras device name.

    Parameters
    ----------
    device : str
        ``'auto'`` (a GPU when the backend sees one, else the CPU),
        ``'cpu'``, ``'gpu'`` (the first GPU) or ``'gpu:N'``.

    Returns
    -------
    name : str
        ``'cpu:0'`` or ``'gpu:N'``, for `keras.device`.

    Raises
    ------
    DeviceNotAvailableError
        A GPU was asked for and the backend sees none (or not that many).
    ValueError
        An unrecognized ``device`` string.
    """
    from ..exceptions import DeviceNotAvailableError

    if not isinstance(device, str):
        msg = f"device must be a string such as 'auto' or 'gpu:0', got {device!r}"
        raise TypeError(msg)
    match = re.fullmatch(r'(auto|cpu|gpu)(?::(\d+))?', device.strip().lower())
    if match is None or (match[1] == 'auto' and match[2] is not None):
        msg = (f"device must be 'auto', 'cpu', 'gpu' or 'gpu:N', got "
               f'{device!r}')
        raise ValueError(msg)
    kind, index = match[1], int(match[2] or 0)
    if kind == 'cpu':
        return 'cpu:0'
    n_gpus = available_gpus()
    if kind == 'auto':
        return 'gpu:0' if n_gpus else 'cpu:0'
    if index >= n_gpus:
        import keras

        msg = (f'device={device!r} was requested but the '
               f'{keras.backend.backend()} backend sees {n_gpus} GPU(s); '
               f"use device='cpu' or 'auto'")
        raise DeviceNotAvailableError(msg)
    return f'gpu:{index}'
