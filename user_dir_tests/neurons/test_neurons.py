"""Neuron importance and allocation (Xie et al. 2021): known answers on a tiny model and a hand-made table."""

import argparse
import json
from types import SimpleNamespace

import pytest
import torch

import fairseq_interp  # noqa: F401  (registers architectures, safe loading)
from fairseq_interp.neurons.allocation import (allocate, allocate_module, load_masks, pair_masks,
                                                       save_masks, scores)
from fairseq_interp.neurons.importance import (load_importance, model_fingerprint, neuron_modules, pair_importance,
                                             save_importance)
from fairseq_interp.common.errors import InterpretError

from conftest import run


def _tiny_model(ffn=64, seed=0):
    from fairseq.data import Dictionary
    from fairseq.models.transformer import TransformerModel

    from fairseq_interp.common.architectures import transformer_test_tiny

    d = Dictionary()
    for i in range(20):
        d.add_symbol(f"w{i}")
    args = argparse.Namespace(encoder_ffn_embed_dim=ffn, decoder_ffn_embed_dim=ffn, arch="transformer_test_tiny")
    transformer_test_tiny(args)
    torch.manual_seed(seed)
    model = TransformerModel.build_model(args, SimpleNamespace(source_dictionary=d, target_dictionary=d))
    return model.eval(), d


def _batch(d, src_lengths=(5, 3), tgt_lengths=(4, 6), seed=1):
    """Source left-padded, target right-padded, as fairseq's collater does; returns sample and true lengths."""
    g = torch.Generator().manual_seed(seed)
    b, ts, tt = len(src_lengths), max(src_lengths), max(tgt_lengths)
    src = torch.full((b, ts), d.pad())
    tgt = torch.full((b, tt), d.pad())
    prev = torch.full((b, tt), d.pad())
    for i, (ls, lt) in enumerate(zip(src_lengths, tgt_lengths)):
        src[i, ts - ls:-1] = torch.randint(d.nspecial, len(d), (ls - 1,), generator=g)
        src[i, -1] = d.eos()
        words = torch.randint(d.nspecial, len(d), (lt - 1,), generator=g)
        tgt[i, :lt] = torch.cat([words, torch.tensor([d.eos()])])
        prev[i, :lt] = torch.cat([torch.tensor([d.eos()]), words])
    sample = {"net_input": {"src_tokens": src, "src_lengths": torch.tensor(src_lengths),
                            "prev_output_tokens": prev}, "target": tgt}
    return sample


def _manual_importance(model, sample, src_lengths, tgt_lengths):
    """Independent computation: multiply every neuron's output by a ones gate g; ∂L/∂g = ∂L/∂h · h exactly.

    The neuron's output h (Xie et al. 2021, Eq. 7-8: "the activation value of the i-th neuron") is the linear map's
    output for the attention projections and fc2, and ``activation(fc1(x))`` for an FFN hidden unit (gated by
    wrapping the layer's activation function)."""
    from fairseq.modules import MultiheadAttention

    for m in model.modules():
        if isinstance(m, MultiheadAttention):
            m._set_skip_embed_dim_check()
    modules = neuron_modules(model)
    captured, restore = {}, []

    def gate(h, name):
        g = torch.ones_like(h, requires_grad=True)
        captured[name] = (g, h.detach())
        return h * g

    for name, (module, _) in modules.items():
        if name.endswith(".fc1"):
            side, _, index, _ = name.split(".", 3)
            layer = getattr(model, side).layers[int(index)]
            orig = layer.activation_fn
            layer.activation_fn = lambda x, _orig=orig, _name=name: gate(_orig(x), _name)
            restore.append((layer, "activation_fn", orig))
        else:
            module.forward = lambda x, _orig=module.forward, _name=name: gate(_orig(x), _name)
            restore.append((module, "forward", None))
    logits = model(**sample["net_input"])[0]
    lprobs = torch.log_softmax(logits, -1)
    target = sample["target"]
    loss = 0.0
    for b, lt in enumerate(tgt_lengths):  # true lengths, not the pad token
        loss = loss - lprobs[b, torch.arange(lt), target[b, :lt]].sum()
    names = list(captured)
    grads = torch.autograd.grad(loss, [captured[n][0] for n in names])
    ts, tt = max(src_lengths), max(tgt_lengths)
    keep_src = torch.stack([torch.arange(ts) >= ts - ls for ls in src_lengths], 1)  # (T, B), left padding
    keep_tgt = torch.stack([torch.arange(tt) < lt for lt in tgt_lengths], 1)  # right padding
    out = {"taylor": {}, "absolute": {}}
    for name, grad in zip(names, grads):
        keep = keep_src if modules[name][1] == "src" else keep_tgt
        h = captured[name][1]
        out["taylor"][name] = grad[keep].abs().mean(0)
        out["absolute"][name] = h[keep].abs().mean(0)
    for obj, attr, value in restore:
        if value is None:
            delattr(obj, attr)
        else:
            setattr(obj, attr, value)
    return out


def test_absolute_value_of_an_ffn_unit_is_its_output_after_the_activation():
    """Eq. 8 on the FFN: Θ_AV = mean |relu(fc1(x))|, not mean |fc1(x)| (negative pre-activations count as 0)."""
    model, d = _tiny_model()
    sample = _batch(d, (5, 3), (4, 6))
    result, _ = pair_importance(model, [sample], d.pad())
    layer = model.encoder.layers[0]
    captured = []
    handle = layer.fc1.register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    with torch.no_grad():
        model(**sample["net_input"])
    handle.remove()
    z = captured[0]  # (T, B, ffn), source stream of the encoder
    keep = sample["net_input"]["src_tokens"].ne(d.pad()).t()
    expected = torch.relu(z)[keep].mean(0)
    torch.testing.assert_close(result["absolute"]["encoder.layers.0.fc1"], expected, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(result["absolute"]["encoder.layers.0.fc1"], z[keep].abs().mean(0))
    # the authors' released code reads fc1's linear output: --ffn-point linear
    linear, _ = pair_importance(model, [sample], d.pad(), ffn_point="linear")
    torch.testing.assert_close(linear["absolute"]["encoder.layers.0.fc1"], z[keep].abs().mean(0), rtol=1e-5, atol=1e-7)
    # Θ_TE does not depend on the point for ReLU: ∂L/∂z · z = ∂L/∂h · h
    torch.testing.assert_close(linear["taylor"]["encoder.layers.0.fc1"], result["taylor"]["encoder.layers.0.fc1"],
                               rtol=1e-4, atol=1e-8)


def test_modules_cover_attention_and_ffn_of_both_sides():
    model, _ = _tiny_model()
    names = list(neuron_modules(model))
    assert len(names) == 4 + 2 + 8 + 2  # encoder self_attn q/k/v/out + fc1/fc2; decoder self+cross attn + ffn
    assert "decoder.layers.0.encoder_attn.k_proj" in names and "encoder.layers.0.fc1" in names
    fp = model_fingerprint(model)
    assert fp["modules"]["encoder.layers.0.fc1"] == 64 and fp["modules"]["decoder.layers.0.fc2"] == 32


def test_importance_equals_manual_taylor_and_absolute_value():
    model, d = _tiny_model()
    src_lengths, tgt_lengths = (5, 3), (4, 6)
    sample = _batch(d, src_lengths, tgt_lengths)
    result, tokens = pair_importance(model, [sample], d.pad())
    assert tokens == {"src": 8, "tgt": 10}
    manual = _manual_importance(model, sample, src_lengths, tgt_lengths)
    assert set(result["taylor"]) == set(manual["taylor"])
    for criterion in ("taylor", "absolute"):
        for name, expected in manual[criterion].items():
            assert expected.abs().sum() > 0, name  # the module was really exercised
            torch.testing.assert_close(result[criterion][name], expected.float(), rtol=1e-4, atol=1e-7,
                                       msg=f"{criterion} {name}")
    # parameters carry no leftover gradient and fairseq's fused attention is switched back on
    assert all(p.grad is None for p in model.parameters())
    fresh, _ = _tiny_model()
    fresh_flags = [m.skip_embed_dim_check for m in fresh.modules() if hasattr(m, "skip_embed_dim_check")]
    pair_importance(fresh, [sample], d.pad())
    assert [m.skip_embed_dim_check for m in fresh.modules() if hasattr(m, "skip_embed_dim_check")] == fresh_flags
    assert not any(fresh_flags)


def test_importance_averages_over_batches_by_tokens():
    model, d = _tiny_model()
    a, b = _batch(d, (5, 3), (4, 6), seed=1), _batch(d, (4,), (3,), seed=2)
    both, tokens = pair_importance(model, [a, b], d.pad())
    ra, ta = pair_importance(model, [a], d.pad())
    rb, tb = pair_importance(model, [b], d.pad())
    name = "decoder.layers.0.fc1"
    expected = (ra["taylor"][name] * ta["tgt"] + rb["taylor"][name] * tb["tgt"]) / (ta["tgt"] + tb["tgt"])
    torch.testing.assert_close(both["taylor"][name], expected, rtol=1e-5, atol=1e-8)


def _table(values):
    return torch.tensor(values, dtype=torch.float32)


def test_allocation_hand_made_table():
    theta = _table([[10, 1, 4, 0, 3.0],
                    [8, 5, 1, 2, 2.9]])  # means 9, 3, 2.5, 1, 2.95
    general, specific = allocate_module(theta, rho=0.4, k=0.7)
    assert general.tolist() == [True, True, False, False, False]
    # neuron 2: 4 >= 0.7*4 (pair 0), 1 < 2.8; neuron 3: only pair 1; neuron 4: 3 and 2.9 >= 2.1 -> both
    assert specific.tolist() == [[False, False, True, False, True],
                                 [False, False, False, True, True]]
    general, specific = allocate_module(theta, rho=0.0, k=1.0)  # each neuron to its best pair only
    assert not general.any()
    assert specific.tolist() == [[True, False, True, False, True], [False, True, False, True, False]]


def _state(**modules):
    pairs = ["en-fr", "fr-en"]
    fp = {"family": "transformer", "arch": "x", "modules": {m: t.shape[1] for m, t in modules.items()}}
    return {"format": "fairseq-interp/neuron-importance/1", "fingerprint": fp, "pairs": pairs,
            "modules": list(modules), "taylor": modules, "absolute": {m: t.flip(0) for m, t in modules.items()}}


def test_allocation_masks_and_scores():
    state = _state(**{"encoder.layers.0.fc1": _table([[10, 1, 4, 0, 3.0], [8, 5, 1, 2, 2.9]]),
                      "encoder.layers.0.fc2": _table([[1, 2, 3, 4, 5.0], [1, 2, 3, 4, 5.0]]),
                      "decoder.layers.0.fc1": _table([[1, 0, 0, 0, 0.0], [0, 0, 0, 0, 1.0]])})
    masks = allocate(state, rho=0.4, k=0.7)
    assert pair_masks(masks, "en-fr")["encoder.layers.0.fc1"].tolist() == [True, True, True, False, True]
    assert pair_masks(masks, "fr-en")["encoder.layers.0.fc1"].tolist() == [True, True, False, True, True]
    # fc2: equal importance for both pairs -> the non-general neurons 0-2 go to both
    assert masks["specific"]["encoder.layers.0.fc2"].tolist() == [[True, True, True, False, False]] * 2
    table = scores(masks)
    # Eq. 10: encoder layer 0 has 3 + 3 language-specific neurons; en-fr holds 2 (fc1) + 3 (fc2) of them
    assert table["lscore"]["encoder.0"] == pytest.approx({"en-fr": 5 / 6, "fr-en": 5 / 6})
    # decoder fc1: neurons 0 and 4 general (means 0.5); the three zero neurons tie -> specific to both
    assert table["lscore"]["decoder.0"] == pytest.approx({"en-fr": 1.0, "fr-en": 1.0})
    everything = allocate(state, rho=1.0, k=0.7)
    assert all(g.all() for g in everything["general"].values())
    assert not any(s.any() for s in everything["specific"].values())
    # no language-specific neuron: Ĩ_l = 0, the score is undefined
    assert all(v is None for row in scores(everything)["lscore"].values() for v in row.values())
    assert allocate(state, 0.4, 0.7, "absolute")["criterion"] == "absolute"


def _hand_masks():
    """Three pairs, one encoder layer with a 4-neuron q_proj and a 4-neuron fc1 (masks written by hand)."""
    def t(rows):
        return torch.tensor(rows, dtype=torch.bool)

    return {"pairs": ["A", "B", "C"], "modules": ["encoder.layers.0.self_attn.q_proj", "encoder.layers.0.fc1"],
            "general": {"encoder.layers.0.self_attn.q_proj": t([1, 1, 0, 0]), "encoder.layers.0.fc1": t([1, 0, 0, 0])},
            "specific": {"encoder.layers.0.self_attn.q_proj": t([[0, 0, 1, 1], [0, 0, 1, 0], [0, 0, 1, 1]]),
                         "encoder.layers.0.fc1": t([[0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1]])}}


def test_lscore_and_mscore_worked_by_hand_from_eq_10_and_11():
    """Xie et al. 2021, §5.2. Layer encoder.0: Ĩ_l = 2 (q_proj) + 3 (fc1) = 5 language-specific neurons;
    Ĩ_l^A = 2 + 1 = 3, Ĩ_l^B = 1 + 2 = 3, Ĩ_l^C = 2 + 3 = 5, so LScore = 3/5, 3/5, 1 (Eq. 10). MScore (Eq. 11):
    self-attention 1/3 (2/2 + 1/2 + 2/2) = 5/6, FFN 1/3 (1/3 + 2/3 + 3/3) = 2/3. (Dividing by all 8 neurons of the
    layer and averaging over pairs would give 11/24.)"""
    table = scores(_hand_masks())
    assert table["pairs"] == ["A", "B", "C"] and table["layers"] == ["encoder.0"]
    assert table["lscore"]["encoder.0"] == pytest.approx({"A": 0.6, "B": 0.6, "C": 1.0})
    assert table["mscore"]["encoder.0"] == pytest.approx({"self_attn": 5 / 6, "ffn": 2 / 3})
    linear = scores(_hand_masks(), "linear")["mscore"]["encoder.0"]
    assert linear == pytest.approx({"self_attn.q_proj": 5 / 6, "fc1": 2 / 3})
    with pytest.raises(InterpretError, match="module grouping"):
        scores(_hand_masks(), "layer")


def test_figure3_plot_has_four_panels(tmp_path):
    from fairseq_interp.neurons.allocation import plot_scores

    masks = _hand_masks()
    for name in list(masks["modules"]):  # add a decoder layer with cross-attention
        dec = name.replace("encoder.", "decoder.")
        masks["modules"].append(dec)
        masks["general"][dec], masks["specific"][dec] = masks["general"][name], masks["specific"][name]
    cross = "decoder.layers.0.encoder_attn.k_proj"
    masks["modules"].append(cross)
    masks["general"][cross] = torch.tensor([1, 0], dtype=torch.bool)
    masks["specific"][cross] = torch.tensor([[0, 1], [0, 1], [0, 0]], dtype=torch.bool)
    table = scores(masks)
    assert table["mscore"]["decoder.0"]["encoder_attn"] == pytest.approx(2 / 3)
    path = plot_scores(table, tmp_path / "fig3.png")
    assert (tmp_path / "fig3.png").stat().st_size > 0 and str(path).endswith("fig3.png")


@pytest.mark.parametrize("rho,k", [(1.5, 0.7), (-0.1, 0.7), (0.9, 1.2), (0.9, -1)])
def test_rho_and_k_outside_unit_interval_raise(rho, k):
    state = _state(**{"encoder.layers.0.fc1": _table([[1, 2], [2, 1]])})
    with pytest.raises(InterpretError, match="must be in \\[0, 1\\]"):
        allocate(state, rho, k)


def test_files_round_trip_and_refuse_other_models_and_pairs(tmp_path):
    model, d = _tiny_model()
    result, tokens = pair_importance(model, [_batch(d)], d.pad())
    fp = model_fingerprint(model)
    path = tmp_path / "imp.pt"
    save_importance(path, fp, {"en-fr": result, "fr-en": result}, {"en-fr": tokens, "fr-en": tokens})
    state = load_importance(path, fp)  # torch's safe loader (weights_only=True) reads it
    assert state["pairs"] == ["en-fr", "fr-en"]
    assert state["taylor"]["encoder.layers.0.fc1"].shape == (2, 64)
    masks = allocate(state, 0.5, 0.7)
    mpath = tmp_path / "masks.pt"
    save_masks(mpath, masks)
    assert load_masks(mpath, fp, "fr-en")["rho"] == 0.5
    other, _ = _tiny_model(ffn=48)
    with pytest.raises(InterpretError, match="another model"):
        load_importance(path, model_fingerprint(other))
    with pytest.raises(InterpretError, match="another model"):
        load_masks(mpath, model_fingerprint(other))
    with pytest.raises(InterpretError, match="'de-en' is not in the mask file"):
        load_masks(mpath, fp, "de-en")


def test_cli_importance_and_allocate(data_dir, transformer_ckpt, tmp_path):
    imp, masks, plot = tmp_path / "imp.pt", tmp_path / "masks.pt", tmp_path / "scores.png"
    run(["fairseq-interp", "neurons", "importance", str(data_dir / "bin"), "--path", str(transformer_ckpt),
         "--pairs", "en-fr", "fr-en", "--train-subset", "valid", "--num-sentences", "20", "--out", str(imp),
         "--user-dir", "fairseq_interp", "--allow-data-mismatch"],  # fr-en through the en-fr model on purpose
        in_process=True)
    state = load_importance(imp)
    assert state["pairs"] == ["en-fr", "fr-en"]
    # different directions read different streams, so their importance differs
    assert not torch.equal(state["taylor"]["encoder.layers.0.fc1"][0], state["taylor"]["encoder.layers.0.fc1"][1])
    proc = run(["fairseq-interp", "neurons", "allocate", str(imp), "--rho", "0.9", "--k", "0.7", "--out", str(masks),
                "--plot", str(plot)], in_process=True)
    lscore = json.loads([line for line in proc.stdout.splitlines() if line.startswith('{"lscore"')][0])["lscore"]
    assert set(lscore) == {"encoder.0", "decoder.0"}
    # every language-specific neuron has at least one pair (k <= 1): per layer the pairs' LScores sum to >= 1
    assert all(0 < v <= 1 for row in lscore.values() for v in row.values())
    assert all(sum(row.values()) >= 1 - 1e-6 for row in lscore.values())
    assert plot.stat().st_size > 0
    bad = run(["fairseq-interp", "neurons", "allocate", str(imp), "--rho", "2", "--out", str(masks)], check=False)
    assert bad.returncode == 2 and "rho must be in [0, 1]" in bad.stderr
    missing = run(["fairseq-interp", "neurons", "importance", str(data_dir / "bin"), "--path",
                   str(transformer_ckpt), "--pairs", "en-de", "--out", str(tmp_path / "unused.pt")], check=False)
    assert missing.returncode == 2 and "en-de" in missing.stderr
    # fine-tune the baseline into the masked model: masks come from the file, then live in the checkpoint
    from conftest import train
    from fairseq import checkpoint_utils

    ckpt = train(data_dir, tmp_path / "masked", "transformer_neuron_masked_test_tiny", 2,
                 ["--share-all-embeddings", "--neuron-masks", str(masks), "--finetune-from-model",
                  str(transformer_ckpt), "--task", "translation_neuron_masked"])  # pair en-fr from the data
    expected = pair_masks(load_masks(masks), "fr-en")["decoder.layers.0.encoder_attn.k_proj"].float()
    masks.unlink()  # the checkpoint alone must restore them
    models, _ = checkpoint_utils.load_model_ensemble([str(ckpt)], arg_overrides={"data": str(data_dir / "bin")})
    model = models[0]
    assert model.pairs == ["en-fr", "fr-en"]
    got = getattr(model, "neuron_mask__decoder__layers__0__encoder_attn__k_proj")[model.pair_index("fr-en")]
    assert torch.equal(got, expected) and not got.all()
    # neurons outside en-fr's mask got zero gradient, so Adam left their weight rows exactly as in the baseline
    before = checkpoint_utils.load_checkpoint_to_cpu(str(transformer_ckpt))["model"]
    checked = 0
    for name in neuron_modules(model):
        used = getattr(model, "neuron_mask__" + name.replace(".", "__"))[model.pair_index("en-fr")].bool()
        after = model.get_submodule(name).weight.detach()
        assert not torch.equal(after[used], before[name + ".weight"][used]), name
        if (~used).any():
            assert torch.equal(after[~used], before[name + ".weight"][~used]), name
            checked += 1
    assert checked > 0
    gen = run(["fairseq-generate", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path", str(ckpt),
               "--task", "translation_neuron_masked", "-s", "fr", "-t", "en", "--gen-subset", "test", "--beam", "2",
               "--max-len-b", "8", "--batch-size", "8", "--cpu", "--max-sentences", "8"])
    assert gen.stdout.count("\nH-") == 40
    bad_pair = run(["fairseq-generate", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path", str(ckpt),
                    "--task", "translation_neuron_masked", "--neuron-pair", "de-en", "--gen-subset", "test",
                    "--cpu"], check=False)
    assert bad_pair.returncode != 0 and "'de-en' has no neuron mask" in bad_pair.stderr
    # fairseq-interpret attributes with the pair's mask: F(x) of the records = the masked model's scores
    out = tmp_path / "interp"
    interpret = ["fairseq-interpret", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path", str(ckpt),
                 "--gen-subset", "test", "--cpu", "--num-sentences", "3", "--ig-steps", "4", "--beam", "2",
                 "--max-len-b", "8", "--results-path", str(out)]
    run(interpret + ["--task", "translation_neuron_masked", "--neuron-pair", "fr-en"], in_process=True)
    refused = run(interpret[:-1] + [str(tmp_path / "interp2")], check=False)  # plain translation task
    assert refused.returncode == 2 and "--task translation_neuron_masked" in refused.stderr
    from fairseq_interp.common.teacher_forcing import TeacherForcedAdapter

    model.eval()
    adapter = TeacherForcedAdapter(model, eos=2)
    from fairseq.data import Dictionary

    src_dict = Dictionary.load(str(data_dir / "bin" / "dict.en.txt"))
    tgt_dict = Dictionary.load(str(data_dir / "bin" / "dict.fr.txt"))
    records = [json.loads(line) for line in (out / "attributions.jsonl").read_text().splitlines()]
    assert len(records) == 3
    differs = False
    for r in records:
        src = torch.tensor([src_dict.index(t) for t in r["src_tokens"]])
        tgt = torch.tensor([tgt_dict.index(t) for t in r["tgt_tokens"]])
        with torch.no_grad():
            plain = adapter.scores(src, tgt)[0]
            with model.using_pairs(model.pair_index("fr-en")):
                masked_scores = adapter.scores(src, tgt)[0]
        torch.testing.assert_close(torch.tensor(r["target_scores"]), masked_scores, atol=1e-5, rtol=1e-4)
        differs |= not torch.allclose(plain, masked_scores, atol=1e-4)
    assert differs  # the mask matters: unmasked scores would not have passed


def _masked_model(masks_path, seed=0):
    from fairseq.models import ARCH_CONFIG_REGISTRY

    from fairseq_interp.neurons.model import NeuronMaskedTransformerModel

    base, d = _tiny_model(seed=seed)
    args = argparse.Namespace(encoder_ffn_embed_dim=64, decoder_ffn_embed_dim=64, neuron_masks=str(masks_path),
                              arch="transformer_neuron_masked_test_tiny")
    ARCH_CONFIG_REGISTRY["transformer_neuron_masked_test_tiny"](args)
    masked = NeuronMaskedTransformerModel.build_model(args, SimpleNamespace(source_dictionary=d,
                                                                           target_dictionary=d))
    state = base.state_dict()
    masked.upgrade_state_dict_named(state, "")  # fills the masks, as --finetune-from-model does
    masked.load_state_dict(state, strict=True)
    return base, masked.eval(), d


def _mask_file(tmp_path, model, d, rho, k=0.7):
    fp = model_fingerprint(model)
    a, _ = pair_importance(model, [_batch(d, seed=1)], d.pad())
    b, _ = pair_importance(model, [_batch(d, seed=5)], d.pad())
    path = tmp_path / f"masks-{rho}.pt"
    save_masks(path, allocate({"format": "fairseq-interp/neuron-importance/1", "fingerprint": fp,
                               "pairs": ["en-fr", "fr-en"], "modules": list(fp["modules"]),
                               "taylor": {m: torch.stack([a["taylor"][m], b["taylor"][m]]) for m in fp["modules"]},
                               "absolute": {}}, rho, k))
    return path


def test_masked_model_rho_one_equals_baseline_and_masks_zero_gradients(tmp_path):
    model, d = _tiny_model()
    sample = _batch(d, (5, 3), (4, 6))
    base, masked, _ = _masked_model(_mask_file(tmp_path, model, d, rho=1.0))
    assert masked.pairs == ["en-fr", "fr-en"]
    with torch.no_grad():
        expected = base(**sample["net_input"])[0]
        got = masked(**sample["net_input"], pair_ids=torch.tensor([0, 1]))[0]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)

    base, masked, _ = _masked_model(_mask_file(tmp_path, model, d, rho=0.5, k=1.0))
    # fc2 feeds the residual stream directly (no ReLU), so every neuron in use has a nonzero gradient
    mask = getattr(masked, "neuron_mask__encoder__layers__0__fc2")  # (pairs, 32)
    assert "neuron_mask__encoder__layers__0__fc2" in masked.state_dict()  # stored in checkpoints
    only_fr_en = ((mask[1] > 0) & (mask[0] == 0)).nonzero().flatten()
    assert len(only_fr_en) > 0  # with k <= 1 every neuron has a pair: the batch decides which are unused
    # a batch of en-fr samples only: neurons not assigned to en-fr get exactly zero gradient
    out = masked(**sample["net_input"], pair_ids=torch.tensor([0, 0]))[0]
    out.float().log_softmax(-1).sum().backward()
    grad = masked.encoder.layers[0].fc2.weight.grad
    assert torch.all(grad[mask[0] == 0] == 0)
    assert grad[mask[0] > 0].abs().sum(1).gt(0).all()
    # mixed batch: a neuron specific to fr-en is trained by the fr-en sample only
    masked.zero_grad()
    out = masked(**sample["net_input"], pair_ids=torch.tensor([0, 1]))[0]
    out.float().log_softmax(-1).sum().backward()
    grad = masked.encoder.layers[0].fc2.weight.grad
    assert grad[only_fr_en].abs().sum(1).gt(0).all()
    assert grad.abs().sum(1).gt(0).all()  # every neuron is used by one of the two samples
    # the masks actually change the output
    with torch.no_grad():
        assert not torch.allclose(masked(**sample["net_input"], pair_ids=torch.tensor([0, 0]))[0],
                                  base(**sample["net_input"])[0])
    with pytest.raises(InterpretError, match="'de-en' has no neuron mask"):
        masked.pair_index("de-en")


def test_masked_model_refuses_mask_file_of_another_model(tmp_path):
    other, d = _tiny_model(ffn=48)
    with pytest.raises(InterpretError, match="another model"):
        _masked_model(_mask_file(tmp_path, other, d, rho=0.9))


def test_masked_model_generation_selects_each_samples_mask_through_the_beam(tmp_path):
    from fairseq.sequence_generator import SequenceGenerator

    model, d = _tiny_model()
    _, masked, _ = _masked_model(_mask_file(tmp_path, model, d, rho=0.3, k=1.0))
    sample = _batch(d, (5, 4), (4, 6))
    gen = SequenceGenerator([masked], d, beam_size=2, max_len_b=6)

    def hypos(pair_ids):
        with torch.no_grad(), masked.using_pairs(pair_ids):
            return [h[0]["tokens"].tolist() for h in gen.generate([masked], sample)]

    all0, all1, mixed = hypos(torch.tensor(0)), hypos(torch.tensor(1)), hypos(torch.tensor([0, 1]))
    assert hypos(torch.tensor([1, 1])) == all1
    assert mixed == [all0[0], all1[1]]
    with torch.no_grad():
        scores0 = masked(**sample["net_input"], pair_ids=torch.tensor([0, 0]))[0]
        scores1 = masked(**sample["net_input"], pair_ids=torch.tensor([1, 1]))[0]
    assert not torch.allclose(scores0, scores1)  # the two pairs' masks really differ
    with pytest.raises(InterpretError, match="pair ids must index"):
        with masked.using_pairs(torch.tensor([0, 2])):
            pass
