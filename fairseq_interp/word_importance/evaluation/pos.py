"""POS distribution of word count vs word importance (He et al. 2019, §5.2, Table 3).

For every record, the source words (``</s>`` excluded) are POS-tagged (spaCy universal tags, tokenization kept);
count share, importance share (importance × sentence length) and relative change per category are those of
:mod:`.shares`. R_c > 0: words of that category get more importance than their frequency alone would give them.

**The paper's categories (default).** Table 3 groups words into content words (Noun, Verb, Adj.) and content-free
words (Prep., Dete., Punc., Others), with a total for each group. The paper names no tagger; from spaCy's universal
tags (:data:`PAPER_GROUPS`): Noun = NOUN + PROPN, Verb = VERB + AUX, Adj. = ADJ, Prep. = ADP, Dete. = DET,
Punc. = PUNCT, Others = every other tag (ADV, PRON, NUM, CCONJ, SCONJ, PART, INTJ, SYM, X). Auxiliaries count as
verbs and proper nouns as nouns, as in the Penn Treebank tags (VB*, NN*) that English taggers of 2019 produced;
the paper's English count shares (verbs 0.146 of the words of its En⇒Fr test set) fit that grouping.
``groups="universal"`` gives one row per universal tag instead (the earlier table of this project).
"""

from . import shares

#: universal POS tag → the paper's Table 3 category (tags not listed: "Others")
PAPER_GROUPS = {"NOUN": "Noun", "PROPN": "Noun", "VERB": "Verb", "AUX": "Verb", "ADJ": "Adj.", "ADP": "Prep.",
                "DET": "Dete.", "PUNCT": "Punc."}
CONTENT = ("Noun", "Verb", "Adj.")
CONTENT_FREE = ("Prep.", "Dete.", "Punc.", "Others")
CONTENT_TOTAL, CONTENT_FREE_TOTAL = "Content total", "Content-free total"
#: Table 3's rows, in its order
TABLE3_ROWS = CONTENT + (CONTENT_TOTAL,) + CONTENT_FREE + (CONTENT_FREE_TOTAL,)
GROUPINGS = ("paper", "universal")


def paper_group(tag):
    """The Table 3 category of a universal POS tag."""
    return PAPER_GROUPS.get(tag, "Others")


def pos_distribution(records, tagger):
    """Rows ``{"pos", "words", "count_share", "importance_share", "relative_change"}`` per universal tag, most
    frequent first."""
    return shares.category_shares(records, tagger, "pos")


def _total(rows, name, members):
    chosen = [r for r in rows if r["pos"] in members]
    count = sum(r["count_share"] for r in chosen)
    importance = sum(r["importance_share"] for r in chosen)
    return {"pos": name, "words": sum(r["words"] for r in chosen), "count_share": count,
            "importance_share": importance, "relative_change": (importance - count) / count if count else 0.0}


def group_distribution(records, tagger):
    """Table 3: rows of the paper's categories and the two totals, in the order :data:`TABLE3_ROWS` (a category
    without words is left out; its group total still counts the others)."""
    rows = shares.category_shares(records, lambda ws: [paper_group(t) for t in tagger(ws)], "pos",
                                  order=CONTENT + CONTENT_FREE)
    out = [r for r in rows if r["pos"] in CONTENT] + [_total(rows, CONTENT_TOTAL, CONTENT)]
    out += [r for r in rows if r["pos"] in CONTENT_FREE] + [_total(rows, CONTENT_FREE_TOTAL, CONTENT_FREE)]
    return out


def markdown(rows):
    return shares.markdown(rows, "pos", "POS")
