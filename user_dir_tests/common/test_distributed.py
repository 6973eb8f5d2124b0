"""Plugin models under fairseq's distributed data parallel on CPU (2 ranks, gloo, legacy_ddp).

Two ranks with one batch each per update see exactly the batches of one process with ``--update-freq 2`` (fairseq
shards the same shuffled batch list across ranks and groups consecutive batches for accumulation), so parameters and
logged metrics must agree: a metric normalized by the number of workers instead of a summed count would differ.
"""

import json
import os

import pytest
import torch

import fairseq_interp  # noqa: F401  (safe loading of fairseq checkpoints)

from conftest import run
from distributed import BASE, assert_same_parameters, one_process, per_update, two_ranks


def test_two_ranks_equal_one_process_with_update_freq(data_dir, tmp_path):
    extra = ["--arch", "transformer_test_tiny", "--share-all-embeddings"]
    rank0, rank1 = two_ranks(data_dir, tmp_path / "ddp", 3, extra)
    single = one_process(data_dir, tmp_path / "single", 3, extra)
    assert "Saved checkpoint" in rank0 and "Saved checkpoint" not in rank1  # only rank 0 writes
    ddp_logs, single_logs = per_update(rank0), per_update(single)
    assert sorted(ddp_logs) == sorted(single_logs) == [1, 2, 3]
    for u in (1, 2, 3):
        assert ddp_logs[u]["loss"] == pytest.approx(single_logs[u]["loss"], abs=2e-3)
        assert ddp_logs[u]["bsz"] == pytest.approx(single_logs[u]["bsz"])  # sentences summed over ranks
    assert_same_parameters(tmp_path / "ddp" / "checkpoint_last.pt", tmp_path / "single" / "checkpoint_last.pt")


def test_gated_heads_with_l0_under_ddp(data_dir, tmp_path):
    """Gate noise is drawn per micro-batch (fairseq reseeds each rank per update), so losses differ from one process;
    the L0 statistics depend only on log α and must match exactly at the first update."""
    extra = ["--arch", "transformer_gated_heads_test_tiny", "--share-all-embeddings",
             "--criterion", "label_smoothed_cross_entropy_l0", "--l0-lambda", "0.05"]
    rank0, _ = two_ranks(data_dir, tmp_path / "ddp", 2, extra)
    single = one_process(data_dir, tmp_path / "single", 2, extra)
    ddp_logs, single_logs = per_update(rank0), per_update(single)
    keys = [k for k in single_logs[1] if k == "l0_penalty" or k.startswith("heads_")]
    assert "l0_penalty" in keys and any(k.endswith("_expected_open") for k in keys)
    for k in keys:
        assert ddp_logs[1][k] == pytest.approx(single_logs[1][k], abs=1e-2), k
    proc = run(["fairseq-generate", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path",
                str(tmp_path / "ddp" / "checkpoint_last.pt"), "--gen-subset", "test", "--beam", "2",
                "--batch-size", "8", "--max-len-b", "5", "--cpu"])
    assert "H-0\t" in proc.stdout


def per_split(log, split):
    """The JSON records of a fairseq log's ``| valid |`` (or other split) lines."""
    return [json.loads(line.split(f"| {split} |", 1)[1]) for line in log.splitlines() if f"| {split} |" in line]


def test_neuron_masked_fine_tuning_under_ddp(data_dir, transformer_ckpt, tmp_path):
    """Masked fine-tuning (Xie et al. 2021) on 2 ranks == one process; neurons outside the pair's mask get zero
    all-reduced gradient, so their weights stay exactly those of the baseline."""
    from fairseq_interp.neurons.allocation import load_masks, pair_masks

    imp, masks = tmp_path / "imp.pt", tmp_path / "masks.pt"
    run(["fairseq-interp", "neurons", "importance", str(data_dir / "bin"), "--path", str(transformer_ckpt),
         "--pairs", "en-fr", "fr-en", "--subset", "valid", "--num-sentences", "20", "--out", str(imp),
         "--user-dir", "fairseq_interp", "--allow-data-mismatch"],  # fr-en read through the en-fr model on purpose
        in_process=True)
    run(["fairseq-interp", "neurons", "allocate", str(imp), "--rho", "0.5", "--k", "0.9", "--out", str(masks)],
        in_process=True)
    extra = ["--arch", "transformer_neuron_masked_test_tiny", "--share-all-embeddings", "--neuron-masks", str(masks),
             "--finetune-from-model", str(transformer_ckpt), "--task", "translation_neuron_masked"]
    rank0, _ = two_ranks(data_dir, tmp_path / "ddp", 3, extra)
    single = one_process(data_dir, tmp_path / "single", 3, extra)
    ddp_logs, single_logs = per_update(rank0), per_update(single)
    for u in (1, 2, 3):
        assert ddp_logs[u]["loss"] == pytest.approx(single_logs[u]["loss"], abs=2e-3)
    assert_same_parameters(tmp_path / "ddp" / "checkpoint_last.pt", tmp_path / "single" / "checkpoint_last.pt")
    after = torch.load(tmp_path / "ddp" / "checkpoint_last.pt")["model"]
    before = torch.load(transformer_ckpt)["model"]
    frozen = 0
    for name, mask in pair_masks(load_masks(masks), "en-fr").items():
        unused = ~mask.bool()
        assert not torch.equal(after[name + ".weight"][~unused], before[name + ".weight"][~unused]), name
        assert torch.equal(after[name + ".weight"][unused], before[name + ".weight"][unused]), name
        frozen += int(unused.sum())
    assert frozen > 0


def test_lca_recording_under_ddp(data_dir, tmp_path):
    """LCA (Zhu et al.) on 2 ranks: only rank 0 writes, one record per update, and the values equal those of one
    process with --update-freq 2 (B' is sampled from the update number; θ_t and the step are the same)."""
    extra = ["--arch", "transformer_test_tiny", "--share-all-embeddings", "--task", "translation_lca",
             "--lca-interval", "1", "--lca-max-tokens", "300"]
    rank0, rank1 = two_ranks(data_dir, tmp_path / "ddp", 3, extra + ["--lca-dir", str(tmp_path / "ddp" / "lca")])
    one_process(data_dir, tmp_path / "single", 3, extra + ["--lca-dir", str(tmp_path / "single" / "lca")])
    records = {}
    for name in ("ddp", "single"):
        lines = (tmp_path / name / "lca" / "lca.jsonl").read_text(encoding="utf-8").splitlines()
        records[name] = [r for r in map(json.loads, lines) if r["type"] == "interval"]
    assert [r["start"] for r in records["ddp"]] == [1, 2, 3]  # no update recorded twice
    assert sorted(os.listdir(tmp_path / "ddp" / "lca")) == sorted(os.listdir(tmp_path / "single" / "lca"))
    for a, b in zip(records["ddp"], records["single"]):
        assert a["groups"].keys() == b["groups"].keys()
        for group in a["groups"]:
            assert a["groups"][group]["sum"] == pytest.approx(b["groups"][group]["sum"], rel=1e-3, abs=1e-7), group
    assert_same_parameters(tmp_path / "ddp" / "checkpoint_last.pt", tmp_path / "single" / "checkpoint_last.pt")


@pytest.mark.slow
def test_permutation_copy_lstm_attention_under_ddp(tmp_path):
    """Snell et al.'s task and LSTM model on 2 ranks: generated data is the same on every rank, and validation
    accuracies (summed correct / summed total over ranks) equal one process's."""
    common = BASE + ["--task", "permutation_copy", "--perm-mode", "sampled_set", "--seq-len", "8", "--vocab-size",
                     "16", "--train-size", "400", "--valid-size", "60", "--arch", "lstm_dot_attention",
                     "--attention-heads", "2", "--embed-dim", "16", "--hidden-size", "16", "--output-hidden-dim",
                     "16", "--criterion", "cross_entropy", "--batch-size", "20", "--validate-interval-updates", "3"]
    rank0, _ = two_ranks(None, tmp_path / "ddp", 3, [], common=common)
    single = one_process(None, tmp_path / "single", 3, [], common=common)
    assert per_update(rank0).keys() == per_update(single).keys() == {1, 2, 3}
    ddp_valid, single_valid = per_split(rank0, "valid"), per_split(single, "valid")
    assert len(ddp_valid) == len(single_valid) >= 1
    for key in ("valid_loss", "valid_token_accuracy", "valid_attention_accuracy"):
        assert float(ddp_valid[-1][key]) == pytest.approx(float(single_valid[-1][key]), abs=2e-3), key
    assert_same_parameters(tmp_path / "ddp" / "checkpoint_last.pt", tmp_path / "single" / "checkpoint_last.pt")
