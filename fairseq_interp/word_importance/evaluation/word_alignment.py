"""Word alignments of sentence pairs for the analyses of He et al. 2019 (§5.1 under-translation labels, §5.2 Table 4
fertility): IBM Model 1 (:mod:`fairseq_interp.common.ibm1`) trained in both directions and symmetrized.

He et al. (§5.2, Table 4) name no aligner. Their four fertility classes need links in both directions: one-to-many
(a source word linked to several target words) exists in a source→target model, many-to-one (several source words
linked to one target word) only in a target→source model. The default here is therefore the usual recipe of
statistical MT: Viterbi links of IBM-1 trained source→target and target→source, joined by *grow-diag-final-and*
(Koehn, Och and Marcu 2003; the Moses default). Other heuristics are options:

* ``grow-diag-final-and`` (default): start from the intersection, add union links that neighbour (also
  diagonally) an existing link and cover a still unaligned word, repeated until nothing changes; then add union
  links of each direction whose two words are both still unaligned;
* ``intersection`` / ``union`` of the two directions;
* ``source-to-target``: the source→target model alone (each target word has at most one source word: no
  many-to-one links; the reading of earlier versions of this project).

Links are 0-based ``(source index, target index)`` pairs.
"""

from ...common.errors import InterpretError

HEURISTICS = ("grow-diag-final-and", "intersection", "union", "source-to-target")
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def grow_diag_final_and(forward, backward):
    """Symmetrized links of two directional link sets (both 0-based ``(i, j)``), Koehn et al. 2003 (Moses'
    ``grow-diag-final-and``)."""
    forward, backward = set(forward), set(backward)
    union = forward | backward
    links = forward & backward
    src_aligned = {i for i, _ in links}
    tgt_aligned = {j for _, j in links}
    added = True
    while added:  # grow-diag
        added = False
        for i, j in sorted(links):
            for di, dj in _NEIGHBOURS:
                candidate = (i + di, j + dj)
                if candidate in union and candidate not in links and (
                        candidate[0] not in src_aligned or candidate[1] not in tgt_aligned):
                    links.add(candidate)
                    src_aligned.add(candidate[0])
                    tgt_aligned.add(candidate[1])
                    added = True
    for direction in (forward, backward):  # final-and
        for i, j in sorted(direction):
            if i not in src_aligned and j not in tgt_aligned:
                links.add((i, j))
                src_aligned.add(i)
                tgt_aligned.add(j)
    return links


def symmetrize(forward, backward, heuristic="grow-diag-final-and"):
    """Join source→target and target→source links (0-based ``(i, j)`` both) by ``heuristic``."""
    if heuristic == "grow-diag-final-and":
        return grow_diag_final_and(forward, backward)
    if heuristic == "intersection":
        return set(forward) & set(backward)
    if heuristic == "union":
        return set(forward) | set(backward)
    if heuristic == "source-to-target":
        return set(forward)
    raise InterpretError(f"unknown symmetrization {heuristic!r}: choose one of {', '.join(HEURISTICS)}")


class BidirectionalIBM1:
    """IBM Model 1 in both directions on one parallel corpus, and symmetrized Viterbi links of any pair.

    Args:
        pairs: ``[(source words, target words)]`` to train on (put the pairs to be aligned among them: IBM-1 has no
            translation probability for a word it never saw).
        iterations: EM iterations of each direction. null: NULL word in both models.
        heuristic: one of :data:`HEURISTICS`.
        progress: ``progress(iterations, prefix)`` wraps each direction's EM loop (a progress bar), or None.
    """

    def __init__(self, pairs, iterations=5, null=True, heuristic="grow-diag-final-and", progress=None):
        from ...common.ibm1 import IBM1

        if heuristic not in HEURISTICS:
            raise InterpretError(f"unknown symmetrization {heuristic!r}: choose one of {', '.join(HEURISTICS)}")
        pairs = list(pairs)
        self.heuristic = heuristic
        def wrap(prefix):
            return None if progress is None else (lambda steps: progress(steps, prefix))

        self.forward = IBM1(null=null).fit(pairs, iterations=iterations, progress=wrap("IBM-1 source->target"))
        self.backward = None
        if heuristic != "source-to-target":
            self.backward = IBM1(null=null).fit([(t, s) for s, t in pairs], iterations=iterations,
                                                progress=wrap("IBM-1 target->source"))

    def directional(self, src, tgt):
        """``(source→target links, target→source links)``, 0-based ``(i, j)``; the second is empty for
        ``source-to-target``."""
        forward = {(i - 1, j - 1) for i, j in self.forward.align(src, tgt)}
        backward = set() if self.backward is None else {(i - 1, j - 1) for j, i in self.backward.align(tgt, src)}
        return forward, backward

    def align(self, src, tgt):
        """Symmetrized 0-based links of one sentence pair."""
        return symmetrize(*self.directional(src, tgt), self.heuristic)
