"""fairseq-interpret end to end on real Multi30k data and plugin checkpoints: a new Python per run where that is
what is tested (both plugin architectures, the run stopped and killed with -9, fairseq-generate with --user-dir);
the other runs (the resume of the killed run among them) in this process, their records and output those of the
command."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from conftest import BIN, REPO, error_lines, run

INTERPRET = ["--gen-subset", "test", "--beam", "2", "--batch-size", "4", "--cpu", "--max-len-b", "12",
             "--post-process", "sentencepiece", "--ig-steps", "16", "--no-progress-bar"]


def interpret(data_dir, ckpt, results, *extra, check=True, user_dir="fairseq_interp", in_process=None):
    cmd = ["fairseq-interpret", str(data_dir / "bin"), "--path", str(ckpt), "--results-path", str(results),
           *INTERPRET, *extra]
    if user_dir:
        cmd += ["--user-dir", user_dir]
    return run(cmd, check=check, in_process=in_process)


def records(results):
    with open(os.path.join(results, "attributions.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def check_record(r, tol):
    n_src, n_tgt = len(r["src_tokens"]), len(r["tgt_tokens"])
    assert r["src_tokens"][-1] == "</s>" and r["tgt_tokens"][-1] == "</s>"
    assert len(r["contributions"]) == n_src and all(len(row) == n_tgt for row in r["contributions"])
    assert len(r["word_contributions"]) == len(r["src_words"])
    assert all(len(row) == len(r["tgt_words"]) for row in r["word_contributions"])
    assert len(r["word_importance"]) == len(r["src_words"]) - 1
    assert sum(r["word_importance"]) == pytest.approx(1.0, abs=1e-9)
    # the words are the Moses tokens of the source the model read
    assert " ".join(r["src_words"][:-1]) == r["source"]
    for n in range(n_tgt):
        column = sum(row[n] for row in r["contributions"])
        gap = r["target_scores"][n] - r["baseline_scores"][n]
        assert column - gap == pytest.approx(r["convergence_delta"][n], abs=1e-5)
        assert abs(r["convergence_delta"][n]) < tol
        word_column = sum(row for rows in r["word_contributions"] for row in rows)
    total = sum(map(sum, r["contributions"]))
    assert word_column == pytest.approx(total, abs=1e-5)  # merging keeps the total


@pytest.mark.parametrize("model", ["transformer", "lstm"])
def test_interpret_plugin_checkpoint(data_dir, transformer_ckpt, lstm_ckpt, tmp_path, model):
    ckpt = transformer_ckpt if model == "transformer" else lstm_ckpt
    results, plots = tmp_path / "res", tmp_path / "plots"
    proc = interpret(data_dir, ckpt, results, "--num-sentences", "3", "--plot-dir", str(plots))
    assert "attributions.jsonl" in proc.stderr and "attributions.jsonl" not in proc.stdout  # a summary: logged
    recs = records(results)
    assert sorted(r["id"] for r in recs) == [0, 1, 2]
    for r in recs:
        check_record(r, tol=5e-3)
        assert r["attribute_target"] == "hypothesis" and r["method"] == "ig"
        assert (plots / f"sentence-{r['id']}.png").stat().st_size > 1000
    text = (results / "attributions.txt").read_text(encoding="utf-8")
    assert text.count("S-") == 3 and "I-0\t" in text


def test_reference_and_logprob(data_dir, transformer_ckpt, tmp_path):
    results = tmp_path / "res"
    interpret(data_dir, transformer_ckpt, results, "--num-sentences", "2", "--attribute-target", "reference",
              "--attribution-score", "logprob", in_process=True)
    for r in records(results):
        assert " ".join(r["tgt_words"][:-1]) == r["reference"]
        assert all(s <= 0 for s in r["target_scores"])  # log-probabilities
        check_record(r, tol=0.05)


def test_resume_skips_done_ids(data_dir, transformer_ckpt, tmp_path):
    results = tmp_path / "res"
    interpret(data_dir, transformer_ckpt, results, "--num-sentences", "3", in_process=True)
    path = results / "attributions.jsonl"
    first = records(results)
    # simulate a kill in the middle of writing the next record
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"id": 3, "src_tok')
    proc = interpret(data_dir, transformer_ckpt, results, "--num-sentences", "5", check=False)
    assert proc.returncode == 2 and "--resume" in error_lines(proc)[-1]
    interpret(data_dir, transformer_ckpt, results, "--num-sentences", "5", "--resume", in_process=True)
    recs = records(results)
    assert sorted(r["id"] for r in recs) == [0, 1, 2, 3, 4]
    assert recs[:3] == first  # kept as they were
    unsharded = tmp_path / "again"
    interpret(data_dir, transformer_ckpt, unsharded, "--num-sentences", "5", in_process=True)
    by_id = {r["id"]: r for r in records(unsharded)}
    for r in recs:  # same numbers as an uninterrupted run
        torch.testing.assert_close(torch.tensor(r["contributions"]), torch.tensor(by_id[r["id"]]["contributions"]),
                                   atol=1e-6, rtol=0)


def complete_records(path):
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def test_kill_and_resume_completes_records_and_heatmaps(data_dir, transformer_ckpt, tmp_path):
    """kill -9 in the middle of a run with --plot-dir, one record's heatmap lost with it: --resume keeps the
    records written, makes the missing heatmap and the rest, and gives the numbers of an uninterrupted run. While
    the first run is alive (stopped), a second run into the same results is refused and changes nothing."""
    results, plots = tmp_path / "res", tmp_path / "plots"
    extra = ["--num-sentences", "16", "--ig-steps", "32", "--batch-size", "2", "--plot-dir", str(plots)]
    cmd = [os.path.join(BIN, "fairseq-interpret"), str(data_dir / "bin"), "--path", str(transformer_ckpt),
           "--results-path", str(results), "--user-dir", "fairseq_interp", *INTERPRET, *extra]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = results / "attributions.jsonl"
    try:
        deadline = time.time() + 300
        while complete_records(path) < 3 and first.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)
        assert first.poll() is None, "the run finished before it could be interrupted"
        before = path.read_bytes()
        second = interpret(data_dir, transformer_ckpt, results, *extra, "--resume", check=False)
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"another fairseq-interpret (pid {first.pid}) is writing" in error_lines(second)[-1]
        assert path.read_bytes() == before
    finally:
        first.kill()
        first.wait()
    kept = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if line.endswith("\n")]
    last_id = json.loads(kept[-1])["id"]
    heatmap = plots / f"sentence-{last_id}.png"
    if heatmap.exists():  # as if the kill came between the record and its heatmap
        heatmap.unlink()
    interpret(data_dir, transformer_ckpt, results, *extra, "--resume", in_process=True)
    recs = records(results)
    assert len(recs) == 16 and sorted(r["id"] for r in recs) == list(range(16))
    assert path.read_text(encoding="utf-8").startswith("".join(kept))  # the records before the kill, unchanged
    assert sorted(os.listdir(plots)) == sorted(f"sentence-{i}.png" for i in range(16))
    whole = tmp_path / "whole"
    interpret(data_dir, transformer_ckpt, whole, *extra[:-2], in_process=True)
    by_id = {r["id"]: r for r in records(whole)}
    for r in recs:
        assert r["tgt_tokens"] == by_id[r["id"]]["tgt_tokens"]
        torch.testing.assert_close(torch.tensor(r["contributions"]), torch.tensor(by_id[r["id"]]["contributions"]),
                                   atol=1e-6, rtol=0)
    assert (results / "attributions.txt").read_text(encoding="utf-8").count("S-") == 16


def test_provenance_beside_the_records(data_dir, transformer_ckpt, tmp_path):
    """The provenance file names the checkpoint's weights, the data and every option; the records are those of a
    run without it (no field added)."""
    from fairseq_interp.common.provenance import weights_fingerprint

    results, page = tmp_path / "res", tmp_path / "new" / "folder" / "page.html"
    interpret(data_dir, transformer_ckpt, results, "--num-sentences", "2", "--html", str(page), in_process=True)
    assert page.read_text(encoding="utf-8").count("<section") == 2  # its folder made
    provenance = json.loads((results / "attributions.provenance.json").read_text(encoding="utf-8"))
    state = torch.load(transformer_ckpt, map_location="cpu")
    assert provenance["format"] == "fairseq-interp-attributions"
    assert provenance["checkpoint"]["weights_sha256"] == weights_fingerprint(state["model"])
    assert provenance["data"]["split"] == "test" and provenance["data"]["source_lang"] == "en"
    assert provenance["options"]["ig_steps"] == 16 and provenance["options"]["generation"]["beam"] == 2
    assert provenance["versions"]["torch"] == torch.__version__
    assert provenance["run"]["checkpoint_vs_data"]["compared"] == [
        "embedding sizes", "language pair", "source dictionary contents", "target dictionary contents"]
    for r in records(results):  # records carry their own fields only
        assert not {"checkpoint", "data", "versions", "options", "format"} & set(r) and r["ig_steps"] == 16
    # --overwrite starts again; without it (or --resume) the results are refused
    proc = interpret(data_dir, transformer_ckpt, results, "--num-sentences", "1", check=False)
    assert proc.returncode == 2 and "--overwrite" in error_lines(proc)[-1]
    interpret(data_dir, transformer_ckpt, results, "--num-sentences", "1", "--overwrite", in_process=True)
    assert [r["id"] for r in records(results)] == [0]


def test_fairseq_generate_loads_plugin_checkpoint(data_dir, transformer_ckpt):
    proc = run(["fairseq-generate", str(data_dir / "bin"), "--path", str(transformer_ckpt), "--user-dir",
                os.path.join(REPO, "fairseq_interp"), "--gen-subset", "test", "--beam", "2", "--batch-size", "8",
                "--max-len-b", "10", "--cpu", "--max-sentences", "8"])
    assert proc.stdout.count("\nH-") + proc.stdout.startswith("H-") >= 8


def test_view_and_plot_subcommands(data_dir, transformer_ckpt, tmp_path):
    results = tmp_path / "res"
    interpret(data_dir, transformer_ckpt, results, "--num-sentences", "2", in_process=True)
    view = run(["fairseq-interp", "view", str(results / "attributions.jsonl"), "--ids", "1"], in_process=True)
    assert view.stdout.startswith("S-1\t")
    run(["fairseq-interp", "plot", str(results / "attributions.jsonl"), "--results-path", str(tmp_path / "p")],
        in_process=True)
    assert sorted(os.listdir(tmp_path / "p")) == ["sentence-0.png", "sentence-1.png"]
    bad = run(["fairseq-interp", "view", str(tmp_path / "none.jsonl")], check=False)
    assert bad.returncode == 2 and "not found" in bad.stderr


# ---- bad input: one clear line, exit code 2, nothing written -------------------------------------------------

@pytest.fixture(scope="module")
def bad_data_dir(data_dir, tmp_path_factory):
    """Test split with an empty source line and one longer than the models' 64 positions."""
    out = tmp_path_factory.mktemp("bad")
    src = ["\u2581A \u2581dog \u2581.", "", " ".join(["\u2581dog"] * 80)]
    tgt = ["\u2581Un \u2581chien \u2581.", "\u2581Un \u2581chien", "\u2581Un \u2581chien"]
    (out / "test.en").write_text("\n".join(src) + "\n", encoding="utf-8")
    (out / "test.fr").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    run(["fairseq-preprocess", "--source-lang", "en", "--target-lang", "fr", "--testpref", str(out / "test"),
         "--destdir", str(out / "bin"), "--srcdict", str(data_dir / "bin" / "dict.en.txt"),
         "--tgtdict", str(data_dir / "bin" / "dict.fr.txt")])
    return out


def assert_clean_failure(proc, results, *phrases):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = error_lines(proc)[-1]
    assert last.startswith("fairseq-interpret: error:")
    for phrase in phrases:
        assert phrase in last, last
    assert not (results / "attributions.jsonl").exists()


def test_missing_checkpoint(data_dir, tmp_path):
    proc = interpret(data_dir, tmp_path / "nope.pt", tmp_path / "res", check=False)
    assert_clean_failure(proc, tmp_path / "res", "not found", "--path")


def test_missing_data_dir(transformer_ckpt, tmp_path):
    proc = interpret(tmp_path / "nodata", transformer_ckpt, tmp_path / "res", check=False)
    assert_clean_failure(proc, tmp_path / "res", "data directory")


def test_empty_source_line(bad_data_dir, transformer_ckpt, tmp_path):
    proc = interpret(bad_data_dir, transformer_ckpt, tmp_path / "res", "--num-sentences", "2", check=False)
    assert_clean_failure(proc, tmp_path / "res", "empty source", "id 1", "--skip-empty-sources")
    interpret(bad_data_dir, transformer_ckpt, tmp_path / "res", "--num-sentences", "2", "--skip-empty-sources",
              in_process=True)
    assert [r["id"] for r in records(tmp_path / "res")] == [0]


def test_too_long_sentence(bad_data_dir, transformer_ckpt, tmp_path):
    proc = interpret(bad_data_dir, transformer_ckpt, tmp_path / "res", "--skip-empty-sources", check=False)
    assert_clean_failure(proc, tmp_path / "res", "sentence 2", "64 positions",
                         "--skip-invalid-size-inputs-valid-test")


def with_arch(src, dst, arch):
    """Copy a checkpoint, claiming another architecture (``cfg.model`` is a Namespace for legacy models)."""
    state = torch.load(src, weights_only=False)
    model_cfg = state["cfg"]["model"]
    if isinstance(model_cfg, dict):
        model_cfg["_name"] = arch
    else:
        model_cfg.arch = model_cfg._name = arch
    torch.save(state, dst)
    return dst


def test_unregistered_architecture(data_dir, transformer_ckpt, tmp_path):
    """A checkpoint of an architecture no loaded plugin registers: fairseq alone says 'Replacement index'."""
    ckpt = with_arch(transformer_ckpt, tmp_path / "other.pt", "someone_elses_transformer")
    proc = interpret(data_dir, ckpt, tmp_path / "res", check=False)
    assert_clean_failure(proc, tmp_path / "res", "someone_elses_transformer", "--user-dir")


def test_unattributable_architecture(data_dir, transformer_ckpt, tmp_path):
    ckpt = with_arch(transformer_ckpt, tmp_path / "lm.pt", "transformer_lm")
    proc = interpret(data_dir, ckpt, tmp_path / "res", check=False)
    assert_clean_failure(proc, tmp_path / "res", "cannot attribute", "transformer_lm", "encoder-decoder")
