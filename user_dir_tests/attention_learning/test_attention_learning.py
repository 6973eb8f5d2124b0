"""Snell et al. (2021): the permutation_copy task and the lstm_dot_attention model, on hand-made inputs and in
fairseq-train / fairseq-generate."""

import json

import numpy as np
import pytest
import torch

import fairseq_interp  # noqa: F401  (registrations)
from conftest import run
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.attention_learning.lstm_dot_attention import LSTMDotAttentionConfig, LSTMDotAttentionModel
from fairseq_interp.attention_learning.permutation_copy import (PermutationCopyConfig, PermutationCopyTask, accuracy_counts,
                                                   generate)


def make_task(**kw):
    return PermutationCopyTask.setup_task(PermutationCopyConfig(**{"seq_len": 6, "vocab_size": 12, **kw}))


def make_model(task, **kw):
    torch.manual_seed(0)
    cfg = LSTMDotAttentionConfig(**{"embed_dim": 8, "hidden_size": 8, "output_hidden_dim": 8, **kw})
    return LSTMDotAttentionModel.build_model(cfg, task).eval()


def batch(task, mode="sampled_set", n=4):
    task.cfg.perm_mode = mode
    task.load_dataset("valid")
    ds = task.datasets["valid"]
    return ds.collater([ds[i] for i in range(n)])


# ------------------------------------------------------------------ data
def test_generated_distributions():
    src, tgt = generate("fixed_set", 50, 6, 12, seed=0)
    assert all(sorted(r) == list(range(6)) for r in src) and (src == tgt).all()
    assert len({tuple(r) for r in src}) > 40  # random orders
    src, tgt = generate("sampled_set", 50, 6, 12, seed=0)
    assert all(len(set(r)) == 6 and r.max() < 12 for r in src) and (src == tgt).all()
    assert len({frozenset(r) for r in src}) > 40  # different token sets
    src, _ = generate("mixture", 200, 6, 12, seed=0)
    sets = {frozenset(r) for r in src}
    assert sets == {frozenset(range(6)), frozenset(range(6, 12))}
    src, tgt = generate("permute", 50, 6, 12, seed=0, permutation_seed=3)
    pi = np.random.default_rng(3).permutation(6)
    assert (tgt == src[:, pi]).all() and not (pi == np.arange(6)).all()
    a, _ = generate("sampled_set", 5, 6, 12, seed=[1, 0])
    b, _ = generate("sampled_set", 5, 6, 12, seed=[1, 0])
    c, _ = generate("sampled_set", 5, 6, 12, seed=[1, 1])
    assert (a == b).all() and not (a == c).all()


def test_task_dataset_and_errors():
    task = make_task()
    sample = batch(task, "fixed_set")
    d = task.dictionary
    assert len(d) == d.nspecial + 12 and d[d.nspecial + 3] == "t3"
    src = sample["net_input"]["src_tokens"]
    assert src.shape == (4, 7) and (src[:, -1] == d.eos()).all()
    assert (sample["target"] == src).all()  # copy
    assert (sample["net_input"]["prev_output_tokens"][:, 0] == d.eos()).all()
    with pytest.raises(InterpretError, match="--vocab-size"):
        make_task(perm_mode="mixture", seq_len=8, vocab_size=12)
    with pytest.raises(InterpretError, match="splits"):
        task.load_dataset("dev")


def test_accuracy_counts_on_hand_made_outputs():
    pad, eos = 1, 2
    sample = {"target": torch.tensor([[5, 6, 2]]), "net_input": {"src_tokens": torch.tensor([[6, 5, 2]])}}
    logits = torch.zeros(1, 3, 8)
    logits[0, 0, 5] = logits[0, 1, 7] = logits[0, 2, 2] = 1  # first right, second wrong, EOS excluded
    attn = torch.tensor([[[0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0, 0, 1.0]]])  # y_0=5 is at source 1, y_1=6 at 0
    counts = accuracy_counts(logits, {"attn": attn}, sample, pad, eos)
    assert counts == {"_token_correct": 1, "_token_total": 2, "_attention_correct": 2, "_attention_total": 2}
    attn[0, 0] = torch.tensor([0.8, 0.1, 0.1])
    assert accuracy_counts(logits, {"attn": [attn]}, sample, pad, eos)["_attention_correct"] == 1


# ------------------------------------------------------------------ model
def test_attention_and_output_follow_the_equations():
    task = make_task()
    model = make_model(task, attention_heads=3)
    sample = batch(task)
    net = sample["net_input"]
    logits, extra = model(**net)
    enc = model.encoder(net["src_tokens"], net["src_lengths"])
    h, s = enc["encoder_out"][0], extra["decoder_states"]
    W = model.decoder.attention_weight
    heads = torch.stack([torch.softmax(s @ W[k] @ h.transpose(1, 2), -1) for k in range(3)])  # Eq. 20
    assert torch.allclose(extra["attn_heads"], heads, atol=1e-6)
    assert torch.allclose(extra["attn"], heads.mean(0), atol=1e-6)
    context = sum(heads[k] @ h for k in range(3))  # Eq. 21: contexts summed
    dec = model.decoder
    expected = dec.output_projection(torch.relu(dec.output_hidden(torch.cat([context, s], -1))))  # A.8: ReLU
    assert torch.allclose(logits, expected, atol=1e-5)


def test_uniform_attention_is_frozen_uniform():
    task = make_task()
    model = make_model(task, uniform_attention=True)
    assert not any("attention_weight" in n for n, _ in model.named_parameters())
    net = batch(task)["net_input"]
    _, extra = model(**net)
    assert torch.allclose(extra["attn"], torch.full_like(extra["attn"], 1 / 7))


def test_padding_on_either_side_changes_nothing():
    task = make_task()
    model = make_model(task, attention_heads=2)
    d = task.dictionary
    tokens = torch.tensor([[5, 9, 7, d.eos()]])
    pad = d.pad()
    left = torch.tensor([[pad, pad, 5, 9, 7, d.eos()]])
    right = torch.tensor([[5, 9, 7, d.eos(), pad, pad]])
    prev = torch.tensor([[d.eos(), 9, 5]])
    ref_logits, ref = model(tokens, torch.tensor([4]), prev)
    for padded, keep in ((left, slice(2, 6)), (right, slice(0, 4))):
        logits, extra = model(padded, torch.tensor([4]), prev)
        assert torch.allclose(logits, ref_logits, atol=1e-5)
        assert torch.allclose(extra["attn"][..., keep], ref["attn"], atol=1e-6)
        assert extra["attn"].sum(-1).allclose(torch.ones(1, 3))


def test_incremental_decoding_equals_full_forward():
    task = make_task()
    model = make_model(task, attention_heads=2)
    net = batch(task)["net_input"]
    full_logits, full = model(**net)
    enc = model.encoder(net["src_tokens"], net["src_lengths"])
    state, steps, attns = {}, [], []
    prev = net["prev_output_tokens"]
    for t in range(prev.size(1)):
        logits, extra = model.decoder(prev[:, :t + 1], encoder_out=enc, incremental_state=state)
        steps.append(logits)
        attns.append(extra["attn"])
    assert torch.allclose(torch.cat(steps, 1), full_logits, atol=1e-5)
    assert torch.allclose(torch.cat(attns, 1), full["attn"], atol=1e-6)


def test_head_init_seeds():
    task = make_task()
    a = make_model(task, attention_heads=2, head_init_seeds="3,4").decoder.attention_weight
    b = make_model(task, attention_heads=2, head_init_seeds="3,5").decoder.attention_weight
    torch.manual_seed(123)  # the global seed does not matter for seeded heads
    cfg = LSTMDotAttentionConfig(embed_dim=8, hidden_size=8, output_hidden_dim=8, attention_heads=2,
                                 head_init_seeds="4,3")
    c = LSTMDotAttentionModel.build_model(cfg, task).decoder.attention_weight
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])
    assert torch.equal(a[0], c[1]) and torch.equal(a[1], c[0])
    with pytest.raises(InterpretError, match="one per head"):
        make_model(task, attention_heads=3, head_init_seeds="1,2")
    with pytest.raises(InterpretError, match="integers"):
        make_model(task, attention_heads=1, head_init_seeds="x")


def test_lexical_probe_equals_the_model_on_one_source_position():
    """With one source position attention is 1 on it, so N([K h_1, s_t]) is exactly the model's output."""
    task = make_task()
    for heads in (1, 3):
        model = make_model(task, attention_heads=heads)
        src = torch.tensor([[7], [9]])
        prev = torch.tensor([[2, 7, 8], [2, 9, 9]])
        logits, _ = model(src, torch.tensor([1, 1]), prev)
        probe = model.lexical_probe(src, torch.tensor([1, 1]), prev)
        assert probe.shape == (2, 3, 1, len(task.dictionary))
        assert torch.allclose(probe[:, :, 0], torch.log_softmax(logits, -1), atol=1e-5)


# ------------------------------------------------------------------ fairseq-train / generate
TRAIN = ["--user-dir", "fairseq_interp", "--task", "permutation_copy", "--seq-len", "10", "--vocab-size", "20",
         "--train-size", "2000", "--valid-size", "200", "--arch", "lstm_dot_attention", "--embed-dim", "32",
         "--hidden-size", "32", "--output-hidden-dim", "32", "--optimizer", "adam", "--lr", "1e-2",
         "--criterion", "cross_entropy", "--batch-size", "50", "--cpu", "--no-progress-bar", "--log-format", "json",
         "--no-epoch-checkpoints", "--seed", "1"]


def valid_logs(proc):
    out = []
    for line in (proc.stdout + proc.stderr).splitlines():
        if "| valid |" in line:
            out.append(json.loads(line.split("| valid |", 1)[1]))
    return out


@pytest.fixture(scope="module")
def copy_ckpt(tmp_path_factory):
    save = tmp_path_factory.mktemp("perm_copy")
    proc = run(["fairseq-train", *TRAIN, "--perm-mode", "sampled_set", "--max-update", "200",
                "--validate-interval-updates", "100", "--save-dir", str(save)])
    return save / "checkpoint_last.pt", valid_logs(proc)


def test_train_sampled_set_learns_to_copy_and_to_attend(copy_ckpt):
    _, logs = copy_ckpt
    first, last = logs[0], logs[-1]
    assert int(last["valid_num_updates"]) == 200
    assert float(last["valid_token_accuracy"]) > 95 and float(last["valid_attention_accuracy"]) > 95
    assert float(first["valid_attention_accuracy"]) < float(last["valid_attention_accuracy"])


def test_generate_prints_the_copy_alignment(copy_ckpt):
    ckpt, _ = copy_ckpt
    proc = run(["fairseq-generate", "--user-dir", "fairseq_interp", "--task", "permutation_copy",
                "--perm-mode", "sampled_set", "--seq-len", "10", "--vocab-size", "20", "--valid-size", "20",
                "--gen-subset", "valid", "--required-batch-size-multiple", "1",
                "--path", str(ckpt), "--beam", "2", "--batch-size", "10", "--print-alignment", "hard", "--cpu"])
    lines = proc.stdout.splitlines()
    src = {l.split("\t")[0][2:]: l.split("\t")[1].split() for l in lines if l.startswith("S-")}
    hyp = {l.split("\t")[0][2:]: l.split("\t")[2].split() for l in lines if l.startswith("H-")}
    ali = {l.split("\t")[0][2:]: l.split("\t")[1].split() for l in lines if l.startswith("A-")}
    assert len(src) == 20
    copied = sum(hyp[i] == src[i] for i in src)
    assert copied >= 15
    right = total = 0
    for i in src:  # links i-j: source position i, target position j; copy means the token at i is output at j
        for link in ali[i]:
            s, t = map(int, link.split("-"))
            if t < len(hyp[i]):
                total += 1
                right += src[i][s] == hyp[i][t]
    assert total > 0 and right / total > 0.9


def test_integrated_gradients_adapter_works_on_the_model():
    from fairseq_interp.common.teacher_forcing import TeacherForcedAdapter
    from fairseq_interp.word_importance.methods.integrated_gradients import IntegratedGradients

    task = make_task()
    model = make_model(task, attention_heads=2)
    d = task.dictionary
    adapter = TeacherForcedAdapter(model, eos=d.eos(), score="prob")
    src, tgt = torch.tensor([5, 9, 7, d.eos()]), torch.tensor([9, 5, d.eos()])
    result = IntegratedGradients(adapter).attribute(src, tgt, n_steps=50, method="gausslegendre")
    assert tuple(result.contributions.shape) == (4, 3)
    gap = (adapter.scores(src, tgt) - adapter.scores(src, tgt, torch.zeros(1, 4, 8))).abs().squeeze(0)
    assert (torch.as_tensor(result.convergence_delta).abs() <= 0.01 * gap + 1e-6).all()
