"""Loss change allocation recorded by ``--task translation_lca`` (Zhu et al. 2020)."""

import copy
import json
import shutil

import pytest
import torch

import tensorboard_events
from conftest import run
from fairseq_interp.common.errors import InterpretError

TINY = ["--arch", "transformer_test_tiny", "--max-source-positions", "64", "--max-target-positions", "64",
        "--cpu", "--no-progress-bar", "--seed", "1", "--disable-validation", "--no-epoch-checkpoints"]


def lca_train(data_dir, out, updates, extra=(), task="translation_lca"):
    lca = ["--task", task, "--lca-dir", str(out / "lca")] if task == "translation_lca" else []
    run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", *TINY, *lca,
         "--max-update", str(updates), "--save-dir", str(out / "ckpt"), *extra])
    return out


def lines(path):
    with open(path) as f:
        return [json.loads(x) for x in f]


def intervals(out):
    return [x for x in lines(out / "lca" / "lca.jsonl") if x["type"] == "interval"]


# ---------------------------------------------------------------- plain SGD: Σ LCA = g_t · Δθ and ≈ ΔL

SGD = ["--optimizer", "sgd", "--lr", "0.05", "--criterion", "cross_entropy", "--max-tokens", "1500",
       "--share-all-embeddings", "--lca-interval", "1", "--lca-residual", "--lca-max-tokens", "600",
       "--save-interval-updates", "1", "--keep-interval-updates", "-1"]


@pytest.fixture(scope="module")
def sgd_run(data_dir, tmp_path_factory):
    return lca_train(data_dir, tmp_path_factory.mktemp("lca_sgd"), 3, SGD)


def _load(out, data_dir, update):
    from fairseq import checkpoint_utils

    path = str(out / "ckpt" / f"checkpoint_1_{update}.pt")
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides={
        "data": str(data_dir / "bin")})
    return models[0].float().eval(), cfg, task


def _untie(model):
    """The same function with separate encoder/decoder/output matrices: their gradients are the role gradients."""
    weight = model.encoder.embed_tokens.weight
    model.encoder.embed_tokens = copy.deepcopy(model.encoder.embed_tokens)
    model.decoder.embed_tokens = copy.deepcopy(model.decoder.embed_tokens)
    model.decoder.output_projection.weight = torch.nn.Parameter(weight.detach().clone())
    assert model.encoder.embed_tokens.weight is not model.decoder.embed_tokens.weight
    return model


def _loss_and_grad(model, task, cfg, batch_ids):
    ds = task.dataset("train")
    sample = ds.collater([ds[i] for i in batch_ids])
    criterion = task.build_criterion(cfg.criterion)
    model.zero_grad()
    loss, size, _ = criterion(model, sample)
    (loss / size).backward()
    return float(loss / size), {n: p.grad.double().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("update", [2, 3])
def test_sgd_lca_equals_gradient_dot_step_and_loss_change(sgd_run, data_dir, update):
    records = {r["end"]: r for r in intervals(sgd_run)}
    assert sorted(records) == [1, 2, 3] and all(r["n_updates"] == 1 for r in records.values())
    rec = records[update]
    before, cfg, task = _load(sgd_run, data_dir, update - 1)
    after, _, _ = _load(sgd_run, data_dir, update)
    task.load_dataset("train")
    loss0, _ = _loss_and_grad(before, task, cfg, rec["batch_ids"])
    loss1, _ = _loss_and_grad(after, task, cfg, rec["batch_ids"])
    before = _untie(before)
    _, grads = _loss_and_grad(before, task, cfg, rec["batch_ids"])
    new = {n: p.detach().double() for n, p in after.named_parameters()}
    old = {n: p.detach().double() for n, p in before.named_parameters()}
    tied = "encoder.embed_tokens.weight"
    per_param = {n: float((grads[n] * (new.get(n, new[tied]) - old[n])).sum()) for n in grads}
    total = sum(per_param.values())
    assert abs(rec["loss"] - loss0) < 1e-5
    assert rec["lca_total"] == pytest.approx(total, rel=1e-4, abs=1e-7)
    assert rec["lca_total"] < 0  # SGD with a small step lowers the loss on other batches too (here: always)
    # first-order estimate of the loss change on B' for a small learning rate
    delta = loss1 - loss0
    assert rec["delta_loss"] == pytest.approx(delta, abs=1e-5)
    assert abs(delta - total) < 0.1 * abs(delta)
    assert rec["residual"] == pytest.approx(abs(delta - rec["lca_total"]), abs=1e-5)
    # groups, with the tied matrix split by role exactly as separate matrices would have it
    header = lines(sgd_run / "lca" / "lca.jsonl")[0]
    roles = {"encoder.embedding": "encoder.embed_tokens.weight", "decoder.embedding": "decoder.embed_tokens.weight",
             "output_projection": "decoder.output_projection.weight"}
    for group in header["groups"]:
        name = group["name"]
        expected = per_param[roles[name]] if name in roles else sum(per_param[p] for p in group["params"])
        assert rec["groups"][name]["sum"] == pytest.approx(expected, rel=1e-3, abs=1e-8), name
        assert rec["groups"][name]["mean"] == pytest.approx(rec["groups"][name]["sum"] / group["size"])
    # modules: each the sum of its parameters' g · Δθ (fairseq names: self_attn.*, fc1/fc2, *layer_norm)
    from fairseq_interp.lca.allocation import module_of

    for module in header["modules"]:
        name = module["name"]
        expected = per_param[roles[name]] if name in roles else \
            sum(v for p, v in per_param.items() if p not in roles.values() and module_of(p) == name)
        assert rec["modules"][name]["sum"] == pytest.approx(expected, rel=1e-3, abs=1e-8), name
    # frequency buckets of each embedding role add up to the role's LCA
    for name, buckets in rec["buckets"].items():
        assert len(buckets["sum"]) == 25
        assert sum(buckets["sum"]) + buckets["special"] == pytest.approx(rec["groups"][name]["sum"], rel=1e-6,
                                                                          abs=1e-12)


def test_groups_partition_parameters(sgd_run, data_dir):
    from fairseq_interp.lca.allocation import LcaGroups

    model, _, task = _load(sgd_run, data_dir, 1)
    for shared in (True, False):
        if not shared:
            model = _untie(model)
        groups = LcaGroups(model, task.source_dictionary, task.target_dictionary)
        counted = {}
        for names in groups.group_members:
            for n in names:
                counted[n] = counted.get(n, 0) + 1
        unique = dict(model.named_parameters())
        tied = set(groups.tied_names)
        assert set(counted) == set(unique)
        assert all(c == 1 for n, c in counted.items() if n not in tied)
        if shared:  # one tensor, three roles, each role a group the size of the matrix
            assert groups.tied_names == {"encoder.embed_tokens.weight":
                                         ["encoder.embedding", "decoder.embedding", "output_projection"]}
            assert counted["encoder.embed_tokens.weight"] == 3
        else:
            assert not tied
            assert sum(groups.group_sizes) == sum(p.numel() for p in unique.values())
        assert {"encoder.embedding", "encoder.layer0", "decoder.embedding", "decoder.layer0",
                "output_projection"} == set(groups.group_names)
        assert set(groups.bucket_roles) == {"encoder.embedding", "decoder.embedding", "output_projection"}
        # random g and Δθ: the group sums add up to Σ g·Δθ, every element counted once
        from fairseq_interp.lca.allocation import LcaAccumulator

        gen = torch.Generator().manual_seed(0)
        grads = [torch.randn(p.shape, generator=gen) for p in groups.params]
        old = [p.detach().clone() for p in groups.params]
        steps = [torch.randn(p.shape, generator=gen) * 1e-2 for p in groups.params]
        roles = {}
        for k, rl in groups.tied_roles.items():
            parts = [torch.randn(grads[k].shape, generator=gen) for _ in rl[:-1]]
            parts.append(grads[k] - sum(parts))
            roles[k] = {r: x for (_, r, _), x in zip(rl, parts)}
        acc = LcaAccumulator(groups)
        with torch.no_grad():
            for p, s in zip(groups.params, steps):
                p.add_(s)
        total = acc.add(grads, roles, old, loss=1.0)
        with torch.no_grad():
            for p, s in zip(groups.params, steps):
                p.sub_(s)
        expected = sum(float((g.double() * s.double()).sum()) for g, s in zip(grads, steps))
        assert total == pytest.approx(expected, rel=1e-5)
        assert float(acc.group_sums.sum()) == pytest.approx(expected, rel=1e-5)
        # the modules partition each group: sizes and allocations add up to the group's
        for gi, name in enumerate(groups.group_names):
            members = [j for j, g in enumerate(groups.module_group) if g == gi]
            assert sum(groups.module_sizes[j] for j in members) == groups.group_sizes[gi], name
            assert float(acc.module_sums[members].sum()) == pytest.approx(float(acc.group_sums[gi]), rel=1e-9)
        assert {"encoder.layer0.self_attn", "encoder.layer0.ffn", "encoder.layer0.layer_norm",
                "decoder.layer0.self_attn", "decoder.layer0.encoder_attn", "decoder.layer0.ffn",
                "decoder.layer0.layer_norm"} <= set(groups.module_names)


def test_buckets_rank_words_by_their_count_on_each_side(sgd_run, data_dir):
    """Figure 5's frequency is how often a symbol occurs on the embedding's side of the training data: with the
    joined dictionary of this data, the source side's never-seen (target-only) symbols land in the last buckets."""
    import numpy as np
    from fairseq.data import Dictionary, data_utils

    header = lines(sgd_run / "lca" / "lca.jsonl")[0]
    assert header["options"]["bucket_frequency"] == "train"
    dictionary = Dictionary.load(str(data_dir / "bin" / "dict.en.txt"))
    for group, lang in (("encoder.embedding", "en"), ("decoder.embedding", "fr"), ("output_projection", "fr")):
        ds = data_utils.load_indexed_dataset(str(data_dir / "bin" / f"train.en-fr.{lang}"), None)
        counts = np.bincount(np.concatenate([ds[i].numpy() for i in range(len(ds))]), minlength=len(dictionary))
        regular = counts[dictionary.nspecial:]
        ranges = header["buckets"][group]["count_range"]
        assert ranges[0][0] == regular.max() and ranges[-1][1] == regular.min()
        assert all(hi >= lo for hi, lo in ranges) and all(a[1] >= b[0] for a, b in zip(ranges, ranges[1:]))
        if lang == "en":
            assert (regular == 0).sum() > 0 and ranges[-1] == [0, 0]  # French-only pieces never occur in English
        assert not np.array_equal(counts, np.asarray(dictionary.count))  # the joined dictionary counts both sides


def test_frequency_buckets():
    from fairseq.data import Dictionary

    from fairseq_interp.lca.allocation import frequency_buckets

    d = Dictionary()
    for i in range(100):
        d.add_symbol(f"w{i}", n=1000 - i * 7 if i % 2 else 10 + i)
    ids = frequency_buckets(d.count, d.nspecial, 25)
    counts = torch.tensor(d.count)
    assert (ids[:d.nspecial] == 25).all() and set(ids[d.nspecial:].tolist()) == set(range(25))
    assert (torch.bincount(torch.from_numpy(ids[d.nspecial:])) == 4).all()
    for b in range(24):  # every word of bucket b is at least as frequent as every word of bucket b + 1
        assert counts[torch.from_numpy(ids == b)].min() >= counts[torch.from_numpy(ids == b + 1)].max()


# ---------------------------------------------------------------- resume, --update-freq, Adam

ADAM = ["--optimizer", "adam", "--lr", "5e-3", "--criterion", "label_smoothed_cross_entropy",
        "--max-tokens", "1000", "--update-freq", "2", "--lca-interval", "4", "--lca-max-tokens", "500",
        "--save-interval-updates", "5", "--keep-interval-updates", "-1"]


@pytest.fixture(scope="module")
def adam_run(data_dir, tmp_path_factory):
    """14 updates of Adam with --update-freq 2, recording LCA every 4 updates, a checkpoint every 5."""
    return lca_train(data_dir, tmp_path_factory.mktemp("lca_adam"), 14, ADAM)


def test_resume_after_kill_writes_same_records(data_dir, adam_run, tmp_path):
    full = adam_run
    part = lca_train(data_dir, tmp_path / "part", 10, ADAM)
    # simulate a kill after update 10 whose last checkpoint is the one of update 5
    shutil.copy(part / "ckpt" / "checkpoint_1_5.pt", part / "ckpt" / "checkpoint_last.pt")
    before = intervals(part)
    assert [(r["start"], r["end"], r["partial"]) for r in before] == [(1, 4, False), (5, 8, False), (9, 10, True)]
    with open(part / "lca" / "lca.jsonl", "a") as f:
        f.write('{"type": "interval", "start": 11, "en')  # a line cut by the kill
    lca_train(data_dir, part, 14, ADAM)
    got, want = intervals(part), intervals(full)
    assert [(r["start"], r["end"]) for r in want] == [(1, 4), (5, 8), (9, 12), (13, 14)]
    assert want[-1]["partial"] and want[-1]["n_updates"] == 2
    assert got == want  # bit for bit: same batches B', same accumulated sums
    kept = lines(part / "lca" / "lca.jsonl")
    assert [x["type"] for x in kept].count("header") == 1
    # the task state in the checkpoint loads with torch's safe loader and holds the open interval
    state = torch.load(full / "ckpt" / "checkpoint_1_10.pt", map_location="cpu")
    saved = state["task_state"]["lca"]["train"]
    assert saved["update"] == 10 and saved["accumulator"]["start"] == 9


def test_lca_does_not_change_training(data_dir, adam_run, tmp_path):
    """B' is evaluated in eval mode without touching .grad or the RNG: the trained weights are identical."""
    i = ADAM.index("--lca-interval")
    plain = ADAM[:i] + ADAM[i + 4:]
    lca_train(data_dir, tmp_path / "plain", 14, plain, task="translation")
    a = torch.load(tmp_path / "plain" / "ckpt" / "checkpoint_last.pt")["model"]
    b = torch.load(adam_run / "ckpt" / "checkpoint_last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- bad input

def test_bad_options_and_reused_dir(tmp_path):
    from fairseq_interp.lca.records import LcaRecordFile
    from fairseq_interp.lca.recorder import validate_lca_config

    class Cfg:
        lca_dir, lca_interval, lca_max_tokens, lca_train_max_tokens, lca_split = None, 15, 100, None, "train"

    with pytest.raises(InterpretError, match="--lca-dir is required"):
        validate_lca_config(Cfg)
    Cfg.lca_dir, Cfg.lca_max_tokens = "x", None
    with pytest.raises(InterpretError, match="--lca-max-tokens is required when training without --max-tokens"):
        validate_lca_config(Cfg)
    Cfg.lca_train_max_tokens = 2048
    validate_lca_config(Cfg)
    from fairseq_interp.lca.recorder import lca_max_tokens

    assert lca_max_tokens(Cfg) == 512
    Cfg.lca_interval = 0
    with pytest.raises(InterpretError, match="--lca-interval must be >= 1"):
        validate_lca_config(Cfg)
    header = {"type": "header", "format": "fairseq-interp-lca/1", "first_update": 1, "groups": [{"name": "a"}],
              "buckets": {}, "options": {"interval": 2}}
    path = str(tmp_path / "lca.jsonl")
    f = LcaRecordFile(path, header, 0)
    f.append({"type": "interval", "start": 1, "end": 2, "partial": False})
    f.close()
    with pytest.raises(InterpretError, match="already holds LCA records"):
        LcaRecordFile(path, header, 0)
    with pytest.raises(InterpretError, match="no LCA state for update 7"):
        LcaRecordFile(path, header, 7)
    with pytest.raises(InterpretError, match=r"other LCA options \(interval\)"):
        LcaRecordFile(path, dict(header, options={"interval": 3}), 2)
    with pytest.raises(InterpretError, match="another model"):
        LcaRecordFile(path, dict(header, groups=[{"name": "b"}]), 2)


# ---------------------------------------------------------------- exact mode and integration along the step

def test_exact_mode_higher_order_integration_shrinks_residual(data_dir, tmp_path):
    """g over the whole (valid) split; midpoint and Simpson (Lan et al.) leave a smaller |ΔL − Σ LCA| than the
    first-order estimate on the same steps (training is identical in the three runs, so ΔL is too)."""
    common = ["--optimizer", "sgd", "--lr", "0.5", "--criterion", "cross_entropy", "--max-tokens", "1500",
              "--lca-exact", "--lca-split", "valid", "--lca-interval", "1", "--lca-residual", "--no-save"]
    runs = {m: intervals(lca_train(data_dir, tmp_path / m, 2, common + ["--lca-integration", m]))
            for m in ("first", "midpoint", "simpson")}
    header = lines(tmp_path / "first" / "lca" / "lca.jsonl")[0]
    from fairseq.data import data_utils

    datasets = [data_utils.load_indexed_dataset(str(data_dir / "bin" / f"valid.en-fr.{lang}"), None)
                for lang in ("en", "fr")]
    sizes = [ds.sizes.copy() for ds in datasets]  # .sizes views the dataset's mmap: copy while it is open
    fitting = int(((sizes[0] <= 64) & (sizes[1] <= 64)).sum())  # --max-*-positions 64
    assert header["options"]["exact"] and header["options"]["sentences"] == fitting > 90
    for t in range(2):
        first, mid, simpson = (runs[m][t] for m in ("first", "midpoint", "simpson"))
        assert "batch_ids" not in first
        assert first["loss"] == mid["loss"] == simpson["loss"]
        assert first["delta_loss"] == pytest.approx(simpson["delta_loss"], abs=1e-6)
        assert first["delta_loss"] < 0
        assert first["residual"] > 1e-4
        assert mid["residual"] < first["residual"] / 3 and simpson["residual"] < first["residual"] / 3


# ---------------------------------------------------------------- figures

def test_lca_plot(sgd_run, tmp_path, capsys):
    from fairseq_interp.commands import cli_main
    from fairseq_interp.common.provenance import files_fingerprint

    path = str(sgd_run / "lca" / "lca.jsonl")
    header, recs = lines(path)[0], intervals(sgd_run)
    cli_main(["lca-plot", path, path, "--labels", "train", "again", "--results-path", str(tmp_path / "figs"),
              "--statistic", "sum", "--out", str(tmp_path / "sum.json")])
    out = capsys.readouterr().out
    for name in ("figure1-occupation.png", "figure2-sparse-dense.png", "figure3-layers.png",
                 "figure4-intervals.png", "figure5-buckets.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 10_000
    row = next(line for line in out.splitlines() if line.startswith("output_projection"))
    expected = sum(r["groups"]["output_projection"]["sum"] * r["n_updates"] for r in recs)
    assert [float(x) for x in row.split()[1:]] == pytest.approx([expected] * 2, rel=1e-5)
    assert (tmp_path / "sum.json").read_text() == (tmp_path / "figs" / "values.json").read_text()
    provenance = json.loads((tmp_path / "figs" / "provenance.json").read_text())
    assert provenance["options"] == {"statistic": "sum", "labels": ["train", "again"]}
    assert [i["sha256"] for i in provenance["inputs"]] == [files_fingerprint([path], names=False)] * 2
    assert provenance["inputs"][0]["options"] == header["options"]
    # Eq. 4 (the default): the same cumulative LCA divided by the group's size; the earlier option names still work
    cli_main(["lca-plot", path, "--plot-dir", str(tmp_path / "figs"), "--overwrite",
              "--results-path", str(tmp_path / "mean.json")])
    assert "--plot-dir is now called --results-path" in capsys.readouterr().err
    size = next(g["size"] for g in header["groups"] if g["name"] == "output_projection")
    values = json.loads((tmp_path / "mean.json").read_text())
    assert values["statistic"] == "mean"
    assert values["runs"]["lca"]["groups"]["output_projection"] == pytest.approx(expected / size)
    assert json.loads((tmp_path / "figs" / "provenance.json").read_text())["options"]["statistic"] == "mean"
    with pytest.raises(SystemExit) as e:
        cli_main(["lca-plot", str(tmp_path / "missing.jsonl"), "--results-path", str(tmp_path / "new")])
    assert e.value.code == 2 and "not found" in capsys.readouterr().err


# ---------------------------------------------------------------- several splits, metrics, TensorBoard

SPLITS = ["--optimizer", "adam", "--lr", "5e-3", "--criterion", "label_smoothed_cross_entropy",
          "--max-tokens", "800", "--lca-interval", "2", "--lca-max-tokens", "400", "--log-interval", "2", "--no-save"]


@pytest.fixture(scope="module")
def splits_run(data_dir, tmp_path_factory):
    """(folder, CompletedProcess) of 6 updates recording LCA on train and test, logged as JSON and to TensorBoard."""
    out = tmp_path_factory.mktemp("lca_splits")
    proc = run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", *TINY, "--task",
                "translation_lca", "--lca-dir", str(out / "lca"), "--lca-split", "train,test", *SPLITS,
                "--max-update", "6", "--save-dir", str(out / "ckpt"), "--log-format", "json",
                "--tensorboard-logdir", str(out / "tb")])
    return out, proc


def test_several_splits_in_one_run_equal_one_run_per_split(data_dir, splits_run, tmp_path):
    """--lca-split train,test records each split around the same steps, bit for bit what a run per split writes
    (whatever the runs log)."""
    both, _ = splits_run
    for split in ("train", "test"):
        alone = lca_train(data_dir, tmp_path / split, 6, SPLITS + ["--lca-split", split])
        assert lines(both / "lca" / f"lca.{split}.jsonl") == lines(alone / "lca" / "lca.jsonl")
    test_header = lines(both / "lca" / "lca.test.jsonl")[0]
    assert test_header["options"]["split"] == "test" and test_header["options"]["sentences"] == 40
    assert not (both / "lca" / "lca.jsonl").exists()


def test_interval_totals_reach_the_log_and_tensorboard(splits_run):
    out, proc = splits_run
    logged = [json.loads(line[line.index("{"):]) for line in (proc.stdout + proc.stderr).splitlines()
              if "train_inner" in line and "{" in line]
    assert [int(x["num_updates"]) for x in logged] == [2, 4, 6]
    records = {split: [r for r in lines(out / "lca" / f"lca.{split}.jsonl") if r["type"] == "interval"]
               for split in ("train", "test")}
    for split, recs in records.items():
        assert [r["end"] for r in recs] == [2, 4, 6]
        for entry, rec in zip(logged, recs):
            for group, value in rec["groups"].items():
                assert float(entry[f"lca_{split}/{group}"]) == pytest.approx(value["sum"], rel=1e-5)
            assert float(entry[f"lca_{split}/total"]) == pytest.approx(rec["lca_total"], rel=1e-5)
    scalars = tensorboard_events.scalars(out / "tb" / "train_inner")
    for split, recs in records.items():
        for group in recs[0]["groups"]:
            assert [step for step, _ in scalars[f"lca_{split}/{group}"]] == [2, 4, 6]
            assert [value for _, value in scalars[f"lca_{split}/{group}"]] == \
                pytest.approx([r["groups"][group]["sum"] for r in recs], rel=1e-6)
        assert [value for _, value in scalars[f"lca_{split}/total"]] == \
            pytest.approx([r["lca_total"] for r in recs], rel=1e-6)


def test_missing_split_names_the_fix(data_dir, tmp_path):
    proc = run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", *TINY, "--task",
                "translation_lca", "--lca-dir", str(tmp_path / "lca"), "--lca-split", "train,test2", *SPLITS,
                "--max-update", "1", "--save-dir", str(tmp_path / "ckpt")], check=False)
    assert proc.returncode != 0
    assert "--lca-split test2: the data folder has no split 'test2'" in proc.stderr


def test_a_second_training_into_the_same_lca_dir_is_refused_at_once(data_dir, tmp_path):
    """While a training records into --lca-dir it holds the folder's lock; another fairseq-train into the same
    folder stops with one line at its first update, before it writes a record (here this test process holds the
    lock)."""
    import os

    from fairseq_interp.common.outputs import output_lock
    from fairseq_interp.lca.records import LOCK_NAME

    (tmp_path / "lca").mkdir()
    with output_lock(str(tmp_path / "lca"), LOCK_NAME, "fairseq-train", option="--lca-dir"):
        proc = run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", *TINY, "--task",
                    "translation_lca", "--lca-dir", str(tmp_path / "lca"), *SPLITS, "--max-update", "1",
                    "--save-dir", str(tmp_path / "ckpt")], check=False)
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert last == (f"fairseq-train: error: another fairseq-train (pid {os.getpid()}) is writing {LOCK_NAME} in "
                    f"{tmp_path / 'lca'}: wait for it to finish, or pass another --lca-dir")
    assert sorted(os.listdir(tmp_path / "lca")) == [f".{LOCK_NAME}.lock"]  # no record written
