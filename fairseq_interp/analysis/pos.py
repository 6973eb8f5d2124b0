"""POS distribution of word count vs word importance (He et al. 2019, §5.2, Tables 3–4).

For every record, the source words (``</s>`` excluded) are POS-tagged (spaCy universal tags, tokenization kept);
each word's importance is rescaled by the sentence length, ``a_i = importance_i · n`` (so a sentence's words average
1 whatever its length). Over the corpus, per tag t::

    count share  C_t = #{words tagged t} / #{words}
    importance share  I_t = Σ_{words tagged t} a_i / Σ_all a_i
    relative change  R_t = (I_t − C_t) / C_t

R_t > 0: words of that category get more importance than their frequency alone would give them.
"""

import collections

from ..errors import InterpretError


def pos_distribution(records, tagger):
    """Rows ``{"pos", "words", "count_share", "importance_share", "relative_change"}``, most frequent tag first."""
    counts = collections.Counter()
    mass = collections.Counter()
    for r in records:
        words = r["src_words"][:-1] if r["src_words"][-1:] == ["</s>"] else r["src_words"]
        importance = r["word_importance"]
        if len(importance) != len(words):
            raise InterpretError(f"record {r['id']}: {len(importance)} importance values for {len(words)} words")
        tags = tagger(words)
        n = len(words)
        for tag, value in zip(tags, importance):
            counts[tag] += 1
            mass[tag] += value * n
    total_words, total_mass = sum(counts.values()), sum(mass.values())
    if not total_words or total_mass == 0:
        raise InterpretError("no words with importance: attribute some sentences first")
    rows = []
    for tag, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        count_share = c / total_words
        importance_share = mass[tag] / total_mass
        rows.append({"pos": tag, "words": c, "count_share": count_share, "importance_share": importance_share,
                     "relative_change": (importance_share - count_share) / count_share})
    return rows


def markdown(rows):
    lines = ["| POS | words | count share | importance share | relative change |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['pos']} | {r['words']} | {r['count_share']:.3f} | {r['importance_share']:.3f} | "
                     f"{r['relative_change']:+.1%} |")
    return "\n".join(lines)
