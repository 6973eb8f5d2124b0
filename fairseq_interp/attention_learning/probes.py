"""Interpretations of one teacher-forced sentence pair as (target, source) matrices, and their agreement table
(Snell et al. 2021, §3; Table 2).

* α: the model's attention (head average for K heads), fairseq's ``attn``.
* β: the lexical probe β_{t,l} = log N([h_l, s_t])_{y_t} (§3.1): what the output would be if attention put all its
  weight on l. Needs a model with ``lexical_probe`` (``lstm_dot_attention``).
* β^uf: the same probe from a model trained with ``--uniform-attention`` (§3.2).
* β^IBM: IBM Model 1's t(y_t | x_l) (Eq. 16–19), trained on the training split's token sequences.
* β^px: the bag-of-words proxy (Eq. 5–6): p_t = softmax((1/L) Σ_l W e_{x_l}) with word embeddings e ∈ R^d and
  W ∈ R^{|O|×d}, trained on the training split; β^px_{t,l} = softmax(W e_{x_l})_{y_t} (kept as its log).
  ``factorized=False`` is a named variant: a full-rank table B in place of W e (p = softmax((1/L) Σ_l B[x_l])).
* head<h> (Transformers, beyond the paper): β^(h) of ``head_probes`` against the head's own attention α^(h).
* Δ: gradient saliency as §5.1 describes it, the first-order estimate of Ebrahimi et al. (2018, HotFlip) of how
  much log p(y_t) falls when the word x_l is removed (its embedding set to zero):
  Δ_{t,l} = e(x_l)ᵀ ∂ log p(y_t | y_<t, x) / ∂ e(x_l) (``saliency="hotflip"``, the default, also what the
  authors' translation code computes). ``saliency="l2"`` is a named variant: ‖∂ log p(y_t) / ∂ e(x_l)‖₂.

Classification (§2.4, ``lstm_attention_classifier``; T = 1, |O| = 2): one row per sentence, one column per word;
α (Eq. 7), β = log σ((2y − 1) γ_l) (Eq. 9), β^uf the same of the uniform model, β^px = log σ((2y − 1) wᵀ e_{x_l})
(Eq. 6 with two outputs), Δ as above with p(y | x), α' of a second seed and α^fr of the frozen-β model (A.6).

β^uf and α^fr from a run's best-agreeing checkpoint (appendix A.7, A.6; the authors' ``fetch_stats``): every
agreement with β^uf (or α^fr) is the maximum over that run's checkpoints, each column its own maximum.

Rows are target positions without the final EOS, columns source positions without the final EOS.

Each agreement of α with a probe can carry a 95% bootstrap interval over the probed sentences (``bootstrap``
resamples; :func:`~.agreement.agreement_interval`); for a best-agreeing checkpoint it is the interval at that
checkpoint (the choice of the checkpoint is not resampled).

ξ (Eq. 11) needs a curve of a second run (another seed): A(α, α'_τ) and the teacher-forced token accuracy of its
checkpoints τ on the same sentences (``second_run_point``).
"""

import numpy as np
import torch
from torch import nn

from ..common.attention import attention_from_extra
from ..common.batches import rows_by_id
from ..common.errors import InterpretError
from ..common.ibm1 import IBM1
from ..common.tables import markdown_table
from ..common.teacher_forcing import prev_output_tokens
from .agreement import (agreement, agreement_interval, agreement_with_baseline, contextualized_agreement,
                        mean_kendall_tau)

PROBES = ("beta", "beta_uf", "beta_ibm", "beta_px", "delta")


def _strip(tokens, eos, pad):
    return [int(t) for t in tokens if int(t) not in (eos, pad)]


def training_pairs(task, dataset, options, eos, pad, max_pairs=0, what="the training split"):
    """(source ids, target ids) of the first ``max_pairs`` (0 = all) pairs of a fairseq language-pair dataset in id
    order, EOS and padding removed, read through fairseq's batch iterator (``options``: ``--max-tokens`` /
    ``--batch-size`` and the progress options)."""
    pairs = []
    for source, target in rows_by_id(task, dataset, options, max_pairs, what):
        if target is None:
            raise InterpretError("the training split has no targets: probes need a parallel training set")
        pairs.append((_strip(source, eos, pad), _strip(target, eos, pad)))
    return pairs


class BagOfWordsProxy(nn.Module):
    """The proxy of Snell et al. (2021, §2.3, Eq. 5–6): p(y | x) = softmax_y((1/L) Σ_l W e_{x_l}), the same
    prediction at every t. e and W start from N(0, I_d/d) (§4.1). ``factorized=False``: a full-rank logit table B
    (|I| × |O|, zeros at start) in place of W e, a named variant that ranks source positions differently."""

    def __init__(self, src_vocab, tgt_vocab, dim=256, factorized=True):
        super().__init__()
        self.factorized = factorized
        if factorized:
            if dim < 1:
                raise InterpretError("the proxy's embedding size must be >= 1 (--proxy-dim)")
            self.embed = nn.Embedding(src_vocab, dim)
            self.output = nn.Linear(dim, tgt_vocab, bias=False)
            nn.init.normal_(self.embed.weight, std=dim ** -0.5)
            nn.init.normal_(self.output.weight, std=dim ** -0.5)
        else:
            self.table = nn.Embedding(src_vocab, tgt_vocab)
            nn.init.zeros_(self.table.weight)

    def word_logits(self, src):
        """W e_{x_l} (or B[x_l]) for every position: (..., |O|)."""
        return self.output(self.embed(src)) if self.factorized else self.table(src)

    def log_probs(self, src, src_mask):
        logits = self.word_logits(src) * src_mask.unsqueeze(-1)
        scores = logits.sum(1) / src_mask.sum(1, keepdim=True).clamp(min=1)
        return torch.log_softmax(scores, dim=-1)

    def loss(self, pairs):
        """(−Σ_m Σ_t log p(y_t^m | x^m) (Eq. 14), number of target words) over ``pairs`` (lists of ids)."""
        src, src_mask = _pad([s for s, _ in pairs])
        tgt, tgt_mask = _pad([t for _, t in pairs])
        lp = self.log_probs(src, src_mask)
        return -(lp.gather(1, tgt) * tgt_mask).sum(), tgt_mask.sum()

    def fit(self, pairs, epochs=3, lr=1e-3, batch_size=64, seed=0, valid_pairs=None):
        """Minimize Eq. 14 over ``pairs`` with Adam; with ``valid_pairs`` keep the epoch of lowest validation loss (as
        the authors' code does). Returns the mean training loss per epoch (and sets ``best_epoch``)."""
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        rng = np.random.default_rng(seed)
        losses = []
        pairs = [(s, t) for s, t in pairs if s and t]
        valid_pairs = [(s, t) for s, t in valid_pairs or () if s and t]
        if not pairs:
            raise InterpretError("the proxy model needs non-empty training pairs")
        best, self.best_epoch, best_state, self.valid_losses = float("inf"), epochs, None, []
        for epoch in range(1, epochs + 1):
            total = count = 0.0
            order = rng.permutation(len(pairs))
            for start in range(0, len(pairs), batch_size):
                loss, n = self.loss([pairs[i] for i in order[start:start + batch_size]])
                opt.zero_grad()
                (loss / n).backward()
                opt.step()
                total, count = total + loss.item(), count + n.item()
            losses.append(total / count)
            if valid_pairs:
                with torch.no_grad():
                    value = sum(self.loss(valid_pairs[i:i + 256])[0].item() for i in range(0, len(valid_pairs), 256))
                self.valid_losses.append(value)
                if value < best:
                    best, self.best_epoch = value, epoch
                    best_state = {k: v.clone() for k, v in self.state_dict().items()}
        if best_state is not None:
            self.load_state_dict(best_state)
        return losses

    def probe(self, src, tgt):
        """β^px_{t,l} = log softmax(W e_{x_l})_{y_t} (Eq. 6; the table's raw B[x_l, y_t] for the full-rank variant):
        (T, L)."""
        with torch.no_grad():
            logits = self.word_logits(torch.as_tensor(src))  # (L, |O|)
            values = torch.log_softmax(logits, dim=-1) if self.factorized else logits
            return values[:, torch.as_tensor(tgt)].T.numpy()


def _pad(seqs):
    length = max(len(s) for s in seqs)
    out = torch.zeros(len(seqs), length, dtype=torch.long)
    mask = torch.zeros(len(seqs), length)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return out, mask


def _attention(extra):
    attn = attention_from_extra(extra)
    if attn is None:
        raise InterpretError("the model returns no attention (extra['attn']): probes compare against attention, "
                             "use an encoder-decoder model with attention")
    return attn


def lexical_probe(model, src, tgt, eos):
    """β_{t,l} = log N([h_l, s_t])_{y_t}: (T, L) over the full sequences (EOS included)."""
    if not hasattr(model, "lexical_probe"):
        raise InterpretError(f"{type(model).__name__} has no lexical probe: β needs an lstm_dot_attention model")
    prev = prev_output_tokens(tgt, eos)
    with torch.no_grad():
        lp = model.lexical_probe(src[None], torch.tensor([len(src)]), prev[None])[0]  # (T, L, V)
    return lp.gather(-1, tgt.view(-1, 1, 1).expand(-1, lp.size(1), 1)).squeeze(-1).numpy()


def attention(model, src, tgt, eos, predictions=False):
    """α: (T, L) teacher-forced attention; with ``predictions`` also the argmax prediction at every t."""
    prev = prev_output_tokens(tgt, eos)
    with torch.no_grad():
        logits, extra = model(src[None], torch.tensor([len(src)]), prev[None])
    alpha = _attention(extra)[0].float().numpy()
    return (alpha, logits[0].argmax(-1).numpy()) if predictions else alpha


SALIENCY = ("hotflip", "l2")


def _saliency(grad, emb, saliency):
    """HotFlip's first-order effect of removing each word, e(x_l)ᵀ ∂/∂e(x_l), or the gradient's L2 norm: (L,)."""
    if saliency == "hotflip":
        return (grad * emb).sum(-1)
    if saliency == "l2":
        return grad.norm(dim=-1)
    raise InterpretError(f"unknown saliency {saliency!r}: use one of {', '.join(SALIENCY)}")


def gradient_saliency(model, src, tgt, eos, saliency="hotflip"):
    """Δ_{t,l} (module docstring) through the attribution adapter's embedding replacement: (T, L)."""
    from ..common.teacher_forcing import TeacherForcedAdapter

    adapter = TeacherForcedAdapter(model, eos=eos, score="logprob")
    emb = adapter.source_embeddings(src[None]).clone().requires_grad_(True)
    scores = adapter.scores(src, tgt, emb)[0]
    rows = []
    for t in range(len(tgt)):
        (grad,) = torch.autograd.grad(scores[t], emb, retain_graph=t + 1 < len(tgt))
        rows.append(_saliency(grad[0], emb[0].detach(), saliency))
    return torch.stack(rows).detach().numpy()


def sentence_probes(model, src, tgt, eos, uniform_model=None, ibm=None, proxy=None, gradients=True,
                    second_model=None, head_layer=None, saliency="hotflip"):
    """All available matrices of one pair, trimmed to rows = target words, columns = source words (no EOS)."""
    src, tgt = torch.as_tensor(src), torch.as_tensor(tgt)
    if len(src) < 2 or len(tgt) < 2 or int(src[-1]) != eos or int(tgt[-1]) != eos:
        raise InterpretError("probes need source and target token sequences ending in EOS with at least one word")
    trim = (slice(0, len(tgt) - 1), slice(0, len(src) - 1))
    alpha, predicted = attention(model, src, tgt, eos, predictions=True)
    out = {"alpha": alpha[trim], "correct": int((predicted[:-1] == tgt[:-1].numpy()).sum())}
    if hasattr(model, "lexical_probe"):
        out["beta"] = lexical_probe(model, src, tgt, eos)[trim]
    if uniform_model is not None:
        out["beta_uf"] = lexical_probe(uniform_model, src, tgt, eos)[trim]
    if ibm is not None:
        out["beta_ibm"] = ibm.table([int(x) for x in src[:-1]], [int(y) for y in tgt[:-1]])[1 if ibm.null else 0:].T
    if proxy is not None:
        out["beta_px"] = proxy.probe(src[:-1], tgt[:-1])
    if gradients:
        out["delta"] = gradient_saliency(model, src, tgt, eos, saliency)[trim]
    if second_model is not None:
        out["alpha_seed2"] = attention(second_model, src, tgt, eos)[trim]
    if head_layer is not None:
        from .head_probes import transformer_head_probes

        alpha_h, beta_h = transformer_head_probes(model, src, tgt, eos, head_layer)
        out["heads"] = [(a[trim], b[trim]) for a, b in zip(alpha_h, beta_h)]
    return out


# -- classification (§2.4) ----------------------------------------------------------------------------------------
def is_classifier(model):
    """An ``lstm_attention_classifier`` (T = 1, |O| = 2): probes take a label in place of a target sequence."""
    return hasattr(model, "polarity") and hasattr(model, "attention")


def classification_item(item):
    """(source tokens, label) of a ``sentence_prediction`` or ``keyword_classification`` dataset item."""
    src = item.get("net_input.src_tokens", item.get("source"))
    target = item.get("target")
    if src is None or target is None:
        raise InterpretError("the split has no labels: probes of a classifier need labelled sentences")
    return torch.as_tensor(src), int(torch.as_tensor(target).view(-1)[0])


def _classifier_pass(model, src, label, saliency=None):
    """α, β = log σ((2y − 1) γ_l), correctness and (with ``saliency``) Δ of one sentence, over its words: (1, L)."""
    emb = model.embed_tokens(src[None]).detach().requires_grad_(saliency is not None)
    with torch.set_grad_enabled(saliency is not None):
        logits, extra = model(src[None], token_embeddings=emb)
        log_p = torch.log_softmax(logits.float(), dim=-1)[0, label]
    words = extra["word_mask"][0]
    if not words.any():
        raise InterpretError("a sentence without words (only padding/EOS): remove empty lines from the data")
    sign = 2.0 * label - 1.0
    out = {"alpha": extra["attn"][0][words].detach().double().numpy()[None],
           "beta": torch.nn.functional.logsigmoid(sign * extra["gamma"][0][words].detach().double()).numpy()[None],
           "correct": int(int(logits[0].argmax()) == label), "words": int(words.sum())}
    if saliency is not None:
        (grad,) = torch.autograd.grad(log_p, emb)
        out["delta"] = _saliency(grad[0], emb[0].detach(), saliency)[words].double().numpy()[None]
    return out, words


def classification_probes(model, src, label, uniform_model=None, proxy=None, gradients=True, second_model=None,
                          frozen_model=None, saliency="hotflip"):
    """All matrices of one labelled sentence (one row, one column per word): α, β, β^uf, β^px, Δ, α', α^fr."""
    src = torch.as_tensor(src)
    main, words = _classifier_pass(model, src, label, saliency if gradients else None)
    out = {k: main[k] for k in ("alpha", "beta", "correct") + (("delta",) if gradients else ())}
    if uniform_model is not None:
        out["beta_uf"] = _classifier_pass(uniform_model, src, label)[0]["beta"]
    if proxy is not None:
        out["beta_px"] = proxy.probe(src[words], [label])
    if second_model is not None:
        out["alpha_seed2"] = _classifier_pass(second_model, src, label)[0]["alpha"]
    if frozen_model is not None:
        out["alpha_fr"] = _classifier_pass(frozen_model, src, label)[0]["alpha"]
    return out


def classification_pairs(task, dataset, options, pad, max_pairs=0, what="the training split"):
    """(word ids, [label]) of the first ``max_pairs`` (0 = all) sentences of a classification dataset in id order,
    padding removed, read through fairseq's batch iterator (``options`` as :func:`training_pairs`)."""
    pairs = []
    for source, target in rows_by_id(task, dataset, options, max_pairs, what):
        if target is None:
            raise InterpretError("the split has no labels: probes of a classifier need labelled sentences")
        pairs.append(([int(t) for t in source if int(t) != pad], [int(target.view(-1)[0])]))
    return pairs


# -- one model over the probed sentences ---------------------------------------------------------------------------
def model_pass(model, pair, eos, beta=False):
    """(α (rows, columns) trimmed as the probes are, correct predictions, predictions) of one probed ``pair``
    ((source, target) tokens ending in EOS, or (source, label) for a classifier); with ``beta`` also β."""
    src, tgt = pair
    if is_classifier(model):
        out, _ = _classifier_pass(model, torch.as_tensor(src), int(tgt))
        return (out["alpha"], out["correct"], 1) + ((out["beta"],) if beta else ())
    src, tgt = torch.as_tensor(src), torch.as_tensor(tgt)
    alpha, predicted = attention(model, src, tgt, eos, predictions=True)
    trim = (slice(0, len(tgt) - 1), slice(0, len(src) - 1))
    result = (alpha[trim], int((predicted[:-1] == tgt[:-1].numpy()).sum()), len(tgt) - 1)
    return result + ((lexical_probe(model, src, tgt, eos)[trim],) if beta else ())


def second_run_point(model, pairs, alphas, eos, top=0.05):
    """One checkpoint τ of a second run: A(α, α'_τ) against the attentions ``alphas`` of the probed ``pairs`` and its
    accuracy (%): teacher-forced target words (translation) or sentences (classification)."""
    others, correct, total = [], 0, 0
    for pair, alpha in zip(pairs, alphas):
        other, hits, n = model_pass(model, pair, eos)
        others.append(other[:alpha.shape[0], :alpha.shape[1]])
        correct, total = correct + hits, total + n
    return {"agreement": agreement(list(alphas), others, top), "accuracy": 100.0 * correct / total}


def run_matrices(model, pairs, eos, which):
    """β (``which="beta"``) or α (``"alpha"``) of ``model`` over the probed pairs: one matrix per pair."""
    return [model_pass(model, pair, eos, beta=which == "beta")[3 if which == "beta" else 0] for pair in pairs]


def best_over_run(u, candidates, top=0.05):
    """max over a run's checkpoints τ of A(u, v(τ)) (the authors' best-agreeing checkpoint, appendix A.7):
    ``candidates`` = {update: [v matrices]}; returns (agreement, update)."""
    if not candidates:
        raise InterpretError("no checkpoint of the run to compare with")
    values = {update: agreement(u, v, top) for update, v in candidates.items()}
    update = max(values, key=lambda k: (values[k], -k if isinstance(k, int) else 0))
    return values[update], update


def _xi(value, curve):
    return contextualized_agreement(value, [(p["agreement"], p["accuracy"]) for p in curve]) if curve else None


def _interval(u, v, top, bootstrap):
    """[low, high] of A(u, v)'s bootstrap interval over sentences, or None without resamples."""
    if not bootstrap:
        return None
    interval = agreement_interval(u, v, top, resamples=bootstrap)
    return [interval.low, interval.high]


def agreement_table(records, top=0.05, curve=None, bootstrap=0):
    """One row per probe u: A(u, α), A(α, u) (the paper's order) with its 95% interval over sentences (``bootstrap``
    resamples, 0 = none), Â, Kendall τ(u, α) and, given the ``curve`` of a second run ([{"agreement": A(α, α'_τ),
    "accuracy": ...}] in training order), ξ of A(α, u) (Eq. 10–11)."""
    if not records:
        raise InterpretError("no sentences to compare: pass a split with sentences (--subset)")
    alpha = [r["alpha"] for r in records]
    rows = []
    extra = [n for n in ("alpha_seed2", "alpha_fr") if n in records[0]]
    names = [n for n in PROBES if n in records[0]] + extra
    for name in names:
        u = [r[name] for r in records]
        a, baseline = agreement_with_baseline(u, alpha, top)
        row = {"probe": name, "agreement": a, "agreement_alpha_first": agreement(alpha, u, top),
               "random_baseline": baseline, "kendall_tau": mean_kendall_tau(u, alpha)}
        if bootstrap:
            row["interval_alpha_first"] = _interval(alpha, u, top, bootstrap)
        if curve:
            row["xi"] = _xi(row["agreement_alpha_first"], curve)
        rows.append(row)
    for h in range(len(records[0].get("heads", []))):  # per-head β^(h) against the head's own attention α^(h)
        alpha_h, beta_h = [r["heads"][h][0] for r in records], [r["heads"][h][1] for r in records]
        a, baseline = agreement_with_baseline(beta_h, alpha_h, top)
        rows.append({"probe": f"head{h}", "agreement": a, "agreement_alpha_first": agreement(alpha_h, beta_h, top),
                     "random_baseline": baseline, "kendall_tau": mean_kendall_tau(beta_h, alpha_h)})
        if bootstrap:
            rows[-1]["interval_alpha_first"] = _interval(alpha_h, beta_h, top, bootstrap)
    return rows


def paper_row(records, top=0.05, curve=None, uniform_runs=None, frozen_runs=None, bootstrap=0):
    """The columns of Snell et al.'s Table 2 (as the authors' code computes them): A(α, β^uf), A(β^px, β^uf),
    A(Δ, β^uf), A(α, β), Â, their ξ, and the accuracy (%) of the probed model; with ``frozen_runs`` also Table 10's
    A(α, α^fr).

    ``uniform_runs`` = {update: [β^uf matrices]} of the uniform run's checkpoints: each column is its maximum over
    them (appendix A.7; ``update(...)`` says which); without it the records' own ``beta_uf``. ``frozen_runs`` likewise
    for α^fr (appendix A.6: "at the iteration where α^fr is most correlated with α"). With ``bootstrap`` resamples,
    ``interval(...)`` is each agreement's 95% interval over sentences (at the chosen checkpoint)."""
    if "beta_uf" not in records[0] and not uniform_runs:
        raise InterpretError("the paper's row compares with β^uf: pass --uniform-path")
    uniform_runs = uniform_runs or {"given": [r["beta_uf"] for r in records]}
    alpha = [r["alpha"] for r in records]
    first = next(iter(uniform_runs.values()))
    row = {"random_baseline": agreement_with_baseline(alpha, first, top)[1],
           "accuracy": 100.0 * sum(r["correct"] for r in records) / sum(len(r["alpha"]) for r in records)}
    for name in ("alpha", "beta_px", "delta"):
        if name in records[0]:
            value, update = best_over_run([r[name] for r in records], uniform_runs, top)
            row[f"A({name}, beta_uf)"], row[f"update({name}, beta_uf)"] = value, update
            if bootstrap:
                u = [r[name] for r in records]
                row[f"interval({name}, beta_uf)"] = _interval(u, uniform_runs[update], top, bootstrap)
            if curve:
                row[f"xi({name}, beta_uf)"] = _xi(value, curve)
    if "beta" in records[0]:
        row["A(alpha, beta)"] = value = agreement(alpha, [r["beta"] for r in records], top)
        if bootstrap:
            row["interval(alpha, beta)"] = _interval(alpha, [r["beta"] for r in records], top, bootstrap)
        if curve:
            row["xi(alpha, beta)"] = _xi(value, curve)
    if frozen_runs:
        row["A(alpha, alpha_fr)"], row["update(alpha, alpha_fr)"] = best_over_run(alpha, frozen_runs, top)
        if bootstrap:
            row["interval(alpha, alpha_fr)"] = _interval(alpha, frozen_runs[row["update(alpha, alpha_fr)"]], top,
                                                         bootstrap)
    return row


def _number(x, digits=3):
    return "–" if x is None else f"{x:.{digits}f}"


def _span(interval):
    return "–" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def format_table(rows):
    has_xi = any("xi" in r for r in rows)
    has_ci = any("interval_alpha_first" in r for r in rows)
    head = (["probe u", "A(u, α)", "A(α, u)"] + (["95% interval of A(α, u)"] if has_ci else [])
            + ["Â", "Kendall τ"] + (["ξ (acc. %)"] if has_xi else []))
    cells = [[r["probe"], f"{r['agreement']:.3f}", f"{r['agreement_alpha_first']:.3f}"]
             + ([_span(r.get("interval_alpha_first"))] if has_ci else [])
             + [f"{r['random_baseline']:.3f}", f"{r['kendall_tau']:.3f}"]
             + ([_number(r["xi"], 1) if "xi" in r else ""] if has_xi else []) for r in rows]
    return markdown_table(head, cells) + "\n"


def format_paper_row(row):
    """Table 2's layout: agreements with β^uf (best uniform checkpoint), A(α, β), Â, ξ (accuracy % of the second
    run), the probed model's accuracy; Table 10's A(α, α^fr) when there; each agreement's 95% interval over sentences
    beside it when computed."""
    symbols = {"A(alpha, beta_uf)": "A(α, β^uf)", "A(beta_px, beta_uf)": "A(β^px, β^uf)",
               "A(delta, beta_uf)": "A(Δ, β^uf)", "A(alpha, beta)": "A(α, β)", "A(alpha, alpha_fr)": "A(α, α^fr)"}
    names = [n for n in symbols if n in row]
    xis = [n for n in names if "xi" + n[1:] in row]
    head = [symbols[n] for n in names] + ["Â"] + [f"ξ{symbols[n][1:]}" for n in xis] + ["accuracy %"]
    spans = {n: (f" {_span(row['interval' + n[1:]])}" if "interval" + n[1:] in row else "") for n in names}
    line = ([f"{row[n]:.3f}{spans[n]}" for n in names] + [f"{row['random_baseline']:.3f}"]
            + [_number(row["xi" + n[1:]], 1) for n in xis] + [f"{row['accuracy']:.1f}"])
    return markdown_table(head, [line]) + "\n"


def format_curve(curve):
    """The second run along training: A(α, α'_τ) and its token accuracy per checkpoint."""
    return markdown_table(["update", "A(α, α')", "accuracy %"],
                          [[p["update"], f"{p['agreement']:.3f}", f"{p['accuracy']:.1f}"] for p in curve]) + "\n"


def train_ibm1(pairs, iterations=5):
    return IBM1(null=True).fit(pairs, iterations=iterations)
