"""Share of source words vs share of word importance per word category (He et al. 2019, §5.2, Tables 3–4).

Each source word (``</s>`` excluded) of each record gets a category (a POS tag, a fertility class, ...); its
importance is rescaled by the sentence length, ``a_i = importance_i · n`` (so a sentence's words average 1 whatever
its length). Over the corpus, per category c::

    count share  C_c = #{words in c} / #{words}
    importance share  I_c = Σ_{words in c} a_i / Σ_all a_i
    relative change  R_c = (I_c − C_c) / C_c

R_c > 0: words of that category get more importance than their frequency alone would give them.
"""

import collections

from ...common.errors import InterpretError
from ...common.tables import markdown_table


def source_words(record):
    """The record's source words without ``</s>``, checked against its ``word_importance``."""
    words = record["src_words"][:-1] if record["src_words"][-1:] == ["</s>"] else record["src_words"]
    if len(record["word_importance"]) != len(words):
        raise InterpretError(f"record {record['id']}: {len(record['word_importance'])} importance values for "
                             f"{len(words)} words")
    return words


def scaled_importance(record):
    """``a_i = importance_i · n`` of every source word of a record (n = its number of words, ``</s>`` excluded)."""
    n = len(source_words(record))
    return [value * n for value in record["word_importance"]]


def category_shares(records, categorize, key, order=None, by_record=False):
    """Rows ``{key, "words", "count_share", "importance_share", "relative_change"}``.

    ``categorize(words)`` (``categorize(record)`` with ``by_record``) returns one category per source word of a
    record. Rows follow ``order`` (categories absent from the records are left out) or, without it, the most
    frequent category first.
    """
    counts = collections.Counter()
    mass = collections.Counter()
    for r in records:
        words = source_words(r)
        categories = list(categorize(r) if by_record else categorize(words))
        if len(categories) != len(words):
            raise InterpretError(f"record {r['id']}: {len(categories)} categories for {len(words)} words")
        for category, value in zip(categories, scaled_importance(r)):
            counts[category] += 1
            mass[category] += value
    total_words, total_mass = sum(counts.values()), sum(mass.values())
    if not total_words or total_mass == 0:
        raise InterpretError("no words with importance: attribute some sentences first")
    if order is None:
        order = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    rows = []
    for category in (c for c in order if counts[c]):
        count_share = counts[category] / total_words
        importance_share = mass[category] / total_mass
        rows.append({key: category, "words": counts[category], "count_share": count_share,
                     "importance_share": importance_share,
                     "relative_change": (importance_share - count_share) / count_share})
    return rows


def markdown(rows, key, title):
    """The rows as a markdown table whose first column, headed ``title``, is ``row[key]``."""
    return markdown_table([title, "words", "count share", "importance share", "relative change"],
                          [[r[key], r["words"], f"{r['count_share']:.3f}", f"{r['importance_share']:.3f}",
                            f"{r['relative_change']:+.1%}"] for r in rows])


def csv_text(rows, key):
    """The rows as CSV (full precision), header ``key,words,count_share,importance_share,relative_change``."""
    fields = [key, "words", "count_share", "importance_share", "relative_change"]
    return "\n".join([",".join(fields)] + [",".join(str(r[f]) for f in fields) for r in rows]) + "\n"
