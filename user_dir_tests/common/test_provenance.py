"""The shared safety helpers: provenance comparison, the checked JSONL reader, the results lock, output checks,
finite weights, safe-loader messages and the checkpoint-vs-data check (unit tests, no training)."""

import argparse
import json
import os
from types import SimpleNamespace

import pytest
import torch

from fairseq_interp.common import provenance as prov
from fairseq_interp.common.checkpoints import (check_checkpoint_data, check_finite, read_checkpoint,
                                               read_raw_checkpoint)
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.jsonl import JsonlWriter, index_records, read_records
from fairseq_interp.common.outputs import check_output_file, check_output_folder, lock_holder, output_lock


def test_weights_fingerprint_sees_one_changed_value_and_ignores_order():
    state = {"a.weight": torch.arange(6.0).view(2, 3), "b.bias": torch.zeros(3)}
    same = {"b.bias": torch.zeros(3), "a.weight": torch.arange(6.0).view(2, 3)}
    changed = {"a.weight": torch.arange(6.0).view(2, 3), "b.bias": torch.tensor([0.0, 0.0, 1e-7])}
    reshaped = {"a.weight": torch.arange(6.0).view(3, 2), "b.bias": torch.zeros(3)}
    fp = prov.weights_fingerprint(state)
    assert fp == prov.weights_fingerprint(same)
    assert fp != prov.weights_fingerprint(changed)
    assert fp != prov.weights_fingerprint(reshaped)  # same bytes, other shape


def test_check_same_names_the_first_difference_and_ignores_locations_and_run():
    old = {"format": "x", "checkpoint": {"path": "/a.pt", "weights_sha256": "1"}, "options": {"ig_steps": 50,
                                                                                            "method": "ig"},
           "run": {"argv": ["a"]}}
    moved = {"format": "x", "checkpoint": {"path": "/b.pt", "weights_sha256": "1"}, "options": {"ig_steps": 50,
                                                                                              "method": "ig"},
             "run": {"argv": ["b"]}}
    prov.check_same(old, moved, "r.jsonl", "fix")  # a moved checkpoint with the same weights is the same input
    other = json.loads(json.dumps(moved))
    other["options"]["ig_steps"] = 300
    other["checkpoint"]["weights_sha256"] = "2"
    with pytest.raises(InterpretError) as e:
        prov.check_same(old, other, "r.jsonl", "resume with the same options")
    message = str(e.value)
    assert "checkpoint.weights_sha256" in message and "(and 1 more difference)" in message
    assert message.endswith("resume with the same options") and "\n" not in message
    missing = json.loads(json.dumps(old))
    del missing["options"]["method"]
    assert prov.differences(old, missing) == [("options.method", "ig", None)]


def test_provenance_file_round_trip_and_bad_file(tmp_path):
    path = tmp_path / "a.provenance.json"
    prov.write_provenance(str(path), {"format": "f", "options": {"x": (1, 2)}})
    assert prov.read_provenance(str(path), "f")["options"]["x"] == [1, 2]
    with pytest.raises(InterpretError, match="is not a g file"):
        prov.read_provenance(str(path), "g")
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InterpretError, match="not a readable provenance file"):
        prov.read_provenance(str(path), "f")
    assert prov.provenance_path("/r/attributions.shard0-of-2.jsonl") == "/r/attributions.shard0-of-2.provenance.json"


def test_read_records_names_file_and_line_and_ignores_only_a_cut_last_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": 0}\n{"id": 1}\n{"id": 2, "cut', encoding="utf-8")
    assert [r["id"] for r in read_records(str(path))] == [0, 1]  # a killed writer's last line
    path.write_text('{"id": 0}\n{"id": 1, oops}\n{"id": 2}\n', encoding="utf-8")
    for reader in (read_records, index_records):
        with pytest.raises(InterpretError) as e:
            reader(str(path))
        assert f"{path}, line 2: not a JSON record" in str(e.value) and "\n" not in str(e.value)
    path.write_text('{"id": 0}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(InterpretError, match="line 2: a JSON list, not a record"):
        read_records(str(path))
    path.write_bytes(b'{"id": 0}\n{"id": "\xff"}\n')
    with pytest.raises(InterpretError, match="line 2: not a JSON record"):
        read_records(str(path))

    def positive(record):
        if record["id"] < 0:
            raise ValueError("negative id")

    path.write_text('{"id": 0}\n{"id": -1}\n', encoding="utf-8")
    with pytest.raises(InterpretError, match="line 2: negative id"):
        read_records(str(path), positive)


def test_writer_resume_cuts_partial_line_only_after_the_records_are_intact(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": 0}\n{"id": 1, "cut', encoding="utf-8")
    with JsonlWriter(str(path), resume=True) as writer:
        assert writer.done_ids == {0}
        writer.write({"id": 1})
    assert path.read_text(encoding="utf-8") == '{"id": 0}\n{"id": 1}\n'
    damaged = '{"id": 0}\nxx\n{"id": 1, "cut'
    path.write_text(damaged, encoding="utf-8")
    with pytest.raises(InterpretError, match="line 2"):
        JsonlWriter(str(path), resume=True)
    assert path.read_text(encoding="utf-8") == damaged  # untouched


def test_output_lock_excludes_a_second_holder_and_is_released(tmp_path):
    with output_lock(str(tmp_path), "attributions.jsonl", "fairseq-interpret"):
        assert lock_holder(str(tmp_path), "attributions.jsonl") == str(os.getpid())
        with pytest.raises(InterpretError, match=f"another fairseq-interpret \\(pid {os.getpid()}\\) is writing"):
            with output_lock(str(tmp_path), "attributions.jsonl", "fairseq-interpret"):
                pass
        with output_lock(str(tmp_path), "other.jsonl", "fairseq-interpret"):  # another results file is free
            pass
    assert lock_holder(str(tmp_path), "attributions.jsonl") is None
    with output_lock(str(tmp_path), "attributions.jsonl", "fairseq-interpret"):
        pass


def test_output_file_and_folder_checks(tmp_path):
    existing = tmp_path / "page.html"
    existing.write_text("mine", encoding="utf-8")
    with pytest.raises(InterpretError, match="exists: pass --overwrite"):
        check_output_file(str(existing), "--out")
    check_output_file(str(existing), "--out", overwrite=True)
    with pytest.raises(InterpretError, match="is also an input"):
        check_output_file(str(existing), "--out", overwrite=True, inputs=[str(tmp_path / "." / "page.html")])
    with pytest.raises(InterpretError, match="is a folder"):
        check_output_file(str(tmp_path), "--out", overwrite=True)
    with pytest.raises(InterpretError, match="is a file, not a folder"):
        check_output_folder(str(existing), "--results-path")
    with pytest.raises(InterpretError, match="cannot be created"):
        check_output_folder(str(existing / "sub"), "--results-path")
    check_output_folder(str(tmp_path / "new" / "deeper"), "--results-path")
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert existing.read_text(encoding="utf-8") == "mine"


def test_finite_check_names_the_first_bad_parameter():
    state = {"a": torch.ones(3), "b": torch.tensor([1.0, float("inf")]), "c": torch.tensor([float("nan")]),
             "steps": torch.tensor([3])}
    with pytest.raises(InterpretError, match="b holds infinite values \\(1 of 2 values\\)"):
        check_finite(state, "x.pt")
    check_finite({"a": torch.ones(2), "n": torch.tensor([1], dtype=torch.long)}, "x.pt")


class Payload:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_refused_pickle_names_the_global_without_unsafe_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(1)}, "cfg": None, "x": Payload()}, path)
    for reader in (read_checkpoint, read_raw_checkpoint):
        with pytest.raises(InterpretError) as e:
            reader(str(path))
        message = str(e.value)
        assert "system" in message and "refuses" in message
        assert "weights_only" not in message and "will likely succeed" not in message


@pytest.mark.parametrize("content, phrase", [
    (b"", "not a readable torch checkpoint"),
    (b"hello world\n", "not a readable torch checkpoint"),
    ("list", "not a fairseq checkpoint"),
    ("no-cfg", "no 'cfg' or 'args'"),
])
def test_torch_files_that_are_not_checkpoints(tmp_path, content, phrase):
    path = tmp_path / "x.pt"
    if content == "list":
        torch.save([1, 2], path)
    elif content == "no-cfg":
        torch.save({"model": {"w": torch.ones(1)}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(InterpretError, match=phrase):
        read_checkpoint(str(path))


def _dictionary(symbols):
    from fairseq.data import Dictionary

    d = Dictionary()
    for s in symbols:
        d.add_symbol(s)
    return d


def _training_folder(tmp_path, symbols, pair="en-fr"):
    folder = tmp_path / "train-bin"
    folder.mkdir()
    src, tgt = pair.split("-")
    for lang in (src, tgt):
        _dictionary(symbols).save(str(folder / f"dict.{lang}.txt"))
        (folder / f"train.{pair}.{lang}.idx").write_bytes(b"")
    return folder


def _state(folder, rows, langs=(None, None)):
    task_cfg = {"_name": "translation", "data": str(folder), "source_lang": langs[0], "target_lang": langs[1]}
    return {"model": {"encoder.embed_tokens.weight": torch.zeros(rows, 2),
                      "decoder.embed_tokens.weight": torch.zeros(rows, 2)}, "cfg": {"task": task_cfg}}


def _task(symbols, src="en", tgt="fr"):
    d = _dictionary(symbols)
    return SimpleNamespace(source_dictionary=d, target_dictionary=d,
                           cfg=argparse.Namespace(source_lang=src, target_lang=tgt))


def test_checkpoint_data_check(tmp_path):
    words = ["▁a", "▁b", "▁c"]
    folder = _training_folder(tmp_path, words)
    rows = len(_dictionary(words))
    state = _state(folder, rows)
    done = check_checkpoint_data(state, "c.pt", _task(words), False)
    assert done["not_compared"] == [] and "source dictionary contents" in done["compared"]
    with pytest.raises(InterpretError, match=r"translates en->fr \(the one language pair of .*\) but this run reads "
                                             r"fr->en: pass --source-lang en --target-lang fr"):
        check_checkpoint_data(state, "c.pt", _task(words, "fr", "en"), False)
    swapped = ["▁b", "▁a", "▁c"]  # same size, other content
    with pytest.raises(InterpretError, match="source dictionary differs .* symbol 4 is '▁a' there, '▁b' here"):
        check_checkpoint_data(state, "c.pt", _task(swapped), False)
    assert check_checkpoint_data(state, "c.pt", _task(swapped), True)["allowed_mismatch"]
    with pytest.raises(InterpretError, match=f"has {rows} source embeddings but the data's source dictionary has "
                                             f"{rows + 1} symbols"):
        check_checkpoint_data(state, "c.pt", _task(words + ["▁d"]), True)  # never overridable
    saved_pair = _state(folder, rows, ("fr", "en"))  # the saved options win over the folder
    with pytest.raises(InterpretError, match="translates fr->en \\(saved task options\\)"):
        check_checkpoint_data(saved_pair, "c.pt", _task(words), False)
    gone = _state(tmp_path / "elsewhere", rows)  # training folder not on this machine: sizes only, said so
    done = check_checkpoint_data(gone, "c.pt", _task(swapped, "fr", "en"), False)
    assert done["compared"] == ["embedding sizes"] and len(done["not_compared"]) == 2


def _raise(error):
    raise error


@pytest.mark.parametrize("error, code, phrase", [
    (InterpretError("bad option: pass a good one"), 2, "cmd: error: bad option: pass a good one"),
    (OSError(28, "No space left on device", "/out/x.jsonl"), 2, "cmd: error: cannot write or read /out/x.jsonl: "
                                                                 "the disk is full"),
    (PermissionError(13, "Permission denied", "/out"), 2, "cmd: error: cannot write or read /out: permission denied"),
    (KeyboardInterrupt(), 130, "cmd: interrupted"),
])
def test_run_command_turns_errors_into_one_line(capsys, error, code, phrase):
    from fairseq_interp.common.cli import run_command

    with pytest.raises(SystemExit) as exit_info:
        run_command("cmd", _raise, error, logging_setup=False)
    assert exit_info.value.code == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith(phrase)


def test_run_command_keeps_the_traceback_of_a_bug():
    from fairseq_interp.common.cli import run_command

    with pytest.raises(ZeroDivisionError):
        run_command("cmd", lambda: 1 / 0, logging_setup=False)
    with pytest.raises(FileNotFoundError):  # not an error of the environment: a bug's traceback stays
        run_command("cmd", _raise, FileNotFoundError(2, "No such file", "x"), logging_setup=False)
