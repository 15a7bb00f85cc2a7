# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The fit loop shared by every estimator: augmentation, early stopping."""

import keras
import numpy as np

__all__ = ['fit_network', 'plot_history']


class _Batches(keras.utils.PyDataset):
    """
    Shuffled mini-batches, prepared (augmented) on the fly.

    Training batches (``shuffle=True``) have an even number of rows: an odd
    batch drops its last row (a new one each epoch, the order being
    shuffled) and a one-row batch is doubled. TensorFlow 2.21's oneDNN
    kernels corrupt memory in the backward pass of the residual networks
    on odd batches (``free(): invalid pointer`` and segmentation faults
    seen on 85-, 87- and 89-row batches, never on even ones; TensorFlow
    issue 117700 is a sibling).
    """

    def __init__(self, inputs, targets, batch_size, prepare, seed,
                 shuffle=True):
        super().__init__()
        self.inputs = inputs
        self.targets = targets
        self.batch_size = batch_size
        self.prepare = prepare
        self.rng = np.random.default_rng(seed)
        self.shuffle = shuffle
        self.order = np.arange(len(targets))
        self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.targets) / self.batch_size))

    def __getitem__(self, index):
        rows = np.sort(self.order[index * self.batch_size:
                                  (index + 1) * self.batch_size])
        if self.shuffle and len(rows) % 2:
            rows = rows[:-1] if len(rows) > 1 else np.repeat(rows, 2)
        inputs = [x[rows] for x in self.inputs]
        targets = self.targets[rows]
        if self.prepare is not None:
            inputs, targets = self.prepare(inputs, targets, self.rng)
        # A single-input model takes its array, not a 1-tuple (which
        # Keras warns about).
        return (inputs[0] if len(inputs) == 1 else tuple(inputs)), targets

    def on_epoch_end(self):
        if self.shuffle:
            self.rng.shuffle(self.order)


def fit_network(model, train, validation, *, loss, epochs=20, batch_size=256,
                learning_rate=1e-3, patience=5, seed=0, prepare=None,
                prepare_validation=None, verbose=2):
    """
    Train a Keras model with on-the-fly augmentation and early stopping.

    Parameters
    ----------
    model : `keras.Model`
        The network; trainable flags decide what is frozen.
    train, validation : tuple
        ``(inputs, targets)``: a list of input arrays and a target array.
    loss : `keras.losses.Loss`
        The loss.
    epochs, batch_size : int, optional
        Maximum epochs and mini-batch size.
    learning_rate : float, optional
        Initial Adam learning rate, cosine-decayed to 1 % over ``epochs``.
    patience : int, optional
        Early stopping on the validation loss; the best weights are kept.
    seed : int, optional
        Seed of the weights' initialization order, shuffling and
        augmentation.
    prepare, prepare_validation : callable, optional
        ``prepare(inputs, targets, rng) -> (inputs, targets)`` per batch
        (augmentation, target scaling).
    verbose : int, optional
        Keras verbosity.

    Returns
    -------
    history : dict
        Loss per epoch, as `keras.callbacks.History.history`.
    """
    keras.utils.set_random_seed(seed)
    train_batches = _Batches(*train, batch_size, prepare, seed)
    val_batches = _Batches(*validation, batch_size, prepare_validation,
                           seed + 1, shuffle=False)
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=epochs * len(train_batches), alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
    stop = keras.callbacks.EarlyStopping(monitor='val_loss',
                                         patience=patience,
                                         restore_best_weights=True)
    history = model.fit(train_batches, validation_data=val_batches,
                        epochs=epochs, callbacks=[stop], verbose=verbose)
    return {key: [float(v) for v in values]
            for key, values in history.history.items()}


def plot_history(history, path, title=''):
    """Save the training and validation loss curves as a PNG."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.5), layout='constrained')
    axes = figure.add_subplot()
    epochs = np.arange(1, len(history['loss']) + 1)
    axes.plot(epochs, history['loss'], label='training')
    if 'val_loss' in history:
        axes.plot(epochs, history['val_loss'], label='validation')
    if 'stage1_epochs' in history:
        axes.axvline(history['stage1_epochs'] + 0.5, color='0.6', ls=':',
                     label='stage 2 starts (best stage-1 weights)')
    axes.set_xlabel('epoch')
    axes.set_ylabel('loss')
    axes.set_title(title)
    axes.legend()
    figure.savefig(path, dpi=110)
