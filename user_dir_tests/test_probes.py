"""Agreement metrics (Snell et al. 2021, Eq. 10–11) on hand-made matrices; the probes on a trained copy model and
through ``fairseq-interp probes``."""

import json

import numpy as np
import pytest
import torch

from conftest import run
from fairseq_interp.analysis.agreement import (agreement, agreement_with_baseline, contextualized_agreement,
                                               kendall_tau, mean_kendall_tau, top_k)
from fairseq_interp.analysis.ibm1 import IBM1
from fairseq_interp.analysis.probes import BagOfWordsProxy, agreement_table, sentence_probes
from fairseq_interp.errors import InterpretError


def test_top_k_is_five_percent_with_at_least_one():
    assert [top_k(n) for n in (1, 10, 20, 21, 40, 41, 100)] == [1, 1, 1, 2, 2, 3, 5]
    with pytest.raises(InterpretError, match="0.05"):
        top_k(10, 0)


def test_agreement_on_hand_made_matrices():
    v = np.array([[0.1, 0.7, 0.2, 0.0], [0.4, 0.3, 0.2, 0.1]])
    u = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])  # row 0 agrees, row 1 does not
    assert agreement(u, v) == 0.5
    assert agreement(v, v) == 1.0
    # 40 positions: the top 5% are two positions, so the second best of v still counts, the third does not
    v = np.arange(40.0)[None]
    assert agreement(np.eye(40)[[38]], v) == 1.0 and agreement(np.eye(40)[[37]], v) == 0.0
    # ties in v: every tied best position is in the top
    assert agreement(np.eye(3)[[2]], np.array([[1.0, 0.0, 1.0]])) == 1.0
    with pytest.raises(InterpretError, match="same sentence"):
        agreement(np.ones((2, 3)), np.ones((2, 4)))


def test_random_baseline_is_the_expected_agreement_of_a_random_argmax():
    rng = np.random.default_rng(0)
    vs = [rng.random((5, n)) for n in (10, 30, 45)]
    _, baseline = agreement_with_baseline(vs, vs)
    assert baseline == pytest.approx((5 / 10 + 5 * 2 / 30 + 5 * 3 / 45) / 15)
    hits = []
    for _ in range(2000):
        us = [np.eye(v.shape[1])[rng.integers(v.shape[1], size=5)] for v in vs]
        hits.append(agreement(us, vs))
    assert np.mean(hits) == pytest.approx(baseline, abs=0.01)


def test_kendall_tau_known_values_and_scipy():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # 1 discordant pair of 3 (no ties): (2 - 1) / 3
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for _ in range(5):
        x, y = rng.integers(0, 4, 12), rng.integers(0, 4, 12)  # with ties: tau-b
        assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)
    assert np.isnan(kendall_tau([1, 1], [1, 2]))
    assert mean_kendall_tau(np.array([[1, 2, 3], [1, 2, 3]]), np.array([[1, 2, 3], [3, 2, 1]])) == 0.0


def test_contextualized_agreement():
    alpha = np.eye(4)
    seed2 = np.eye(4)[[0, 1, 2, 0]]  # another seed agrees on 3 of 4 rows
    u = np.eye(4)[[0, 1, 3, 3]]  # the probe agrees on 3 of 4 rows too: as much as another run, xi = 1
    assert contextualized_agreement(u, alpha, seed2) == pytest.approx(1.0)
    assert contextualized_agreement(np.eye(4)[[0, 0, 0, 0]], alpha, seed2) == pytest.approx(0.25 / 0.75)
    with pytest.raises(InterpretError, match="undefined"):
        contextualized_agreement(u, alpha, np.eye(4)[[1, 2, 3, 0]])


def test_proxy_learns_the_word_translation_from_co_occurrence():
    """Eq. 5-6 on a corpus where word k always translates to word k + 10 (sampled sets): B ranks it first."""
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(300):
        src = list(rng.choice(10, size=4, replace=False))
        pairs.append((src, [s + 10 for s in rng.permutation(src)]))
    torch.manual_seed(0)
    proxy = BagOfWordsProxy(20, 20)
    losses = proxy.fit(pairs, epochs=5, lr=0.1)
    assert losses[-1] < losses[0]
    beta = proxy.probe([3, 7, 1], [17, 11, 13])  # (T, L)
    assert list(beta.argmax(axis=1)) == [1, 2, 0]


def test_sentence_probes_shapes_and_ibm_probe():
    from test_attention_learning import make_model, make_task

    task = make_task()
    model = make_model(task, attention_heads=2)
    d = task.dictionary
    ibm = IBM1().fit([([5, 6], [5, 6]), ([5, 7], [5, 7]), ([6, 7], [6, 7])], iterations=20)
    src, tgt = torch.tensor([7, 5, 6, d.eos()]), torch.tensor([6, 7, d.eos()])
    out = sentence_probes(model, src, tgt, d.eos(), uniform_model=model, ibm=ibm, second_model=model)
    for name in ("alpha", "beta", "beta_uf", "beta_ibm", "delta", "alpha_seed2"):
        assert out[name].shape == (2, 3), name
    assert list(out["beta_ibm"].argmax(axis=1)) == [2, 0]  # y=6 is x_2, y=7 is x_0
    assert np.allclose(out["alpha"].sum(1), 1 - attention_on_eos(model, src, tgt, d.eos()), atol=1e-5)
    rows = agreement_table([out])
    assert {r["probe"] for r in rows} == {"beta", "beta_uf", "beta_ibm", "delta", "alpha_seed2"}
    assert next(r for r in rows if r["probe"] == "alpha_seed2")["agreement"] == 1.0
    with pytest.raises(InterpretError, match="EOS"):
        sentence_probes(model, torch.tensor([7, 5]), tgt, d.eos())


def attention_on_eos(model, src, tgt, eos):
    prev = torch.cat([torch.tensor([eos]), tgt[:-1]])
    _, extra = model(src[None], torch.tensor([len(src)]), prev[None])
    return extra["attn"][0, :-1, -1].detach().numpy()


def test_probes_command_on_a_trained_copy_model(tmp_path):
    """A sampled_set copy model attends to the copied token: every probe then agrees with α far above Â."""
    from test_attention_learning import TRAIN

    ckpts = {}
    for name, extra in (("main", []), ("uniform", ["--uniform-attention"])):
        save = tmp_path / name
        run(["fairseq-train", *TRAIN, "--perm-mode", "sampled_set", "--max-update", "150", "--disable-validation",
             "--save-dir", str(save), *extra])
        ckpts[name] = save / "checkpoint_last.pt"
    out = tmp_path / "probes"
    proc = run(["fairseq-interp", "probes", "--path", str(ckpts["main"]), "--uniform-path", str(ckpts["uniform"]),
                "--num-sentences", "60", "--proxy-epochs", "2", "--results-path", str(out)])
    assert "| beta_ibm |" in proc.stdout
    result = json.loads((out / "probes.json").read_text())
    rows = {r["probe"]: r for r in result["rows"]}
    assert result["sentences"] == 60 and set(rows) == {"beta", "beta_uf", "beta_ibm", "beta_px", "delta"}
    for name in ("beta", "beta_ibm", "beta_px"):
        assert rows[name]["random_baseline"] == pytest.approx(0.1)  # 10 source words, top 5% = 1 position
        assert rows[name]["agreement"] > 0.8, name
    bad = run(["fairseq-interp", "probes", "--path", str(ckpts["main"]), "--results-path", str(out)], check=False)
    assert bad.returncode == 2 and "another --results-path" in bad.stderr
    bad = run(["fairseq-interp", "probes", "--path", str(tmp_path / "none.pt"), "--results-path",
               str(tmp_path / "x")], check=False)
    assert bad.returncode == 2 and "not found" in bad.stderr and not (tmp_path / "x").exists()


def tiny_transformer(task, decoder_heads):
    from argparse import Namespace

    from fairseq.models.transformer import TransformerModel
    from fairseq_interp.models.transformer_sizes import transformer_test_tiny

    args = Namespace(decoder_attention_heads=decoder_heads, max_source_positions=64, max_target_positions=64)
    transformer_test_tiny(args)
    torch.manual_seed(0)
    return TransformerModel.build_model(args, task).eval()


def test_transformer_head_probe_equals_masking_all_other_positions():
    """With one decoder head, moving its attention onto l equals masking every other source position."""
    from fairseq_interp.analysis.head_probes import transformer_head_probes
    from test_attention_learning import make_task

    task = make_task()
    d = task.dictionary
    src, tgt = torch.tensor([7, 5, 9, 6, d.eos()]), torch.tensor([9, 7, 8, d.eos()])
    prev = torch.cat([torch.tensor([d.eos()]), tgt[:-1]])[None]
    model = tiny_transformer(task, 1)
    alpha, beta = transformer_head_probes(model, src, tgt, d.eos())
    assert alpha.shape == beta.shape == (1, 4, 5) and np.allclose(alpha.sum(-1), 1, atol=1e-5)
    with torch.no_grad():
        enc = model.encoder(src[None], src_lengths=torch.tensor([5]))
        for l in range(5):
            masked = dict(enc, encoder_padding_mask=[torch.arange(5)[None] != l])
            lp = model.get_normalized_probs(model.decoder(prev, encoder_out=masked), log_probs=True)[0]
            assert np.allclose(beta[0, :, l], lp.gather(-1, tgt[:, None])[:, 0].numpy(), atol=1e-5)
    # several heads: each head's probe differs, and on a one-position source all equal the model's output
    model = tiny_transformer(task, 2)
    alpha, beta = transformer_head_probes(model, src, tgt, d.eos())
    assert beta.shape == (2, 4, 5) and not np.allclose(beta[0], beta[1])
    _, beta1 = transformer_head_probes(model, torch.tensor([d.eos()]), tgt, d.eos())
    with torch.no_grad():
        out = model(torch.tensor([[d.eos()]]), torch.tensor([1]), prev)
    lp = model.get_normalized_probs(out, log_probs=True)[0].gather(-1, tgt[:, None])[:, 0].numpy()
    assert np.allclose(beta1[0, :, 0], lp, atol=1e-5) and np.allclose(beta1[1, :, 0], lp, atol=1e-5)
    with pytest.raises(InterpretError, match="--head-layer"):
        transformer_head_probes(model, src, tgt, d.eos(), layer=3)


def test_probes_command_on_a_transformer(transformer_ckpt, data_dir, tmp_path):
    """Any fairseq Transformer: α, β^IBM, Δ and one row per encoder-decoder head of the last layer."""
    out = tmp_path / "tf"
    run(["fairseq-interp", "probes", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path",
         str(transformer_ckpt), "--num-sentences", "8", "--ibm1-iterations", "2", "--ibm1-max-pairs", "300",
         "--results-path", str(out)])
    rows = {r["probe"]: r for r in json.loads((out / "probes.json").read_text())["rows"]}
    assert set(rows) == {"beta_ibm", "delta", "head0", "head1"}  # transformer_test_tiny: 2 heads
    assert all(0 <= r["agreement"] <= 1 and 0 < r["random_baseline"] < 1 for r in rows.values())
    bad = run(["fairseq-interp", "probes", str(data_dir / "bin"), "--path", str(transformer_ckpt),
               "--uniform-path", str(transformer_ckpt), "--results-path", str(tmp_path / "x")], check=False)
    assert bad.returncode == 2 and "--uniform-attention" in bad.stderr
