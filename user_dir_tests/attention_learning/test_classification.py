"""Snell et al. (2021) classification half and the paper's definitions: the classifier of Eq. 7–8 computed by hand,
the polarity probe (Eq. 9, 12), uniform and frozen-β training, the keyword task (§6.1), the proxy (Eq. 5–6, 15),
HotFlip saliency, best-agreeing checkpoints, the ReLU output network and the 2-layer bidirectional encoder (A.8)."""

import math

import numpy as np
import pytest
import torch

import fairseq_interp  # noqa: F401  (registrations)
from fairseq_interp.attention_learning.agreement import agreement
from fairseq_interp.attention_learning.classifier import (LSTMAttentionClassifier, LSTMAttentionClassifierConfig,
                                                          parameters_besides_embeddings)
from fairseq_interp.attention_learning.keyword import (KeywordClassificationConfig, KeywordClassificationTask,
                                                       generate, keyword_log_odds)
from fairseq_interp.attention_learning.probes import (BagOfWordsProxy, best_over_run, classification_probes,
                                                      gradient_saliency, paper_row)
from fairseq_interp.common.errors import InterpretError


def keyword_task(**kw):
    return KeywordClassificationTask.setup_task(KeywordClassificationConfig(
        **{"seq_len": 8, "vocab_size": 6, "train_size": 64, "valid_size": 32, **kw}))


def classifier(task, **kw):
    torch.manual_seed(0)
    cfg = LSTMAttentionClassifierConfig(**{"embed_dim": 6, "hidden_size": 5, "attention_hidden_dim": 4, **kw})
    return LSTMAttentionClassifier.build_model(cfg, task).eval()


# ------------------------------------------------------------------ the model, Eq. 7-8 and 9, 12
def test_forward_is_eq_7_and_8_by_hand():
    task = keyword_task()
    model = classifier(task)
    d = task.dictionary
    words = torch.tensor([5, 7, 6, 9])
    with torch.no_grad():
        h, _ = model.lstm(model.embed_tokens(words)[None])  # BiLSTM over the words alone
        h = h[0]
        Q, q0 = model.attention_hidden.weight, model.attention_hidden.bias
        v, v0 = model.attention_vector.weight[0], model.attention_vector.bias
        W, w0 = model.output.weight[0], model.output.bias
        a = torch.stack([v @ torch.relu(Q @ h_l + q0) + v0 for h_l in h]).view(-1)  # Eq. 7
        alpha = torch.exp(a) / torch.exp(a).sum()
        p_pos = torch.sigmoid(sum(alpha[l] * (W @ h[l] + w0) for l in range(4)))  # Eq. 8
        # with EOS and padding on the right (as sentence_prediction batches), and on the left
        for src in (torch.tensor([[5, 7, 6, 9, d.eos(), d.pad()]]), torch.tensor([[d.pad(), d.pad(), 5, 7, 6, 9]])):
            logits, extra = model(src)
            assert torch.allclose(torch.softmax(logits, -1)[0, 1], p_pos, atol=1e-6)
            kept = extra["word_mask"][0]
            assert torch.allclose(extra["attn"][0][kept], alpha, atol=1e-6) and extra["attn"][0][~kept].eq(0).all()


def test_paper_sizes_have_the_papers_parameter_count():
    """Appendix A.8: 1,274,882 parameters excluding embeddings (BiLSTM 256, 300-dim input, attention layer 256)."""
    from argparse import Namespace

    from fairseq_interp.attention_learning.classifier import lstm_attention_classifier

    args = Namespace()
    lstm_attention_classifier(args)
    cfg = LSTMAttentionClassifierConfig(**{k: getattr(args, k) for k in ("embed_dim", "hidden_size",
                                                                         "attention_hidden_dim")})
    model = LSTMAttentionClassifier.build_model(cfg, keyword_task())
    assert parameters_besides_embeddings(model) == 1_274_882


def test_polarity_probe_is_the_output_with_all_attention_on_one_position():
    """β_l = σ((2y − 1) Wᵀ h_l) (Eq. 9) is p(correct) when α is one-hot on l; any α gives Eq. 12."""
    task = keyword_task()
    model = classifier(task)
    src = torch.tensor([[5, 7, 6, 9, 8]])
    for label in (0, 1):
        out = classification_probes(model, src[0], label, gradients=False)
        beta = np.exp(out["beta"][0])
        for l in range(5):
            forced = torch.zeros(1, 5)
            forced[0, l] = 1
            with torch.no_grad():
                p = torch.softmax(model(src, forced_attention=forced)[0], -1)[0, label]
            assert float(p) == pytest.approx(beta[l], abs=1e-6)
        alpha = torch.softmax(torch.randn(1, 5), -1)
        with torch.no_grad():
            p = torch.softmax(model(src, forced_attention=alpha)[0], -1)[0, label]
        logit_beta = np.log(beta / (1 - beta))  # σ⁻¹(β_l)
        assert float(p) == pytest.approx(1 / (1 + math.exp(-(alpha[0].numpy() * logit_beta).sum())), abs=1e-6)


def _train(model, task, steps=15, lr=0.05):
    task.load_dataset("train")
    dataset = task.datasets["train"]
    batch = dataset.collater([dataset[i] for i in range(32)])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        logits, _ = model(**batch["net_input"])
        loss = torch.nn.functional.cross_entropy(logits, batch["target"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch, loss.item()


def test_uniform_attention_stays_uniform_and_frozen_beta_trains_only_attention():
    task = keyword_task()
    model = classifier(task, uniform_attention=True)
    batch, _ = _train(model, task)
    _, extra = model.eval()(**batch["net_input"])
    assert torch.allclose(extra["attn"], torch.full_like(extra["attn"], 1 / 8))  # 8 words, no EOS in this task
    frozen = classifier(task, freeze_except_attention=True)
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    _, extra_before = frozen(**batch["net_input"])
    _train(frozen, task)
    changed = {k for k, v in frozen.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"attention_hidden.weight", "attention_hidden.bias", "attention_vector.weight",
                       "attention_vector.bias"}
    assert not torch.allclose(frozen.eval()(**batch["net_input"])[1]["attn"], extra_before["attn"])
    with pytest.raises(InterpretError, match="choose one"):
        classifier(task, uniform_attention=True, freeze_except_attention=True)


def test_label_dictionary_must_map_class_index_to_label():
    task = keyword_task()
    task._label_dictionary.symbols[task._label_dictionary.nspecial:] = ["1", "0"]
    with pytest.raises(InterpretError, match="prepare_sst2"):
        classifier(task)


# ------------------------------------------------------------------ the keyword task (§6.1)
def test_keyword_generator_has_the_stated_distribution():
    rows, labels = generate(4000, 40, 40, 1, seed=[3, 0])
    counts = (rows == 1).sum(1)
    assert set(counts[labels == 1]) == {1} and set(counts[labels == 0]) == {0}  # keyword once in positives
    assert rows.min() == 1 and rows.max() == 40
    assert abs(labels.mean() - 0.5) < 3 * 0.5 / math.sqrt(4000)  # balanced classes
    at = np.argmax(rows[labels == 1] == 1, axis=1)  # the keyword's position is uniform over 40
    assert np.bincount(at, minlength=40).min() > 0 and abs(at.mean() - 19.5) < 1.5
    others = rows[rows != 1]  # the other words are uniform over 2..40
    assert np.abs(np.bincount(others, minlength=41)[2:] / len(others) - 1 / 39).max() < 0.003
    again, _ = generate(4000, 40, 40, 1, seed=[3, 0])
    assert (again == rows).all() and not (generate(50, 40, 40, 1, seed=[4, 0])[0] == rows[:50]).all()


def test_keyword_task_batches_and_log_odds():
    task = keyword_task()
    task.load_dataset("valid")
    dataset = task.datasets["valid"]
    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    src, labels = batch["net_input"]["src_tokens"], batch["target"]
    keyword = task.dictionary.index("1")
    assert ((src == keyword).sum(1) == labels).all() and src.shape == (32, 8)
    model = classifier(task, uniform_attention=True)
    out = keyword_log_odds(model, src, labels, keyword)
    with torch.no_grad():
        gamma = model.polarity(model.encode(src)[0])[labels == 1]
    positives = src[labels == 1]
    at = [int((row == keyword).nonzero()) for row in positives]
    assert out["gamma_keyword"] == pytest.approx(float(np.mean([g[a] for g, a in zip(gamma, at)])), abs=1e-6)
    after = [float(g[a + 1]) for g, a in zip(gamma, at) if a + 1 < 8]
    assert out["gamma_after_keyword"] == pytest.approx(np.mean(after), abs=1e-6)
    assert out["gamma_mean"] == pytest.approx(float(gamma.mean()), abs=1e-6)
    assert out["gamma_last"] == pytest.approx(float(gamma[:, -1].mean()), abs=1e-6)
    with pytest.raises(InterpretError, match="keyword"):
        keyword_task(keyword=7)


# ------------------------------------------------------------------ the proxy (Eq. 5-6, 15)
def test_proxy_is_a_softmax_over_a_factorized_score():
    torch.manual_seed(0)
    proxy = BagOfWordsProxy(5, 4, dim=3)
    e, W = proxy.embed.weight.detach(), proxy.output.weight.detach()
    src, tgt = [1, 3, 3], [2, 0]
    expected = torch.log_softmax((W @ e[src].T).T.mean(0), -1)  # Eq. 5: σ((1/L) Σ_l W e_{x_l})
    got = proxy.log_probs(torch.tensor([src]), torch.ones(1, 3))[0]
    assert torch.allclose(got, expected, atol=1e-6)
    beta = proxy.probe(src, tgt)  # Eq. 6: σ(W e_{x_l})_{y_t}
    for t, y in enumerate(tgt):
        for l, x in enumerate(src):
            assert beta[t, l] == pytest.approx(float(torch.log_softmax(W @ e[x], -1)[y]), abs=1e-6)
    table = BagOfWordsProxy(5, 4, factorized=False)
    assert not hasattr(table, "embed") and table.probe(src, tgt).shape == (2, 3)


def test_proxy_initial_derivative_is_the_count_table():
    """Eq. 15: at initialization (d → ∞) the logits W e_i move along 2 (C_{i,o} − (1/|O|) Σ_o' C_{i,o'}), with C the
    IBM-1 count table of Eq. 16."""
    pairs = [([0, 1], [2, 3]), ([0, 2], [2]), ([1, 3, 3], [0, 1, 1]), ([2], [3, 3])]
    V = 4
    C = np.zeros((V, V))
    for src, tgt in pairs:
        for x in src:
            for y in tgt:
                C[x, y] += 1 / len(src)
    expected = 2 * (C - C.mean(1, keepdims=True))
    torch.manual_seed(0)
    proxy = BagOfWordsProxy(V, V, dim=20000)
    loss, _ = proxy.loss(pairs)  # Eq. 14
    loss.backward()
    e, W = proxy.embed.weight, proxy.output.weight
    rate = -(e.grad @ W.T + e @ W.grad.T).detach().numpy()  # d(e Wᵀ)/dτ under gradient flow
    assert np.abs(rate - expected).max() < 0.1 * np.abs(expected).max()


def test_proxy_keeps_the_epoch_of_lowest_validation_loss():
    rng = np.random.default_rng(0)
    pairs = [(list(rng.choice(8, 3, replace=False)), [int(rng.integers(8))]) for _ in range(40)]
    valid = [(list(rng.choice(8, 3, replace=False)), [int(rng.integers(8))]) for _ in range(20)]
    torch.manual_seed(0)
    proxy = BagOfWordsProxy(8, 8, dim=8)
    proxy.fit(pairs, epochs=8, lr=0.5, valid_pairs=valid)  # a large step: the validation loss does not fall steadily
    assert len(proxy.valid_losses) == 8
    assert proxy.best_epoch == 1 + int(np.argmin(proxy.valid_losses))
    with torch.no_grad():
        assert proxy.loss(valid)[0].item() == pytest.approx(min(proxy.valid_losses), rel=1e-6)


# ------------------------------------------------------------------ Δ: HotFlip's first-order estimate
def test_hotflip_saliency_is_the_first_order_effect_of_removing_a_word():
    """Δ_l = e(x_l)ᵀ ∂ log p(y)/∂e(x_l) (Ebrahimi et al. 2018): log p falls by about ε Δ_l when e(x_l) shrinks by ε."""
    task = keyword_task()
    model = classifier(task)
    src = torch.tensor([5, 7, 6, 9])
    delta = classification_probes(model, src, 1)["delta"][0]
    eps = 1e-3
    emb = model.embed_tokens(src[None]).detach()

    def log_p(vectors):
        with torch.no_grad():
            return float(torch.log_softmax(model(src[None], token_embeddings=vectors)[0].double(), -1)[0, 1])

    for l in range(4):
        shrunk = emb.clone()
        shrunk[0, l] *= 1 - eps
        assert (log_p(emb) - log_p(shrunk)) / eps == pytest.approx(delta[l], abs=1e-3 * max(1, abs(delta[l])))
    # translation (lstm_dot_attention): the same per target word, through the attribution adapter
    from fairseq_interp.common.teacher_forcing import TeacherForcedAdapter
    from test_attention_learning import make_model, make_task

    mt_task = make_task()
    mt = make_model(mt_task)
    d = mt_task.dictionary
    s, t = torch.tensor([5, 9, 7, d.eos()]), torch.tensor([9, 5, d.eos()])
    delta = gradient_saliency(mt, s, t, d.eos())
    l2 = gradient_saliency(mt, s, t, d.eos(), saliency="l2")
    assert delta.shape == l2.shape == (3, 4) and (l2 >= 0).all() and (delta < 0).any()
    adapter = TeacherForcedAdapter(mt, eos=d.eos(), score="logprob")
    base = adapter.source_embeddings(s[None])
    for l in range(3):
        shrunk = base.clone()
        shrunk[0, l] *= 1 - eps
        with torch.no_grad():
            fall = (adapter.scores(s, t, base)[0] - adapter.scores(s, t, shrunk)[0]).double().numpy() / eps
        assert np.allclose(fall, delta[:, l], atol=2e-3)
    with pytest.raises(InterpretError, match="saliency"):
        gradient_saliency(mt, s, t, d.eos(), saliency="norm")


# ------------------------------------------------------------------ best-agreeing checkpoints (A.6, A.7)
def test_each_column_takes_its_own_best_checkpoint_of_the_run():
    alpha = [np.array([[0.1, 0.9, 0.0]]), np.array([[0.8, 0.1, 0.1]])]
    delta = [np.array([[1.0, 0.0, 0.0]]), np.array([[1.0, 0.0, 0.0]])]
    early = [np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 1.0]])]  # agrees with α on sentence 1 only
    late = [np.array([[1.0, 0.0, 0.0]]), np.array([[1.0, 0.0, 0.0]])]  # agrees with Δ everywhere, α on sentence 2
    records = [{"alpha": a, "delta": g, "beta": a, "correct": 1} for a, g in zip(alpha, delta)]
    assert best_over_run(alpha, {10: early, 20: late}) == (0.5, 10)  # a tie keeps the earlier checkpoint
    row = paper_row(records, uniform_runs={10: early, 20: late}, frozen_runs={10: late, 20: alpha})
    assert row["A(alpha, beta_uf)"] == 0.5 and row["update(alpha, beta_uf)"] == 10
    assert row["A(delta, beta_uf)"] == 1.0 and row["update(delta, beta_uf)"] == 20
    assert row["A(alpha, alpha_fr)"] == 1.0 and row["update(alpha, alpha_fr)"] == 20
    assert row["A(alpha, beta)"] == 1.0 and row["accuracy"] == 100.0
    assert row["A(alpha, beta_uf)"] == max(agreement(alpha, early), agreement(alpha, late))


# ------------------------------------------------------------------ the translation model's options (A.8)
def test_relu_output_network_and_old_checkpoints_load_as_tanh():
    from test_attention_learning import batch, make_model, make_task

    task = make_task()
    model = make_model(task, output_activation="tanh")
    net = batch(task)["net_input"]
    logits, extra = model(**net)
    dec = model.decoder
    context = extra["attn"] @ model.encoder(net["src_tokens"], net["src_lengths"])["encoder_out"][0]
    cat = torch.cat([context, extra["decoder_states"]], -1)
    assert torch.allclose(logits, dec.output_projection(torch.tanh(dec.output_hidden(cat))), atol=1e-5)
    relu = make_model(task)
    state = {k: v for k, v in model.state_dict().items() if k != "decoder.output_relu"}  # saved before the option
    relu.load_state_dict(relu.upgrade_state_dict_named(state, ""))
    assert int(relu.decoder.output_relu) == 0 and torch.allclose(relu(**net)[0], logits, atol=1e-6)


def test_two_layer_bidirectional_encoder():
    from test_attention_learning import batch, make_model, make_task

    task = make_task()
    model = make_model(task, encoder_layers=2, encoder_bidirectional=True, decoder_layers=2)
    d = task.dictionary
    src = torch.tensor([[d.pad(), 5, 9, 7, d.eos()]])
    enc = model.encoder(src, torch.tensor([4]))
    with torch.no_grad():
        out, (h, c) = model.encoder.lstm(model.encoder.embed_tokens(src[:, 1:]))
    assert enc["encoder_out"][0].shape == (1, 5, 16)  # both directions: 2 x 8
    assert torch.allclose(enc["encoder_out"][0][:, 1:], out, atol=1e-6) and enc["encoder_out"][0][:, 0].eq(0).all()
    assert torch.allclose(enc["encoder_final"][0], h.view(2, 2, 1, 8).mean(1), atol=1e-6)  # mean of directions
    assert torch.allclose(enc["encoder_final"][1], c.view(2, 2, 1, 8).mean(1), atol=1e-6)
    # the lexical probe is still the model's output when the source has one position
    one = torch.tensor([[7], [9]])
    prev = torch.tensor([[2, 7, 8], [2, 9, 9]])
    logits, _ = model(one, torch.tensor([1, 1]), prev)
    assert torch.allclose(model.lexical_probe(one, torch.tensor([1, 1]), prev)[:, :, 0], torch.log_softmax(logits, -1),
                          atol=1e-5)
    top = make_model(task, encoder_layers=2, encoder_bidirectional=True, decoder_layers=1)
    net = batch(task)["net_input"]
    assert top(**net)[0].shape[-1] == len(d)
    with pytest.raises(InterpretError, match="--decoder-layers"):
        make_model(task, encoder_layers=2, decoder_layers=3)
