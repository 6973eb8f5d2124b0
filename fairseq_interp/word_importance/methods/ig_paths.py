"""Gradients along integrated-gradients paths of several sentences at once.

A *row* is one point γ_b(α) = x′_b + α (x_b − x′_b) on the path of sentence b of a padded batch, together with the
target positions n whose ∂F(γ_b(α))_n/∂x the quadrature needs there. Rows of all sentences share one forward pass
(padding-aware: sources left-padded, targets right-padded, as fairseq batches them); then backward pass j gives
every row the gradient of its j-th position's score (the rows never see each other, so one backward serves one
position of every row at once). This keeps the per-position backward structure of the one-sentence path, so memory
is one forward's graph, bounded by the rows per forward pass (``--ig-internal-batch-size``).

What a row returns is the integrand of IG at α for each of its positions: g_n,l(α) = Σ_d ∂F(γ(α))_n/∂x_ld ·
(x_ld − x′_ld) (He et al. 2019, Eq. 2 before integration), one value per source token l, and F(γ(α))_n itself.
"""

import math
from dataclasses import dataclass
from typing import List, Sequence

import torch


class PathBatch:
    """Sentences padded into one batch, with their input embeddings x, baselines x′ (zeros unless given) and the
    teacher-forced scores F(x) and F(x′).

    Args:
        adapter: a :class:`~fairseq_interp.common.teacher_forcing.TeacherForcedAdapter`.
        pairs: ``[(src_tokens (L_b,), target (T_b,)), ...]``.
        baselines: optional list of (L_b, D) baselines, one per sentence.
    """

    def __init__(self, adapter, pairs, baselines=None):
        self.adapter = adapter
        sources = [s.view(-1) for s, _ in pairs]
        targets = [t.view(-1) for _, t in pairs]
        self.src_tokens, self.src_lengths, self.targets, self.target_lengths = adapter.pad_batch(sources, targets)
        self.size = len(pairs)
        self.inputs = adapter.source_embeddings(self.src_tokens)  # (B, L, D); padding rows ignored
        self.baselines = torch.zeros_like(self.inputs)
        if baselines is not None:
            for b, base in enumerate(baselines):
                self.baselines[b, self.src_tokens.size(1) - base.shape[-2]:] = base.view(-1, base.shape[-1])
        self.diff = self.inputs - self.baselines
        rows = torch.arange(self.size).repeat(2)
        with torch.no_grad():
            ends = adapter.scores_rows(self.src_tokens, self.src_lengths, self.targets, rows,
                                       torch.cat([self.inputs, self.baselines], dim=0))
        self.target_scores, self.baseline_scores = ends[: self.size], ends[self.size:]

    def source_slice(self, b):
        """Columns of sentence b's real source tokens in the padded batch (sources are left-padded)."""
        return slice(self.src_tokens.size(1) - int(self.src_lengths[b]), self.src_tokens.size(1))

    def target_length(self, b):
        return int(self.target_lengths[b])

    def points(self, sentences, alphas):
        """γ_b(α) for every row: (R, L, D)."""
        alphas = torch.as_tensor(alphas, dtype=self.inputs.dtype, device=self.inputs.device).view(-1, 1, 1)
        return self.baselines[sentences] + alphas * self.diff[sentences]


@dataclass
class Row:
    """One point of one sentence's path and the target positions that need the gradient there (none: only the
    scores F(γ(α)) of all positions, from a forward pass without gradients)."""

    sentence: int
    alpha: float
    positions: Sequence[int] = ()
    #: filled by :func:`evaluate_rows`: (len(positions), L_b) integrand values, and F(γ(α)) (T_b,) for a row
    #: without positions or (len(positions),) at its positions otherwise
    integrand: torch.Tensor = None
    scores: torch.Tensor = None


#: fixed cost of one forward or backward pass, in rows (measured on CPU for the demo model: a pass over one row costs
#: about as much as over five more); only used to decide which rows share a forward pass
PASS_OVERHEAD_ROWS = 4.0


def evaluate_rows(batch: PathBatch, rows: List[Row], rows_per_pass=None):
    """Fill ``integrand`` and ``scores`` of every row (see :class:`Row`).

    A forward pass over R rows costs about R, and each of its backward passes about R again, whether a row needs that
    pass or not. Rows with positions are therefore sorted by their number of positions and cut into forward passes of
    rows with similar numbers (:func:`group_rows`), of at most ``rows_per_pass`` rows each (no limit when None or 0);
    each forward pass is followed by as many backward passes as its rows have positions at most. Rows without
    positions are scored in forward passes without gradients.
    """
    adapter = batch.adapter
    with_grad = [r for r in rows if len(r.positions)]
    scores_only = [r for r in rows if not len(r.positions)]
    counts = [len(r.positions) for r in with_grad]
    lengths = [1 + max(int(n) for n in r.positions) for r in with_grad]
    for part in group_rows(counts, lengths, rows_per_pass, batch.src_tokens.size(1)):
        _gradient_pass(batch, [with_grad[k] for k in part])
    chunk = rows_per_pass or max(1, len(scores_only))
    for start in range(0, len(scores_only), chunk):
        part = scores_only[start:start + chunk]
        sentences = torch.tensor([r.sentence for r in part])
        with torch.no_grad():
            scores = adapter.scores_rows(batch.src_tokens, batch.src_lengths, batch.targets, sentences,
                                         batch.points(sentences, [r.alpha for r in part]))
        for r, s in zip(part, scores):
            r.scores = s[: batch.target_length(r.sentence)].detach()


def group_rows(counts, lengths=None, rows_per_pass=None, fixed_length=0, overhead=PASS_OVERHEAD_ROWS):
    """Cut rows into forward passes: lists of row indices, each sorted by ``counts`` (backward passes a row needs,
    most first).

    Rows are sorted by count, then by ``lengths`` (decoder positions a row needs: its last position + 1); a pass
    over consecutive rows costs about (rows + overhead) × (1 + its most passes) × (``fixed_length`` + its longest
    length), the rows being padded to the same size (``fixed_length``: the padded source length). The cuts
    minimize the total (dynamic programming over the groups of equal count and length); a pass holds at most
    ``rows_per_pass`` rows (no limit when None or 0).
    """
    lengths = [1] * len(counts) if lengths is None else lengths
    order = sorted(range(len(counts)), key=lambda k: (-counts[k], -lengths[k]))
    groups = []  # (count, length, [row indices])
    for k in order:
        if groups and groups[-1][:2] == (counts[k], lengths[k]):
            groups[-1][2].append(k)
        else:
            groups.append((counts[k], lengths[k], [k]))

    best, cut = [0.0], []
    for j in range(len(groups)):
        rows, length, value, choice = 0, 0, math.inf, j
        for i in range(j, max(-1, j - 256), -1):  # the last pass holds groups i..j
            rows += len(groups[i][2])
            length = max(length, groups[i][1])
            passes = math.ceil(rows / rows_per_pass) if rows_per_pass else 1
            total = best[i] + (rows + overhead * passes) * (1 + groups[i][0]) * (fixed_length + length)
            if total < value:
                value, choice = total, i
        best.append(value)
        cut.append(choice)
    parts, j = [], len(groups) - 1
    while j >= 0:
        i = cut[j]
        parts.append([k for g in groups[i:j + 1] for k in g[2]])
        j = i - 1
    parts.reverse()
    if rows_per_pass:
        parts = [p[s:s + rows_per_pass] for p in parts for s in range(0, len(p), rows_per_pass)]
    return parts


def _gradient_pass(batch, rows):
    """One forward over ``rows`` (sorted by number of positions, most first), then one backward per position
    slot."""
    adapter = batch.adapter
    sentences = torch.tensor([r.sentence for r in rows])
    points = batch.points(sentences, [r.alpha for r in rows]).requires_grad_(True)
    diff = batch.diff[sentences]
    n_pass = len(rows[0].positions)
    # the decoder is causal: positions after the last one asked for do not change the scores asked for
    targets = batch.targets[:, : 1 + max(int(n) for r in rows for n in r.positions)]
    integrands = torch.zeros(len(rows), n_pass, points.size(1), dtype=points.dtype, device=points.device)
    scores_at = torch.zeros(len(rows), n_pass, dtype=points.dtype, device=points.device)
    row_projection = adapter.supports_row_projection()
    with torch.enable_grad():
        if row_projection:  # per position only its output row is projected (see integrated_gradients.py)
            features = adapter.decoder_features_rows(batch.src_tokens, batch.src_lengths, targets, sentences, points)
        else:
            all_scores = adapter.scores_rows(batch.src_tokens, batch.src_lengths, targets, sentences, points)
        for j in range(n_pass):
            active = sum(1 for r in rows if len(r.positions) > j)  # a prefix: rows are sorted
            index = torch.arange(active)
            positions = torch.tensor([int(r.positions[j]) for r in rows[:active]])
            if row_projection:
                tokens = targets[sentences[:active], positions]
                score = adapter.position_scores_rows(features[index, positions], tokens)
            else:
                score = all_scores[index, positions]
            (grad,) = torch.autograd.grad(score.sum(), points, retain_graph=j < n_pass - 1)
            integrands[:active, j] = (grad[:active] * diff[:active]).sum(-1)
            scores_at[:active, j] = score.detach().to(scores_at.dtype)
    for k, r in enumerate(rows):
        r.integrand = integrands[k, : len(r.positions), batch.source_slice(r.sentence)]
        r.scores = scores_at[k, : len(r.positions)]
