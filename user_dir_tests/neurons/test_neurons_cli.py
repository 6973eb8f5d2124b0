"""``fairseq-interp neurons``: fairseq's batching (``--max-tokens`` and ``--batch-size`` give the same importance),
the training split as the default of importance (Xie et al. 2021, Eq. 7-8: importance over the ``T_m`` training
examples of each pair), provenance in the files, and the refusals of inputs made from another checkpoint or model."""

import argparse
import importlib.util
import os

import pytest
import torch

from conftest import REPO, run
from fairseq_interp.common.checkpoints import read_checkpoint
from fairseq_interp.common.provenance import files_fingerprint, split_files, weights_fingerprint
from fairseq_interp.neurons.allocation import load_masks
from fairseq_interp.neurons.importance import load_importance

DRIVER = os.path.join(REPO, "scripts", "reproduce", "xie2021", "masked_finetuning.py")


def _importance(data_dir, ckpt, out, *extra):
    return run(["fairseq-interp", "neurons", "importance", str(data_dir / "bin"), "--path", str(ckpt), "--pairs",
                "en-fr", "--num-sentences", "24", "--no-progress-bar", "--out", str(out), *extra], in_process=True)


def test_importance_default_split_batching_provenance_and_masks_of_another_checkpoint(data_dir, transformer_ckpt,
                                                                                       tmp_path):
    by_sentences, by_tokens = tmp_path / "sentences.pt", tmp_path / "tokens.pt"
    _importance(data_dir, transformer_ckpt, by_sentences, "--batch-size", "5")  # no --train-subset: train
    proc = _importance(data_dir, transformer_ckpt, by_tokens, "--subset", "train", "--max-tokens", "400")
    assert "--subset is now called --train-subset" in proc.stderr  # the earlier name still works, with a warning
    a, b = load_importance(by_sentences), load_importance(by_tokens)
    # the same 24 sentences in other batches: the same token counts and the same means (Eq. 7-8)
    assert a["tokens"] == b["tokens"] and a["tokens"]["en-fr"]["sentences"] == 24
    for criterion in ("taylor", "absolute"):
        for module, value in a[criterion].items():
            torch.testing.assert_close(b[criterion][module], value, rtol=1e-5, atol=1e-7, msg=module)
    # provenance: the checkpoint by content, the training split by content, the options that change the numbers
    provenance = a["provenance"]
    assert provenance["format"] == "fairseq-interp/neuron-importance/1" and provenance["format_version"] == 2
    assert provenance["checkpoint"]["weights_sha256"] == weights_fingerprint(
        read_checkpoint(str(transformer_ckpt))["model"])
    data = provenance["data"]["en-fr"]
    assert (data["split"], data["source_lang"], data["target_lang"]) == ("train", "en", "fr")
    assert data["split_sha256"] == files_fingerprint(split_files(str(data_dir / "bin"), "train", "en", "fr"))
    assert provenance["options"]["train_subset"] == "train" and provenance["options"]["num_sentences"] == 24
    assert set(provenance["versions"]) >= {"fairseq", "torch", "fairseq_interp"}
    # the masks carry the importance's provenance and the allocation's options
    masks = tmp_path / "masks.pt"
    run(["fairseq-interp", "neurons", "allocate", str(by_sentences), "--rho", "0.5", "--k", "0.7", "--out",
         str(masks)], in_process=True)
    mask_provenance = load_masks(masks)["provenance"]
    assert mask_provenance["importance"]["checkpoint"] == provenance["checkpoint"]
    assert mask_provenance["options"] == {"rho": 0.5, "k": 0.7, "criterion": "taylor"}
    # fine-tuning another checkpoint of the same shape with these masks is refused in one line
    other = tmp_path / "other.pt"
    state = torch.load(transformer_ckpt, map_location="cpu", weights_only=False)
    state["model"]["encoder.layers.0.fc1.bias"] = state["model"]["encoder.layers.0.fc1.bias"] + 0.01
    torch.save(state, other)
    save_dir = tmp_path / "masked"
    proc = run(["fairseq-train", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--task",
                "translation_neuron_masked", "--arch", "transformer_neuron_masked_test_tiny", "--share-all-embeddings",
                "--neuron-masks", str(masks), "--finetune-from-model", str(other), "--optimizer", "adam", "--lr",
                "0.001", "--max-tokens", "500", "--max-update", "1", "--cpu", "--save-dir", str(save_dir)],
               check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert last.startswith("fairseq-train: error: mask file") and "another checkpoint" in last, last
    assert not (save_dir / "checkpoint_last.pt").exists()


def test_importance_refuses_sharding_in_one_line(data_dir, transformer_ckpt, tmp_path):
    proc = run(["fairseq-interp", "neurons", "importance", str(data_dir / "bin"), "--path", str(transformer_ckpt),
                "--pairs", "en-fr", "--num-shards", "2", "--shard-id", "1", "--out", str(tmp_path / "i.pt")],
               check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(
        "fairseq-interp: error: --num-shards 2: importance") and not (tmp_path / "i.pt").exists()


def _synthetic_importance(path, pairs=("en-fr", "fr-en")):
    from fairseq_interp.neurons.importance import save_importance

    fingerprint = {"family": "transformer", "arch": "x", "encoder_layers": 1, "decoder_layers": 1,
                   "encoder_attention_heads": 2, "decoder_attention_heads": 2,
                   "modules": {"encoder.layers.0.fc1": 6, "decoder.layers.0.fc2": 4}}
    g = torch.Generator().manual_seed(0)
    values = {p: {c: {m: torch.rand(n, generator=g) for m, n in fingerprint["modules"].items()}
                  for c in ("taylor", "absolute")} for p in pairs}
    return save_importance(path, fingerprint, values)


def test_allocate_refuses_an_importance_file_that_does_not_fit_its_own_model(tmp_path):
    state = _synthetic_importance(tmp_path / "imp.pt")
    state["taylor"]["encoder.layers.0.fc1"] = state["taylor"]["encoder.layers.0.fc1"][:, :5]  # another width
    torch.save(state, tmp_path / "imp.pt")
    proc = run(["fairseq-interp", "neurons", "allocate", str(tmp_path / "imp.pt"), "--out", str(tmp_path / "m.pt")],
               check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert last.startswith("fairseq-interp: error: importance file") and "has shape (2, 5)" in last and \
        "give (2, 6)" in last, last
    assert not (tmp_path / "m.pt").exists()


def test_masked_model_refuses_a_baseline_other_than_the_masks_source(tmp_path):
    """``--finetune-from-model``: the baseline's weights must be those the masks' importance was measured on."""
    from fairseq.models import ARCH_CONFIG_REGISTRY

    from fairseq_interp.common.errors import InterpretError
    from fairseq_interp.neurons.allocation import allocate, save_masks
    from fairseq_interp.neurons.importance import importance_provenance, model_fingerprint, save_importance
    from fairseq_interp.neurons.model import NeuronMaskedTransformerModel
    from fairseq.data import Dictionary
    from types import SimpleNamespace

    d = Dictionary()
    for i in range(10):
        d.add_symbol(f"w{i}")
    task = SimpleNamespace(source_dictionary=d, target_dictionary=d)

    def build(masks=""):
        args = argparse.Namespace(neuron_masks=masks, share_all_embeddings=True)
        ARCH_CONFIG_REGISTRY["transformer_neuron_masked_test_tiny"](args)
        return NeuronMaskedTransformerModel.build_model(args, task)

    baseline = build()
    source = {k: v for k, v in baseline.state_dict().items() if not k.startswith("neuron_mask")}
    fingerprint = model_fingerprint(baseline)
    g = torch.Generator().manual_seed(1)
    values = {p: {c: {m: torch.rand(n, generator=g) for m, n in fingerprint["modules"].items()}
                  for c in ("taylor", "absolute")} for p in ("en-fr", "fr-en")}
    provenance = importance_provenance("baseline.pt", {"model": source, "cfg": None}, {}, {})
    imp = save_importance(tmp_path / "imp.pt", fingerprint, values, provenance=provenance)
    save_masks(tmp_path / "masks.pt", allocate(imp, 0.5, 0.7))
    build(str(tmp_path / "masks.pt")).upgrade_state_dict_named(dict(source), "")  # the source itself: accepted
    other = dict(source)
    other["encoder.layers.0.fc1.bias"] = other["encoder.layers.0.fc1.bias"] + 1
    with pytest.raises(InterpretError, match="allocated from the importance of another checkpoint"):
        build(str(tmp_path / "masks.pt")).upgrade_state_dict_named(other, "")


def test_erase_refuses_stored_masks_that_do_not_fit_the_checkpoint(transformer_ckpt, data_dir, tmp_path):
    state = torch.load(transformer_ckpt, map_location="cpu", weights_only=False)
    state["model"]["neuron_mask_pairs"] = torch.tensor(list(b"en-fr,fr-en"), dtype=torch.uint8)
    state["model"]["neuron_mask__encoder__layers__0__fc1"] = torch.ones(3, 64)  # 3 rows for 2 pairs
    torch.save(state, tmp_path / "masked.pt")
    out = tmp_path / "erase"
    proc = run(["fairseq-interp", "neurons", "erase", str(data_dir / "bin"), "--path", str(tmp_path / "masked.pt"),
                "--references", "x.{tgt}", "--results-path", str(out)], check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "the stored mask of encoder.layers.0.fc1 has shape (3, 64)" in last and "give (2, 64)" in last, last
    assert not out.exists()


def test_importance_is_measured_on_the_training_split_by_default_in_the_cli_and_the_table1_driver(monkeypatch):
    """Xie et al. 2021, Eq. 7-8: Θ(i) averages over the training examples of each pair."""
    from fairseq_interp.commands import get_parser

    args = get_parser().parse_args(["neurons", "importance", "DATA", "--path", "c.pt", "--pairs", "en-fr", "--out",
                                    "i.pt"])
    assert args.train_subset == "train"
    spec = importlib.util.spec_from_file_location("xie2021_driver", DRIVER)
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    driver.add_table_arguments(sub.add_parser("table1"), "table1")
    options = parser.parse_args(["table1", "--work", "W"])
    assert options.importance_subset == "train"
    commands = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        out = cmd[cmd.index("--out") + 1]
        open(out, "w").close()

    monkeypatch.setattr(driver, "run", fake_run)
    experiment = object.__new__(driver.Experiment)
    experiment.args, experiment.bin, experiment.pairs = options, "BIN", ["en-de", "de-en"]
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"importance-{os.getpid()}.pt")
    try:
        experiment.importance("ckpt.pt", out)
    finally:
        if os.path.exists(out):
            os.remove(out)
    (command,) = commands
    assert command[command.index("--train-subset") + 1] == "train"
