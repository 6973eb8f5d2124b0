"""Gated-head Transformer (Voita et al. 2019): Hard Concrete gates, L0 criterion, fine-tuning from a plain
checkpoint, and the physically pruned export."""

import argparse
import math
import re

import pytest
import torch

import fairseq_interp
import tensorboard_events
from conftest import error_lines, run, train
from fairseq_interp.common.attention import attention_modules
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.heads.hard_concrete import HardConcreteGate

GATED_ARCH = "transformer_gated_heads_test_tiny"


# ---------------------------------------------------------------- gate module
def test_closed_form_probabilities_and_l0_match_monte_carlo():
    torch.manual_seed(0)
    gate = HardConcreteGate(4)
    gate.set_log_alpha(torch.tensor([-2.0, 0.0, 0.7, 3.0]))
    # hand value: log α = 0 → P(g=0) = σ(0.33 · log(0.1/1.1)) = σ(-0.79130) = 0.31190
    assert gate.prob_closed()[1].item() == pytest.approx(1 / (1 + math.exp(0.33 * math.log(11))), abs=1e-6)
    assert gate.prob_closed()[1].item() == pytest.approx(0.31190, abs=1e-4)
    gate.train()
    samples = gate.sample(100000).detach()
    assert samples.shape == (100000, 4)
    assert samples.min() >= 0 and samples.max() <= 1
    mc_closed = (samples == 0).float().mean(0)
    mc_open = (samples == 1).float().mean(0)
    assert torch.allclose(mc_closed, gate.prob_closed().detach(), atol=0.01)
    assert torch.allclose(mc_open, gate.prob_open().detach(), atol=0.01)
    mc_l0 = (samples > 0).float().sum(1).mean()
    assert gate.l0().item() == pytest.approx(mc_l0.item(), abs=0.03)
    # the penalty is differentiable in log α and pushes every gate towards closing
    gate.l0().backward()
    assert (gate.log_alpha_param.grad > 0).all()


def test_gate_lr_scale_moves_log_alpha_c_times_faster_and_checkpoints_hold_log_alpha():
    """log α = c·φ: Adam's first step moves every parameter by lr (|g| > eps), so log α moves by c·lr."""
    plain, fast = HardConcreteGate(3, init_log_alpha=1.0), HardConcreteGate(3, init_log_alpha=1.0, log_alpha_scale=10)
    assert torch.allclose(fast.log_alpha, plain.log_alpha) and torch.allclose(fast.l0(), plain.l0())
    steps = []
    for gate in (plain, fast):
        opt = torch.optim.Adam(gate.parameters(), lr=1e-3)
        before = gate.log_alpha.detach().clone()
        gate.l0().backward()
        opt.step()
        steps.append(before - gate.log_alpha.detach())
    assert torch.allclose(steps[0], torch.full((3,), 1e-3), rtol=1e-3)
    assert torch.allclose(steps[1], torch.full((3,), 1e-2), rtol=1e-3)
    # the checkpoint key holds log α itself: a gate with another scale restores the same gates
    state = fast.state_dict()
    assert list(state) == ["log_alpha"] and torch.allclose(state["log_alpha"], fast.log_alpha.detach())
    other = HardConcreteGate(3, log_alpha_scale=4.0)
    other.load_state_dict(state)
    assert torch.allclose(other.log_alpha, fast.log_alpha) and torch.allclose(other.prob_closed(), fast.prob_closed())
    with pytest.raises(InterpretError, match="--gate-lr-scale"):
        HardConcreteGate(3, log_alpha_scale=0.0)


def test_eval_gates_are_deterministic_and_training_gates_sampled():
    torch.manual_seed(1)
    gate = HardConcreteGate(5)
    gate.set_log_alpha(torch.tensor([-3.0, -0.01, 0.01, 0.5, 4.0]))
    gate.eval()
    expected = (gate.prob_open() > gate.prob_closed()).float()
    assert expected.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    for _ in range(5):
        assert torch.equal(gate(), expected)
    gate.train()
    draws = torch.stack([gate() for _ in range(50)]).detach()
    assert not torch.equal(draws[0], draws[1]) and ((draws > 0) & (draws < 1)).any()


def test_gate_bad_options_are_clear():
    with pytest.raises(InterpretError, match="stretch"):
        HardConcreteGate(2, stretch=(0.1, 1.1))
    with pytest.raises(InterpretError, match="temperature"):
        HardConcreteGate(2, temperature=0.0)


# ---------------------------------------------------------------- model from a plain checkpoint
def _load_plain(ckpt):
    from fairseq import checkpoint_utils

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(ckpt)])
    return models[0].eval(), cfg, task


def _gated_from(plain_cfg, task, **options):
    from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

    ns = argparse.Namespace(**vars(plain_cfg.model))
    ns.arch = GATED_ARCH
    for key, value in options.items():
        setattr(ns, key, value)
    ARCH_CONFIG_REGISTRY[GATED_ARCH](ns)
    return ARCH_MODEL_REGISTRY[GATED_ARCH].build_model(ns, task)


def _batch(task, n=6):
    task.load_dataset("valid")
    ds = task.dataset("valid")
    return ds.collater([ds[i] for i in range(n)])["net_input"]


def test_all_gates_open_equals_plain_model_exactly(transformer_ckpt):
    plain, cfg, task = _load_plain(transformer_ckpt)
    gated = _gated_from(cfg, task)
    state = torch.load(transformer_ckpt)["model"]
    assert not any("head_gate" in k for k in state)
    gated.load_state_dict(state, strict=True, model_cfg=cfg.model)  # missing gates filled open
    gated.eval()
    assert sum(s["hard_open"] for s in gated.gate_summary().values()) == 6
    net_input = _batch(task)
    from fairseq_interp.common.attention import disable_fused_attention

    with torch.no_grad():
        fast, fast_gated = plain(**net_input)[0], gated(**net_input)[0]  # fused attention (gates fold into W^O)
        disable_fused_attention(plain)  # fairseq's Python attention path: gates act at out_proj's input
        disable_fused_attention(gated)
        reference, out = plain(**net_input)[0], gated(**net_input)[0]
    assert torch.equal(fast_gated, fast)
    assert torch.equal(out, reference)
    gated.train()  # fractional gates (as sampled in training): both paths agree on them
    for m in gated.modules():
        if getattr(m, "head_gate", None) is not None:
            m.head_gate.override = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        sampled_python = gated(**{**net_input})[0]
        for m in gated.modules():
            if getattr(m, "head_gate", None) is not None:
                m.skip_embed_dim_check = False
        sampled_fused = gated(**net_input)[0]
    for m in gated.modules():
        if getattr(m, "head_gate", None) is not None:
            m.head_gate.override = None
    gated.eval()
    assert torch.allclose(sampled_python, sampled_fused, atol=1e-5) and not torch.allclose(sampled_fused, fast)
    disable_fused_attention(gated)
    # closing every gate of a layer removes the heads: the attention returns out_proj's bias only
    with torch.no_grad():
        gated.encoder.layers[0].self_attn.head_gate.set_log_alpha(torch.full((2,), -5.0))
        closed = gated(**net_input)[0]
    assert not torch.allclose(closed, reference, atol=1e-3)


def test_dimension_mismatch_and_bad_options_are_clear(transformer_ckpt):
    plain, cfg, task = _load_plain(transformer_ckpt)
    wider = _gated_from(cfg, task, encoder_ffn_embed_dim=128, decoder_ffn_embed_dim=128)
    with pytest.raises(InterpretError, match="expects .*transformer_gated_heads"):
        wider.load_state_dict(torch.load(transformer_ckpt)["model"], strict=True, model_cfg=cfg.model)
    with pytest.raises(InterpretError, match="--gate-heads"):
        _gated_from(cfg, task, gate_heads="encoder_self,decoder")
    with pytest.raises(InterpretError, match="--encoder-self-heads"):
        _gated_from(cfg, task, encoder_self_heads="1,1")


def test_freeze_decoder_keeps_gates_and_shared_embeddings_trainable(transformer_ckpt):
    plain, cfg, task = _load_plain(transformer_ckpt)
    gated = _gated_from(cfg, task, freeze_decoder=True)
    dec = gated.decoder
    assert not dec.layers[0].fc1.weight.requires_grad and not dec.layers[0].encoder_attn.q_proj.weight.requires_grad
    assert dec.layers[0].encoder_attn.head_gate.log_alpha_param.requires_grad
    assert dec.embed_tokens.weight.requires_grad  # shared with the encoder
    assert all(p.requires_grad for p in gated.encoder.parameters())


# ---------------------------------------------------------------- criterion
def test_criterion_rejects_negative_lambda_and_plain_models(transformer_ckpt):
    from fairseq_interp.heads.criterion import LabelSmoothedCrossEntropyL0Criterion

    with pytest.raises(InterpretError, match="--l0-lambda must be >= 0"):
        LabelSmoothedCrossEntropyL0Criterion(None, False, 0.1, l0_lambda=-0.5)
    plain, cfg, task = _load_plain(transformer_ckpt)
    crit = LabelSmoothedCrossEntropyL0Criterion(task, False, 0.1, l0_lambda=0.5)
    task.load_dataset("valid")
    sample = task.dataset("valid").collater([task.dataset("valid")[i] for i in range(4)])
    with pytest.raises(InterpretError, match="transformer_gated_heads"):
        crit(plain, sample)
    no_gates = _gated_from(cfg, task, gate_heads="none")
    assert sum(p.numel() for p in no_gates.parameters()) == sum(p.numel() for p in plain.parameters())
    with pytest.raises(InterpretError, match="no head gates"):
        crit(no_gates, sample)


def test_criterion_adds_lambda_times_l0_per_token(transformer_ckpt):
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

    from fairseq_interp.heads.criterion import LabelSmoothedCrossEntropyL0Criterion

    plain, cfg, task = _load_plain(transformer_ckpt)
    gated = _gated_from(cfg, task)
    gated.load_state_dict(torch.load(transformer_ckpt)["model"], strict=True, model_cfg=cfg.model)
    gated.eval()
    task.load_dataset("valid")
    sample = task.dataset("valid").collater([task.dataset("valid")[i] for i in range(4)])
    base_loss, size, _ = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)(gated, sample)
    loss, size2, log = LabelSmoothedCrossEntropyL0Criterion(task, False, 0.1, l0_lambda=0.25)(gated, sample)
    assert size == size2
    expected_l0 = sum(float(1 - m.head_gate.prob_closed().sum() / m.head_gate.n_gates) * m.head_gate.n_gates
                      for mods in attention_modules(gated).values() for m in mods)
    assert log["l0_penalty"] == pytest.approx(expected_l0, rel=1e-5)
    assert (loss - base_loss).item() == pytest.approx(0.25 * expected_l0 * size, rel=1e-4)
    assert log["heads_enc_hard_open"] == 2 and log["heads_cross_total"] == 2
    # per head: its open probability 1 − P(g = 0), the head's term of L_C
    gate = gated.decoder.layers[0].encoder_attn.head_gate
    assert log["p_open_cross_l0_h1"] == pytest.approx(float(1 - gate.prob_closed()[1]))
    assert sum(v for k, v in log.items() if k.startswith("p_open_")) == pytest.approx(expected_l0, rel=1e-5)


def test_logged_head_counts_are_normalized_for_summed_logs():
    from fairseq.logging import metrics

    from fairseq_interp.heads.criterion import LabelSmoothedCrossEntropyL0Criterion

    one = {"loss": 10.0, "nll_loss": 9.0, "ntokens": 10, "nsentences": 2, "sample_size": 10, "l0_penalty": 5.0,
           "l0_count": 1, "heads_enc_expected_open": 3.5, "heads_enc_hard_open": 4, "p_open_enc_l0_h1": 0.25}
    summed_two_workers = {k: 2 * v for k, v in one.items()}  # what fairseq's all-reduce hands over
    for logs in ([one], [summed_two_workers], [one, one, one]):
        with metrics.aggregate() as agg:
            LabelSmoothedCrossEntropyL0Criterion.reduce_metrics(logs)
            values = agg.get_smoothed_values()
        assert values["heads_enc_expected_open"] == pytest.approx(3.5)
        assert values["heads_enc_hard_open"] == pytest.approx(4)
        assert values["l0_penalty"] == pytest.approx(5.0)
        assert values["p_open_enc_l0_h1"] == pytest.approx(0.25)  # reaches fairseq's metrics (and TensorBoard)


# ---------------------------------------------------------------- fairseq-train, prune-export, fairseq-generate
@pytest.fixture(scope="module")
def gated_ckpt(data_dir, transformer_ckpt, tmp_path_factory):
    save = tmp_path_factory.mktemp("gated")
    ckpt = train(data_dir, save, GATED_ARCH, 8, [
        "--share-all-embeddings", "--finetune-from-model", str(transformer_ckpt),
        "--criterion", "label_smoothed_cross_entropy_l0", "--l0-lambda", "0.5", "--label-smoothing", "0.1",
        "--log-interval", "1", "--log-format", "simple"])
    return ckpt, save


def test_finetune_plain_checkpoint_with_l0(gated_ckpt, transformer_ckpt):
    ckpt, _ = gated_ckpt
    state = torch.load(ckpt)  # safe loader
    plain = torch.load(transformer_ckpt)["model"]
    gates = {k: v for k, v in state["model"].items() if k.endswith("head_gate.log_alpha")}
    assert len(gates) == 3
    init = fairseq_interp.heads.hard_concrete.INIT_LOG_ALPHA
    assert all((v < init).all() for v in gates.values())  # λ > 0 pushed every gate towards closing
    assert set(state["model"]) - set(gates) == set(plain)


def test_finetune_logs_head_statistics(data_dir, transformer_ckpt, tmp_path):
    proc = run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--arch", GATED_ARCH,
                "--share-all-embeddings", "--finetune-from-model", str(transformer_ckpt),
                "--criterion", "label_smoothed_cross_entropy_l0", "--l0-lambda", "0.1", "--optimizer", "adam",
                "--lr", "1e-3", "--max-tokens", "1000", "--max-update", "2", "--cpu", "--no-save",
                "--disable-validation", "--log-format", "simple", "--log-interval", "1",
                "--max-source-positions", "64", "--max-target-positions", "64"])
    text = proc.stdout + proc.stderr
    for key in ("heads_enc_expected_open", "heads_dec_hard_open", "heads_cross_fractional", "l0_penalty"):
        assert re.search(rf"{key}[ =]+[0-9.]+", text), key
    bad = run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--arch", GATED_ARCH,
               "--criterion", "label_smoothed_cross_entropy_l0", "--l0-lambda", "-1", "--optimizer", "adam",
               "--lr", "1e-3", "--max-tokens", "1000", "--max-update", "1", "--cpu", "--no-save",
               "--disable-validation"], check=False)
    assert bad.returncode != 0 and "--l0-lambda must be >= 0" in bad.stderr
    wider = run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--arch", GATED_ARCH,
                 "--share-all-embeddings", "--encoder-ffn-embed-dim", "128",
                 "--finetune-from-model", str(transformer_ckpt), "--criterion", "label_smoothed_cross_entropy_l0",
                 "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000", "--max-update", "1", "--cpu",
                 "--no-save", "--disable-validation"], check=False)
    assert wider.returncode != 0
    assert "encoder.layers.0.fc1.weight has shape (64, 32) but the model expects (128, 32)" in wider.stderr
    no_gates = run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--arch", GATED_ARCH,
                    "--gate-heads", "none", "--criterion", "label_smoothed_cross_entropy_l0", "--optimizer", "adam",
                    "--lr", "1e-3", "--max-tokens", "1000", "--max-update", "1", "--cpu", "--no-save",
                    "--disable-validation",
                    # the refusal comes with the first batch: a data-loader worker alive then may print its own
                    # ConnectionResetError while the process exits, which is torch's line, not ours
                    "--num-workers", "0"], check=False)
    assert no_gates.returncode == 2 and len(error_lines(no_gates)) == 1
    assert "fairseq-train: error: criterion label_smoothed_cross_entropy_l0: the model has no head gates" in \
        no_gates.stderr and "Traceback" not in no_gates.stderr


# ---------------------------------------------------------------- hydra / yaml, TensorBoard
HYDRA_CONFIG = "l0_finetune_multi30k"  # configs/heads/l0_finetune_multi30k.yaml


def test_hydra_yaml_trains_the_same_gated_model_as_fairseq_train(data_dir, tmp_path):
    """``fairseq-hydra-train`` with the repository's yaml config and ``fairseq-train`` with the same options build
    and train the same gated model: same parameters, bit-identical state dicts after 2 updates, gates included.
    The fairseq-train run also writes TensorBoard events: the per-head open probabilities and the expected L0 are
    read back from the event file (tensorboardX, in the ``tb`` and ``test`` extras)."""
    import os

    from conftest import REPO

    hydra_dir, train_dir, logdir = tmp_path / "hydra", tmp_path / "train", tmp_path / "tb"
    litter = [os.path.join(REPO, name) for name in (".hydra", "hydra_train.log", "outputs")]
    before = [os.path.exists(p) for p in litter]
    run(["fairseq-hydra-train", "--config-dir", "configs/heads", "--config-name", HYDRA_CONFIG,
         f"task.data={data_dir / 'bin'}", f"model._name={GATED_ARCH}", "optimization.max_update=2",
         f"checkpoint.save_dir={hydra_dir}", "dataset.max_tokens=1000", "common.log_interval=1"])
    run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--arch", GATED_ARCH,
         "--gate-heads", "encoder_self,decoder_self,cross", "--gate-init-log-alpha", "1.0", "--gate-lr-scale", "20",
         "--criterion", "label_smoothed_cross_entropy_l0", "--label-smoothing", "0.1", "--l0-lambda", "0.02",
         "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "5e-4", "--lr-scheduler", "fixed",
         "--max-tokens", "1000", "--max-update", "2", "--cpu", "--seed", "1", "--save-dir", str(train_dir),
         "--no-epoch-checkpoints", "--log-format", "simple", "--log-interval", "1",
         "--tensorboard-logdir", str(logdir)])
    assert [os.path.exists(p) for p in litter] == before  # the config keeps hydra's files out of the repository
    hydra, train = torch.load(hydra_dir / "checkpoint_last.pt"), torch.load(train_dir / "checkpoint_last.pt")
    assert sorted(hydra["model"]) == sorted(train["model"])
    assert len([k for k in hydra["model"] if k.endswith("head_gate.log_alpha")]) == 3
    for key, value in train["model"].items():
        assert torch.equal(hydra["model"][key], value), key
    options = ("gate_heads", "gate_init_log_alpha", "gate_lr_scale", "encoder_layers", "encoder_embed_dim")
    assert {k: hydra["cfg"]["model"][k] for k in options} == {k: train["cfg"]["model"][k] for k in options}
    assert hydra["cfg"]["model"]["encoder_embed_dim"] == 32  # the architecture's size, not the config default
    scalars = tensorboard_events.scalars(logdir / "train_inner")
    for tag in ("l0_penalty", "p_open_enc_l0_h0", "p_open_cross_l0_h1", "heads_dec_expected_open"):
        assert [step for step, _ in scalars[tag]] == [1, 2], (tag, sorted(scalars))
    # update 1 runs on the initial gates, log α = 1 for every head: 1 − P(g = 0) = 1 − σ(β log(−l/r) − log α) with
    # β = 0.33, (l, r) = (−0.1, 1.1) (Hard Concrete, Louizos et al. 2018), by hand
    p_open_initial = 1 - 1 / (1 + math.exp(-(0.33 * math.log(0.1 / 1.1) - 1.0)))
    p_open = {k: v for k, v in scalars.items() if k.startswith("p_open_")}
    assert len(p_open) == 6  # 3 gated attentions x 2 heads
    assert [v[0][1] for v in p_open.values()] == pytest.approx([p_open_initial] * 6, abs=1e-4)
    # L_C (Voita et al. 2019, §6.1) is the sum of the heads' open probabilities, at every logged step
    assert scalars["l0_penalty"][0][1] == pytest.approx(6 * p_open_initial, abs=1e-3)
    assert scalars["l0_penalty"][1][1] == pytest.approx(sum(v[1][1] for v in p_open.values()), abs=1e-3)


def _close_some_heads(ckpt, out):
    """Close ≥ 50% of the heads, including every decoder self-attention head (a layer left with no heads)."""
    state = torch.load(ckpt)
    sd = state["model"]
    sd["encoder.layers.0.self_attn.head_gate.log_alpha"] = torch.tensor([2.0, -2.0])
    sd["decoder.layers.0.self_attn.head_gate.log_alpha"] = torch.tensor([-1.0, -3.0])
    sd["decoder.layers.0.encoder_attn.head_gate.log_alpha"] = torch.tensor([-0.5, 1.5])
    torch.save(state, out)
    return out


def _hypotheses(output):
    """(id, hypothesis text): scores may differ in the last printed digit (another summation order)."""
    rows = [line.split("\t") for line in output.splitlines() if line.startswith("H-")]
    return sorted((row[0], row[2]) for row in rows)


def test_prune_export_same_translations(data_dir, gated_ckpt, tmp_path):
    gated = _close_some_heads(gated_ckpt[0], tmp_path / "gated.pt")
    pruned = tmp_path / "pruned.pt"
    proc = run(["fairseq-interp", "prune-export", "--path", str(gated), "--out", str(pruned)], in_process=True)
    assert "heads kept per layer" in proc.stderr  # the summary is logged
    state = torch.load(pruned)  # safe loader
    sd = state["model"]
    assert not any("head_gate" in k for k in sd)
    dh = 16
    assert sd["encoder.layers.0.self_attn.q_proj.weight"].shape == (dh, 32)
    assert sd["encoder.layers.0.self_attn.out_proj.weight"].shape == (32, dh)
    assert sd["decoder.layers.0.self_attn.v_proj.weight"].shape == (0, 32)
    assert sd["decoder.layers.0.encoder_attn.k_proj.weight"].shape == (dh, 32)
    # the kept slice is the open head's (encoder head 0, cross head 1)
    original = torch.load(gated)["model"]
    assert torch.equal(sd["encoder.layers.0.self_attn.q_proj.weight"],
                       original["encoder.layers.0.self_attn.q_proj.weight"][:dh])
    assert torch.equal(sd["decoder.layers.0.encoder_attn.out_proj.weight"],
                       original["decoder.layers.0.encoder_attn.out_proj.weight"][:, dh:])
    outputs = []
    for path in (gated, pruned):
        gen = run(["fairseq-generate", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path", str(path),
                   "--gen-subset", "test", "--beam", "3", "--batch-size", "16", "--cpu", "--max-len-b", "20"])
        outputs.append(_hypotheses(gen.stdout))
    assert len(outputs[0]) == 40 and outputs[0] == outputs[1]
    # the head analysis runs on the pruned model; the decoder self-attention has no head left
    import json

    run(["fairseq-interp", "heads", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path", str(pruned),
         "--gen-subset", "valid", "--num-sentences", "3", "--cpu", "--results-path", str(tmp_path / "heads")],
        in_process=True)
    result = json.loads((tmp_path / "heads" / "heads.json").read_text())
    assert [len(layer) for layer in result["kinds"]["decoder_self"]["layers"]] == [0]
    assert [len(layer) for layer in result["kinds"]["encoder_self"]["layers"]] == [1]
    # one head per layer: each step's normalized relevance is exactly +1 or -1
    rel = result["kinds"]["encoder_self"]["layers"][0][0]["relevance"]
    assert -1 <= rel <= 1 and rel * result["steps"] == pytest.approx(round(rel * result["steps"]), abs=1e-4)


def test_prune_export_refuses_plain_checkpoint(transformer_ckpt, tmp_path):
    out = tmp_path / "x.pt"
    proc = run(["fairseq-interp", "prune-export", "--path", str(transformer_ckpt), "--out", str(out)], check=False)
    assert proc.returncode == 2 and not out.exists()
    assert "is not a gated-head model" in proc.stderr and len(error_lines(proc)) == 1


def test_encoder_only_gates_export_and_masks(gated_ckpt):
    """Gates on encoder self-attention only (the paper's Figure 7): the other attention types keep all their heads
    in the export, and the survival masks cover the encoder only."""
    from fairseq_interp.heads.prune import prune_state
    from fairseq_interp.heads.survival import open_head_masks

    state = torch.load(gated_ckpt[0])
    sd = state["model"]
    for key in [k for k in sd if k.startswith("decoder.") and k.endswith("head_gate.log_alpha")]:
        del sd[key]
    sd["encoder.layers.0.self_attn.head_gate.log_alpha"] = torch.tensor([-2.0, 2.0])
    assert open_head_masks(state) == {"encoder_self": [[False, True]]}
    before = {k: v.shape for k, v in sd.items()}
    kept = prune_state(state)
    assert kept == {"encoder_self": [1], "decoder_self": [2], "cross": [2]}
    assert sd["encoder.layers.0.self_attn.q_proj.weight"].shape[0] == before["encoder.layers.0.self_attn.q_proj.weight"][0] // 2
    for key in ("decoder.layers.0.self_attn.q_proj.weight", "decoder.layers.0.encoder_attn.out_proj.weight"):
        assert sd[key].shape == before[key]
