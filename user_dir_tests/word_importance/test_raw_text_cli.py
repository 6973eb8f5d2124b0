"""Raw text on the command line (``fairseq-interpret --input``), contrastive and target-prefix attribution from the
command line, and the Python API on the same real checkpoint: end to end on Multi30k En-Fr (slow). The command runs
in this process (:func:`conftest.run_in_process`), standard input included; its records and output are checked."""

import os

import pytest
import torch

from conftest import BIN, error_lines, run
from test_interpret_cli import INTERPRET, interpret, records

pytestmark = pytest.mark.slow


def by_id(results):
    return sorted(records(results), key=lambda r: r["id"])


def text_options(data_dir):
    """The tokenizer and subword options that reproduce prepare_data.py's segmentation."""
    return ["--tokenizer", "moses", "--moses-no-dash-splits", "--moses-no-escape", "--bpe", "sentencepiece",
            "--sentencepiece-model", str(data_dir / "spm.model")]


def raw_lines(data_dir, lang, n):
    with open(data_dir / "raw" / f"test.{lang}", encoding="utf-8") as f:
        return [next(f).rstrip("\n") for _ in range(n)]


def interpret_stdin(data_dir, ckpt, results, text, *extra):
    cmd = ["fairseq-interpret", str(data_dir / "bin"), "--path", str(ckpt), "--results-path", str(results),
           "--user-dir", "fairseq_interp", *INTERPRET, *extra]
    return run(cmd, check=False, in_process=True, input=text)


def test_raw_input_equals_the_binarized_split(data_dir, transformer_ckpt, tmp_path):
    """The first test sentences as raw text give the tokens, hypotheses and attributions of the binarized split."""
    sentences = raw_lines(data_dir, "en", 3)
    (tmp_path / "input.en").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    interpret(data_dir, transformer_ckpt, tmp_path / "raw", "--input", str(tmp_path / "input.en"),
              *text_options(data_dir), in_process=True)
    interpret(data_dir, transformer_ckpt, tmp_path / "bin", "--num-sentences", "3", in_process=True)
    raw, binarized = records(tmp_path / "raw"), {r["id"]: r for r in records(tmp_path / "bin")}
    assert sorted(r["id"] for r in raw) == [0, 1, 2]
    for r in raw:
        b = binarized[r["id"]]
        assert r["src_tokens"] == b["src_tokens"] and r["tgt_tokens"] == b["tgt_tokens"]
        torch.testing.assert_close(torch.tensor(r["contributions"]), torch.tensor(b["contributions"]),
                                   atol=1e-6, rtol=0)
        assert r["reference"] is None


def test_stdin_with_references_and_contrast(data_dir, transformer_ckpt, tmp_path):
    sources, references = raw_lines(data_dir, "en", 2), raw_lines(data_dir, "fr", 2)
    text = "".join(f"{s}\t{r}\n" for s, r in zip(sources, references))
    proc = interpret_stdin(data_dir, transformer_ckpt, tmp_path / "ref", text, "--input", "-",
                           "--attribute-target", "reference", *text_options(data_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = by_id(tmp_path / "ref")
    assert recs[0]["tgt_words"][:-1] == "Un homme avec un chapeau orange regardant quelque chose .".split()
    assert recs[0]["reference"] == "Un homme avec un chapeau orange regardant quelque chose ."
    # why "chapeau" rather than "casquette": the alternative shares the reference up to that word
    contrast = tmp_path / "contrast.fr"
    contrast.write_text("Un homme avec un casquette\nUn terrier de Boston marche\n", encoding="utf-8")
    proc = interpret_stdin(data_dir, transformer_ckpt, tmp_path / "contrast", text, "--input", "-",
                           "--attribute-target", "reference", "--contrast", str(contrast), *text_options(data_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = by_id(tmp_path / "contrast")
    first = recs[0]
    assert first["score"] == "logprob" and first["tgt_words"][first["contrast_word"]] == "chapeau"
    step = first["contrast_step"]
    assert [n for n, s in enumerate(first["target_scores"]) if s != 0] == [step]
    for n in range(len(first["tgt_tokens"])):  # IG completeness of the contrastive score
        column = sum(row[n] for row in first["contributions"])
        gap = first["target_scores"][n] - first["baseline_scores"][n]
        assert column - gap == pytest.approx(first["convergence_delta"][n], abs=1e-6)
    assert recs[1]["tgt_words"][recs[1]["contrast_word"]] == "court"
    assert "C-0\tstep" in (tmp_path / "contrast" / "attributions.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_target_prefix_on_the_command_line(data_dir, transformer_ckpt, tmp_path, method):
    interpret(data_dir, transformer_ckpt, tmp_path / "res", "--num-sentences", "2", "--attribute-target-prefix",
              "--attribution", method, "--html", str(tmp_path / "r.html"), in_process=True)
    for r in records(tmp_path / "res"):
        assert r["prefix_tokens"][0] == "</s>" and r["prefix_tokens"][1:] == r["tgt_tokens"][:-1]
        assert len(r["prefix_contributions"]) == len(r["tgt_tokens"])
        for n in range(len(r["tgt_tokens"])):
            assert all(row[n] == 0 for row in r["prefix_contributions"][n + 1:])  # causal
            if method == "ig":
                column = sum(row[n] for row in r["contributions"] + r["prefix_contributions"])
                gap = r["target_scores"][n] - r["baseline_scores"][n]
                assert abs(column - gap) < 0.02
    assert "target prefix" in (tmp_path / "r.html").read_text(encoding="utf-8")


def assert_clean(proc, results, *phrases):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = error_lines(proc)[-1]
    assert last.startswith("fairseq-interpret: error:")
    for phrase in phrases:
        assert phrase in last, last
    assert not (results / "attributions.jsonl").exists()


def test_bad_text_input(data_dir, transformer_ckpt, tmp_path):
    res = tmp_path / "res"
    proc = interpret(data_dir, transformer_ckpt, res, "--input", str(tmp_path / "none.en"), check=False)
    assert_clean(proc, res, "--input", "not found")
    (tmp_path / "in.en").write_text("A dog .\n\nA cat .\n", encoding="utf-8")
    proc = interpret(data_dir, transformer_ckpt, res, "--input", str(tmp_path / "in.en"), check=False)
    assert_clean(proc, res, "line 2", "--skip-empty-sources")
    (tmp_path / "in.en").write_text("A dog .\nA cat .\n", encoding="utf-8")
    proc = interpret(data_dir, transformer_ckpt, res, "--input", str(tmp_path / "in.en"), "--attribute-target",
                     "reference", check=False)
    assert_clean(proc, res, "needs references", "SOURCE<TAB>REFERENCE")
    (tmp_path / "c.fr").write_text("Un chien\n", encoding="utf-8")
    proc = interpret(data_dir, transformer_ckpt, res, "--input", str(tmp_path / "in.en"), "--contrast",
                     str(tmp_path / "c.fr"), check=False)
    assert_clean(proc, res, "1 lines for 2 input sentences")
    proc = interpret(data_dir, transformer_ckpt, res, "--num-sentences", "3", "--contrast", str(tmp_path / "c.fr"),
                     check=False)
    assert_clean(proc, res, "1 lines for 3 sentences")
    proc = interpret(data_dir, transformer_ckpt, res, "--num-sentences", "1", "--contrast", str(tmp_path / "c.fr"),
                     "--attribution-score", "prob", check=False)
    assert_clean(proc, res, "drop --attribution-score prob")
    proc = interpret(data_dir, transformer_ckpt, res, "--num-sentences", "1", "--attribute-target-prefix",
                     "--attribution", "attention", check=False)
    assert_clean(proc, res, "target-prefix attribution needs a method")


def test_python_api_gives_the_command_line_records(data_dir, transformer_ckpt, tmp_path):
    """The README's three lines on a real checkpoint, and the record fairseq-interpret --input writes for the same
    sentence and options."""
    from fairseq_interp.word_importance import from_pretrained

    model = from_pretrained(str(transformer_ckpt.parent), transformer_ckpt.name, str(data_dir / "bin"),
                            tokenizer="moses", moses_no_dash_splits=True, moses_no_escape=True, bpe="sentencepiece",
                            sentencepiece_model=str(data_dir / "spm.model"))
    sentence = raw_lines(data_dir, "en", 1)[0]
    result = model.attribute(sentence, beam=2, ig_steps=16)
    assert result.src_words[:-1] == "A man in an orange hat starring at something .".split()
    (tmp_path / "one.en").write_text(sentence + "\n", encoding="utf-8")
    cli = tmp_path / "cli"
    run([os.path.join(BIN, "fairseq-interpret"), str(data_dir / "bin"), "--path", str(transformer_ckpt),
         "--results-path", str(cli), "--user-dir", "fairseq_interp", "--beam", "2", "--cpu", "--ig-steps", "16",
         "--post-process", "sentencepiece", "--no-progress-bar", "--input", str(tmp_path / "one.en"),
         *text_options(data_dir)], in_process=True)
    (cli_record,) = records(cli)
    api_record = result.record
    assert api_record["src_tokens"] == cli_record["src_tokens"]
    assert api_record["tgt_tokens"] == cli_record["tgt_tokens"]
    torch.testing.assert_close(torch.tensor(api_record["contributions"]), torch.tensor(cli_record["contributions"]),
                               atol=1e-6, rtol=0)
    numbers = ("contributions", "word_contributions", "word_importance", "target_scores", "baseline_scores",
               "convergence_delta")
    shared = [k for k in cli_record if k in api_record]
    assert shared[:11] == list(api_record)[:11]  # the schema's fields, in its order
    assert {k: api_record[k] for k in shared if k not in numbers} == {k: cli_record[k] for k in shared
                                                                     if k not in numbers}
    assert [k for k in api_record if k in cli_record] == shared  # same order
