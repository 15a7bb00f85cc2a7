# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Model cards: the ``card`` of a saved estimator rendered as reST."""

import json
from pathlib import Path

from .store import MODELS_DIR

__all__ = ['CARD_FIGURES', 'render_model_card', 'card_figures',
           'shipped_cards']

#: Figures a card shows when the preset's directory holds them, found by
#: file name, with their captions (which replace those of
#: ``config.json``'s ``figures`` entry; that entry adds figures of its own
#: before these). The training history is shown once, under its own
#: heading, not here.
CARD_FIGURES = {
    'pred_vs_true.png': 'Predicted against true value of each output on a '
                        'held-out simulated set (fixed seed), coloured by '
                        'S/N.',
    'residual_vs_snr.png': 'Residuals (relative for n, r_eff and flux) '
                           'against S/N: median and 16-84 % band per S/N '
                           'bin.',
    'coverage.png': 'Fraction of sources whose true value lies within '
                    '+-_err, per S/N bin (target 0.68).',
    'roc.png': 'ROC curve (galaxy vs star) on a held-out simulated set, '
               'bands g, r, i and r alone.',
    'confusion.png': 'Confusion matrix on a held-out simulated set (bands '
                     'g, r, i): rows true class, columns predicted, each '
                     'row normalized.',
    'example.png': 'A held-out simulated blend field, zoomed on one blend: '
                   'the data, photutils children, ours, and the data minus '
                   'our models.',
}


def _rows(mapping):
    return [(str(key), _format(value)) for key, value in mapping.items()]


def _format(value):
    if isinstance(value, float):
        return f'{value:.4g}'
    if isinstance(value, (list, tuple)):
        return ', '.join(_format(v) for v in value)
    return str(value)


def _table(rows, header=('quantity', 'value')):
    width = [max(len(str(r[i])) for r in [header, *rows]) for i in range(2)]
    line = ' '.join('=' * w for w in width)
    out = [line, ' '.join(str(h).ljust(w) for h, w in zip(header, width)),
           line]
    out += [' '.join(str(c).ljust(w) for c, w in zip(row, width))
            for row in rows]
    out.append(line)
    return out


def card_figures(config, directory=None):
    """
    ``{file: caption}`` of the figures a card shows.

    The card's own ``figures`` entry first, then each file of
    ``CARD_FIGURES`` that ``directory`` holds; never the training history
    (``history.png``), which the card shows under its own heading.

    Parameters
    ----------
    config : dict
        Contents of a saved estimator's ``config.json``.
    directory : path-like, optional
        The preset's directory. Default: the shipped preset's, when
        ``config`` is that preset's own (a fine-tuned copy does not show
        the shipped figures); otherwise none.
    """
    if directory is None:
        directory = MODELS_DIR / str(config.get('name'))
        shipped = directory / 'config.json'
        if not (shipped.is_file()
                and json.loads(shipped.read_text()) == config):
            directory = None
    directory = None if directory is None else Path(directory)
    listed = dict(config.get('card', {}).get('figures', {}))
    figures = {file: CARD_FIGURES.get(file, caption)
               for file, caption in listed.items()}
    for file, caption in CARD_FIGURES.items():
        if (directory is not None and file not in figures
                and (directory / file).is_file()):
            figures[file] = caption
    figures.pop('history.png', None)
    return figures


def render_model_card(config, image=None, directory=None):
    """
    ReST text of a model card.

    Parameters
    ----------
    config : dict
        Contents of a saved estimator's ``config.json``.
    image : str, optional
        Path (relative to the page) of the training-history plot.
    directory : path-like, optional
        The preset's directory, where figures are found by file name
        (`card_figures`).
    """
    card = config.get('card', {})
    title = f"Model card: {config.get('name')} v{config.get('version')}"
    lines = [title, '=' * len(title), '', card.get('summary', ''), '']
    if 'reference' in card:
        lines += [f"Science reference: {card['reference']}.", '']
    lines += ['Reproduce', '---------', '', '.. code-block:: console', '',
              f"    $ {card.get('command', '')}", '',
              f"Seed: ``{card.get('seed')}``.", '']
    for heading, key in (('Training data', 'training_data'),
                         ('Range of validity (pixels)', 'valid_ranges'),
                         ('Conventions', 'conventions'),
                         ('Training run', 'training'),
                         ('Uncertainty calibration (scale of _err)',
                          'error_scale'),
                         ('Uncertainty calibration with tta=True',
                          'error_scale_tta'),
                         ('Familiarity (ood_score, flag UNFAMILIAR)',
                          'familiarity')):
        if key in card:
            lines += [heading, '-' * len(heading), '']
            lines += _table(_rows(card[key])) + ['']
    if 'calibration' in card:
        lines += ['Probability calibration', '-----------------------', '']
        lines += _table(_rows(card['calibration'])) + ['']
    for table in card.get('tables', []):
        lines += _csv_table(table)
    for file, caption in card_figures(config, directory).items():
        lines += [f'.. figure:: {config.get("name")}-{file}',
                  '   :width: 480px', '', f'   {caption}', '']
    if 'tables' not in card:
        lines += _metrics_section(card.get('metrics', {}), 'Held-out metrics')
        lines += _metrics_section(
            card.get('metrics_tta', {}),
            'Held-out metrics with tta=True (8 rotations/flips per stamp)')
    if image:
        lines += ['Training history', '----------------', '',
                  f'.. image:: {image}', '   :width: 400px', '']
    return '\n'.join(lines)


def _escape(text):
    """Escape reST substitution bars (``|dF|/F``) in table text."""
    return str(text).replace('|', '\\|')


def _csv_table(table):
    lines = [table['title'], '-' * len(table['title']), '',
             '.. csv-table::', '   :header: '
             + ', '.join(f'"{_escape(h)}"' for h in table['header']), '']
    lines += ['   ' + ', '.join(f'"{_format(c)}"' for c in row)
              for row in table['rows']]
    return lines + ['']


def shipped_cards():
    """``(name, config, directory)`` of every shipped preset."""
    out = []
    for manifest in sorted(MODELS_DIR.glob('*/manifest.json')):
        directory = manifest.parent
        config = json.loads((directory / 'config.json').read_text())
        out.append((directory.name, config, directory))
    return out


def _metrics_section(metrics, heading):
    lines = []
    if metrics:
        lines += [heading, '-' * len(heading), '',
                  f"Held-out simulated test set of {metrics.get('n_test')} "
                  f"stamps, {metrics.get('n_samples')} MC-dropout samples; "
                  f"{_format(metrics.get('seconds_per_galaxy', 0) * 1e3)} ms "
                  'per galaxy on the training machine (2 CPU cores).', '']
        for group, name in (('snr_gt_50', 'S/N > 50'), ('all', 'all S/N')):
            if group in metrics:
                lines += [f'**{name}**', '']
                lines += _table(_rows(metrics[group])) + ['']
        if 'by_snr' in metrics:
            lines += ['**By S/N**', '']
            keys = [k for k in metrics['by_snr'][0] if k.startswith(
                ('median', 'n_sources'))]
            header = ['S/N'] + [k.replace('median_abs_', '') for k in keys]
            rows = [[f"{b['snr_min']}-{b['snr_max']}"]
                    + [_format(b[k]) for k in keys] for b in metrics['by_snr']]
            lines += ['.. csv-table::', '   :header: '
                      + ', '.join(f'"{h}"' for h in header), '']
            lines += ['   ' + ', '.join(f'"{c}"' for c in row)
                      for row in rows] + ['']
    return lines
