"""Word alignments from attribution or attention matrices, and the alignment error rate (Och & Ney 2003).

Links from a word-level matrix M (rows = source words, columns = target words, ``</s>`` excluded): for every
target word j, the source word argmax_i M[i, j] (ties: the first). Gold links come in the WPT/TALP format, one line
per sentence pair, ``i-j`` (sure) or ``ipj`` (possible), 1-based, i = source word, j = target word.

    AER = 1 − (|A ∩ S| + |A ∩ P|) / (|A| + |S|),  with S ⊆ P (sure links are also possible),

summed over the corpus before dividing.
"""

from ...common.errors import InterpretError


def parse_links(line, zero_based=False):
    """``(sure, possible)`` link sets of one gold line (``i-j`` sure, ``ipj`` possible; ``possible`` includes
    ``sure``), 1-based as written, or 0-based with ``zero_based=True``."""
    shift = 1 if zero_based else 0
    sure, possible = set(), set()
    for item in line.split():
        sep = "-" if "-" in item else "p" if "p" in item else None
        try:
            if sep is None:
                raise ValueError
            i, j = (int(x) for x in item.split(sep))
        except ValueError:
            raise InterpretError(f"bad alignment link {item!r}: write links as i-j (sure) or ipj (possible)") from None
        link = (i - shift, j - shift)
        possible.add(link)
        if sep == "-":
            sure.add(link)
    return sure, possible


def read_talp(path):
    """0-based ``(sure, possible)`` pairs of every line of a gold file."""
    with open(path, encoding="utf-8") as f:
        return [parse_links(line, zero_based=True) for line in f]


def read_gold(text_path, gold_path):
    """A ``source ||| target`` text file and its gold links: ``(pairs, golds)``, links 1-based as written."""
    with open(text_path, encoding="utf-8") as text, open(gold_path, encoding="utf-8") as gold:
        text_lines, gold_lines = text.read().splitlines(), gold.read().splitlines()
    if len(text_lines) != len(gold_lines):
        raise InterpretError(f"{text_path} has {len(text_lines)} lines but {gold_path} has {len(gold_lines)}: "
                             "pass the gold file of that text")
    pairs = []
    for line in text_lines:
        if "|||" not in line:
            raise InterpretError(f"line {line!r} of {text_path} has no '|||': write 'source ||| target'")
        src, tgt = line.split("|||", 1)
        pairs.append((src.split(), tgt.split()))
    return pairs, [parse_links(links) for links in gold_lines]


def argmax_links(matrix):
    """One link (i, j) per target word j: the source row with the largest value in column j."""
    if not matrix:
        return set()
    links = set()
    for j in range(len(matrix[0])):
        column = [row[j] for row in matrix]
        links.add((max(range(len(column)), key=lambda i: (column[i], -i)), j))
    return links


def record_links(record, use_abs=False):
    """Links of an attribution record from its ``word_contributions`` without the ``</s>`` row and column."""
    matrix = record.get("word_contributions")
    if matrix is None:
        raise InterpretError(f"record {record['id']} (method {record.get('method')}) has no contribution matrix: "
                             "alignments need ig or attention records")
    src_eos = record["src_words"][-1] == "</s>"
    tgt_eos = record["tgt_words"][-1] == "</s>"
    rows = matrix[:-1] if src_eos else matrix
    rows = [row[:-1] if tgt_eos else row for row in rows]
    if use_abs:
        rows = [[abs(v) for v in row] for row in rows]
    return argmax_links(rows)


def aer(hypotheses, golds):
    """Corpus AER of hypothesis link sets against ``(sure, possible)`` gold pairs (same order, same length)."""
    if len(hypotheses) != len(golds):
        raise InterpretError(f"{len(hypotheses)} hypothesis alignments for {len(golds)} gold lines: check the "
                             "sentence counts")
    a_s = a_p = n_a = n_s = 0
    for links, (sure, possible) in zip(hypotheses, golds):
        possible = possible | sure
        a_s += len(links & sure)
        a_p += len(links & possible)
        n_a += len(links)
        n_s += len(sure)
    if n_a + n_s == 0:
        raise InterpretError("AER is undefined without links: give non-empty alignments or gold sure links")
    return 1.0 - (a_s + a_p) / (n_a + n_s)
