"""The Zhu et al. reproduction drivers end to end at tiny scale: their tables come from their own records, and a
rerun or a resume after a kill adds nothing twice. And ``translation_lca`` from a yaml config through
``fairseq-hydra-train`` is the ``fairseq-train`` run."""

import json
import sys

import pytest
import torch

import fairseq_interp  # noqa: F401  (checkpoints load with torch's safe loader)
from conftest import REPO, run

TINY_MODEL = "--max-source-positions 64 --max-target-positions 64"
APPROX = ["--arch", "transformer_test_tiny", "--model-args", TINY_MODEL, "--interval", "2", "--max-tokens", "1000",
          "--lca-max-tokens", "400", "--warmup", "2"]


def approximation(data_dir, work, updates, *extra, in_process=False):
    return run([sys.executable, "scripts/reproduce/zhu2020/lca_approximation.py", "--data", str(data_dir / "bin"),
                "--work", str(work), "--updates", str(updates), *APPROX, *extra], in_process=in_process)


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def intervals(path):
    return [r for r in records(path) if r["type"] == "interval"]


#: training pairs of the approximation runs: the exact run passes over the whole training split at every update
SMALL_TRAIN = 200


@pytest.fixture(scope="module")
def small_data(data_dir, tmp_path_factory):
    """``data_dir`` whose training split is its first SMALL_TRAIN pairs (the other splits and dictionaries linked)."""
    from fairseq.data import Dictionary, data_utils, indexed_dataset

    out = tmp_path_factory.mktemp("m30k_small")
    (out / "bin").mkdir()
    for path in (data_dir / "bin").iterdir():
        if not path.name.startswith("train."):
            (out / "bin" / path.name).symlink_to(path)
    for lang in ("en", "fr"):
        prefix = f"train.en-fr.{lang}"
        full = data_utils.load_indexed_dataset(str(data_dir / "bin" / prefix), None)
        vocab = len(Dictionary.load(str(data_dir / "bin" / f"dict.{lang}.txt")))
        builder = indexed_dataset.make_builder(str(out / "bin" / f"{prefix}.bin"), "mmap", vocab_size=vocab)
        for i in range(SMALL_TRAIN):
            builder.add_item(full[i])
        builder.finalize(str(out / "bin" / f"{prefix}.idx"))
    return out


@pytest.fixture(scope="module")
def approx_work(small_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("zhu_approx")
    proc = approximation(small_data, work, 4, "--out", str(work / "result.json"), in_process=True)
    return work, proc


def test_approximation_table_comes_from_its_records(approx_work):
    work, proc = approx_work
    result = json.loads((work / "result.json").read_text())
    per_mode = {}
    for mode in ("approx", "exact"):
        lines = records(work / mode / "lca" / "lca.jsonl")
        header, recs = lines[0], [r for r in lines if r["type"] == "interval"]
        assert [r["end"] for r in recs] == [2, 4] and header["options"]["exact"] == (mode == "exact")
        sizes = {g["name"]: g["size"] for g in header["groups"]}
        # Eq. 4 per group from the raw records: Σ_intervals (mean per update × updates) / |g|
        per_mode[mode] = {n: sum(r["groups"][n]["sum"] * r["n_updates"] for r in recs) / sizes[n] for n in sizes}
        assert result["groups"] == list(sizes)  # every group, in the records' order
        assert result["cumulative"][mode] == pytest.approx([per_mode[mode][n] for n in result["groups"]], rel=1e-9)
        assert sum(result["occupation"][mode]) == pytest.approx(1.0)
    assert records(work / "approx" / "lca" / "lca.jsonl")[0]["options"]["max_tokens"] == 400  # B' as asked
    from scipy.stats import kendalltau

    names = result["groups"]
    assert result["tau"] == pytest.approx(kendalltau([per_mode["approx"][n] for n in names],
                                                     [per_mode["exact"][n] for n in names]).statistic)
    assert [r["end"] for r in result["tau_per_interval"]] == [2, 4]
    assert set(result["tau_buckets"]) == {"encoder.embedding", "decoder.embedding", "output_projection"}
    assert f"{result['tau']:.3f}" in proc.stdout and "| 0.905 |" in proc.stdout  # beside the paper's τ
    assert (work / "figures" / "figure1-occupation.png").stat().st_size > 10_000


def test_approximation_rerun_and_resume_add_nothing_twice(small_data, approx_work, tmp_path):
    work, _ = approx_work
    before = {m: (work / m / "lca" / "lca.jsonl").read_bytes() for m in ("approx", "exact")}
    first = json.loads((work / "result.json").read_text())["seconds"]
    again = approximation(small_data, work, 4, "--out", str(tmp_path / "again.json"), in_process=True)
    assert again.stdout.count("trained in") == 0
    # the rerun trained nothing but reports the seconds the trainings took
    assert json.loads((tmp_path / "again.json").read_text())["seconds"] == {m: round(v) for m, v in first.items()}
    assert {m: (work / m / "lca" / "lca.jsonl").read_bytes() for m in before} == before
    # a run stopped at update 2, its record file cut mid-line by a kill, continued to update 4
    approximation(small_data, tmp_path, 2, in_process=True)
    with open(tmp_path / "approx" / "lca" / "lca.jsonl", "a") as f:
        f.write('{"type": "interval", "start": 3, "e')
    approximation(small_data, tmp_path, 4, in_process=True)
    for mode in before:
        got, want = records(tmp_path / mode / "lca" / "lca.jsonl"), records(work / mode / "lca" / "lca.jsonl")
        assert [r for r in got if r["type"] == "interval"] == [r for r in want if r["type"] == "interval"]
        assert [r["type"] for r in got].count("header") == 1
    # an interval that does not divide the updates is refused with one line
    bad = run([sys.executable, "scripts/reproduce/zhu2020/lca_approximation.py", "--data", str(small_data / "bin"),
               "--work", str(tmp_path), "--updates", "3", *APPROX], check=False)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("lca_approximation: error: --updates 3")


def test_approximation_over_seeds_comes_from_each_seeds_result(small_data, approx_work, tmp_path):
    work, _ = approx_work
    second = tmp_path / "seed2"
    approximation(small_data, second, 4, "--seed", "2", "--out", str(second / "result.json"), in_process=True)
    results = [json.loads(p.read_text()) for p in (work / "result.json", second / "result.json")]
    assert [r["seed"] for r in results] == [1, 2]
    script = [sys.executable, "scripts/reproduce/zhu2020/approximation_seeds.py"]
    out, values = tmp_path / "seeds.md", tmp_path / "seeds.json"
    proc = run([*script, str(second / "result.json"), str(work / "result.json"), "--out", str(out), "--json",
                str(values)], in_process=True)
    summary = json.loads(values.read_text())
    assert [r["seed"] for r in summary["rows"]] == [1, 2]  # in seed order, whatever the order given
    taus = [r["tau"] for r in results]
    assert summary["values"]["tau"] == taus
    for row, result in zip(summary["rows"], results):
        per_interval = [r["tau"] for r in result["tau_per_interval"]]
        assert row["tau_interval_min"] == min(per_interval)
        assert row["tau_bucket:output_projection"] == result["tau_buckets"]["output_projection"]
        occupation = result["occupation"]
        assert row["occupation_gap"] == max(abs(a - e) for a, e in zip(occupation["approx"], occupation["exact"]))
    mean = sum(taus) / 2
    sd = (sum((t - mean) ** 2 for t in taus)) ** 0.5  # sample sd of two values
    md = out.read_text()
    assert f"| mean ± sd | {mean:.3f} ± {sd:.3f} |" in md and md == proc.stdout
    assert f"| Figure 1: Kendall τ, approximate vs exact ranking of the groups' occupation ratios | 0.905 | " \
           f"{mean:.3f} ± {sd:.3f} |" in md
    # an existing --out or --json is refused in one line and left as it was, unless --overwrite
    given = [*script, str(second / "result.json"), str(work / "result.json")]
    out.write_text("old table\n")
    refused = run([*given, "--out", str(out)], check=False)
    assert refused.returncode == 2 and refused.stderr.strip() == \
        f"approximation_seeds: error: {out} exists: pass --overwrite to replace it, or choose another --out"
    refused = run([*given, "--json", str(values)], check=False)
    assert refused.returncode == 2 and refused.stderr.strip() == \
        f"approximation_seeds: error: {values} exists: pass --overwrite to replace it, or choose another --json"
    assert out.read_text() == "old table\n" and json.loads(values.read_text()) == summary
    run([*given, "--out", str(out), "--overwrite"], in_process=True)
    assert out.read_text() == md
    # runs that differ in more than the seed, or share a seed, are refused in one line
    other = json.loads((second / "result.json").read_text())
    other["updates"] = 6
    (tmp_path / "other.json").write_text(json.dumps(other))
    bad = run([*script, str(work / "result.json"), str(tmp_path / "other.json")], check=False)
    assert bad.returncode == 2 and "approximation_seeds: error: the results differ in updates" in bad.stderr
    same = run([*script, str(work / "result.json"), str(work / "result.json")], check=False)
    assert same.returncode == 2 and "each run must have its own seed" in same.stderr


def test_learning_dynamics_claims_come_from_its_records(data_dir, tmp_path):
    args = [sys.executable, "scripts/reproduce/zhu2020/learning_dynamics.py", "--data", str(data_dir / "bin"),
            "--work", str(tmp_path / "w"), "--updates", "4", "--interval", "2", "--max-tokens", "1000",
            "--warmup", "2", "--model-args", "--encoder-layers 3 --decoder-layers 3 " + TINY_MODEL,
            "--out", str(tmp_path / "claims.json")]
    proc = run(args, in_process=True)
    result = json.loads((tmp_path / "claims.json").read_text())
    values = json.loads((tmp_path / "w" / "lca-plot.json").read_text())
    assert set(values["runs"]) == {"train", "test"}
    for split in ("train", "test"):
        recs = intervals(tmp_path / "w" / "lca" / f"lca.{split}.jsonl")
        header = records(tmp_path / "w" / "lca" / f"lca.{split}.jsonl")[0]
        assert header["options"]["split"] == split and [r["end"] for r in recs] == [2, 4]
        sizes = {g["name"]: g["size"] for g in header["groups"]}
        layers = [f"decoder.layer{i}" for i in range(3)]
        cumulative = [sum(r["groups"][n]["sum"] * r["n_updates"] for r in recs) / sizes[n] for n in layers]
        assert [values["runs"][split]["groups"][n] for n in layers] == pytest.approx(cumulative, rel=1e-9)
        increasing = all(abs(a) < abs(b) for a, b in zip(cumulative, cumulative[1:]))
        claim = next(c for c in result["claims"] if c["column"] == split and c["row"].startswith("decoder: the"))
        assert claim["ours"] == ("yes" if increasing else "no")
    assert "| Figure 3: decoder: the higher the layer, the more it contributes (train) | yes |" in proc.stdout
    # test BLEU of the trained model, scored from its own generate output, beside the paper's
    from fairseq_interp.common.bleu import corpus_bleu, read_hypotheses, read_references

    hyps, ids = read_hypotheses(tmp_path / "w" / "test.generate.txt")
    refs = read_references(data_dir / "raw" / "test.fr")
    assert len(ids) == 40 and result["test_bleu"] == round(corpus_bleu(hyps, [refs[i] for i in ids], "fr").score, 2)
    assert "| §3.1: BLEU (test) of the model whose LCA is recorded | 34.40 |" in proc.stdout
    for name in ("figure2-sparse-dense.png", "figure3-layers.png", "figure4-intervals.png", "figure5-buckets.png"):
        assert (tmp_path / "w" / "figures" / name).stat().st_size > 10_000
    before = (tmp_path / "w" / "lca" / "lca.train.jsonl").read_bytes()
    again = run(args + ["--overwrite"], in_process=True)
    assert "already trained" in again.stdout
    assert (tmp_path / "w" / "lca" / "lca.train.jsonl").read_bytes() == before


def test_hydra_yaml_config_trains_what_fairseq_train_trains(data_dir, tmp_path):
    """configs/lca/zhu2020_learning_dynamics.yaml through fairseq-hydra-train (sizes overridden to tiny) = the
    fairseq-train command in its comment: same parameters, same LCA records."""
    overrides = {"encoder_layers": 2, "decoder_layers": 1, "encoder_embed_dim": 32, "decoder_embed_dim": 32,
                 "encoder_ffn_embed_dim": 64, "decoder_ffn_embed_dim": 64}
    hydra = tmp_path / "hydra"
    hydra.mkdir()
    run(["fairseq-hydra-train", "--config-dir", f"{REPO}/configs/lca", "--config-name", "zhu2020_learning_dynamics",
         f"common.user_dir={REPO}/fairseq_interp", f"task.data={data_dir / 'bin'}", f"task.lca_dir={hydra / 'lca'}",
         f"checkpoint.save_dir={hydra / 'ckpt'}", "optimization.max_update=4", "task.lca_interval=2",
         "dataset.max_tokens=1000", "task.lca_max_tokens=500", *[f"model.{k}={v}" for k, v in overrides.items()]],
        cwd=hydra)  # hydra writes .hydra/ and hydra_train.log into its run dir, the working directory
    plain = tmp_path / "plain"
    run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--task", "translation_lca",
         "--lca-dir", str(plain / "lca"), "--lca-split", "train,test", "--lca-interval", "2", "--lca-max-tokens",
         "500", "--arch", "transformer_test_tiny", *[f"--{k.replace('_', '-')}={v}" for k, v in overrides.items()],
         "--encoder-attention-heads", "4", "--decoder-attention-heads", "4", "--dropout", "0.1",
         "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "2e-3", "--lr-scheduler", "inverse_sqrt",
         "--warmup-updates", "200", "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
         "--max-tokens", "1000", "--cpu", "--seed", "1", "--disable-validation", "--log-interval", "15",
         "--max-update", "4", "--save-dir", str(plain / "ckpt"), "--no-epoch-checkpoints"])
    a = torch.load(hydra / "ckpt" / "checkpoint_last.pt")["model"]
    b = torch.load(plain / "ckpt" / "checkpoint_last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for split in ("train", "test"):
        assert records(hydra / "lca" / f"lca.{split}.jsonl") == records(plain / "lca" / f"lca.{split}.jsonl")
