"""Erasure of general / language-specific neurons at inference (Xie et al. 2021, Figure 5) and the importance curves
of Figure 2: exact invariances on a tiny masked model, the CLI on a many-to-many masked checkpoint, refusals."""

import json
import math

import pytest
import torch

import fairseq_interp  # noqa: F401  (registers architectures, safe loading)
from fairseq_interp.neurons.curves import importance_curves
from fairseq_interp.neurons.allocation import allocate, save_masks
from fairseq_interp.neurons.erasure import (affected_pairs, choose, condition_neurons, erasing, model_masks,
                                            neuron_sets, random_control)
from fairseq_interp.neurons.importance import model_fingerprint, save_importance
from fairseq_interp.common.errors import InterpretError

from conftest import run
from test_neurons import _batch, _masked_model, _tiny_model

PAIRS3 = ["en-fr", "fr-en", "de-en"]


def _masked3(path, k):
    """A tiny masked model with 3 pairs: ρ 0.4 on random importance; k 1: each specific neuron has one pair,
    k 0.8: many are shared."""
    model, d = _tiny_model()
    fp = model_fingerprint(model)
    g = torch.Generator().manual_seed(3)
    values = {p: {c: {m: torch.rand(n, generator=g) for m, n in fp["modules"].items()}
                  for c in ("taylor", "absolute")} for p in PAIRS3}
    save_masks(path, allocate(save_importance(str(path) + ".imp", fp, values), 0.4, k))
    _, masked, _ = _masked_model(path)
    return masked, d


@pytest.fixture(scope="module")
def masked3(tmp_path_factory):
    return _masked3(tmp_path_factory.mktemp("erase") / "masks.pt", 1.0)


def _outputs(model, sample, pair):
    with torch.no_grad():
        return model(**sample["net_input"], pair_ids=torch.tensor([pair] * 2))[0]


def test_sets_partition_each_pairs_mask(masked3):
    model, _ = masked3
    masks = model_masks(model)
    sets = neuron_sets(masks, model.pairs)
    for i, pair in enumerate(model.pairs):
        for m, used in masks.items():
            # every neuron a pair uses is general or specific to it, never both; general = used by every pair
            assert torch.equal(sets["general"][m] | sets["specific"][pair][m], used[i]), m
            assert not (sets["general"][m] & sets["specific"][pair][m]).any()
    assert sum(int(v.sum()) for v in sets["general"].values()) > 0
    assert all(sum(int(v.sum()) for v in sets["specific"][p].values()) > 0 for p in model.pairs)


def test_erasing_exclusive_neurons_changes_only_their_pair(tmp_path):
    model, d = _masked3(tmp_path / "masks.pt", 0.8)
    masks = model_masks(model)
    sets = neuron_sets(masks, model.pairs)
    sample = _batch(d, (5, 3), (4, 6))
    for i, pair in enumerate(model.pairs):
        exclusive = sets["exclusive"][pair]
        assert sum(int(v.sum()) for v in exclusive.values()) > 0
        # exclusive = the pair's specific neurons that no other pair's mask holds
        others = {m: masks[m][[j for j in range(len(model.pairs)) if j != i]].any(0) for m in masks}
        assert all(torch.equal(exclusive[m], sets["specific"][pair][m] & ~others[m]) for m in masks)
        erased = condition_neurons(sets, f"exclusive:{pair}", 1.0, seed=0)
        assert affected_pairs(masks, model.pairs, erased) == [pair]
        before = [_outputs(model, sample, j) for j in range(len(model.pairs))]
        with erasing(model, erased):
            after = [_outputs(model, sample, j) for j in range(len(model.pairs))]
        assert [torch.equal(a, b) for a, b in zip(after, before)] == [j != i for j in range(len(model.pairs))]


def test_choice_is_reproducible_and_sized(masked3):
    model, _ = masked3
    sets = neuron_sets(model_masks(model), model.pairs)
    general = sets["general"]
    n = sum(int(v.sum()) for v in general.values())
    a, b, c = choose(general, 0.2, seed=1), choose(general, 0.2, seed=1), choose(general, 0.2, seed=2)
    assert all(torch.equal(a[m], b[m]) for m in a)
    assert not all(torch.equal(a[m], c[m]) for m in a)
    assert sum(int(v.sum()) for v in a.values()) == int(0.2 * n + 0.5)
    assert all(not (a[m] & ~general[m]).any() for m in a)  # only general neurons are erased
    assert sum(int(v.sum()) for v in choose(general, 1.0, 0).values()) == n
    assert sum(int(v.sum()) for v in choose(general, 0.0, 0).values()) == 0
    with pytest.raises(InterpretError, match="must be in \\[0, 1\\]"):
        choose(general, 1.5, 0)
    with pytest.raises(InterpretError, match="use general, specific:PAIR or exclusive:PAIR with PAIR one of "
                                             "en-fr, fr-en, de-en"):
        condition_neurons(sets, "specific:cs-en", 0.5, 0)


def test_random_control_erases_as_many_neurons_from_the_whole_model(masked3):
    """Figure 5's control: the same number of neurons as a pair's specific erasure, drawn from all neurons."""
    model, _ = masked3
    masks = model_masks(model)
    sets = neuron_sets(masks, model.pairs)
    specific = condition_neurons(sets, "specific:en-fr", 0.5, seed=1)
    count = sum(int(v.sum()) for v in specific.values())
    control = random_control(masks, specific, seed=1)
    assert sum(int(v.sum()) for v in control.values()) == count > 0
    assert set(control) == set(masks) and all(control[m].shape == masks[m].shape[1:] for m in masks)
    # drawn from everything: general neurons and other pairs' neurons are hit too (with this many draws)
    general_hit = sum(int((control[m] & sets["general"][m]).sum()) for m in masks)
    assert general_hit > 0
    many = random_control(masks, {m: torch.ones_like(v) for m, v in specific.items()}, seed=1)
    assert all(v.all() for v in many.values())  # asking for every neuron erases every neuron
    assert all(torch.equal(a, b) for a, b in zip(control.values(), random_control(masks, specific, 1).values()))


@pytest.mark.parametrize("k", [1.0, 0.8])
def test_erasing_specific_neurons_leaves_pairs_without_them_bit_identical(tmp_path, k):
    model, d = _masked3(tmp_path / "masks.pt", k)
    sample = _batch(d, (5, 3), (4, 6))
    before = {p: _outputs(model, sample, i) for i, p in enumerate(model.pairs)}
    stored = {m: model.neuron_mask(m).clone() for m in model_masks(model)}
    masks = model_masks(model)
    sets = neuron_sets(masks, model.pairs)
    erased = condition_neurons(sets, "specific:en-fr", 1.0, seed=0)
    affected = affected_pairs(masks, model.pairs, erased)
    # k 1: no other pair holds en-fr's specific neurons; k 0.8: some are shared, and those pairs change too
    assert affected == ["en-fr"] if k == 1.0 else ("en-fr" in affected and len(affected) > 1)
    with erasing(model, erased):
        after = {p: _outputs(model, sample, i) for i, p in enumerate(model.pairs)}
        for m, drop in erased.items():  # erased neurons are zero in every pair's mask
            assert not model.neuron_mask(m)[:, drop].any()
    for pair in model.pairs:
        if pair in affected:
            assert not torch.equal(after[pair], before[pair]), pair
        else:
            assert torch.equal(after[pair], before[pair]), pair  # bit-identical
    # the stored masks are restored; erasing 0 % is the unerased model
    assert all(torch.equal(model.neuron_mask(m), v) for m, v in stored.items())
    with erasing(model, condition_neurons(sets, "general", 0.0, seed=0)):
        assert all(torch.equal(_outputs(model, sample, i), before[p]) for i, p in enumerate(model.pairs))
    with erasing(model, condition_neurons(sets, "general", 0.2, seed=0)):  # general neurons: every pair changes
        assert all(not torch.equal(_outputs(model, sample, i), before[p]) for i, p in enumerate(model.pairs))


def _importance_state():
    t = lambda rows: torch.tensor(rows, dtype=torch.float32)  # noqa: E731
    modules = {"encoder.layers.0.fc1": t([[10, 1, 4, 0, 3], [8, 5, 1, 2, 2.9]]),
               "encoder.layers.0.fc2": t([[1, 2, 3, 4, 5], [6, 2, 0, 4, 5]]),
               "encoder.layers.1.fc1": t([[7, 1, 0, 0, 0], [0, 0, 0, 0, 1]])}
    fp = {"family": "transformer", "arch": "x", "modules": {m: 5 for m in modules}}
    return {"format": "fairseq-interp/neuron-importance/1", "fingerprint": fp, "pairs": ["en-fr", "fr-en"],
            "modules": list(modules), "taylor": modules, "absolute": {m: v * 2 for m, v in modules.items()}}


def test_importance_curves_are_sorted_importance_per_group():
    state = _importance_state()
    by_layer = importance_curves(state, "taylor", "layer")
    assert list(by_layer) == ["encoder.0", "encoder.1"]
    assert by_layer["encoder.0"]["fr-en"].tolist() == pytest.approx([8, 6, 5, 5, 4, 2.9, 2, 2, 1, 0])
    assert by_layer["encoder.1"]["en-fr"].tolist() == [7, 1, 0, 0, 0]
    by_module = importance_curves(state, "absolute", "module")
    assert list(by_module) == ["encoder.fc1", "encoder.fc2"]  # one module type over both layers
    assert by_module["encoder.fc1"]["en-fr"].tolist() == [20, 14, 8, 6, 2, 2, 0, 0, 0, 0]
    with pytest.raises(InterpretError, match="unknown curve group"):
        importance_curves(state, "taylor", "head")


def test_cli_allocate_plots_importance_curves(tmp_path):
    state = _importance_state()
    per_pair = {p: {c: {m: state[c][m][i] for m in state["modules"]} for c in ("taylor", "absolute")}
                for i, p in enumerate(state["pairs"])}
    save_importance(tmp_path / "imp.pt", state["fingerprint"], per_pair)
    png = tmp_path / "curves.png"
    proc = run(["fairseq-interp", "neurons", "allocate", str(tmp_path / "imp.pt"), "--out", str(tmp_path / "m.pt"),
                "--plot-importance", str(png), "--curve-group", "module"], in_process=True)
    assert "importance curves (2 module panels)" in proc.stderr  # a summary: logged
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the CLI on a many-to-many masked checkpoint --------------------------------------------------------------

from test_neurons_multilingual import MULTI, m2m_baseline, m2m_data, m2m_masked  # noqa: E402,F401


def test_cli_erase_changes_only_pairs_holding_erased_neurons(m2m_data, m2m_masked, tmp_path):
    refs = str(m2m_data.parent / "raw" / "test.{tgt}")
    out = tmp_path / "erase"
    run(["fairseq-interp", "neurons", "erase", str(m2m_data), "--path", str(m2m_masked), "--references", refs,
         "--pairs", "en-de", "fr-de", "--specific-pairs", "en-de", "--specific-fraction", "1", "--beam", "2",
         "--max-len-b", "8", "--seed", "3", "--random-control", "--gen-subset", "test", "--max-tokens", "1500",
         "--results-path", str(out)], in_process=True)
    record = json.loads((out / "erasure.json").read_text())
    # provenance: the masked checkpoint by content, each direction's split and references, the options
    from fairseq_interp.common.checkpoints import read_checkpoint
    from fairseq_interp.common.provenance import weights_fingerprint

    provenance = record["provenance"]
    assert provenance["format"] == "fairseq-interp/neuron-erasure" and provenance["format_version"] == 1
    assert provenance["checkpoint"]["weights_sha256"] == weights_fingerprint(read_checkpoint(str(m2m_masked))["model"])
    assert sorted(provenance["data"]) == ["en-de", "fr-de"]
    assert provenance["data"]["fr-de"]["split"] == "test" and provenance["data"]["fr-de"]["target_lang"] == "de"
    assert len(provenance["data"]["fr-de"]["references_sha256"]) == 64
    assert (provenance["options"]["beam"], provenance["options"]["seed"]) == (2, 3)
    assert set(provenance["versions"]) >= {"fairseq", "torch", "fairseq_interp"}
    assert list(record["conditions"]) == ["general", "specific:en-de", "random:en-de"]
    assert record["conditions"]["random:en-de"]["erased"] == record["conditions"]["specific:en-de"]["erased"]
    specific = record["conditions"]["specific:en-de"]
    assert specific["erased"] == specific["of"] > 0 and specific["affected_pairs"] == ["en-de"]
    assert record["delta"]["specific:en-de"]["fr-de"] == 0.0
    read = lambda condition, pair, ext: (out / "translations" / condition / f"{pair}.{ext}").read_text()  # noqa: E731
    same = read("none", "fr-de", "txt")
    assert len(same.splitlines()) == 12
    # fr-de holds none of the erased neurons: the same hypotheses with bit-identical scores
    assert read("specific:en-de", "fr-de", "txt") == same
    assert read("specific:en-de", "fr-de", "scores") == read("none", "fr-de", "scores")
    assert read("specific:en-de", "en-de", "scores") != read("none", "en-de", "scores")
    assert read("general", "fr-de", "scores") != read("none", "fr-de", "scores")
    assert (out / "erasure.png").read_bytes()[:4] == b"\x89PNG"
    assert "| none (BLEU) | 0 |" in (out / "erasure.md").read_text()
    # in-process translation = fairseq-generate of the same checkpoint and settings, batched alike (fairseq's
    # iterator with --max-tokens 1500: this tiny model's beam scores move with the batch's padding)
    gen = run(["fairseq-generate", str(m2m_data), "--user-dir", "fairseq_interp", "--task",
               "translation_multi_neuron_masked", *MULTI, "--source-lang", "fr", "--target-lang", "de",
               "--path", str(m2m_masked), "--gen-subset", "test", "--beam", "2", "--max-len-a", "1.5",
               "--max-len-b", "8", "--max-tokens", "1500", "--cpu", "--required-batch-size-multiple", "1",
               "--post-process", "sentencepiece"])
    hyps = {int(line.split("\t")[0][2:]): line.split("\t")[1:] for line in gen.stdout.splitlines()
            if line.startswith("H-")}
    assert same.splitlines() == [hyps[i][1] for i in sorted(hyps)]
    # the same hypotheses with the same scores (fairseq-generate prints them in base 2)
    scores = [float(v) / math.log(2) for v in read("none", "fr-de", "scores").split()]
    assert scores == pytest.approx([float(hyps[i][0]) for i in sorted(hyps)], abs=1e-4)


@pytest.mark.parametrize("extra,message", [
    (["--specific-pairs", "cs-en"], "language pair cs-en has no neuron mask in .* \\(pairs: .*\\): pass "
                                    "--specific-pairs among them"),
    (["--pairs", "de-cs"], "language pair de-cs has no neuron mask"),
    (["--general-fraction", "0"], "--general-fraction must be in \\(0, 1\\], got 0.0"),
    (["--specific-fraction", "1.5"], "--specific-fraction must be in \\(0, 1\\], got 1.5"),
])
def test_cli_erase_bad_requests_are_one_line_errors(m2m_data, m2m_masked, tmp_path, extra, message):
    import re

    proc = run(["fairseq-interp", "neurons", "erase", str(m2m_data), "--path", str(m2m_masked), "--references",
                "x.{tgt}", "--out-dir", str(tmp_path), *extra], check=False)
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert proc.returncode == 2 and len(errors) == 1 and re.search(message, errors[0]), proc.stderr[-2000:]


def test_cli_erase_refuses_an_unmasked_checkpoint(m2m_data, m2m_baseline, tmp_path):
    proc = run(["fairseq-interp", "neurons", "erase", str(m2m_data), "--path", str(m2m_baseline), "--references",
                "x.{tgt}", "--out-dir", str(tmp_path)], check=False)
    assert proc.returncode == 2 and "holds no neuron masks: pass a transformer_neuron_masked checkpoint" in proc.stderr
