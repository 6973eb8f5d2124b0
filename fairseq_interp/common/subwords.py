"""From subword tokens to words: grouping tokens into words, merging token-level matrices into word-level ones.

Subword schemes (fairseq's ``--post-process`` names):

* ``sentencepiece``: a piece starting with "▁" (U+2581) starts a word;
* ``subword_nmt`` (BPE with "@@ " continuation markers): a token ending in "@@" continues into the next one;
* ``none``: every token is a word.

The end-of-sentence token ``</s>`` is always a word of its own, kept last. So is a language token of fairseq's
multilingual tasks (``__de__``, mBART's ``[de_DE]``; ``--encoder-langtok``): it never merges with a neighbour.
"""

import re

SPM_SPACE = "\u2581"
EOS = "</s>"
SCHEMES = ("sentencepiece", "subword_nmt", "none")
# fairseq's get_lang_tok styles: "multilingual" __xx__ and "mbart" [xx_XX] (with the _dae/_mined spec suffixes)
LANGUAGE_TOKEN = re.compile(r"^(__[A-Za-z][A-Za-z0-9_-]*__|\[[a-z]{2,3}_[A-Z]{2}(_dae|_mined)?\])$")


def is_language_token(token):
    return bool(LANGUAGE_TOKEN.match(token))


def scheme_from_post_process(post_process):
    """Map fairseq's ``--post-process``/``--remove-bpe`` value to a subword scheme."""
    if post_process in (None, "", "none", False):
        return "none"
    if post_process in ("sentencepiece", "_EOW"):
        return "sentencepiece"
    if post_process in ("subword_nmt", "@@ ", "@@"):
        return "subword_nmt"
    raise ValueError(f"unknown subword post-processing {post_process!r}: use sentencepiece, subword_nmt or none")


def group_subwords(tokens, scheme):
    """Words of a token sequence and the word index of every token.

    Returns ``(words, token_to_word)`` with ``len(token_to_word) == len(tokens)``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown subword scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    words, index = [], []
    continues = False  # subword_nmt: previous token ended with "@@"
    standalone = False  # previous token was </s> or a language token: this one starts a word
    for tok in tokens:
        if tok == EOS or is_language_token(tok):
            words.append(tok)
            continues, standalone = False, True
            index.append(len(words) - 1)
            continue
        if scheme == "sentencepiece":
            if tok.startswith(SPM_SPACE) or not words or standalone:
                words.append(tok.lstrip(SPM_SPACE))
            else:
                words[-1] += tok
        elif scheme == "subword_nmt":
            piece = tok[:-2] if tok.endswith("@@") else tok
            if continues and words:
                words[-1] += piece
            else:
                words.append(piece)
            continues = tok.endswith("@@")
        else:
            words.append(tok)
        standalone = False
        index.append(len(words) - 1)
    # a sentencepiece word made only of "▁" pieces would be empty: show the marker instead
    words = [w if w else SPM_SPACE for w in words]
    return words, index


def merge_matrix(matrix, row_index, col_index, n_rows, n_cols):
    """Sum a token-level matrix (nested lists or a 2-d tensor) into a word-level one (lists)."""
    out = [[0.0] * n_cols for _ in range(n_rows)]
    for i, row in enumerate(matrix):
        r = out[row_index[i]]
        for j, value in enumerate(row):
            r[col_index[j]] += float(value)
    return out


def guess_scheme(dictionary):
    """The subword scheme a fairseq dictionary's symbols look like: sentencepiece when over 20% start with "▁",
    subword_nmt when over 5% end with "@@", else none."""
    symbols = dictionary.symbols[dictionary.nspecial:]
    if not symbols:
        return "none"
    spm = sum(s.startswith(SPM_SPACE) for s in symbols) / len(symbols)
    bpe = sum(s.endswith("@@") for s in symbols) / len(symbols)
    if spm > 0.2:
        return "sentencepiece"
    if bpe > 0.05:
        return "subword_nmt"
    return "none"
