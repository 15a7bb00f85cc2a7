# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The model cards and their figures."""

import numpy as np
import pytest

from astrodl_plugins.core.cards import (
    CARD_FIGURES,
    card_figures,
    render_model_card,
    shipped_cards,
)

#: Figures each shipped card must show (besides its training history).
EXPECTED = {
    'galaxy-structure': ('pred_vs_true.png', 'residual_vs_snr.png',
                         'coverage.png'),
    'star-galaxy': ('roc.png', 'confusion.png', 'reliability.png'),
    'galaxy-morphology': ('confusion.png', 'reliability.png'),
    'deblender': ('example.png',),
}


def _config(figures=None):
    card = {'summary': 'A test model.'}
    if figures is not None:
        card['figures'] = figures
    return {'name': 'no-such-preset', 'version': 1, 'card': card}


class TestRenderModelCard:
    def test_figures_found_by_file_name(self, tmp_path):
        (tmp_path / 'roc.png').write_bytes(b'')
        (tmp_path / 'unknown.png').write_bytes(b'')
        text = render_model_card(_config(), directory=tmp_path)
        assert '.. figure:: no-such-preset-roc.png' in text
        assert CARD_FIGURES['roc.png'] in text
        assert 'unknown.png' not in text

    def test_listed_figures_kept_first(self, tmp_path):
        (tmp_path / 'confusion.png').write_bytes(b'')
        figures = card_figures(_config({'own.png': 'Own caption.'}),
                               tmp_path)
        assert list(figures) == ['own.png', 'confusion.png']

    def test_history_shown_once(self, tmp_path):
        (tmp_path / 'history.png').write_bytes(b'')
        config = _config({'history.png': 'Training history.'})
        text = render_model_card(config, 'no-such-preset-history.png',
                                 directory=tmp_path)
        assert text.count('history.png') == 1
        assert 'Training history\n----------------' in text

    def test_missing_directory_has_no_figures(self, tmp_path):
        assert card_figures(_config(), tmp_path / 'absent') == {}


class TestShippedCards:
    @pytest.mark.parametrize('name', sorted(EXPECTED))
    def test_card_shows_its_figures(self, name):
        config, directory = next((c, d) for n, c, d in shipped_cards()
                                 if n == name)
        for file in EXPECTED[name]:
            assert (directory / file).is_file(), file
        text = render_model_card(config, f'{name}-history.png')
        for file in EXPECTED[name]:
            assert text.count(f'{name}-{file}') == 1, file
        assert text.count('history.png') == 1

    def test_figures_are_small(self):
        for _, _, directory in shipped_cards():
            for path in directory.glob('*.png'):
                assert path.stat().st_size < 200_000, path


class TestClassifierFigures:
    def test_roc_curve(self):
        from astrodl_plugins.classification.evaluate import roc_auc, roc_curve

        rng = np.random.default_rng(0)
        y = rng.random(200) < 0.5
        score = y + rng.normal(0, 0.8, 200)
        fpr, tpr = roc_curve(y, score)
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
        assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, score),
                                                       abs=1e-9)

    def test_plots_written(self, tmp_path):
        from astrodl_plugins.classification.evaluate import plot_confusion, plot_roc

        plot_confusion([[40, 2], [5, 53]], ('star', 'galaxy'),
                       tmp_path / 'confusion.png', 'test')
        rng = np.random.default_rng(1)
        p = rng.dirichlet((1, 1), 50)
        plot_roc({'gri': p}, (p[:, 1] > 0.5).astype(int), tmp_path / 'roc.png')
        for name in ('confusion.png', 'roc.png'):
            assert (tmp_path / name).read_bytes()[:4] == b'\x89PNG'


class TestDeblenderExample:
    def test_zoom_window_holds_the_richest_blend(self):
        from astropy.table import Table

        from astrodl_plugins.deblending.evaluate import _zoom_window

        truth = Table({'x': [20.0, 150.0, 156.0, 149.0],
                       'y': [30.0, 100.0, 104.0, 110.0],
                       'blend': [0, 1, 1, 1]})
        rows, columns = _zoom_window(truth, (224, 224))
        assert rows.stop - rows.start == columns.stop - columns.start == 48
        assert columns.start < 149 and columns.stop > 156
        assert rows.start < 100 and rows.stop > 110


def test_fine_tuned_copy_does_not_show_shipped_figures():
    config = next(c for n, c, _ in shipped_cards() if n == 'star-galaxy')
    copy = {**config, 'card': {'summary': 'fine-tuned'}}
    assert card_figures(copy) == {}
    assert 'roc.png' in card_figures(config)


def test_gallery_figures_exist_and_are_small():
    import re
    from pathlib import Path

    docs = Path(__file__).parents[3] / 'docs'
    if not (docs / 'gallery.rst').is_file():
        pytest.skip('no docs/ next to the package (installed copy)')
    figures = re.findall(r'\.\. figure:: (\S+)',
                         (docs / 'gallery.rst').read_text())
    assert len(figures) == 5
    for figure in figures:
        path = docs / figure
        assert path.is_file(), figure
        assert path.stat().st_size < 200_000, figure
