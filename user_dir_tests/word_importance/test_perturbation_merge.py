"""``fairseq-interp perturbation-merge``: parts of a perturbation run split by --methods/--perturbations, joined into
the folder the whole run would have written, which ``--resume`` continues; every refusal is one line and leaves the
output folder unmade. Fake runs here; one end-to-end run on the tiny model."""

import argparse
import json
import shlex

import pytest

from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.jsonl import JsonlWriter, read_records
from fairseq_interp.word_importance.evaluation import perturbation_curves as curves

#: the sentences of the fake runs, as their none/0 lists them
SENTENCE_IDS = [0, 2, 3, 5]
#: a fake run's command line (the options its provenance keeps)
ARGV = ["/data/bin", "--path", "/ckpt.pt", "--results-path", "unused", "--num-sentences", "6", "--repeats", "3",
        "--beam", "1", "--max-len-b", "12", "--max-k", "2"]


def options():
    """The ``options`` section of a fake run's provenance, as :func:`run_provenance` builds it from :data:`ARGV`."""
    parser = curves.add_arguments(argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(ARGV)
    args.min_words = args.max_k  # as check_options sets it
    names = {action.dest for action in parser._actions} - curves.RECORD_NEUTRAL_OPTIONS
    return {name: getattr(args, name) for name in sorted(names)}


def provenance(weights="w", folder="run"):
    return {"format": curves.RUN_FORMAT, "checkpoint": {"path": "/ckpt.pt", "weights_sha256": weights},
            "data": {"path": "/data/bin", "split": "test", "target_lang": "fr", "split_sha256": "s"},
            "options": options(), "versions": {"fairseq_interp": "1"}, "run": {"argv": [folder]}}


def repeats_of(method):
    return 3 if method in ("random", "content") else 1


def cell(method, perturbation, k):
    """A cell's record: its values depend only on the cell, as the records of a real part do."""
    bleus = [40.0 - 3 * k - len(method) - len(perturbation) / 7 - r / 3 for r in range(repeats_of(method))]
    return {"id": f"{method}/{perturbation}/{k}", "method": method, "perturbation": perturbation, "k": k,
            "bleu": sum(bleus) / len(bleus), "bleu_std": 0.0, "bleus": bleus, "repeats": repeats_of(method),
            "sentences": len(SENTENCE_IDS), "hypotheses": [f"{method} {perturbation} {k} {i}" for i in SENTENCE_IDS]}


def unperturbed(bleu=41.5):
    return {"id": "none/0", "method": "none", "perturbation": "none", "k": 0, "bleu": bleu, "bleu_std": 0.0,
            "repeats": 1, "sentences": len(SENTENCE_IDS), "signature": "nrefs:1|case:mixed",
            "sentence_ids": SENTENCE_IDS, "hypotheses": [f"le chat {i}" for i in SENTENCE_IDS]}


def importance(method, repeat, sid):
    return {"id": sid, "word_importance": [(sid + repeat + len(method)) % 5 / 10, 0.25, 0.5 / (sid + 1)]}


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def write_part(folder, methods, perturbations, max_k=2, sentences=None, weights="w", base=None, cells=None):
    """A finished (or, with fewer ``sentences`` of word importance, killed) perturbation run of ``methods`` x
    ``perturbations`` x k = 1..``max_k``, written as the command writes it; ``cells``: other records instead."""
    folder.mkdir(parents=True)
    rows = cells if cells is not None else [cell(m, p, k) for m in methods for p in perturbations
                                            for k in range(1, max_k + 1)]
    write_jsonl(folder / curves.RESULTS_FILE, [base or unperturbed(), *rows])
    for method in methods:
        for r in range(repeats_of(method)):
            write_jsonl(folder / curves.IMPORTANCE_FOLDER / f"{method}.{r + 1}.jsonl",
                        [importance(method, r, sid) for sid in (sentences or SENTENCE_IDS)])
    (folder / curves.RUN_PROVENANCE).write_text(json.dumps(provenance(weights, folder.name)), encoding="utf-8")
    return folder


def merge(capsys, *folders, out):
    from fairseq_interp.commands import cli_main

    cli_main(["perturbation-merge", *map(str, folders), "--results-path", str(out)])
    return capsys.readouterr()


def files(folder):
    """``{relative path: text}`` of the record files of a run folder."""
    return {path.relative_to(folder).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(folder.rglob("*.jsonl"))}


def test_parts_split_by_method_and_perturbation_join_into_the_whole_run(tmp_path, capsys):
    """Parts split as in docs/word_importance.md (ig | content | random by perturbation), one missing some of its
    word importance records, give the records and importance files of the unsplit run, line for line, and a folder that
    ``--resume`` accepts with the run's provenance and finds every cell of."""
    methods, perturbations = ["ig", "random", "content"], ["deletion", "mask", "replacement"]
    whole = write_part(tmp_path / "whole", methods, perturbations)  # methods in the order the parts first name them
    parts = [write_part(tmp_path / "ig", ["ig"], perturbations, sentences=SENTENCE_IDS[2:]),  # the others lost
             write_part(tmp_path / "ig-rest", ["ig"], ["mask"]),  # the cells of the first part again, equal
             write_part(tmp_path / "random-mask", ["random"], ["mask"]),
             write_part(tmp_path / "content", ["content"], perturbations),
             write_part(tmp_path / "random-rest", ["random"], ["deletion", "replacement"])]
    out = tmp_path / "joined"
    printed = merge(capsys, *parts, out=out)
    assert files(out) == files(whole)  # results.jsonl in the whole run's order; importance by sentence
    joined = json.loads((out / curves.RUN_PROVENANCE).read_text(encoding="utf-8"))
    assert [run["folder"] for run in joined["run"]["merged_from"]] == [str(p) for p in parts]
    assert {key: value for key, value in joined.items() if key != "run"} == \
        {key: value for key, value in provenance().items() if key != "run"}
    # a --resume run with the run's provenance continues the folder, and has nothing left to compute
    with curves.evaluation_run(str(out), provenance(folder="resumed"), True, curves.COMMAND,
                               curves.run_record_files(str(out))):
        with JsonlWriter(str(out / curves.RESULTS_FILE), resume=True) as writer:
            assert writer.done_ids == {r["id"] for r in read_records(whole / curves.RESULTS_FILE)}
    resumed = json.loads((out / curves.RUN_PROVENANCE).read_text(encoding="utf-8"))["run"]
    assert resumed["argv"] == ["resumed"] and resumed["continues"] == joined["run"]  # the parts stay on record
    with pytest.raises(InterpretError, match="already holds a run: pass --resume"):
        with curves.evaluation_run(str(out), provenance(), False, curves.COMMAND, curves.run_record_files(str(out))):
            pass
    with pytest.raises(InterpretError, match="checkpoint.weights_sha256"):
        with curves.evaluation_run(str(out), provenance("other"), True, curves.COMMAND,
                                   curves.run_record_files(str(out))):
            pass
    # the printed command continues it: the parts' options, the cells the folder covers
    command = shlex.split(printed.out.strip().splitlines()[-1])
    assert command[:2] == ["fairseq-interp", "perturbation"] and command[-3:] == ["--resume", "--results-path",
                                                                                   str(out)]
    args = curves.add_arguments(argparse.ArgumentParser()).parse_args(command[2:])
    assert {name: getattr(args, name) for name in options()} == options()
    assert (args.data, args.path, args.methods, args.perturbations, args.max_k) == \
        ("/data/bin", "/ckpt.pt", "ig,random,content", "deletion,mask,replacement", 2)


def test_a_merge_of_fewer_cells_says_which_are_missing(tmp_path, capsys):
    parts = [write_part(tmp_path / "a", ["attention"], ["mask"], max_k=3), write_part(tmp_path / "b", ["ig"], ["mask"])]
    printed = merge(capsys, *parts, out=tmp_path / "out")
    assert "--methods attention,ig --perturbations mask --max-k 3 --resume" in printed.out
    assert "1 cells of these methods x mask x k = 1..3 are in no part: the run below computes them" in printed.err


def refusal(capsys, *folders, out):
    """The one error line of a refused merge; the output folder was not made."""
    with pytest.raises(SystemExit) as exit_info:
        merge(capsys, *folders, out=out)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_parts_that_are_not_of_one_run_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    base = write_part(tmp_path / "ig", ["ig"], ["mask"])
    assert "was made with other settings: checkpoint.weights_sha256" in refusal(
        capsys, base, write_part(tmp_path / "other-checkpoint", ["random"], ["mask"], weights="v"), out=out)
    assert "has another unperturbed record than" in refusal(
        capsys, base, write_part(tmp_path / "other-base", ["random"], ["mask"], base=unperturbed(41.0)), out=out)
    other_cell = dict(cell("ig", "mask", 2), bleu=1.0)
    line = refusal(capsys, base, write_part(tmp_path / "other-cell", ["ig"], ["mask"],
                                            cells=[cell("ig", "mask", 1), other_cell]), out=out)
    assert f"cell ig/mask/2 differs in {base} and {tmp_path / 'other-cell'}" in line
    changed = write_part(tmp_path / "other-importance", ["ig"], ["deletion"])
    write_jsonl(changed / curves.IMPORTANCE_FOLDER / "ig.1.jsonl",
                [dict(importance("ig", 0, sid), word_importance=[1.0]) if sid == 3 else importance("ig", 0, sid)
                 for sid in SENTENCE_IDS])
    assert ("the word importance of sentence 3 in importance/ig.1.jsonl differs in "
            f"{base} and {changed}") in refusal(capsys, base, changed, out=out)
    stray = write_part(tmp_path / "stray", ["ig"], ["deletion"], sentences=[0, 4])
    assert "importance/ig.1.jsonl holds sentence 4, which the run did not perturb" in refusal(
        capsys, base, stray, out=out)
    assert not out.exists()


def test_parts_that_cannot_be_checked_or_are_still_written_are_refused(tmp_path, capsys):
    from fairseq_interp.common.outputs import output_lock

    out = tmp_path / "out"
    base = write_part(tmp_path / "ig", ["ig"], ["mask"])
    unchecked = write_part(tmp_path / "unchecked", ["random"], ["mask"])
    (unchecked / curves.RUN_PROVENANCE).unlink()
    assert f"{unchecked} has no run.provenance.json" in refusal(capsys, base, unchecked, out=out)
    with output_lock(str(base), curves.RUN_LOCK, curves.COMMAND):
        assert f"{base} is still being written (pid" in refusal(capsys, base, out=out)
    started = write_part(tmp_path / "started", ["random"], ["mask"], cells=[])
    (started / curves.RESULTS_FILE).write_text("", encoding="utf-8")
    assert "has no unperturbed record (none/0 in results.jsonl)" in refusal(capsys, base, started, out=out)
    assert "is given twice" in refusal(capsys, base, tmp_path / "ig", out=out)
    assert "is not a folder" in refusal(capsys, base, tmp_path / "nowhere", out=out)
    assert not out.exists()


def test_the_output_folder_must_be_new(tmp_path, capsys):
    """No folder holding a run is written into (no --overwrite, as for the perturbation command), nor a part."""
    parts = [write_part(tmp_path / "ig", ["ig"], ["mask"]), write_part(tmp_path / "random", ["random"], ["mask"])]
    assert f"--results-path {parts[1]} is also a part" in refusal(capsys, *parts, out=parts[1])
    held = write_part(tmp_path / "held", ["attention"], ["mask"])
    before = files(held)
    assert f"{held} already holds a run (results.jsonl): nothing is overwritten" in refusal(capsys, *parts, out=held)
    assert files(held) == before
    (held / curves.RESULTS_FILE).unlink()
    assert "already holds a run (importance/attention.1.jsonl)" in refusal(capsys, *parts, out=held)
    for path in (held / curves.IMPORTANCE_FOLDER).iterdir():
        path.unlink()
    assert "already holds a run (run.provenance.json)" in refusal(capsys, *parts, out=held)
    empty = tmp_path / "empty"
    empty.mkdir()
    merge(capsys, *parts, out=empty)  # an empty folder is new enough
    assert [r["id"] for r in read_records(empty / curves.RESULTS_FILE)] == ["none/0", "ig/mask/1", "ig/mask/2",
                                                                           "random/mask/1", "random/mask/2"]


def test_the_parts_of_a_real_run_join_into_the_whole_run(data_dir, transformer_ckpt, tmp_path):
    """On the tiny model: two parts split by method and perturbation (random's importance in both) join into the
    records and importance files of the unsplit run, line for line, and the printed ``--resume`` command computes no
    cell and writes the unsplit run's table."""
    from conftest import run

    def perturbation(folder, methods, perturbations):
        return ["fairseq-interp", "perturbation", str(data_dir / "bin"), "--path", str(transformer_ckpt),
                "--results-path", str(folder), "--num-sentences", "8", "--methods", methods, "--perturbations",
                perturbations, "--max-k", "2", "--repeats", "3", "--beam", "1", "--max-len-b", "12", "--bootstrap",
                "0", "--no-progress-bar"]

    whole, parts, out = tmp_path / "whole", [tmp_path / "deletion", tmp_path / "mask"], tmp_path / "joined"
    run(perturbation(whole, "attention,random", "deletion,mask"), in_process=True)
    run(perturbation(parts[0], "attention,random", "deletion"), in_process=True)
    run(perturbation(parts[1], "random,attention", "mask"), in_process=True)
    merged = run(["fairseq-interp", "perturbation-merge", *map(str, parts), "--results-path", str(out)],
                 in_process=True)
    assert files(out) == files(whole)
    resumed = run(shlex.split(merged.stdout.strip().splitlines()[-1]), in_process=True)
    assert " k=" not in resumed.stderr  # no cell computed
    assert files(out) == files(whole)
    assert (out / "perturbation.csv").read_text(encoding="utf-8") == \
        (whole / "perturbation.csv").read_text(encoding="utf-8")
    assert {line.split(",")[0] for line in (out / "perturbation.csv").read_text(encoding="utf-8").splitlines()[1:]} \
        == {"none", "attention", "random"}
