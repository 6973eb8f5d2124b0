"""The count-table model of Snell et al. §4 for classification (Eq. 16–19 with T = 1), by hand."""

import numpy as np
import pytest

from fairseq_interp.attention_learning.count_table import count_table, polarity_and_attention
from fairseq_interp.common.errors import InterpretError


def test_count_table_by_hand():
    # C[good, 1] = 1/2, C[movie, 1] = 1/2 + 1/3, C[bad, 0] = 1/2, C[movie, 0] = 1/2, C[a, 1] = 1/3, C[fun, 1] = 1/3
    model = count_table([["good", "movie"], ["bad", "movie"], ["a", "fun", "movie"]], [1, 0, 1])
    beta, alpha = polarity_and_attention(model, ["good", "movie"], 1)
    trans_movie = (1 / 2 + 1 / 3) / (1 / 2 + 1 / 3 + 1 / 2)  # Eq. 17: 5/8
    np.testing.assert_allclose(beta, [1.0, trans_movie])  # Eq. 18
    np.testing.assert_allclose(alpha, np.array([1.0, trans_movie]) / (1 + trans_movie))  # Eq. 19
    beta, alpha = polarity_and_attention(model, ["bad", "movie", "unseen"], 0)
    np.testing.assert_allclose(beta, [1.0, 1 - trans_movie, 0.0])
    np.testing.assert_allclose(alpha.sum(), 1.0)


def test_unseen_words_give_uniform_attention_and_labels_must_match():
    model = count_table([["good"]], [1])
    beta, alpha = polarity_and_attention(model, ["x", "y"], 1)
    np.testing.assert_allclose(beta, [0, 0])
    np.testing.assert_allclose(alpha, [0.5, 0.5])
    with pytest.raises(InterpretError, match="one label per sentence"):
        count_table([["a"]], [1, 0])


def test_figure5_driver_against_the_equations(tmp_path):
    """``classification.py figure5`` on a hand-made prepared folder: accuracy and α^IBM from Eq. 17-19 by hand."""
    import json
    import os
    import sys

    from conftest import REPO, run

    data = tmp_path / "sst"
    (data / "text").mkdir(parents=True)
    (data / "prepare.json").write_text("{}")  # prepared: the driver does not call prepare_sst2.py
    train = [("a good film .", 1), ("a bad film .", 0), ("good fun", 1), ("bad plot", 0)]
    test = [("good plot film", 1), ("bad fun", 0), ("a film", 1)]
    for split, rows in (("train", train), ("test", test)):
        (data / "text" / f"{split}.input0").write_text("".join(s + "\n" for s, _ in rows))
        (data / "text" / f"{split}.label").write_text("".join(f"{y}\n" for _, y in rows))
    out = tmp_path / "out"
    driver = os.path.join(REPO, "scripts", "reproduce", "snell2021", "classification.py")
    run([sys.executable, driver, "figure5", "--results-path", str(out), "--data", str(data), "--counts", "2", "0",
         "--sentences", "1", "--min-words", "3", "--max-words", "3"], in_process=True)
    points = json.loads((out / "figure5.json").read_text())["points"]
    assert [p["train_sentences"] for p in points] == [2, 4]
    # all 4 sentences: Trans(1|good) = 1, Trans(1|plot) = 0, Trans(1|film) = 1/2, Trans(1|fun) = 1, Trans(1|bad) = 0,
    # Trans(1|a) = 1/2; "good plot film": Σ_l Trans(1|x_l) = 1.5 = Σ_l Trans(0|x_l), a tie, counted wrong; "bad fun"
    # 1 vs 1 and "a film" 1 vs 1, ties too: accuracy 0
    assert points[1]["accuracy"] == 0.0
    view = points[1]["examples"][0]
    assert view["words"] == ["good", "plot", "film"] and view["beta"] == [1.0, 0.0, 0.5]
    np.testing.assert_allclose(view["alpha"], [2 / 3, 0, 1 / 3], atol=1e-6)
    # the first 2 sentences only: "good plot film" 1.5 vs 0.5 (right), "bad fun" 0 vs 1 (right), "a film" 1 vs 1 (tie)
    assert points[0]["accuracy"] == pytest.approx(200 / 3)
    assert (out / "figure5.png").stat().st_size > 0 and "| 4 | 0.0 |" in (out / "figure5.md").read_text()
