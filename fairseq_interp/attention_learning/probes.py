"""Interpretations of one teacher-forced sentence pair as (target, source) matrices, and their agreement table
(Snell et al. 2021, §3; Table 2).

* α: the model's attention (head average for K heads), fairseq's ``attn``.
* β: the lexical probe β_{t,l} = log N([h_l, s_t])_{y_t} (§3.1): what the output would be if attention put all its
  weight on l. Needs a model with ``lexical_probe`` (``lstm_dot_attention``).
* β^uf: the same probe from a model trained with ``--uniform-attention`` (§3.2).
* β^IBM: IBM Model 1's t(y_t | x_l) (Eq. 16–19), trained on the training split's token sequences.
* β^px: the bag-of-words proxy (Eq. 5–6): p(y | x) = softmax_y((1/L) Σ_l B[x_l, y]), trained on the training
  split; β^px_{t,l} = B[x_l, y_t].
* head<h> (Transformers, beyond the paper): β^(h) of ``head_probes`` against the head's own attention α^(h).
* Δ: gradient saliency Δ_{t,l} = ‖∂ log p(y_t | y_<t, x) / ∂ e(x_l)‖₂ over the source token embedding e(x_l).

Rows are target positions without the final EOS, columns source positions without the final EOS.

ξ (Eq. 11) needs a curve of a second run (another seed): A(α, α'_τ) and the teacher-forced token accuracy of its
checkpoints τ on the same sentences (``second_run_point``).
"""

import numpy as np
import torch
from torch import nn

from ..common.attention import attention_from_extra
from ..common.errors import InterpretError
from ..common.ibm1 import IBM1
from ..common.teacher_forcing import prev_output_tokens
from .agreement import agreement, agreement_with_baseline, contextualized_agreement, mean_kendall_tau

PROBES = ("beta", "beta_uf", "beta_ibm", "beta_px", "delta")


def _strip(tokens, eos, pad):
    return [int(t) for t in tokens if int(t) not in (eos, pad)]


def training_pairs(dataset, eos, pad, max_pairs=0):
    """(source ids, target ids) of a fairseq language-pair dataset, EOS and padding removed."""
    n = len(dataset) if not max_pairs else min(max_pairs, len(dataset))
    pairs = []
    for i in range(n):
        item = dataset[i]
        if item.get("target") is None:
            raise InterpretError("the training split has no targets: probes need a parallel training set")
        pairs.append((_strip(item["source"], eos, pad), _strip(item["target"], eos, pad)))
    return pairs


class BagOfWordsProxy(nn.Module):
    """p(y | x) = softmax_y((1/L) Σ_l B[x_l, y]) (Snell et al. Eq. 5–6); the same prediction at every t."""

    def __init__(self, src_vocab, tgt_vocab):
        super().__init__()
        self.table = nn.Embedding(src_vocab, tgt_vocab)
        nn.init.zeros_(self.table.weight)

    def log_probs(self, src, src_mask):
        scores = (self.table(src) * src_mask.unsqueeze(-1)).sum(1) / src_mask.sum(1, keepdim=True).clamp(min=1)
        return torch.log_softmax(scores, dim=-1)

    def fit(self, pairs, epochs=3, lr=0.05, batch_size=64, seed=0):
        """Minimize −Σ_t log p(y_t | x) over ``pairs`` (lists of ids) with Adam; returns the mean loss per epoch."""
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        rng = np.random.default_rng(seed)
        losses = []
        pairs = [(s, t) for s, t in pairs if s and t]
        if not pairs:
            raise InterpretError("the proxy model needs non-empty training pairs")
        for _ in range(epochs):
            total = count = 0.0
            for start in range(0, len(pairs), batch_size):
                chunk = [pairs[i] for i in rng.permutation(len(pairs))[start:start + batch_size]]
                src, src_mask = _pad([s for s, _ in chunk])
                tgt, tgt_mask = _pad([t for _, t in chunk])
                lp = self.log_probs(src, src_mask)
                loss = -(lp.gather(1, tgt) * tgt_mask).sum()
                opt.zero_grad()
                (loss / tgt_mask.sum()).backward()
                opt.step()
                total, count = total + loss.item(), count + tgt_mask.sum().item()
            losses.append(total / count)
        return losses

    def probe(self, src, tgt):
        """β^px_{t,l} = B[x_l, y_t]: (T, L)."""
        with torch.no_grad():
            return self.table.weight[torch.as_tensor(src)][:, torch.as_tensor(tgt)].T.numpy()


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


def gradient_saliency(model, src, tgt, eos):
    """Δ_{t,l} = ‖∂ log p(y_t) / ∂ e(x_l)‖₂, through the attribution adapter's embedding replacement."""
    from ..common.teacher_forcing import TeacherForcedAdapter

    adapter = TeacherForcedAdapter(model, eos=eos, score="logprob")
    emb = adapter.source_embeddings(src[None]).clone().requires_grad_(True)
    scores = adapter.scores(src, tgt, emb)[0]
    rows = []
    for t in range(len(tgt)):
        (grad,) = torch.autograd.grad(scores[t], emb, retain_graph=t + 1 < len(tgt))
        rows.append(grad[0].norm(dim=-1))
    return torch.stack(rows).detach().numpy()


def sentence_probes(model, src, tgt, eos, uniform_model=None, ibm=None, proxy=None, gradients=True,
                    second_model=None, head_layer=None):
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
        out["delta"] = gradient_saliency(model, src, tgt, eos)[trim]
    if second_model is not None:
        out["alpha_seed2"] = attention(second_model, src, tgt, eos)[trim]
    if head_layer is not None:
        from .head_probes import transformer_head_probes

        alpha_h, beta_h = transformer_head_probes(model, src, tgt, eos, head_layer)
        out["heads"] = [(a[trim], b[trim]) for a, b in zip(alpha_h, beta_h)]
    return out


def second_run_point(model, pairs, alphas, eos, top=0.05):
    """One checkpoint τ of a second run: A(α, α'_τ) against the attentions ``alphas`` of the probed ``pairs`` (source,
    target tensors ending in EOS) and its teacher-forced token accuracy (%) on the target words."""
    others, correct, total = [], 0, 0
    for (src, tgt), alpha in zip(pairs, alphas):
        other, predicted = attention(model, torch.as_tensor(src), torch.as_tensor(tgt), eos, predictions=True)
        others.append(other[:alpha.shape[0], :alpha.shape[1]])
        correct += int((predicted[:-1] == np.asarray(tgt[:-1])).sum())
        total += alpha.shape[0]
    return {"agreement": agreement(list(alphas), others, top), "accuracy": 100.0 * correct / total}


def _xi(value, curve):
    return contextualized_agreement(value, [(p["agreement"], p["accuracy"]) for p in curve]) if curve else None


def agreement_table(records, top=0.05, curve=None):
    """One row per probe u: A(u, α), A(α, u) (the paper's order), Â, Kendall τ(u, α) and, given the ``curve`` of a
    second run ([{"agreement": A(α, α'_τ), "accuracy": ...}] in training order), ξ of A(α, u) (Eq. 10–11)."""
    if not records:
        raise InterpretError("no sentences to compare: pass a split with sentences (--subset)")
    alpha = [r["alpha"] for r in records]
    rows = []
    names = [n for n in PROBES if n in records[0]] + (["alpha_seed2"] if "alpha_seed2" in records[0] else [])
    for name in names:
        u = [r[name] for r in records]
        a, baseline = agreement_with_baseline(u, alpha, top)
        row = {"probe": name, "agreement": a, "agreement_alpha_first": agreement(alpha, u, top),
               "random_baseline": baseline, "kendall_tau": mean_kendall_tau(u, alpha)}
        if curve:
            row["xi"] = _xi(row["agreement_alpha_first"], curve)
        rows.append(row)
    for h in range(len(records[0].get("heads", []))):  # per-head β^(h) against the head's own attention α^(h)
        alpha_h, beta_h = [r["heads"][h][0] for r in records], [r["heads"][h][1] for r in records]
        a, baseline = agreement_with_baseline(beta_h, alpha_h, top)
        rows.append({"probe": f"head{h}", "agreement": a, "agreement_alpha_first": agreement(alpha_h, beta_h, top),
                     "random_baseline": baseline, "kendall_tau": mean_kendall_tau(beta_h, alpha_h)})
    return rows


def paper_row(records, top=0.05, curve=None):
    """The columns of Snell et al.'s Table 2 (as the authors' code computes them), everything against β^uf:
    A(α, β^uf), A(β^px, β^uf), A(Δ, β^uf), Â, their ξ, and the token accuracy (%) of the probed model."""
    if "beta_uf" not in records[0]:
        raise InterpretError("the paper's row compares with β^uf: pass --uniform-path")
    beta_uf = [r["beta_uf"] for r in records]
    row = {"random_baseline": agreement_with_baseline([r["alpha"] for r in records], beta_uf, top)[1],
           "accuracy": 100.0 * sum(r["correct"] for r in records) / sum(len(r["alpha"]) for r in records)}
    for name in ("alpha", "beta_px", "delta"):
        if name in records[0]:
            row[f"A({name}, beta_uf)"] = value = agreement([r[name] for r in records], beta_uf, top)
            if curve:
                row[f"xi({name}, beta_uf)"] = _xi(value, curve)
    return row


def _number(x, digits=3):
    return "–" if x is None else f"{x:.{digits}f}"


def format_table(rows):
    has_xi = any("xi" in r for r in rows)
    head = "| probe u | A(u, α) | A(α, u) | Â | Kendall τ |" + (" ξ (acc. %) |" if has_xi else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        line = (f"| {r['probe']} | {r['agreement']:.3f} | {r['agreement_alpha_first']:.3f} | "
                f"{r['random_baseline']:.3f} | {r['kendall_tau']:.3f} |")
        if has_xi:
            line += f" {_number(r['xi'], 1)} |" if "xi" in r else " |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def format_paper_row(row):
    """Table 2's layout: agreements with β^uf, Â, ξ (accuracy % of the second run), the probed model's accuracy."""
    names = [n for n in ("alpha", "beta_px", "delta") if f"A({n}, beta_uf)" in row]
    symbols = {"alpha": "α", "beta_px": "β^px", "delta": "Δ"}
    xis = [n for n in names if f"xi({n}, beta_uf)" in row]
    head = ("|" + "".join(f" A({symbols[n]}, β^uf) |" for n in names) + " Â |"
            + "".join(f" ξ({symbols[n]}) |" for n in xis) + " accuracy % |")
    line = ("|" + "".join(f" {row[f'A({n}, beta_uf)']:.3f} |" for n in names) + f" {row['random_baseline']:.3f} |"
            + "".join(f" {_number(row[f'xi({n}, beta_uf)'], 1)} |" for n in xis) + f" {row['accuracy']:.1f} |")
    return "\n".join([head, "|" + "---|" * (head.count("|") - 1), line]) + "\n"


def format_curve(curve):
    """The second run along training: A(α, α'_τ) and its token accuracy per checkpoint."""
    lines = ["| update | A(α, α') | accuracy % |", "|---|---|---|"]
    lines += [f"| {p['update']} | {p['agreement']:.3f} | {p['accuracy']:.1f} |" for p in curve]
    return "\n".join(lines) + "\n"


def train_ibm1(pairs, iterations=5):
    return IBM1(null=True).fit(pairs, iterations=iterations)
