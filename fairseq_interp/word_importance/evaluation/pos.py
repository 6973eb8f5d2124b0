"""POS distribution of word count vs word importance (He et al. 2019, §5.2, Tables 3–4).

For every record, the source words (``</s>`` excluded) are POS-tagged (spaCy universal tags, tokenization kept);
count share, importance share (importance × sentence length) and relative change per tag are those of
:mod:`.shares`. R_t > 0: words of that category get more importance than their frequency alone would give them.
"""

from . import shares


def pos_distribution(records, tagger):
    """Rows ``{"pos", "words", "count_share", "importance_share", "relative_change"}``, most frequent tag first."""
    return shares.category_shares(records, tagger, "pos")


def markdown(rows):
    return shares.markdown(rows, "pos", "POS")
