"""Agreement metrics (Snell et al. 2021, Eq. 10–11) on hand-made matrices; the probes on a trained copy model and
through ``fairseq-interp probes``."""

import json
import os
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, run
from fairseq_interp.attention_learning.agreement import (agreement, agreement_interval, agreement_with_baseline,
                                               contextualized_agreement, kendall_tau, mean_kendall_tau, top_k)
from fairseq_interp.common.ibm1 import IBM1
from fairseq_interp.attention_learning.probes import BagOfWordsProxy, agreement_table, format_table, sentence_probes
from fairseq_interp.common.checkpoints import interval_checkpoints
from fairseq_interp.common.errors import InterpretError


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


def test_agreement_interval_draws_whole_sentences():
    """The interval resamples sentences, not target positions: 40 sentences of 10 target positions each, half of them
    agreeing at every position and half at none, give A = 0.5 with the width of 40 draws (1.96 √(0.25 / 40)), about
    three times that of 400 independent positions."""
    hit, miss = np.eye(10), np.roll(np.eye(10), 1, axis=1)  # α's argmax is (or is not) v's single top position
    alphas, others = [np.eye(10)] * 40, [hit] * 20 + [miss] * 20
    interval = agreement_interval(alphas, others, resamples=2000)
    assert interval.mean == agreement(alphas, others) == 0.5 and interval.n == 40
    assert (interval.high - interval.low) / 2 == pytest.approx(1.96 * np.sqrt(0.25 / 40), rel=0.2)
    # the table carries it for A(α, u), and prints it
    rows = agreement_table([{"alpha": a, "beta": o} for a, o in zip(alphas, others)], bootstrap=500)
    assert rows[0]["interval_alpha_first"][0] < 0.5 < rows[0]["interval_alpha_first"][1]
    assert "95% interval of A(α, u)" in format_table(rows)
    assert "interval_alpha_first" not in agreement_table([{"alpha": alphas[0], "beta": hit}])[0]
    # every sentence agreeing equally: no spread to draw from
    same = agreement_interval([np.eye(10)] * 5, [hit] * 5)
    assert (same.low, same.mean, same.high) == (1.0, 1.0, 1.0)


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
    """ξ (Eq. 11): the accuracy of the second run at its first checkpoint agreeing with α more than the value."""
    curve = [(0.1, 20.0), (0.3, 40.0), (0.25, 45.0), (0.5, 60.0)]  # (A(α, α'_τ), accuracy) in training order
    assert contextualized_agreement(0.05, curve) == 20.0
    assert contextualized_agreement(0.2, curve) == 40.0  # the first passing checkpoint, not the best
    assert contextualized_agreement(0.3, curve) == 60.0  # strictly more: equal agreement does not pass
    assert contextualized_agreement(0.5, curve) is None and contextualized_agreement(0.9, curve) is None
    with pytest.raises(InterpretError, match="second training run"):
        contextualized_agreement(0.1, [])
    # agreement_table: A(α, u) puts α's argmax first; ξ of that value along a curve
    alpha = np.eye(4)
    u = np.array([[1.0, 0.9, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0], [1.0, 0, 0, 0.9]])
    rows = {r["probe"]: r for r in agreement_table([{"alpha": alpha, "beta": u}], curve=[
        {"agreement": 0.5, "accuracy": 10.0}, {"agreement": 0.8, "accuracy": 30.0}])}
    # u's argmax lies in α's top on rows 0, 1 (A(u, α) = 0.5); α's argmax lies in u's top on rows 0, 1 only
    assert rows["beta"]["agreement"] == 0.5 and rows["beta"]["agreement_alpha_first"] == 0.5
    assert rows["beta"]["xi"] == 30.0
    v = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])  # the two orders differ
    assert agreement(v, np.array([[1.0, 1.0, 0, 0], [0, 1.0, 1.0, 0], [1, 1, 1, 1.0], [0, 0, 0, 1.0]])) == 1.0
    assert agreement(np.array([[1.0, 1.0, 0, 0], [0, 1.0, 1.0, 0], [1, 1, 1, 1.0], [0, 0, 0, 1.0]]), v) == 0.5


def test_interval_checkpoints_are_found_by_update(tmp_path):
    for name in ("checkpoint_1_100.pt", "checkpoint_3_300.pt", "checkpoint_2_200.pt", "checkpoint_last.pt",
                 "checkpoint2.pt", "checkpoint_best.pt", "checkpoint_1_100.pt.tmp"):
        (tmp_path / name).write_bytes(b"")
    found = interval_checkpoints(str(tmp_path))
    assert list(found) == [100, 200, 300] and found[300] == str(tmp_path / "checkpoint_3_300.pt")
    with pytest.raises(InterpretError, match="not found"):
        interval_checkpoints(str(tmp_path / "none"))


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
    seed_row = next(r for r in rows if r["probe"] == "alpha_seed2")
    assert seed_row["agreement"] == seed_row["agreement_alpha_first"] == 1.0 and "xi" not in seed_row
    prev = torch.cat([torch.tensor([d.eos()]), tgt[:-1]])
    predicted = model(src[None], torch.tensor([len(src)]), prev[None])[0][0].argmax(-1)
    assert out["correct"] == int((predicted[:-1] == tgt[:-1]).sum())
    with pytest.raises(InterpretError, match="EOS"):
        sentence_probes(model, torch.tensor([7, 5]), tgt, d.eos())


def attention_on_eos(model, src, tgt, eos):
    prev = torch.cat([torch.tensor([eos]), tgt[:-1]])
    _, extra = model(src[None], torch.tensor([len(src)]), prev[None])
    return extra["attn"][0, :-1, -1].detach().numpy()


@pytest.fixture(scope="module")
def copy_runs(tmp_path_factory):
    """sampled_set copy models trained for 150 updates, checkpoints every 50 kept: ``s1`` (seed 1), ``s2`` (seed 2)
    and ``uf`` (uniform attention, seed 1), each ``{name: folder}``."""
    from test_attention_learning import TRAIN

    folder = tmp_path_factory.mktemp("copy_runs")
    runs = {}
    for name, extra in (("s1", []), ("s2", ["--seed", "2"]), ("uf", ["--uniform-attention"])):
        runs[name] = folder / name
        run(["fairseq-train", *TRAIN, "--perm-mode", "sampled_set", "--max-update", "150", "--save-interval-updates",
             "50", "--keep-interval-updates", "-1", "--disable-validation", "--save-dir", str(runs[name]), *extra])
    return runs


@pytest.mark.slow
def test_probes_command_on_a_trained_copy_model(copy_runs, tmp_path):
    """A sampled_set copy model attends to the copied token: every probe then agrees with α far above Â."""
    ckpts = {"main": copy_runs["s1"] / "checkpoint_last.pt", "uniform": copy_runs["uf"] / "checkpoint_last.pt"}
    out = tmp_path / "probes"
    proc = run(["fairseq-interp", "probes", "--path", str(ckpts["main"]), "--uniform-path", str(ckpts["uniform"]),
                "--num-sentences", "60", "--proxy-epochs", "2", "--results-path", str(out)], in_process=True)
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


@pytest.mark.slow
def test_probes_along_training_gives_the_second_seed_curve_and_xi(copy_runs, tmp_path):
    """--along-training: A(α, α'_τ) and the accuracy of every interval checkpoint of the second seed, then ξ."""
    from test_attention_learning import TRAIN

    last = str(copy_runs["s1"] / "checkpoint_last.pt")
    common = ["--num-sentences", "30", "--ibm1-iterations", "2", "--proxy-epochs", "1", "--no-gradients",
              "--uniform-path", str(copy_runs["uf"] / "checkpoint_last.pt"), "--along-training"]
    out = tmp_path / "probes"
    proc = run(["fairseq-interp", "probes", "--path", last, "--second-seed-path",
                str(copy_runs["s2"] / "checkpoint_last.pt"), *common, "--results-path", str(out)], in_process=True)
    result = json.loads((out / "probes.json").read_text())
    curve = result["second_seed_curve"]
    assert [p["update"] for p in curve] == [50, 100, 150] and "| update | A(α, α') |" in proc.stdout
    assert all(p["checkpoint"].startswith(str(copy_runs["s2"])) and p["checkpoint"].endswith(f"_{p['update']}.pt")
               for p in curve)
    for row in result["rows"]:
        passing = [p["accuracy"] for p in curve if p["agreement"] > row["agreement_alpha_first"]]
        assert row["xi"] == (passing[0] if passing else None), row["probe"]
    paper = result["paper_row"]
    assert set(paper) == {"random_baseline", "accuracy", "A(alpha, beta_uf)", "A(beta_px, beta_uf)",
                          "update(alpha, beta_uf)", "update(beta_px, beta_uf)", "A(alpha, beta)",
                          "xi(alpha, beta_uf)", "xi(beta_px, beta_uf)", "xi(alpha, beta)", "interval(alpha, beta_uf)",
                          "interval(beta_px, beta_uf)", "interval(alpha, beta)"} \
        and "| A(α, β^uf) |" in proc.stdout
    for key in ("A(alpha, beta_uf)", "A(beta_px, beta_uf)", "A(alpha, beta)"):  # 95% interval over the 30 sentences
        low, high = paper["interval" + key[1:]]
        assert low <= paper[key] <= high and f"{paper[key]:.3f} [{low:.3f}, {high:.3f}]" in proc.stdout
    for name in ("alpha", "beta_px", "alpha, beta"):
        key = f"A({name}, beta_uf)" if name != "alpha, beta" else "A(alpha, beta)"
        passing = [p["accuracy"] for p in curve if p["agreement"] > paper[key]]
        assert paper[key.replace("A(", "xi(")] == (passing[0] if passing else None), key
    # the "second seed" being the run itself: its update-150 checkpoint is the probed model, so its attention agrees
    # with α everywhere and its accuracy is the probed model's
    out2 = tmp_path / "same"
    run(["fairseq-interp", "probes", "--path", last, "--second-seed-path", last, *common, "--results-path", str(out2)],
        in_process=True)
    same = json.loads((out2 / "probes.json").read_text())
    assert same["second_seed_curve"][-1]["agreement"] == 1.0
    # table2_seeds.py reads this folder as one seed set: the runs' training seeds and updates from the checkpoints
    sys.path.insert(0, os.path.join(REPO, "scripts", "reproduce", "snell2021"))
    from table2_seeds import load_set

    # the stopping rule the runs were trained by (--max-update 150, fairseq's default --patience -1: none)
    assert {name: c["stopping"] for name, c in result["provenance"]["checkpoints"].items() if "stopping" in c} == \
        {name: {"patience": -1, "max_update": 150} for name in ("main", "uniform", "second_seed")}
    one = load_set(str(out))
    assert one["config"]["seeds"] == [1, 2] and one["config"]["updates"] == {"main": 150, "second_seed": 150,
                                                                             "uniform": 150}
    assert one["values"]["A(alpha, beta_uf)"] == pytest.approx(100 * paper["A(alpha, beta_uf)"])
    assert one["values"]["ξ*"] == curve[-1]["accuracy"] and one["probed"] == {"step": 150,
                                                                               "accuracy": paper["accuracy"]}
    assert same["second_seed_curve"][-1]["accuracy"] == pytest.approx(same["paper_row"]["accuracy"])
    assert same["paper_row"]["accuracy"] == pytest.approx(paper["accuracy"])
    # the curve ends at the converged model T = --second-seed-path (as a run stopped by --patience is probed at its
    # best checkpoint): the checkpoint saved after it is not read, and ξ* is T's accuracy
    (at_100,) = copy_runs["s2"].glob("checkpoint_*_100.pt")
    out3 = tmp_path / "until100"
    run(["fairseq-interp", "probes", "--path", last, "--second-seed-path", str(at_100), *common, "--results-path",
         str(out3)], in_process=True)
    until = json.loads((out3 / "probes.json").read_text())
    assert until["second_seed_curve"] == curve[:2] and until["second_seed_curve"][-1]["checkpoint"] == str(at_100)
    assert set(until["provenance"]["checkpoints"]["second_seed_curve"]) == {"50", "100"}
    assert load_set(str(out3))["values"]["ξ*"] == curve[1]["accuracy"]
    for key in ("xi(alpha, beta_uf)", "xi(beta_px, beta_uf)", "xi(alpha, beta)"):
        passing = [p["accuracy"] for p in curve[:2] if p["agreement"] > until["paper_row"][key.replace("xi(", "A(")]]
        assert until["paper_row"][key] == (passing[0] if passing else None), key
    # bad inputs: one-line errors
    bad = run(["fairseq-interp", "probes", "--path", last, "--along-training", "--results-path", str(tmp_path / "x")],
              check=False)
    assert bad.returncode == 2 and "pass --second-seed-path" in bad.stderr
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "checkpoint_last.pt").write_bytes((copy_runs["s2"] / "checkpoint_last.pt").read_bytes())
    bad = run(["fairseq-interp", "probes", "--path", last, "--second-seed-path", str(lonely / "checkpoint_last.pt"),
               "--along-training", "--results-path", str(tmp_path / "x")], check=False)
    assert bad.returncode == 2 and "--save-interval-updates" in bad.stderr
    for name, extra, message in (("vocab", ["--vocab-size", "24"], "another source vocabulary"),
                                 ("arch", ["--embed-dim", "16"], "another architecture")):
        run(["fairseq-train", *TRAIN, "--max-update", "1", "--disable-validation", "--save-dir", str(tmp_path / name),
             *extra])
        bad = run(["fairseq-interp", "probes", "--path", last, "--second-seed-path",
                   str(tmp_path / name / "checkpoint_last.pt"), "--results-path", str(tmp_path / "x")], check=False)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    bad = run(["fairseq-interp", "probes", "--path", last, "--second-seed-path", str(tmp_path / "none.pt"),
               "--results-path", str(tmp_path / "x")], check=False)
    assert bad.returncode == 2 and "not found" in bad.stderr and not (tmp_path / "x").exists()


def tiny_transformer(task, decoder_heads):
    from argparse import Namespace

    from fairseq.models.transformer import TransformerModel
    from fairseq_interp.common.architectures import transformer_test_tiny

    args = Namespace(decoder_attention_heads=decoder_heads, max_source_positions=64, max_target_positions=64)
    transformer_test_tiny(args)
    torch.manual_seed(0)
    return TransformerModel.build_model(args, task).eval()


def test_transformer_head_probe_equals_masking_all_other_positions():
    """With one decoder head, moving its attention onto l equals masking every other source position."""
    from fairseq_interp.attention_learning.head_probes import transformer_head_probes
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


def test_probes_command_on_a_transformer(transformer_ckpt, data_dir, tmp_path, capsys):
    """Any fairseq Transformer: α, β^IBM, Δ and one row per encoder-decoder head of the last layer."""
    out = tmp_path / "tf"
    _probes_in_process([data_dir / "bin", "--user-dir", "fairseq_interp", "--path", transformer_ckpt,
                        "--num-sentences", "8", "--ibm1-iterations", "2", "--ibm1-max-pairs", "300",
                        "--results-path", out], capsys)
    rows = {r["probe"]: r for r in json.loads((out / "probes.json").read_text())["rows"]}
    assert set(rows) == {"beta_ibm", "delta", "head0", "head1"}  # transformer_test_tiny: 2 heads
    assert all(0 <= r["agreement"] <= 1 and 0 < r["random_baseline"] < 1 for r in rows.values())
    with pytest.raises(SystemExit) as exit_code:
        _probes_in_process([data_dir / "bin", "--path", transformer_ckpt, "--uniform-path", transformer_ckpt,
                            "--results-path", tmp_path / "x"], capsys)
    assert exit_code.value.code == 2 and "--uniform-attention" in capsys.readouterr().err


def _probes_in_process(argv, capsys):
    from fairseq_interp.commands import cli_main

    cli_main(["probes", *map(str, argv)])
    return capsys.readouterr()


def test_probes_reads_the_split_in_batches_with_the_same_numbers_and_records_provenance(
        transformer_ckpt, data_dir, tmp_path, capsys):
    """The split read through fairseq's batch iterator: any --batch-size/--max-tokens gives the table computed
    sentence by sentence in id order; probes.json carries the provenance, which follows a number-changing option."""
    from fairseq_interp.common.checkpoints import load_checkpoint, load_dataset, read_checkpoint
    from fairseq_interp.common.provenance import files_fingerprint, split_files, weights_fingerprint

    data = data_dir / "bin"
    common = [data, "--path", transformer_ckpt, "--num-sentences", "6", "--ibm1-iterations", "0",
              "--no-progress-bar", "--log-interval", "1"]
    results, errors = {}, {}
    for name, extra in (("one", ["--batch-size", "1"]), ("tokens", ["--max-tokens", "60"]),
                        ("old-name", ["--subset", "valid"]), ("top", ["--top", "0.2"])):
        captured = _probes_in_process([*common, *extra, "--results-path", tmp_path / name], capsys)
        results[name], errors[name] = json.loads((tmp_path / name / "probes.json").read_text()), captured.err
        assert (tmp_path / name / "probes.md").read_text().startswith(captured.out)
    assert "--subset is now called --gen-subset" in errors["old-name"]
    assert "--subset" not in errors["one"] and "probes valid:" in errors["one"]  # the progress bar's lines
    # the numbers by definition: every sentence with id < 6, one at a time
    task, _, model = load_checkpoint(str(transformer_ckpt), str(data))
    model.eval()
    dataset = load_dataset(task, "valid", task.cfg)
    eos = task.target_dictionary.eos()
    records = [sentence_probes(model, dataset[i]["source"], dataset[i]["target"], eos, head_layer=-1)
               for i in range(6)]
    expected = agreement_table(records, bootstrap=1000)  # the command's default resamples, seeded: the same intervals
    for name in ("one", "tokens", "old-name"):
        assert results[name]["sentences"] == 6
        assert results[name]["rows"] == expected, name
    # provenance: the checkpoint's weights, the split's files, the options; only the run section differs
    provenance = results["one"]["provenance"]
    assert provenance["format"] == "fairseq-interp-probes" and provenance["format_version"] == 1
    state = read_checkpoint(str(transformer_ckpt))
    assert provenance["checkpoint"]["weights_sha256"] == weights_fingerprint(state["model"])
    assert provenance["checkpoint"]["seed"] == state["cfg"]["common"]["seed"]
    assert provenance["checkpoint"]["updates"] == state["optimizer_history"][-1]["num_updates"] > 0
    assert provenance["data"]["split_sha256"] == files_fingerprint(split_files(str(data), "valid", "en", "fr"))
    assert provenance["run"]["sentence_ids"] == list(range(6))
    for name in ("tokens", "old-name"):
        assert {k: v for k, v in results[name]["provenance"].items() if k != "run"} == \
            {k: v for k, v in provenance.items() if k != "run"}
    changed = results["top"]["provenance"]
    assert changed["options"]["top"] == 0.2 and provenance["options"]["top"] == 0.05
    assert changed["checkpoint"] == provenance["checkpoint"] and changed["data"] == provenance["data"]
    # a batch limit below a sentence's length: one line, nothing written
    with pytest.raises(SystemExit) as exit_code:
        _probes_in_process([*common, "--max-tokens", "3", "--results-path", tmp_path / "small"], capsys)
    assert exit_code.value.code == 2 and "pass a larger --max-tokens" in capsys.readouterr().err
    assert not (tmp_path / "small").exists()
