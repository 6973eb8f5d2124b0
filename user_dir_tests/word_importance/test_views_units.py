"""The views' scales, legends and layouts, from hand-made records (no model): the text view of default records is
unchanged, no word is cut, near-uniform attributions stay pale, target-prefix and contrastive records are shown."""

import re

import pytest

from fairseq_interp.common.errors import InterpretError
from fairseq_interp.word_importance.views.html import options_line, render, render_fragment
from fairseq_interp.word_importance.views.scales import importance_scale, matrix_scale, strength
from fairseq_interp.word_importance.views.text import render_record


def record(**changes):
    base = {"id": 3, "src_tokens": ["\u2581a", "\u2581dog", "</s>"], "tgt_tokens": ["\u2581un", "\u2581chien", "</s>"],
            "src_words": ["a", "dog", "</s>"], "tgt_words": ["un", "chien", "</s>"],
            "word_contributions": [[0.1, -0.2, 0.0], [0.3, 0.4, 0.05], [0.0, 0.0, -0.01]],
            "word_importance": [0.4, 0.6], "target_scores": [0.5, 0.4, 0.9], "baseline_scores": [0.1, 0.2, 0.85],
            "convergence_delta": [0.0, 0.0, -0.001], "reference": "un chien", "method": "ig", "score": "prob"}
    base.update(changes)
    return base


def test_text_view_of_a_default_record_is_unchanged():
    """Written by hand in the format of attributions.txt (columns of 8 characters for words up to 8)."""
    expected = ("S-3\ta dog\nT-3\tun chien\nR-3\tun chien\nI-3\tdog=0.600 a=0.400\n"
                "D-3\tmax |convergence delta| = 1.00e-03\n"
                "             un    chien     </s>\n"
                "a        +0.100   -0.200   +0.000\n"
                "dog      +0.300   +0.400   +0.050\n"
                "</s>     +0.000   +0.000   -0.010\n")
    assert render_record(record()) == expected


def test_text_view_never_cuts_a_word():
    long = "Kapitänsmützenhersteller"
    text = render_record(record(tgt_words=["un", long, "</s>"]))
    header = text.splitlines()[5]
    assert long in header and header.endswith("</s>")
    rows = text.splitlines()[6:]
    assert all(len(row) == len(header) for row in rows)  # the columns stay aligned


def test_text_view_of_prefix_and_contrast():
    rec = record(prefix_words=["</s>", "un", "chien"],
                 prefix_word_contributions=[[0.1, 0, 0], [0, 0.2, 0], [0, 0, 0.3]], contrast_step=1, contrast_token="\u2581chat", contrast_word=1)
    text = render_record(rec)
    assert "C-3\tstep 1: \u2581chien rather than \u2581chat" in text
    assert "P-3\ttarget prefix" in text and text.rstrip().endswith("+0.300")


def test_scales():
    assert importance_scale([0.2, 0.8]) == pytest.approx(1.0) and importance_scale([]) == 1.0
    assert importance_scale([-0.5, 0.25]) == pytest.approx(0.75)  # erasure: values need not sum to 1
    assert matrix_scale([[0.1, -0.2], [0.3, 0.4]]) == pytest.approx(0.6)  # largest column total |c|
    assert matrix_scale([[0.1, -0.2]], [[0.0, 0.5]]) == pytest.approx(0.7)  # source and prefix rows together
    assert matrix_scale([[0.0]]) == 1.0
    assert strength(-0.3, 0.6) == pytest.approx(0.5) and strength(2.0, 1.0) == 1.0


def alphas(page, word):
    return [float(a) for a in re.findall(r"rgba\([\d,]+,([\d.]+)\)[^\"]*\" title=\"[-\d.]+\">" + re.escape(word) + "<",
                                         page)]


def test_near_uniform_importance_stays_pale_and_legends_give_the_scale():
    uniform = record(src_words=["w%d" % i for i in range(10)] + ["</s>"], word_importance=[0.1] * 10,
                     word_contributions=None)
    page = render([uniform])
    assert all(alphas(page, "w%d" % i) == [0.1] for i in range(10))  # the old rule shaded all of them fully
    assert "word importance" in page and "importance (it sums to 1 over the words)" in page
    page = render([record()])
    # contribution legend: ±0.6, the largest column total (column 1: |-0.2| + 0.4 + 0.0)
    assert "<span>-0.6</span>" in page and "<span>+0.6</span>" in page
    assert "title=\"0.4000\">+0.40<" in page.replace("</td>", "<")  # cells keep their values


def test_html_shows_options_contrast_and_prefix_and_escapes():
    rec = record(contrast_step=1, contrast_token="<chat>", contrast_word=1, checkpoint="ckpt/x.pt",
                 occlusion_window=2, prefix_words=["</s>", "un", "chien"],
                 prefix_word_contributions=[[0.1, 0, 0], [0, 0.2, 0], [0, 0, 0.3]])
    assert options_line(rec) == "method=ig, score=prob, checkpoint=ckpt/x.pt, occlusion_window=2"
    page = render_fragment([rec])
    assert page.startswith("<div class='fairseq-interp'><style>") and "&lt;chat&gt;" in page and "<chat>" not in page
    assert "why <span class='w' title='\u2581chien'>chien</span> rather than" in page
    assert page.count('<table class="m">') == 2 and "target prefix" in page
    assert "method=ig, score=prob, checkpoint=ckpt/x.pt" in page
    reference = render([record(attribute_target="reference", translation="le chien")])
    assert "<b>reference</b> un chien</div>" in reference and "translation</span> le chien" in reference
    assert reference.count("un chien") == 1  # the attributed reference once


def test_heatmap_draws_into_given_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fairseq_interp.word_importance.views.heatmap import draw_record

    rec = record(prefix_words=["</s>", "un", "chien"], prefix_word_contributions=[[0.1, 0, 0], [0, 0.2, 0],
                                                                                  [0, 0, 0.3]])
    fig, ax = plt.subplots()
    assert draw_record(rec, ax, rows="all", colorbar=False) is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "dog", "</s>", "</s>", "un", "chien"]
    # the largest column total over source and prefix rows: column 1, 0.2 + 0.4 + 0.2 = 0.8
    assert ax.images[0].get_clim() == pytest.approx((-0.8, 0.8))
    plt.close(fig)
    with pytest.raises(InterpretError, match="no target-prefix matrix"):
        draw_record(record(), rows="prefix")
    with pytest.raises(InterpretError, match="word importance only"):
        draw_record(record(word_contributions=None))
