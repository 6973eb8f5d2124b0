"""IBM Model 1 and AER on hand-made corpora with known answers, and on the real En-Fr gold alignments."""

import os

import numpy as np
import pytest

from conftest import SHARED_DATA
from fairseq_interp.word_importance.evaluation.aer import aer, parse_links, read_gold
from fairseq_interp.common.ibm1 import IBM1
from fairseq_interp.common.errors import InterpretError

# Koehn, Statistical Machine Translation, §4.2.3: the EM example without NULL.
HOUSE = [("das Haus".split(), "the house".split()),
         ("das Buch".split(), "the book".split()),
         ("ein Buch".split(), "a book".split())]


def test_first_em_iteration_matches_hand_computation():
    model = IBM1(null=False).fit(HOUSE, iterations=1)
    # uniform start: every target word splits its count evenly over the two source words of its sentence
    expected = {("the", "das"): 0.5, ("house", "das"): 0.25, ("book", "das"): 0.25,
                ("book", "Buch"): 0.5, ("the", "Buch"): 0.25, ("a", "Buch"): 0.25,
                ("the", "Haus"): 0.5, ("house", "Haus"): 0.5, ("a", "ein"): 0.5, ("book", "ein"): 0.5}
    for (f, e), value in expected.items():
        assert model.prob(f, e) == pytest.approx(value)
    assert model.prob("a", "das") == 0.0  # never co-occur
    for e in ("das", "Buch", "Haus", "ein"):  # t(.|e) is a distribution
        assert sum(model.prob(f, e) for f in ("the", "house", "book", "a")) == pytest.approx(1.0)


def test_second_iteration_by_hand():
    model = IBM1(null=False).fit(HOUSE, iterations=2)
    # E-step with the iteration-1 table; c(the, das) = 0.5/(0.5+0.5) [sent 1] + 0.5/(0.5+0.25) [sent 2]
    c = {("the", "das"): 0.5 + 0.5 / 0.75, ("house", "das"): 0.25 / 0.75, ("book", "das"): 0.25 / 0.75}
    total = sum(c.values())
    assert model.prob("the", "das") == pytest.approx(c[("the", "das")] / total)
    assert model.prob("house", "das") == pytest.approx(c[("house", "das")] / total)


def test_em_converges_to_the_known_fixed_point():
    model = IBM1(null=False).fit(HOUSE, iterations=200)
    for f, e in (("the", "das"), ("book", "Buch"), ("house", "Haus"), ("a", "ein")):
        assert model.prob(f, e) > 0.95
    assert np.all(np.diff(model.log_likelihoods) >= -1e-12)  # EM never decreases the likelihood
    assert model.align("das Buch".split(), "the book".split()) == {(1, 1), (2, 2)}
    assert model.align("ein Haus".split(), "a house".split()) == {(1, 1), (2, 2)}


def test_null_word_takes_the_unexplained_target_word():
    corpus = [("a b".split(), "A B x".split()), ("a c".split(), "A C x".split()),
              ("b c".split(), "B C x".split()), ("d".split(), "D x".split()), ("c d".split(), "C D x".split())]
    model = IBM1(null=True).fit(corpus, iterations=100)
    assert model.prob("x", "<NULL>") > 0.5
    links = model.align("a b".split(), "A B x".split())
    assert links == {(1, 1), (2, 2)}  # x is aligned to NULL, i.e. left unaligned
    post = model.posterior("a b".split(), "A B x".split())
    assert post.shape == (3, 3) and np.allclose(post.sum(axis=0), 1.0)
    assert post[0, 2] == post[:, 2].max()


def test_unknown_words_have_zero_probability():
    model = IBM1(null=False).fit(HOUSE, iterations=3)
    table = model.table(["das", "Mond"], ["the", "moon"])
    assert table[1].sum() == 0 and table[:, 1].sum() == 0 and table[0, 0] > 0
    assert model.align(["Mond"], ["moon"]) == set()


def test_aer_of_hand_alignments():
    sure, possible = parse_links("1-1 2-2 2p3")
    assert sure == {(1, 1), (2, 2)} and possible == {(1, 1), (2, 2), (2, 3)}
    # |A∩S| = 1, |A∩P| = 2, |A| = 3, |S| = 2  ->  1 - 3/5
    gold = [(sure, possible)]
    assert aer([{(1, 1), (2, 3), (3, 3)}], gold) == pytest.approx(0.4)
    assert aer([sure], gold) == 0.0
    assert aer([{(1, 2)}], gold) == 1.0
    # corpus level: counts are summed over sentences, not AERs averaged
    assert aer([{(1, 1)}, {(1, 2)}], [({(1, 1)}, set()), ({(1, 1), (2, 2)}, set())]) == pytest.approx(1 - 2 / 5)


def test_bad_input_names_the_fix():
    with pytest.raises(InterpretError, match="i-j"):
        parse_links("1-1 2x2")
    with pytest.raises(InterpretError, match="word lists"):
        IBM1().fit([("a b", "c d")])
    with pytest.raises(InterpretError, match="non-empty"):
        IBM1().fit([])
    with pytest.raises(InterpretError, match="sentence counts"):
        aer([{(1, 1)}], [])


def test_real_gold_alignments_beat_diagonal():
    """IBM-1 trained on the 447 Hansards pairs alone aligns better than chance; the gold file parses."""
    text = os.path.join(SHARED_DATA, "alignments", "test.en-fr")
    pairs, golds = read_gold(text, os.path.join(SHARED_DATA, "alignments", "enfr.talp"))
    assert len(pairs) == 447 and all(s <= p for s, p in golds)
    for (src, tgt), (_, p) in zip(pairs, golds):
        assert all(1 <= i <= len(src) and 1 <= j <= len(tgt) for i, j in p)
    model = IBM1().fit(pairs, iterations=10)
    hyp = [model.align(src, tgt) for src, tgt in pairs]
    score = aer(hyp, golds)
    rng = np.random.default_rng(0)
    random = [{(int(rng.integers(len(src))) + 1, j + 1) for j in range(len(tgt))} for src, tgt in pairs]
    assert score < aer(random, golds) - 0.2
    assert score < 0.6
