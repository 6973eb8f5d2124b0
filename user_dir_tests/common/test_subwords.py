"""Subword merging and word importance on hand-made sentencepiece and BPE examples."""

import math

import pytest

from fairseq_interp.common.subwords import group_subwords, merge_matrix, scheme_from_post_process
from fairseq_interp.word_importance.records import word_importance


def test_sentencepiece_grouping():
    tokens = ["\u2581A", "\u2581Bos", "ton", "\u2581", "lush", "\u2581grass", "\u2581.", "</s>"]
    words, index = group_subwords(tokens, "sentencepiece")
    assert words == ["A", "Boston", "lush", "grass", ".", "</s>"]
    assert index == [0, 1, 1, 2, 2, 3, 4, 5]


def test_bpe_grouping():
    tokens = ["a", "bos@@", "ton", "ter@@", "ri@@", "er", "runs", "</s>"]
    words, index = group_subwords(tokens, "subword_nmt")
    assert words == ["a", "boston", "terrier", "runs", "</s>"]
    assert index == [0, 1, 1, 2, 2, 2, 3, 4]


def test_language_tokens_are_words_of_their_own():
    # fairseq's --encoder-langtok token before a piece without "▁", and a BPE continuation before one
    words, index = group_subwords(["__fr__", "Bos", "ton", "\u2581x", "</s>"], "sentencepiece")
    assert words == ["__fr__", "Boston", "x", "</s>"] and index == [0, 1, 1, 2, 3]
    assert group_subwords(["bos@@", "__de__", "ton", "</s>"], "subword_nmt")[0] == ["bos", "__de__", "ton", "</s>"]
    assert group_subwords(["[fr_XX]", "Bos", "\u2581x"], "sentencepiece")[0] == ["[fr_XX]", "Bos", "x"]  # mBART style
    assert group_subwords(["\u2581a", "__", "b"], "sentencepiece")[0] == ["a__b"]  # not a language token


def test_none_and_unknown_scheme():
    assert group_subwords(["x", "y", "</s>"], "none") == (["x", "y", "</s>"], [0, 1, 2])
    with pytest.raises(ValueError):
        group_subwords(["x"], "wordpiece")
    assert scheme_from_post_process("sentencepiece") == "sentencepiece"
    assert scheme_from_post_process("@@ ") == "subword_nmt"
    assert scheme_from_post_process(None) == "none"


def test_merge_matrix_sums_blocks():
    # source: "▁Bos ton ▁dog </s>" -> Boston, dog, </s>; target BPE: "chi@@ en </s>" -> chien, </s>
    src_words, src_map = group_subwords(["\u2581Bos", "ton", "\u2581dog", "</s>"], "sentencepiece")
    tgt_words, tgt_map = group_subwords(["chi@@", "en", "</s>"], "subword_nmt")
    m = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
    merged = merge_matrix(m, src_map, tgt_map, len(src_words), len(tgt_words))
    assert merged == [[1 + 2 + 4 + 5, 3 + 6], [7 + 8, 9], [10 + 11, 12]]


def test_word_importance_softmax_of_row_sums():
    src_words = ["a", "b", "c", "</s>"]
    contributions = [[0.5, 0.5], [0.0, 0.0], [-1.0, 0.0], [9.0, 9.0]]
    imp = word_importance(contributions, src_words)
    assert len(imp) == 3  # EOS excluded
    assert math.isclose(sum(imp), 1.0, rel_tol=1e-12)
    z = math.exp(1.0) + math.exp(0.0) + math.exp(-1.0)
    assert imp == pytest.approx([math.exp(1.0) / z, 1 / z, math.exp(-1.0) / z])
