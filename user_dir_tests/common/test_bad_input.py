"""The bad-input battery: every command of the word-importance command line and the data scripts, each given
kinds of bad input a user can produce. For every case: exit code 2, the last line on stderr is
``<command>: error: ...`` with the phrase naming the fix, no ``Traceback``, and no file or folder created,
changed or removed under the test's folder (inputs included: nothing is ever written onto an input).

Commands run in this process (``cli_main(argv)``, ``SystemExit`` caught) to stay fast. Cases without a trained
model are unit-speed; those that load the session's tiny checkpoint are slow (they use the ``data_dir`` fixture).
"""

import hashlib
import importlib.util
import json
import os
import shutil

import pytest
import torch

import fairseq_interp
from conftest import REPO, run

PLUGIN = os.path.dirname(os.path.abspath(fairseq_interp.__file__))
PROVENANCE_FORMAT = "fairseq-interp-attributions"


# ---- running a command in this process ---------------------------------------------------------------------------

def _script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name[:-3]}", os.path.join(REPO, "scripts", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(command):
    if command == "fairseq-interpret":
        from fairseq_interp.word_importance.interpret import cli_main
        return cli_main
    if command.split()[0] == "fairseq-interp":
        from fairseq_interp.commands import cli_main
        return cli_main
    return _script(command).main


def run_in_process(command, argv, capsys):
    """``command`` is an entry point, or ``fairseq-interp NAME`` for a subcommand parsed by fairseq's parser (its
    error line starts with ``fairseq-interp NAME:``)."""
    entry = _entry(command)
    argv = command.split()[1:] * command.startswith("fairseq-interp ") + [str(a) for a in argv]
    try:
        entry(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder):
    """Every file and folder under ``folder``: path -> (kind, size, mtime, content hash)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), folder)] = ("dir",)
        for name in files:
            path = os.path.join(root, name)
            stat = os.stat(path)
            with open(path, "rb") as f:
                digest = hashlib.sha1(f.read()).hexdigest()
            found[os.path.relpath(path, folder)] = ("file", stat.st_size, stat.st_mtime_ns, digest)
    return found


def assert_refused(command, argv, phrases, folder, capsys):
    before = snapshot(folder)
    code, out, err = run_in_process(command, argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit code {code}\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    last = lines[-1]
    prefix = "fairseq-interp: error: " if command == "fairseq-interp" else f"{command}: error: "
    assert last.startswith(prefix), last
    for phrase in phrases:
        assert phrase in last, f"{phrase!r} not in {last!r}"
    assert snapshot(folder) == before, "the command created, changed or removed files"


# ---- inputs the cases are made of ------------------------------------------------------------------------------

def record(i, method="ig"):
    """A valid attribution record of a 2-word sentence (the schema of word_importance/records.py)."""
    matrix = [[0.1, 0.2, 0.0], [0.3, -0.1, 0.0], [0.0, 0.0, 0.0]]
    return {"id": i, "src_tokens": ["\u2581A", "\u2581dog", "</s>"], "tgt_tokens": ["\u2581Un", "\u2581chien", "</s>"],
            "src_words": ["A", "dog", "</s>"], "tgt_words": ["Un", "chien", "</s>"], "contributions": matrix,
            "word_contributions": matrix, "word_importance": [0.45, 0.55], "target_scores": [0.5, 0.4, 0.9],
            "baseline_scores": [0.2, 0.2, 0.9], "convergence_delta": [0.0, 0.0, 0.0], "source": "A dog",
            "translation": "Un chien", "reference": "Un chien", "method": method, "score": "prob",
            "attribute_target": "hypothesis", "ig_steps": 8, "ig_method": "gausslegendre",
            "subword_scheme": "sentencepiece"}


def provenance(weights="aaa", ig_steps=8):
    return {"format": PROVENANCE_FORMAT, "format_version": 1, "checkpoint": {"path": "/c.pt", "weights_sha256": weights},
            "options": {"attribution": "ig", "attribution_score": "prob", "attribute_target": "hypothesis",
                        "ig_steps": ig_steps, "ig_method": "gausslegendre", "subword_scheme": "sentencepiece"},
            "versions": {}, "run": {}}


def write_jsonl(path, records, text_tail=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + text_tail, encoding="utf-8")
    return path


def perturbation_part(folder, with_provenance=True):
    """A finished fairseq-interp perturbation run of one sentence and no cell, with its provenance."""
    from fairseq_interp.word_importance.evaluation.perturbation_curves import RUN_FORMAT, RUN_PROVENANCE

    write_jsonl(folder / "results.jsonl", [{"id": "none/0", "method": "none", "perturbation": "none", "k": 0,
                                             "bleu": 30.0, "sentence_ids": [0], "hypotheses": ["Un chien"]}])
    if with_provenance:
        (folder / RUN_PROVENANCE).write_text(json.dumps({"format": RUN_FORMAT, "options": {"seed": 1}}),
                                             encoding="utf-8")
    return folder


def write_shards(folder, provenances=(None, None), skip=(), records_of=None):
    """Two complete shards (ids 0,2 and 1,3) with plans and provenance files."""
    folder.mkdir(parents=True, exist_ok=True)
    for shard, ids in ((0, [0, 2]), (1, [1, 3])):
        name = f"attributions.shard{shard}-of-2"
        (folder / f"{name}.plan.json").write_text(json.dumps({"num_shards": 2, "shard_id": shard, "ids": ids,
                                                              "skipped": []}), encoding="utf-8")
        if shard in skip:
            continue
        write_jsonl(folder / f"{name}.jsonl", [(records_of or record)(i) for i in ids])
        (folder / f"{name}.provenance.json").write_text(json.dumps(provenances[shard] or provenance()),
                                                        encoding="utf-8")
    return folder


class Ctx:
    """Paths of one case: ``tmp`` (the watched folder), ``out`` (an output folder inside it), ``data``, ``ckpt``."""

    def __init__(self, tmp, data, ckpt, results=None):
        self.tmp, self.out, self.data, self.ckpt, self.results = tmp, tmp / "out", data, ckpt, results

    def interpret(self, *extra, data=None, ckpt=None, results=None, plain=False):
        base = [] if plain else ["--results-path", results or self.out]
        return [data or self.data, "--user-dir", PLUGIN, "--path", ckpt or self.ckpt, "--gen-subset", "test",
                "--beam", "2", "--batch-size", "4", "--cpu", "--max-len-b", "12", "--post-process", "sentencepiece",
                "--ig-steps", "8", "--no-progress-bar", "--num-sentences", "3", *base, *extra]

    def records(self, name="r.jsonl", records=None, tail=""):
        return write_jsonl(self.tmp / name, [record(0), record(1)] if records is None else records, tail)

    def torch_file(self, obj, name="x.pt"):
        torch.save(obj, self.tmp / name)
        return self.tmp / name


class Payload:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def _held_lock(ctx, folder, name):
    from fairseq_interp.common.outputs import output_lock

    folder.mkdir(parents=True, exist_ok=True)
    lock = output_lock(str(folder), name, "fairseq-interpret")
    lock.__enter__()
    ctx.release = lambda: lock.__exit__(None, None, None)


def _unwritable(ctx):
    ctx.tmp.joinpath("ro").mkdir()
    os.chmod(ctx.tmp / "ro", 0o555)
    return ctx.tmp / "ro" / "res"


def _evaluate_inputs(ctx, gen="H-0\t-0.1\tUn chien\nH-1\t-0.2\tUn chat\n", refs="Un chien\nUn chat\n"):
    (ctx.tmp / "gen.out").write_text(gen, encoding="utf-8")
    (ctx.tmp / "ref.fr").write_text(refs, encoding="utf-8")
    return ["--generate-output", ctx.tmp / "gen.out", "--reference", ctx.tmp / "ref.fr", "--lang", "fr"]


def _prepare(ctx, *extra):
    return ["--src", "en", "--tgt", "fr", "--out", ctx.out, "--train-size", "50", *extra]


ROOT = os.getuid() == 0 if hasattr(os, "getuid") else False
I, V, P, E = "fairseq-interpret", "fairseq-interp", "prepare_data.py", "evaluate_bleu.py"
H = "fairseq-interp heads"

#: (case id, command, argv builder, phrases of the error line); no trained model needed
FAST_CASES = [
    # fairseq-interpret: option ranges, combinations and options it cannot honour (refused at parse time)
    ("beam-0", I, lambda c: c.interpret("--beam", "0"), ["--beam 0", ">= 1"]),
    ("nbest-2", I, lambda c: c.interpret("--nbest", "2"), ["--nbest 2", "best hypothesis only"]),
    ("ig-steps-0", I, lambda c: c.interpret("--ig-steps", "0"), ["--ig-steps 0", ">= 1"]),
    ("trapezoid-1-step", I, lambda c: c.interpret("--ig-steps", "1", "--ig-method", "riemann_trapezoid"),
     ["riemann_trapezoid needs at least 2 --ig-steps"]),
    ("negative-internal-batch", I, lambda c: c.interpret("--ig-internal-batch-size", "-3"),
     ["--ig-internal-batch-size -3", ">= 0"]),
    ("negative-num-sentences", I, lambda c: c.interpret("--num-sentences", "-4"), ["--num-sentences -4"]),
    ("shard-id-too-large", I, lambda c: c.interpret("--num-shards", "2", "--shard-id", "2"),
     ["--shard-id 2", "from 0 to 1"]),
    ("num-shards-0", I, lambda c: c.interpret("--num-shards", "0"), ["--num-shards 0"]),
    ("batch-size-0", I, lambda c: c.interpret("--batch-size", "0"), ["--batch-size 0"]),
    ("temperature-0", I, lambda c: c.interpret("--temperature", "0"), ["--temperature 0", "> 0"]),
    ("topp-above-1", I, lambda c: c.interpret("--sampling", "--sampling-topp", "1.5"), ["--sampling-topp 1.5"]),
    ("score-reference", I, lambda c: c.interpret("--score-reference"), ["--attribute-target reference"]),
    ("prefix-size", I, lambda c: c.interpret("--prefix-size", "1"), ["--prefix-size 1 is not supported"]),
    ("lm-fusion", I, lambda c: c.interpret("--lm-path", "lm.pt"), ["--lm-path is not supported"]),
    ("fp16", I, lambda c: c.interpret("--fp16"), ["fp32"]),
    ("world-size", I, lambda c: c.interpret("--distributed-world-size", "2"), ["--num-shards N --shard-id I"]),
    ("unknown-post-process", I, lambda c: c.interpret("--post-process", "foo"), ["--post-process 'foo'",
                                                                                 "sentencepiece"]),
    ("bad-model-overrides", I, lambda c: c.interpret("--model-overrides", "{bad"), ["not a Python dict literal"]),
    ("negative-frequency-top", I, lambda c: c.interpret("--frequency-ignore-top", "-1"),
     ["--frequency-ignore-top -1"]),
    ("no-target-length", I, lambda c: c.interpret("--max-len-b", "0"), ["--max-len-b >= 1"]),
    ("ig-steps-not-int", I, lambda c: c.interpret("--ig-steps", "abc"), ["invalid int value"]),
    ("unknown-method", I, lambda c: c.interpret("--attribution", "nosuch"), ["invalid choice"]),
    ("no-results-path", I, lambda c: c.interpret(plain=True), ["--results-path is required"]),
    ("results-path-is-a-file", I, lambda c: c.interpret(results=c.records("f.jsonl")), ["is a file, not a folder"]),
    ("results-path-under-a-file", I, lambda c: c.interpret(results=c.records("f.jsonl") / "sub"),
     ["cannot be created"]),
    pytest.param(("results-path-not-writable", I, lambda c: c.interpret(results=_unwritable(c)), ["not writable"]),
                 marks=pytest.mark.skipif(ROOT, reason="root may write anywhere")),
    ("plot-dir-is-a-file", I, lambda c: c.interpret("--plot-dir", c.records("p.jsonl")),
     ["--plot-dir", "is a file, not a folder"]),
    ("missing-checkpoint", I, lambda c: c.interpret(ckpt=c.tmp / "nope.pt"), ["not found", "--path"]),
    ("missing-data", I, lambda c: c.interpret(data=c.tmp / "nodata", ckpt=c.torch_file({})), ["data directory"]),
    ("two-checkpoints", I, lambda c: c.interpret(ckpt=f"{c.tmp}/a.pt:{c.tmp}/b.pt"), ["one checkpoint at a time"]),
    ("torch-file-not-checkpoint", I, lambda c: c.interpret(ckpt=c.torch_file({"weights": torch.zeros(3)})),
     ["not a fairseq checkpoint"]),
    ("text-file-as-checkpoint", I, lambda c: c.interpret(ckpt=c.records("ckpt.pt")),
     ["not a readable torch checkpoint"]),
    ("malicious-pickle", I, lambda c: c.interpret(ckpt=c.torch_file({"model": {}, "x": Payload()})),
     ["refuses", "system"]),
    ("through-fairseq-interp", "fairseq-interp interpret", lambda c: c.interpret("--beam", "0"), ["--beam 0"]),
    # fairseq-interp view / plot / html / merge: damaged, foreign or missing records, no overwrite, never the input
    ("no-command", V, lambda c: [], ["no command given"]),
    ("unknown-command", V, lambda c: ["nosuch"], ["invalid choice: 'nosuch'"]),
    ("view-missing", V, lambda c: ["view", c.tmp / "none.jsonl"], ["not found"]),
    ("view-folder", V, lambda c: ["view", c.tmp], ["is a folder"]),
    ("view-corrupted-middle-line", V,
     lambda c: ["view", write_jsonl(c.tmp / "r.jsonl", [record(0)], '{"id": 1, "src_tok\n' + json.dumps(record(2))
                                    + "\n")], ["r.jsonl, line 2: not a JSON record"]),
    ("view-not-utf8", V, lambda c: ["view", _bytes(c, b'{"id": 0}\n\xff\xfe\n')], ["line 1"]),
    ("view-foreign-jsonl", V, lambda c: ["view", write_jsonl(c.tmp / "lca.jsonl", [{"type": "header"}])],
     ["line 1: not an attribution record"]),
    ("view-duplicate-ids", V, lambda c: ["view", c.records(records=[record(0), record(1), record(0)])],
     ["line 3", "sentence id 0 appears a second time"]),
    ("view-wrong-shape", V, lambda c: ["view", c.records(records=[dict(record(0), word_importance=[1.0])])],
     ["'word_importance' has 1 values for 2 source words"]),
    ("view-unknown-id", V, lambda c: ["view", c.records(), "--ids", "99"], ["no record with id 99"]),
    ("plot-folder-is-a-file", V, lambda c: ["plot", c.records(), "--plot-dir", c.records("f.txt")],
     ["is a file, not a folder"]),
    ("plot-existing-heatmap", V, lambda c: ["plot", c.records(), "--plot-dir", _file(c, "plots/sentence-1.png")],
     ["sentence-1.png exists", "--overwrite"]),
    ("plot-corrupted-input", V, lambda c: ["plot", c.records(tail="xx\n"), "--plot-dir", c.out],
     ["line 3"]),
    ("html-out-exists", V, lambda c: ["html", c.records(), "--out", _file(c, "page.html")],
     ["page.html exists", "--overwrite"]),
    ("html-out-is-input", V, lambda c: ["html", c.records(), "--out", c.tmp / "r.jsonl", "--overwrite"],
     ["is also an input"]),
    ("html-out-is-folder", V, lambda c: ["html", c.records(), "--out", c.tmp], ["is a folder"]),
    ("merge-no-folder", V, lambda c: ["merge", c.tmp / "none"], ["is not a folder"]),
    ("merge-missing-shard", V, lambda c: ["merge", write_shards(c.out, skip=(0,))],
     ["shard 0 of 2 has no results file", "--shard-id 0"]),
    ("merge-other-provenance", V, lambda c: ["merge", write_shards(c.out, (provenance(), provenance("bbb")))],
     ["shard 1 of 2 was made with other settings", "checkpoint.weights_sha256"]),
    ("merge-other-options", V, lambda c: ["merge", write_shards(c.out, (provenance(), provenance(ig_steps=50)))],
     ["options.ig_steps is 8 there, 50 here"]),
    ("merge-corrupted-shard", V, lambda c: ["merge", _corrupt(write_shards(c.out), "attributions.shard1-of-2.jsonl")],
     ["attributions.shard1-of-2.jsonl, line 1"]),
    ("merge-record-of-other-method", V,
     lambda c: ["merge", write_shards(c.out, records_of=lambda i: record(i, "attention" if i == 3 else "ig"))],
     ["record 3 has method 'attention' but the file's provenance says attribution 'ig'"]),
    ("merge-out-exists", V, lambda c: ["merge", write_shards(c.out), "--out", _file(c, "merged.jsonl")],
     ["merged.jsonl exists", "--overwrite"]),
    ("merge-out-is-a-shard", V, lambda c: ["merge", write_shards(c.out), "--out",
                                            c.out / "attributions.shard0-of-2.jsonl", "--overwrite"],
     ["is also an input"]),
    ("merge-shard-without-provenance", V,
     lambda c: ["merge", _remove(write_shards(c.out), "attributions.shard1-of-2.provenance.json")],
     ["has no provenance file"]),
    ("merge-damaged-plan", V, lambda c: ["merge", _corrupt(write_shards(c.out), "attributions.shard0-of-2.plan.json")],
     ["not a readable shard plan"]),
    ("merge-shard-being-written", V,
     lambda c: (_held_lock(c, c.out, "attributions.shard1-of-2.jsonl"), ["merge", write_shards(c.out)])[1],
     ["shard 1 of 2 is still being written"]),
    ("perturbation-merge-part-without-provenance", V,
     lambda c: ["perturbation-merge", perturbation_part(c.tmp / "a"), perturbation_part(c.tmp / "b", False),
                "--results-path", c.out], ["b has no run.provenance.json", "join only folders written by"]),
    ("perturbation-merge-part-being-written", V,
     lambda c: (_held_lock(c, c.tmp / "a", "results"),
                ["perturbation-merge", perturbation_part(c.tmp / "a"), "--results-path", c.out])[1],
     ["a is still being written"]),
    ("perturbation-merge-out-holds-a-run", V,
     lambda c: ["perturbation-merge", perturbation_part(c.tmp / "a"), "--results-path", perturbation_part(c.out)],
     ["already holds a run (results.jsonl)", "choose a new or empty --results-path"]),
    ("perturbation-merge-out-is-a-part", V,
     lambda c: ["perturbation-merge", perturbation_part(c.tmp / "a"), perturbation_part(c.out), "--results-path",
                c.out], ["is also a part"]),
    # scripts/prepare_data.py
    ("prepare-same-languages", P, lambda c: ["--src", "en", "--tgt", "en", "--out", c.out], ["two different"]),
    ("prepare-unknown-language", P, lambda c: ["--src", "xx", "--tgt", "fr", "--out", c.out], ["two different"]),
    ("prepare-data-root-missing", P, lambda c: _prepare(c, "--data-root", c.tmp / "none"), ["--data-root"]),
    ("prepare-corpus-missing", P, lambda c: _prepare(c, "--data-root", c.tmp), ["missing corpus file"]),
    ("prepare-out-is-a-file", P, lambda c: ["--src", "en", "--tgt", "fr", "--out", c.records()], ["is a file"]),
    ("prepare-negative-size", P, lambda c: _prepare(c, "--valid-size", "-5"), ["--valid-size -5"]),
    ("prepare-vocab-0", P, lambda c: _prepare(c, "--vocab-size", "0"), ["--vocab-size 0"]),
    ("prepare-bad-pairs", P, lambda c: ["--lang-pairs", "en-de,en-de", "--out", c.out], ["each direction once"]),
    ("prepare-other-options", P, lambda c: (_file(c, "out/prepare.json", '{"src": "en"}'), _prepare(c))[1],
     ["prepared with other options", "--overwrite"]),
    ("prepare-foreign-folder", P, lambda c: (_file(c, "out/notes.txt"), _prepare(c, "--overwrite"))[1],
     ["does not write (notes.txt)"]),
    ("prepare-unfinished", P, lambda c: (_file(c, "out/raw/train.en"), _prepare(c))[1], ["unfinished", "--overwrite"]),
    # scripts/evaluate_bleu.py
    ("bleu-missing-output", E, lambda c: _evaluate_inputs(c)[:1] + [c.tmp / "none"] + _evaluate_inputs(c)[2:],
     ["--generate-output", "not found"]),
    ("bleu-missing-reference", E, lambda c: _evaluate_inputs(c)[:3] + [c.tmp / "none"] + _evaluate_inputs(c)[4:],
     ["--reference", "not found"]),
    ("bleu-no-hypotheses", E, lambda c: _evaluate_inputs(c, gen="S-0\tA dog\n"), ["no hypotheses"]),
    ("bleu-ids-beyond-references", E, lambda c: _evaluate_inputs(c, refs="Un chien\n"), ["has 1 lines"]),
    ("bleu-malformed-output", E, lambda c: _evaluate_inputs(c, gen="H-x\t-0.1\tUn\n"), ["not a fairseq-generate"]),
    ("bleu-hypotheses-out-exists", E, lambda c: _evaluate_inputs(c) + ["--hypotheses-out", _file(c, "hyp.fr")],
     ["hyp.fr exists", "--overwrite"]),
    ("bleu-hypotheses-out-is-reference", E,
     lambda c: _evaluate_inputs(c) + ["--hypotheses-out", c.tmp / "ref.fr", "--overwrite"], ["is also an input"]),
    ("bleu-no-lang", E, lambda c: _evaluate_inputs(c)[:4], ["--lang"]),
    # fairseq-interp heads: no overwrite, options it cannot honour refused, counts checked (before any loading)
    ("heads-json-exists", H, lambda c: _heads(c, "--results-path", _file(c, "out/heads.json").parent),
     ["heads.json exists", "--overwrite"]),
    ("heads-grid-exists", H, lambda c: _heads(c, "--results-path", _file(c, "out/heads-cross.png")),
     ["heads-cross.png exists", "--overwrite"]),
    ("heads-results-path-is-a-file", H, lambda c: _heads(c, "--results-path", c.records("f.jsonl")),
     ["is a file, not a folder"]),
    ("heads-shard-exists", H, lambda c: _heads(c, "--num-shards", "2", "--shard-id", "1", "--results-path",
                                               _file(c, "out/heads.shard1-of-2.json").parent),
     ["heads.shard1-of-2.json exists", "--overwrite"]),
    ("heads-shard-id-too-large", H, lambda c: _heads(c, "--num-shards", "2", "--shard-id", "5"), ["--shard-id 5"]),
    ("heads-max-tokens-0", H, lambda c: _heads(c, "--max-tokens", "0"), ["--max-tokens 0"]),
    ("heads-merge-no-folder", V, lambda c: ["heads-merge", c.tmp / "none"], ["is not a folder"]),
    ("heads-merge-no-shards", V, lambda c: ["heads-merge", _file(c, "out/heads.json").parent],
     ["holds no heads.shard<I>-of-<N>.json", "--num-shards N --shard-id I"]),
    ("heads-merge-missing-shard", V, lambda c: ["heads-merge", _file(c, "out/heads.shard0-of-2.json").parent],
     ["shard 1 of 2 is missing", "--shard-id 1"]),
    ("heads-merge-two-splittings", V, lambda c: ["heads-merge", (_file(c, "out/heads.shard0-of-2.json"),
                                                                 _file(c, "out/heads.shard0-of-3.json"))[0].parent],
     ["several splittings"]),
    ("heads-merge-damaged-shard", V, lambda c: ["heads-merge", (_file(c, "out/heads.shard0-of-2.json", "{"),
                                                                _file(c, "out/heads.shard1-of-2.json"))[0].parent],
     ["heads.shard0-of-2.json is not readable JSON"]),
    ("heads-merge-not-a-report", V, lambda c: ["heads-merge", (_file(c, "out/heads.shard0-of-2.json", "[]"),
                                                               _file(c, "out/heads.shard1-of-2.json", "[]"))[0].parent],
     ["is not a heads.json"]),
    ("heads-negative-num-sentences", H, lambda c: _heads(c, "--num-sentences", "-4"),
     ["--num-sentences -4", ">= 0"]),
    ("heads-relevance-batch-0", H, lambda c: _heads(c, "--relevance-batch", "0"), ["--relevance-batch 0"]),
    ("heads-beam-0", H, lambda c: _heads(c, "--beam", "0"), ["--beam 0"]),
    ("heads-nbest", H, lambda c: _heads(c, "--beam", "2", "--nbest", "2"), ["--nbest 2", "best hypothesis only"]),
    ("heads-threshold-above-1", H, lambda c: _heads(c, "--positional-threshold", "1.5"),
     ["--positional-threshold 1.5"]),
    # fairseq-interp prune-export / neurons / lca-plot / probes: no overwrite without --overwrite, never an input
    ("prune-export-out-exists", V, lambda c: ["prune-export", "--path", c.records("g.pt"), "--out",
                                              _file(c, "pruned.pt")], ["pruned.pt exists", "--overwrite"]),
    ("prune-export-out-is-path", V, lambda c: ["prune-export", "--path", c.records("g.pt"), "--out", c.tmp / "g.pt",
                                               "--overwrite"], ["is also an input"]),
    ("importance-out-exists", V, lambda c: _neurons(c, "importance", "--out", _file(c, "imp.pt")),
     ["imp.pt exists", "--overwrite"]),
    ("importance-out-in-data", V, lambda c: _neurons(c, "importance", "--out", _file(c, "data/dict.en.txt"),
                                                     "--overwrite"), ["is also an input"]),
    ("importance-negative-num-sentences", V, lambda c: _neurons(c, "importance", "--num-sentences", "-4", "--out",
                                                                c.out / "imp.pt"), ["--num-sentences -4"]),
    ("allocate-out-exists", V, lambda c: _allocate(c, "--out", _file(c, "masks.pt")), ["masks.pt exists"]),
    ("allocate-plot-exists", V, lambda c: _allocate(c, "--out", c.out / "m.pt", "--plot", _file(c, "f3.png")
                                                    / "f3.png"), ["f3.png exists", "--overwrite"]),
    ("allocate-curves-exist", V, lambda c: _allocate(c, "--out", c.out / "m.pt", "--plot-importance",
                                                     _file(c, "f2.txt")), ["f2.txt exists"]),
    ("allocate-out-is-importance", V, lambda c: _allocate(c, "--out", c.tmp / "imp.pt", "--overwrite"),
     ["is also an input"]),
    ("allocate-out-is-plot", V, lambda c: _allocate(c, "--out", c.out / "m.pt", "--plot", c.out / "m.pt"),
     ["--out and --plot both name"]),
    ("allocate-rho-above-1", V, lambda c: _allocate(c, "--rho", "2", "--out", _file(c, "masks.pt")),
     ["rho must be in [0, 1]"]),
    ("allocate-importance-not-torch", V, lambda c: _allocate(c, "--out", c.out / "m.pt"),
     ["importance file", "not a readable torch file", "fairseq-interp neurons importance"]),
    ("allocate-importance-malicious", V, lambda c: ["neurons", "allocate", c.torch_file({"x": Payload()}), "--out",
                                                    c.out / "m.pt"], ["safe loader refuses", "system"]),
    ("allocate-importance-foreign", V, lambda c: ["neurons", "allocate", c.torch_file({"x": 1}), "--out",
                                                  c.out / "m.pt"], ["is not a neuron importance file"]),
    ("neurons-no-step", V, lambda c: ["neurons"], ["no step given", "importance, allocate, erase"]),
    ("perturbation-negative-num-sentences", V, lambda c: ["perturbation", c.data, "--path", c.ckpt, "--out", c.out,
                                                          "--num-sentences", "-3"], ["--num-sentences -3", ">= 0"]),
    ("perturbation-repeats-0", V, lambda c: ["perturbation", c.data, "--path", c.ckpt, "--out", c.out, "--repeats",
                                             "0"], ["--repeats 0"]),
    ("undertranslation-beam-0", V, lambda c: ["undertranslation", c.data, "--path", c.ckpt, "--out", c.out,
                                              "--labels", "omission", "--beam", "0"], ["--beam 0"]),
    ("aer-ig-steps-0", V, lambda c: ["aer", "--data", c.data, "--path", c.ckpt, "--out", c.out, "--ig-steps", "0"],
     ["--ig-steps 0"]),
    ("regression-trees-0", V, lambda c: ["importance-regression", c.records(), "--train-src", c.records("s.txt"),
                                         "--train-tgt", c.records("t.txt"), "--trees", "0"], ["--trees 0"]),
    ("erase-results-exist", V, lambda c: _erase(c, _file(c, "out/erasure.md").parent), ["erasure.md exists"]),
    ("erase-translations-exist", V, lambda c: _erase(c, _file(c, "out/translations/none/en-fr.txt").parents[2]),
     ["translations exists", "--overwrite"]),
    ("erase-beam-0", V, lambda c: _erase(c, c.out, "--beam", "0"), ["--beam 0"]),
    ("erase-negative-num-sentences", V, lambda c: _erase(c, c.out, "--num-sentences", "-1"), ["--num-sentences -1"]),
    ("expand-out-exists", V, lambda c: ["neurons", "expand", "--path", c.records("b.pt"), "--ffn-dim", "8", "--out",
                                        _file(c, "wide.pt")], ["wide.pt exists", "--overwrite"]),
    ("expand-out-is-path", V, lambda c: ["neurons", "expand", "--path", c.records("b.pt"), "--ffn-dim", "8", "--out",
                                         c.tmp / "b.pt", "--force"], ["is also an input"]),
    ("expand-ffn-dim-0", V, lambda c: ["neurons", "expand", "--path", c.records("b.pt"), "--ffn-dim", "0", "--out",
                                       c.out / "w.pt"], ["--ffn-dim 0"]),
    ("lca-plot-figure-exists", V, lambda c: ["lca-plot", c.records("lca.jsonl"), "--plot-dir",
                                             _file(c, "figs/figure3-layers.png")], ["figure3-layers.png exists"]),
    ("lca-plot-results-path-is-input", V, lambda c: ["lca-plot", c.records("lca.jsonl"), "--plot-dir", c.out,
                                                     "--results-path", c.tmp / "lca.jsonl", "--overwrite"],
     ["is also an input"]),
    ("lca-plot-results-path-exists", V, lambda c: ["lca-plot", c.records("lca.jsonl"), "--plot-dir", c.out,
                                                   "--results-path", _file(c, "values.json")], ["values.json exists"]),
    ("lca-plot-empty-file", V, lambda c: ["lca-plot", _file(c, "lca.jsonl", ""), "--results-path", c.out],
     ["lca.jsonl is empty", "translation_lca"]),
    ("lca-plot-header-only", V, lambda c: ["lca-plot", _file(c, "lca.jsonl", json.dumps(
        {"type": "header", "format": "fairseq-interp-lca/1"}) + "\n"), "--results-path", c.out],
     ["holds no interval records yet"]),
    ("lca-plot-no-results-path", V, lambda c: ["lca-plot", c.records("lca.jsonl")], ["--results-path is required"]),
    ("lca-plot-provenance-exists", V, lambda c: ["lca-plot", c.records("lca.jsonl"), "--results-path",
                                                 _file(c, "figs/provenance.json").parent], ["provenance.json exists"]),
    ("lca-plot-out-is-input", V, lambda c: ["lca-plot", c.records("lca.jsonl"), "--results-path", c.out, "--out",
                                            c.tmp / "lca.jsonl", "--overwrite"], ["is also an input"]),
    ("probes-results-exist", V, lambda c: ["probes", "--path", c.records("m.pt"), "--results-path",
                                           _file(c, "out/probes.md").parent], ["probes.md exists", "--overwrite"]),
    ("probes-negative-num-sentences", V, lambda c: ["probes", "--path", c.records("m.pt"), "--num-sentences", "-2",
                                                    "--results-path", c.out], ["--num-sentences -2"]),
    ("probes-proxy-lr-0", V, lambda c: ["probes", "--path", c.records("m.pt"), "--proxy-lr", "0", "--results-path",
                                        c.out], ["--proxy-lr 0", "> 0"]),
    # word importance: empty record files, the evaluation commands' output folder, batching and sharding
    ("view-empty-jsonl", V, lambda c: ["view", c.records(records=[])], ["r.jsonl holds no attribution records"]),
    ("html-empty-jsonl", V, lambda c: ["html", c.records(records=[]), "--out", c.out / "p.html"],
     ["holds no attribution records"]),
    ("plot-empty-jsonl", V, lambda c: ["plot", c.records(records=[]), "--results-path", c.out],
     ["holds no attribution records"]),
    ("plot-no-results-path", V, lambda c: ["plot", c.records()], ["--results-path is required"]),
    ("plot-no-matrix", V, lambda c: ["plot", c.records(records=[dict(record(0), word_contributions=None)]),
                                     "--results-path", c.out], ["has word_contributions"]),
    ("merge-records-free-shards", V, lambda c: ["merge", _empty_shards(c.out)], ["hold no attribution records",
                                                                              "nothing to merge"]),
    ("perturbation-no-results-path", V, lambda c: ["perturbation", c.data, "--path", c.ckpt],
     ["--results-path is required"]),
    ("perturbation-results-path-is-a-file", V, lambda c: ["perturbation", c.data, "--path", c.ckpt, "--results-path",
                                                          c.records("f.jsonl")], ["is a file, not a folder"]),
    ("perturbation-old-out-name", V, lambda c: ["perturbation", c.data, "--path", c.ckpt, "--out",
                                                c.records("f.jsonl")], ["--results-path", "is a file, not a folder"]),
    ("perturbation-shards", V, lambda c: ["perturbation", c.data, "--path", c.ckpt, "--results-path", c.out,
                                          "--num-shards", "2"], ["--num-shards 2 is not supported",
                                                                 "drop --num-shards/--shard-id"]),
    ("perturbation-max-tokens-0", V, lambda c: ["perturbation", c.data, "--path", c.ckpt, "--results-path", c.out,
                                                "--max-tokens", "0"], ["--max-tokens 0"]),
    ("perturbation-log-interval-0", V, lambda c: ["perturbation", c.data, "--path", c.ckpt, "--results-path", c.out,
                                                  "--log-interval", "0"], ["--log-interval 0"]),
    ("undertranslation-no-results-path", V, lambda c: ["undertranslation", c.data, "--path", c.ckpt, "--labels",
                                                       "omission"], ["needs --results-path"]),
    ("undertranslation-shards", V, lambda c: ["undertranslation", c.data, "--path", c.ckpt, "--results-path", c.out,
                                              "--labels", "omission", "--num-shards", "3", "--shard-id", "1"],
     ["--num-shards 3 is not supported"]),
    ("aer-shard-id-too-large", V, lambda c: ["aer", "--data", c.data, "--path", c.ckpt, "--results-path", c.out,
                                             "--num-shards", "2", "--shard-id", "2"], ["--shard-id 2", "from 0 to 1"]),
    ("aer-unknown-method", V, lambda c: ["aer", "--data", c.data, "--path", c.ckpt, "--results-path", c.out,
                                         "--methods", "ig,nosuch"], ["unknown method 'nosuch'"]),
    ("undertranslation-empty-annotations", V, lambda c: ["undertranslation", "--annotations", _file(c, "a.tsv", ""),
                                                         "--records", f"ig={c.records()}"], ["annotates no sentence"]),
    ("undertranslation-empty-records", V, lambda c: ["undertranslation", "--annotations", _file(c, "a.tsv", "0\t1\n"),
                                                     "--records", f"ig={c.records(records=[])}"],
     ["r.jsonl holds no attribution records"]),
    ("pos-empty-jsonl", V, lambda c: ["pos", c.records(records=[])], ["holds no attribution records"]),
    # fairseq-interp probes: sharding, batching, ranges, the results folder, a file that is no checkpoint
    ("probes-sharded", V, lambda c: ["probes", "--path", c.records("m.pt"), "--num-shards", "2", "--shard-id", "1",
                                     "--results-path", c.out], ["--num-shards 2", "cannot be merged"]),
    ("probes-shard-id-too-large", V, lambda c: ["probes", "--path", c.records("m.pt"), "--num-shards", "2",
                                                "--shard-id", "2", "--results-path", c.out], ["--shard-id 2"]),
    ("probes-max-tokens-0", V, lambda c: ["probes", "--path", c.records("m.pt"), "--max-tokens", "0",
                                          "--results-path", c.out], ["--max-tokens 0", ">= 1"]),
    ("probes-batch-size-0", V, lambda c: ["probes", "--path", c.records("m.pt"), "--batch-size", "0",
                                          "--results-path", c.out], ["--batch-size 0", ">= 1"]),
    ("probes-top-0", V, lambda c: ["probes", "--path", c.records("m.pt"), "--top", "0", "--results-path", c.out],
     ["--top 0", "(0, 1]"]),
    ("probes-top-above-1", V, lambda c: ["probes", "--path", c.records("m.pt"), "--top", "1.5", "--results-path",
                                         c.out], ["--top 1.5", "(0, 1]"]),
    ("probes-log-interval-0", V, lambda c: ["probes", "--path", c.records("m.pt"), "--log-interval", "0",
                                            "--results-path", c.out], ["--log-interval 0", ">= 1"]),
    ("probes-negative-ibm1-iterations", V, lambda c: ["probes", "--path", c.records("m.pt"), "--ibm1-iterations",
                                                      "-1", "--results-path", c.out], ["--ibm1-iterations -1"]),
    ("probes-proxy-dim-0", V, lambda c: ["probes", "--path", c.records("m.pt"), "--proxy-dim", "0",
                                         "--results-path", c.out], ["--proxy-dim 0", ">= 1"]),
    ("probes-along-training-alone", V, lambda c: ["probes", "--path", c.records("m.pt"), "--along-training",
                                                  "--results-path", c.out], ["pass --second-seed-path"]),
    ("probes-old-subset-name-bad-count", V, lambda c: ["probes", "--path", c.records("m.pt"), "--subset", "valid",
                                                       "--num-sentences", "-1", "--results-path", c.out],
     ["--num-sentences -1"]),
    ("probes-results-path-is-file", V, lambda c: ["probes", "--path", c.records("m.pt"), "--results-path",
                                                  _file(c, "taken")], ["is a file"]),
    ("probes-not-a-checkpoint", V, lambda c: ["probes", "--path", c.records("m.pt"), "--results-path", c.out],
     ["m.pt", "pass a checkpoint written by fairseq-train"]),
]


def _empty_shards(folder):
    """Two shards whose plans name no sentence (more shards than sentences): complete, and empty."""
    write_shards(folder, skip=(0, 1))
    for shard in (0, 1):
        name = f"attributions.shard{shard}-of-2"
        (folder / f"{name}.plan.json").write_text(json.dumps({"num_shards": 2, "shard_id": shard, "ids": [],
                                                              "skipped": []}), encoding="utf-8")
        (folder / f"{name}.jsonl").write_text("", encoding="utf-8")
        (folder / f"{name}.provenance.json").write_text(json.dumps(provenance()), encoding="utf-8")
    return folder


def _heads(ctx, *extra, data=None):
    argv = [data or ctx.data, "--user-dir", PLUGIN, "--path", ctx.ckpt, "--cpu", "--beam", "1", "--gen-subset",
            "valid", "--num-sentences", "2"]
    return argv + (list(extra) if "--results-path" in extra else [*extra, "--results-path", ctx.out])


def _neurons(ctx, step, *extra):
    return ["neurons", step, ctx.data, "--path", ctx.ckpt, "--pairs", "en-fr", *extra]


def _allocate(ctx, *extra):
    return ["neurons", "allocate", ctx.records("imp.pt"), *extra]


def _erase(ctx, out_dir, *extra):
    return ["neurons", "erase", ctx.data, "--path", ctx.ckpt, "--references", ctx.tmp / "ref.{tgt}", "--results-path",
            out_dir, *extra]


def _file(ctx, rel, text="old"):
    path = ctx.tmp / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path.parent if rel.endswith(".png") else path


def _bytes(ctx, data):
    path = ctx.tmp / "bytes.jsonl"
    path.write_bytes(data)
    return path


def _corrupt(folder, name):
    path = folder / name
    path.write_text("{not json\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def _remove(folder, name):
    (folder / name).unlink()
    return folder


def _case_id(case):
    return case.values[0][0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize("case", FAST_CASES, ids=lambda case: case[0])
def test_bad_input(case, tmp_path, capsys):
    name, command, build, phrases = case
    (tmp_path / "data").mkdir()
    ctx = Ctx(tmp_path, tmp_path / "data", tmp_path / "ckpt.pt")
    ctx.release = lambda: None
    try:
        argv = build(ctx)
        assert_refused(command, argv, phrases, tmp_path, capsys)
    finally:
        ctx.release()
        if (tmp_path / "ro").exists():
            os.chmod(tmp_path / "ro", 0o755)


def test_the_battery_is_large_enough():
    slow = len(MODEL_CASES) + len(OTHER_MODEL_CASES)
    assert len(FAST_CASES) + slow >= 40 and len({_case_id(c) for c in FAST_CASES}) == len(FAST_CASES)


# ---- cases that load the session's tiny checkpoint ---------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_data(data_dir, tmp_path_factory):
    """Binarized with the training dictionaries: a test split with an empty source (id 1) and a source longer
    than the tiny models' 64 positions (id 2); a valid split whose reference 1 is longer than 64 positions."""
    out = tmp_path_factory.mktemp("bad-data")
    dog, chien = "\u2581A \u2581dog \u2581.", "\u2581Un \u2581chien \u2581."
    splits = {"test": ([dog, "", " ".join(["\u2581dog"] * 80)], [chien, chien, chien]),
              "valid": ([dog, dog], [chien, " ".join(["\u2581chien"] * 80)])}
    for split, (src, tgt) in splits.items():
        (out / f"{split}.en").write_text("\n".join(src) + "\n", encoding="utf-8")
        (out / f"{split}.fr").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    run(["fairseq-preprocess", "--source-lang", "en", "--target-lang", "fr", "--testpref", str(out / "test"),
         "--validpref", str(out / "valid"),
         "--destdir", str(out / "bin"), "--srcdict", str(data_dir / "bin" / "dict.en.txt"),
         "--tgtdict", str(data_dir / "bin" / "dict.fr.txt")])
    return out / "bin"


@pytest.fixture(scope="module")
def finished_run(data_dir, transformer_ckpt, tmp_path_factory):
    """The results folder of one small finished fairseq-interpret run (copied into cases that continue it)."""
    from fairseq_interp.word_importance.interpret import cli_main

    folder = tmp_path_factory.mktemp("finished") / "res"
    cli_main([str(a) for a in Ctx(folder.parent, data_dir / "bin", transformer_ckpt).interpret(
        "--num-sentences", "2", "--ig-steps", "4", results=folder)])
    return folder


def _copy_results(ctx):
    shutil.copytree(ctx.results, ctx.out)
    return ctx.out


def _resume_with(*extra):
    return lambda c: (_copy_results(c), c.interpret("--num-sentences", "2", "--ig-steps", "4", "--resume", *extra))[1]


def _changed_checkpoint(ctx, change):
    state = torch.load(ctx.ckpt, weights_only=False)
    change(state)
    path = ctx.tmp / "changed.pt"
    torch.save(state, path)
    return path


def _set_first_weight(value):
    def change(state):
        name = next(k for k in state["model"] if k.endswith("layers.0.fc1.weight"))
        state["model"][name][0, 0] = value
    return change


def _with_arch(arch):
    def change(state):
        model_cfg = state["cfg"]["model"]
        if isinstance(model_cfg, dict):
            model_cfg["_name"] = arch
        else:
            model_cfg.arch = model_cfg._name = arch
    return change


def _data_copy(ctx, edit):
    folder = ctx.tmp / "data-copy"
    shutil.copytree(ctx.data, folder)
    edit(folder)
    return folder


def _swap_dictionary_lines(folder):
    for lang in ("en", "fr"):
        path = folder / f"dict.{lang}.txt"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        lines[10], lines[11] = lines[11], lines[10]
        path.write_text("".join(lines), encoding="utf-8")


def _rename_pair(folder):
    """The same files, named as an en-de set: another language pair."""
    for name in os.listdir(folder):
        if "fr" in name:
            os.replace(folder / name, folder / name.replace("en-fr", "en-de").replace(".fr.", ".de."))


def _truncate(name, size):
    def edit(folder):
        os.truncate(folder / name, size)
    return edit


def _damage_middle_record(ctx):
    path = _copy_results(ctx) / "attributions.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(lines[0][:40] + "\n" + "".join(lines[1:]), encoding="utf-8")


#: cases that need the trained tiny checkpoint and real data
MODEL_CASES = [
    ("nan-weights", lambda c: c.interpret(ckpt=_changed_checkpoint(c, _set_first_weight(float("nan")))),
     ["non-finite weights", "layers.0.fc1.weight holds NaN"]),
    ("inf-weights", lambda c: c.interpret(ckpt=_changed_checkpoint(c, _set_first_weight(float("inf")))),
     ["holds infinite values"]),
    ("unregistered-architecture", lambda c: c.interpret(ckpt=_changed_checkpoint(c, _with_arch("someone_elses"))),
     ["someone_elses", "--user-dir"]),
    ("language-model-checkpoint", lambda c: c.interpret(ckpt=_changed_checkpoint(c, _with_arch("transformer_lm"))),
     ["cannot attribute", "encoder-decoder"]),
    ("resume-other-method", _resume_with("--attribution", "attention"),
     ["options.attribution is \"ig\" there, \"attention\" here"]),
    ("resume-other-steps", _resume_with("--ig-steps", "16"), ["options.ig_steps is 4 there, 16 here"]),
    ("resume-other-beam", _resume_with("--beam", "3"), ["options.generation.beam is 2 there, 3 here"]),
    ("resume-other-checkpoint", lambda c: (_copy_results(c), c.interpret(
        "--num-sentences", "2", "--ig-steps", "4", "--resume", ckpt=_changed_checkpoint(c, _set_first_weight(0.5))))[1],
     ["checkpoint.weights_sha256"]),
    ("resume-other-split", _resume_with("--gen-subset", "valid"), ["data.split"]),
    ("resume-with-raw-text", lambda c: (_copy_results(c), _file(c, "in.txt", "\u2581A \u2581dog \u2581.\n"), c.interpret(
        "--num-sentences", "2", "--ig-steps", "4", "--resume", "--input", c.tmp / "in.txt"))[2],
     ["data.input_file_sha256 is null there"]),
    ("resume-damaged-record", lambda c: (_damage_middle_record(c), c.interpret(
        "--num-sentences", "2", "--ig-steps", "4", "--resume"))[1], ["attributions.jsonl, line 1: not a JSON record"]),
    ("resume-without-provenance", lambda c: (_remove(_copy_results(c), "attributions.provenance.json"), c.interpret(
        "--num-sentences", "2", "--ig-steps", "4", "--resume"))[1], ["has no provenance file", "--overwrite"]),
    ("resume-damaged-provenance", lambda c: (_corrupt(_copy_results(c), "attributions.provenance.json"), c.interpret(
        "--num-sentences", "2", "--ig-steps", "4", "--resume"))[1], ["not a readable provenance file"]),
    ("existing-results", lambda c: (_copy_results(c), c.interpret("--num-sentences", "2", "--ig-steps", "4"))[1],
     ["already holds results", "--resume", "--overwrite"]),
    ("concurrent-run", lambda c: (_copy_results(c), _held_lock(c, c.out, "attributions.jsonl"),
                                  c.interpret("--num-sentences", "2", "--ig-steps", "4", "--resume"))[2],
     ["another fairseq-interpret (pid", "is writing attributions.jsonl"]),
    ("reversed-pair", lambda c: c.interpret("--source-lang", "fr", "--target-lang", "en"),
     ["translates en->fr", "--source-lang en --target-lang fr", "--allow-data-mismatch"]),
    ("same-size-other-dictionary", lambda c: c.interpret(data=_data_copy(c, _swap_dictionary_lines)),
     ["source dictionary differs", "symbol 14", "--allow-data-mismatch"]),
    ("other-language-pair", lambda c: c.interpret(data=_data_copy(c, _rename_pair)),
     ["translates en->fr", "reads en->de"]),
    ("pair-not-in-data", lambda c: c.interpret("--source-lang", "en", "--target-lang", "de"),
     ["no dictionary for language 'de' (it has en, fr)"]),
    ("one-language-given", lambda c: c.interpret("--source-lang", "de"), ["only one of", "pass both"]),
    ("empty-source", lambda c: c.interpret("--num-sentences", "2", data=c.bad), ["empty source", "id 1",
                                                                                "--skip-empty-sources"]),
    ("source-too-long", lambda c: c.interpret("--num-sentences", "3", "--skip-empty-sources", data=c.bad),
     ["sentence 2", "64 positions", "--skip-invalid-size-inputs-valid-test"]),
    ("reference-too-long", lambda c: c.interpret("--gen-subset", "valid", data=c.bad),
     ["sentence 1 of valid has a reference of 81 tokens", "64 target positions"]),
    ("max-tokens-below-a-sentence", lambda c: c.interpret("--max-tokens", "5"),
     ["more than --max-tokens 5", "pass a larger --max-tokens"]),
    ("truncated-binarized-data", lambda c: c.interpret(data=_data_copy(c, _truncate("test.en-fr.en.bin", 100))),
     ["the binarized split test", "is damaged", "has 100 bytes", "rerun fairseq-preprocess"]),
    ("truncated-index", lambda c: c.interpret(data=_data_copy(c, _truncate("test.en-fr.fr.idx", 10))),
     ["test.en-fr.fr.idx: truncated header"]),
    ("split-not-there", lambda c: c.interpret("--gen-subset", "nosuch"), ["--gen-subset"]),
    ("plot-dir-holds-heatmaps", lambda c: c.interpret("--plot-dir", _file(c, "plots/sentence-0.png")),
     ["sentence-0.png", "--overwrite"]),
    ("html-exists", lambda c: c.interpret("--html", _file(c, "page.html")), ["page.html exists", "--overwrite"]),
    ("html-is-a-data-file", lambda c: c.interpret("--html", c.tmp / "data-copy" / "dict.en.txt", "--overwrite",
                                                  data=_data_copy(c, lambda folder: None)),
     ["dict.en.txt is also an input"]),
    ("html-is-the-checkpoint", lambda c: c.interpret("--html", c.ckpt_copy(), "--overwrite",
                                                     ckpt=c.tmp / "ckpt.pt"), ["is also an input"]),
]


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c[0])
def test_bad_input_with_model(case, data_dir, transformer_ckpt, bad_data, finished_run, tmp_path, capsys):
    name, build, phrases = case
    ctx = Ctx(tmp_path, data_dir / "bin", transformer_ckpt, results=finished_run)
    ctx.bad = bad_data
    ctx.release = lambda: None

    def ckpt_copy():
        shutil.copy(transformer_ckpt, tmp_path / "ckpt.pt")
        return tmp_path / "ckpt.pt"

    ctx.ckpt_copy = ckpt_copy
    try:
        argv = build(ctx)
        assert_refused(I, argv, phrases, tmp_path, capsys)
    finally:
        ctx.release()


#: other commands that load the tiny checkpoint: (case id, command, argv builder, phrases)
OTHER_MODEL_CASES = [
    ("heads-reversed-pair", H, lambda c: _heads(c, "-s", "fr", "-t", "en"),
     ["translates en->fr", "reads fr->en", "--source-lang en --target-lang fr", "--allow-data-mismatch"]),
    ("heads-other-dictionary", H, lambda c: _heads(c, data=_data_copy(c, _swap_dictionary_lines)),
     ["source dictionary differs", "symbol 14"]),
    ("importance-reversed-pair", V, lambda c: _neurons(c, "importance")[:6]
     + ["fr-en", "--num-sentences", "2", "--train-subset", "valid", "--out", c.out / "imp.pt"],
     ["translates en->fr", "reads fr->en", "pass --pairs en-fr"]),
    # word importance: the evaluation commands check the data against the checkpoint before anything runs
    ("perturbation-other-language-pair", V, lambda c: ["perturbation", _data_copy(c, _rename_pair), "--path", c.ckpt,
                                                       "--results-path", c.out, "--methods", "random",
                                                       "--perturbations", "deletion", "--num-sentences", "2"],
     ["translates en->fr", "reads en->de", "DATA of the pair en-fr", "--allow-data-mismatch"]),
    ("perturbation-other-dictionary", V, lambda c: ["perturbation", _data_copy(c, _swap_dictionary_lines), "--path",
                                                    c.ckpt, "--results-path", c.out, "--methods", "random"],
     ["source dictionary differs", "symbol 14"]),
    ("undertranslation-other-language-pair", V, lambda c: ["undertranslation", _data_copy(c, _rename_pair), "--path",
                                                           c.ckpt, "--results-path", c.out, "--labels", "omission",
                                                           "--methods", "attention", "--num-sentences", "2"],
     ["translates en->fr", "reads en->de", "--allow-data-mismatch"]),
    ("aer-other-language-pair", V, lambda c: ["aer", "--data", _data_copy(c, _rename_pair), "--path", c.ckpt,
                                              "--results-path", c.out, "--num-sentences", "2"],
     ["no dict.fr.txt", "English-French"]),
    ("aer-other-dictionary", V, lambda c: ["aer", "--data", _data_copy(c, _swap_dictionary_lines), "--path", c.ckpt,
                                           "--results-path", c.out, "--num-sentences", "2"],
     ["source dictionary differs", "--allow-data-mismatch"]),
    ("perturbation-max-tokens-below-a-sentence", V, lambda c: ["perturbation", c.data, "--path", c.ckpt,
                                                               "--results-path", c.out, "--methods", "random",
                                                               "--perturbations", "deletion", "--max-tokens", "5"],
     ["should not exceed max_tokens=5", "pass a larger --max-tokens"]),
]


@pytest.mark.parametrize("case", OTHER_MODEL_CASES, ids=lambda c: c[0])
def test_other_commands_with_model(case, data_dir, transformer_ckpt, tmp_path, capsys):
    name, command, build, phrases = case
    ctx = Ctx(tmp_path, data_dir / "bin", transformer_ckpt)
    assert_refused(command, build(ctx), phrases, tmp_path, capsys)


# ---- the plugin's errors inside fairseq's own commands (fairseq-train --user-dir ...) ---------------------------

def test_plugin_error_in_a_foreign_command_is_one_line(tmp_path):
    """An InterpretError reaching the top of a command the plugin does not wrap: one line, exit code 2; any
    other exception keeps its traceback."""
    import sys

    code = ("import sys; sys.argv[0] = 'fairseq-train'; import fairseq_interp; "
            "from fairseq_interp.common.errors import InterpretError; raise {}('the fix')")
    proc = run([sys.executable, "-c", code.format("InterpretError")], check=False, cwd=str(tmp_path))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and lines[-1] == "fairseq-train: error: the fix"
    proc = run([sys.executable, "-c", code.format("ValueError")], check=False, cwd=str(tmp_path))
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ValueError: the fix" in proc.stderr


@pytest.mark.slow
def test_fairseq_train_with_a_bad_mask_file(data_dir, tmp_path):
    (tmp_path / "masks.pt").write_text("not a mask file", encoding="utf-8")
    before = snapshot(tmp_path)
    proc = run(["fairseq-train", str(data_dir / "bin"), "--user-dir", PLUGIN, "--arch", "transformer_neuron_masked",
                "--neuron-masks", str(tmp_path / "masks.pt"), "--task", "translation", "--max-update", "1",
                "--max-tokens", "500", "--optimizer", "adam", "--lr", "1e-3", "--cpu", "--no-save",
                "--save-dir", str(tmp_path / "ckpt")], check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines[-1].startswith("fairseq-train: error: mask file") and "neurons allocate" in lines[-1]
    after = snapshot(tmp_path)
    assert after.pop("ckpt") == ("dir",) and after == before  # fairseq-train itself makes the empty --save-dir first


def test_a_failed_step_of_a_driver_is_one_line(tmp_path):
    """A driver's failed step (``fairseq_runs.run``): one line naming the step, its exit code, its last stderr line
    and the file holding its whole output (a traceback of the step stays in that file)."""
    import sys

    from fairseq_interp.common.errors import InterpretError
    from fairseq_interp.common.fairseq_runs import run as run_step

    step = [sys.executable, "-c", "import sys; print('Traceback (most recent call last):', file=sys.stderr); "
                                  "print('ValueError: the cause', file=sys.stderr); sys.exit(3)"]
    for log in (str(tmp_path / "step.log"), None):
        with pytest.raises(InterpretError) as failure:
            run_step(step, log=log)
        message = str(failure.value)
        assert "\n" not in message and "Traceback" not in message and "failed (exit 3): ValueError: the cause" in message
        saved = message.rsplit("(its whole output: ", 1)[1].rstrip(")")
        assert (saved == log if log else True) and "Traceback" in open(saved, encoding="utf-8").read()
        if not log:
            os.unlink(saved)
