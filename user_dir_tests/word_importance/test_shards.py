"""Sharded fairseq-interpret and fairseq-interp merge: 2 shards merged equal one unsharded run; the refusals of
merge, with the shards they are given. All in this process, their records and output those of the commands."""

import json
import os

import pytest
import torch

from conftest import error_lines, run
from test_interpret_cli import interpret, records


def shard(data_dir, ckpt, results, shard_id, *extra, check=True, in_process=None):
    return interpret(data_dir, ckpt, results, "--num-sentences", "6", "--num-shards", "2", "--shard-id",
                     str(shard_id), *extra, check=check, in_process=in_process)


def test_two_shards_merge_to_the_unsharded_run(data_dir, transformer_ckpt, tmp_path):
    sharded, whole = tmp_path / "sharded", tmp_path / "whole"
    for shard_id in (0, 1):
        shard(data_dir, transformer_ckpt, sharded, shard_id, in_process=True)
    parts = [json.loads(line)["id"] for k in (0, 1)
             for line in open(sharded / f"attributions.shard{k}-of-2.jsonl", encoding="utf-8")]
    assert sorted(parts) == list(range(6)) and len(set(parts)) == 6  # a partition of the sentences
    merged = run(["fairseq-interp", "merge", str(sharded)], in_process=True)
    assert "merged 6 sentences" in merged.stderr
    interpret(data_dir, transformer_ckpt, whole, "--num-sentences", "6", in_process=True)
    got, want = records(sharded), records(whole)
    assert [r["id"] for r in got] == list(range(6))  # sentence order
    want_by_id = {r["id"]: r for r in want}
    for r in got:
        w = want_by_id[r["id"]]
        assert r["tgt_tokens"] == w["tgt_tokens"] and r["src_words"] == w["src_words"]
        torch.testing.assert_close(torch.tensor(r["contributions"]), torch.tensor(w["contributions"]),
                                   atol=1e-6, rtol=0)
    assert (sharded / "attributions.txt").read_text(encoding="utf-8").count("S-") == 6
    merged = json.loads((sharded / "attributions.provenance.json").read_text(encoding="utf-8"))
    shard1 = json.loads((sharded / "attributions.shard1-of-2.provenance.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in merged.items() if k != "run"} == {k: v for k, v in shard1.items() if k != "run"}
    assert [m["shard_id"] for m in merged["run"]["merged_from"]] == [0, 1]


def test_merge_refuses_shards_of_other_options(data_dir, transformer_ckpt, tmp_path):
    results = tmp_path / "res"
    shard(data_dir, transformer_ckpt, results, 0, in_process=True)
    shard(data_dir, transformer_ckpt, results, 1, "--ig-steps", "8", in_process=True)
    proc = run(["fairseq-interp", "merge", str(results)], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "shard 1 of 2 was made with other settings: options.ig_steps is 16 there, 8 here" in error_lines(proc)[-1]
    assert not (results / "attributions.jsonl").exists()


def test_merge_refuses_missing_incomplete_and_existing(data_dir, transformer_ckpt, tmp_path):
    results = tmp_path / "res"
    shard(data_dir, transformer_ckpt, results, 1, in_process=True)
    proc = run(["fairseq-interp", "merge", str(results)], check=False)
    assert proc.returncode == 2 and "shard 0 of 2 has not run" in error_lines(proc)[-1]
    shard(data_dir, transformer_ckpt, results, 0, in_process=True)
    path = results / "attributions.shard0-of-2.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), encoding="utf-8")  # as if killed before the last sentence
    proc = run(["fairseq-interp", "merge", str(results)], check=False)
    assert proc.returncode == 2 and "--resume" in error_lines(proc)[-1]
    assert not (results / "attributions.jsonl").exists()
    shard(data_dir, transformer_ckpt, results, 0, "--resume", in_process=True)
    run(["fairseq-interp", "merge", str(results)], in_process=True)
    proc = run(["fairseq-interp", "merge", str(results)], check=False)
    assert proc.returncode == 2 and "exists" in error_lines(proc)[-1]


def test_merge_refuses_overlap(tmp_path):
    from fairseq_interp.common.errors import InterpretError
    from fairseq_interp.common.provenance import write_provenance
    from fairseq_interp.word_importance.records import build_word_record
    from fairseq_interp.word_importance.result_files import FORMAT
    from fairseq_interp.word_importance.shards import merge, write_plan

    for shard_id, ids in ((0, [0, 1]), (1, [1, 2])):
        write_plan(str(tmp_path), 2, shard_id, ids, [])
        write_provenance(str(tmp_path / f"attributions.shard{shard_id}-of-2.provenance.json"),
                         {"format": FORMAT, "options": {"attribution": "random"}})
        with open(tmp_path / f"attributions.shard{shard_id}-of-2.jsonl", "w", encoding="utf-8") as f:
            for i in ids:
                record = build_word_record(i, ["\u2581A", "\u2581dog", "</s>"], ["\u2581Un", "</s>"], [0.5, 0.5],
                                           "sentencepiece", method="random")
                f.write(json.dumps(record) + "\n")
    with pytest.raises(InterpretError, match="sentence id 1 is in shards 0 and 1"):
        merge(str(tmp_path))
    assert not os.path.exists(tmp_path / "attributions.jsonl")
