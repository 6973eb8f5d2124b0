"""Many-to-many neuron-masked fine-tuning (Xie et al. 2021) on tiny real Multi30k data: per-sample pair ids in
mixed-language batches, ρ = 1 equals the baseline, zero gradients for unassigned neurons, and the whole pipeline
(prepare → baseline → importance → allocate → masked fine-tuning → generate)."""

import sys

import pytest
import torch

import fairseq_interp  # noqa: F401  (registers the task, architectures, safe loading)
from fairseq_interp.neurons.allocation import FORMAT as MASKS_FORMAT, allocate, save_masks
from fairseq_interp.neurons.importance import model_fingerprint, save_importance
from fairseq_interp.common.errors import InterpretError

from conftest import built_once, run

PAIRS = ["en-de", "de-en", "en-fr", "fr-de"]  # reversed, non-English and English-centric directions
# source language token + target language token as the decoder's first token: each direction is visible in the
# tokens, so the tests can check pair ids against the data independently
LANGTOK = ["--encoder-langtok", "src", "--decoder-langtok"]
MULTI = ["--lang-pairs", ",".join(PAIRS), *LANGTOK]
TRAIN = ["--optimizer", "adam", "--lr", "5e-3", "--criterion", "label_smoothed_cross_entropy", "--max-tokens", "1500",
         "--cpu", "--no-epoch-checkpoints", "--no-progress-bar", "--seed", "1", "--max-source-positions", "128",
         "--max-target-positions", "128", "--share-all-embeddings", "--user-dir", "fairseq_interp"]


@pytest.fixture(scope="session")
def m2m_data(tmp_path_factory):
    """4 directions of Multi30k, 600 aligned training sentences, 400-piece joint sentencepiece, one dictionary."""
    def build():
        out = tmp_path_factory.mktemp("m2m") / "data"
        run([sys.executable, "scripts/prepare_data.py", "--lang-pairs", ",".join(PAIRS), "--out", str(out),
             "--train-size", "600", "--valid-size", "30", "--test-size", "12", "--vocab-size", "400"], in_process=True)
        return out / "bin"

    return built_once(tmp_path_factory, "m2m_data", build)


@pytest.fixture(scope="session")
def m2m_baseline(m2m_data, tmp_path_factory):
    """The Multilingual baseline: translation_multi_simple_epoch + transformer_test_tiny, 15 updates."""
    def build():
        save = tmp_path_factory.mktemp("m2m_base")
        run(["fairseq-train", str(m2m_data), "--task", "translation_multi_simple_epoch", "--arch",
             "transformer_test_tiny", *MULTI, "--max-update", "15", "--save-dir", str(save), "--disable-validation",
             *TRAIN])
        return save / "checkpoint_last.pt"

    return built_once(tmp_path_factory, "m2m_baseline", build)


def test_prepared_layout_is_translation_multi_simple_epochs(m2m_data):
    dicts = {lang: (m2m_data / f"dict.{lang}.txt").read_text() for lang in ("en", "de", "fr")}
    assert dicts["en"] == dicts["de"] == dicts["fr"] and len(dicts["en"].splitlines()) > 300  # one shared dictionary
    for split in ("train", "valid", "test"):  # once per unordered pair; reversed directions read the same files
        for a, b in (("de", "en"), ("en", "fr"), ("de", "fr")):
            assert all((m2m_data / f"{split}.{a}-{b}.{lang}.{ext}").is_file()
                       for lang in (a, b) for ext in ("bin", "idx"))
    assert not list(m2m_data.glob("*.en-de.*")) and not list(m2m_data.glob("*cs*"))
    assert (m2m_data / "lang_pairs.txt").read_text().strip() == ",".join(PAIRS)


def _setup(data, extra=(), arch="transformer_neuron_masked_test_tiny"):
    from fairseq import options, tasks

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(data), "--task", "translation_multi_neuron_masked", *MULTI,
                                                "--arch", arch, *TRAIN[:-2], *extra])
    return tasks.setup_task(args), args


def _mask_file(path, task, args, pairs, rho, k=1.0, seed=0):
    """Masks of ``allocate`` from random per-pair importance for the model ``args`` describes."""
    from fairseq.models.transformer import TransformerModel

    args.arch = "transformer_test_tiny"
    plain = TransformerModel.build_model(args, task)
    fingerprint = model_fingerprint(plain)
    g = torch.Generator().manual_seed(seed)
    values = {p: {c: {m: torch.rand(n, generator=g) for m, n in fingerprint["modules"].items()}
                  for c in ("taylor", "absolute")} for p in pairs}
    save_masks(path, allocate(save_importance(str(path) + ".imp", fingerprint, values), rho, k))
    return plain


def _masked(task, args, masks):
    args.arch, args.neuron_masks = "transformer_neuron_masked_test_tiny", str(masks)
    torch.manual_seed(1)
    return task.build_model(args).eval()


def _direction(task, sample_net_input, target, b):
    """The direction of row ``b`` read from its tokens: source language token, target language token."""
    d = task.source_dictionary
    src = sample_net_input["src_tokens"][b]
    first = src[src.ne(d.pad())][0]
    return f"{d[first][2:-2]}-{d[target[b, 0]][2:-2]}"


@pytest.fixture(scope="module")
def mixed(m2m_data, tmp_path_factory):
    """Task, a masked model (ρ 0.5, pair order shuffled w.r.t. --lang-pairs) and a mixed training batch."""
    task, args = _setup(m2m_data)
    masks = tmp_path_factory.mktemp("m2m_masks") / "masks.pt"
    _mask_file(masks, task, args, ["fr-de", "en-de", "de-en", "en-fr"], rho=0.5)
    model = _masked(task, args, masks)
    task.load_dataset("train")
    dataset = task.dataset("train")  # fairseq's sampled multilingual dataset, shared collater
    items = [dataset[i] for i in torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:16]]
    return task, model, dataset, items


def test_training_batch_carries_each_samples_pair(mixed):
    task, model, dataset, items = mixed
    batch = dataset.collater(items)
    ids = batch["net_input"]["pair_ids"]
    assert ids.shape == (16,) and len(set(ids.tolist())) >= 3  # really mixed
    for b in range(16):
        assert task.lang_pairs[ids[b]] == _direction(task, batch["net_input"], batch["target"], b)
    # ids of the samples are fairseq's, not the positions used internally
    assert sorted(batch["id"].tolist()) == sorted(s["id"] for _, s in items)
    mapped = task.with_model_pair_ids(batch, model)["net_input"]["pair_ids"]
    assert [model.pairs[i] for i in mapped] == [task.lang_pairs[i] for i in ids]
    assert "pair_ids" in batch["net_input"] and batch["net_input"]["pair_ids"] is ids  # input left unchanged


def test_mixed_batch_equals_each_sample_alone_with_its_pairs_mask(mixed):
    task, model, dataset, items = mixed
    batch = task.with_model_pair_ids(dataset.collater(items), model)
    with torch.no_grad():
        out = model(**batch["net_input"])[0]
    differs = 0
    for b in range(len(items)):
        pair = _direction(task, batch["net_input"], batch["target"], b)
        alone = dataset.collater([next(it for it in items if it[1]["id"] == batch["id"][b] and
                                       task.lang_pairs[it[0]] == pair)])
        length = int(alone["target"].ne(task.target_dictionary.pad()).sum())
        with torch.no_grad(), model.using_pairs(model.pair_index(pair)):
            expected = model(**{k: v for k, v in alone["net_input"].items() if k != "pair_ids"})[0][0, :length]
        torch.testing.assert_close(out[b, :length], expected, rtol=1e-4, atol=1e-5)
        other = next(p for p in model.pairs if p != pair)
        with torch.no_grad(), model.using_pairs(model.pair_index(other)):
            wrong = model(**{k: v for k, v in alone["net_input"].items() if k != "pair_ids"})[0][0, :length]
        differs += not torch.allclose(wrong, expected, rtol=1e-4, atol=1e-5)
    assert differs == len(items)  # the masks matter: a wrong pair would have failed the comparison


def test_generation_of_a_mixed_batch_is_refused(mixed):
    task, model, dataset, items = mixed
    with pytest.raises(InterpretError, match="one direction at a time.*--source-lang and --target-lang"):
        task.inference_step(None, [model], dataset.collater(items))


def test_neuron_of_no_pair_in_the_batch_gets_zero_gradient(mixed, tmp_path):
    from fairseq_interp.neurons.importance import neuron_modules

    task, model, dataset, items = mixed
    keep = [it for it in items if task.lang_pairs[it[0]] in ("en-de", "fr-de")]  # mixed, en-fr and de-en absent
    batch = dataset.collater(keep)
    assert set(batch["net_input"]["pair_ids"].tolist()) == {0, 3}
    # hand-made masks: in every module neuron 0 belongs to en-fr only, neuron 1 to fr-de only, the rest is general
    fingerprint = model_fingerprint(model)
    modules = list(fingerprint["modules"])
    general = {m: torch.arange(n) >= 2 for m, n in fingerprint["modules"].items()}
    specific = {m: torch.zeros(len(PAIRS), n, dtype=torch.bool) for m, n in fingerprint["modules"].items()}
    for m in modules:
        specific[m][PAIRS.index("en-fr"), 0] = specific[m][PAIRS.index("fr-de"), 1] = True
    path = tmp_path / "hand.pt"
    save_masks(path, {"format": MASKS_FORMAT, "fingerprint": fingerprint, "pairs": PAIRS, "rho": 0.0, "k": 1.0,
                      "criterion": "taylor", "modules": modules, "general": general, "specific": specific})
    _, args = _setup(task.args.data)
    masked = _masked(task, args, path)
    loss, _, _ = task.build_criterion(args)(masked, task.with_model_pair_ids(batch, masked))
    loss.backward()
    for name, (module, _) in neuron_modules(masked).items():
        assert torch.equal(module.weight.grad[0], torch.zeros_like(module.weight.grad[0])), name
        assert module.bias.grad[0] == 0, name
        assert module.weight.grad[1].abs().sum() > 0, name  # fr-de's own neuron learns from its samples
        assert module.weight.grad[2:].abs().sum() > 0, name


def test_rho_one_masked_model_equals_the_multilingual_baseline(m2m_data, m2m_baseline, mixed, tmp_path):
    from fairseq import checkpoint_utils

    task, _, dataset, items = mixed
    [baseline], _ = checkpoint_utils.load_model_ensemble([str(m2m_baseline)], task=task)
    baseline.eval()
    _, args = _setup(m2m_data)
    masks = tmp_path / "rho1.pt"
    _mask_file(masks, task, args, PAIRS, rho=1.0)
    masked = _masked(task, args, masks)
    state = baseline.state_dict()
    masked.upgrade_state_dict_named(state, "")  # what --finetune-from-model does: masks kept from the file
    masked.load_state_dict(state, strict=True)
    batch = task.with_model_pair_ids(dataset.collater(items), masked)
    with torch.no_grad():
        got = masked(**batch["net_input"])[0]
        expected = baseline(**{k: v for k, v in batch["net_input"].items() if k != "pair_ids"})[0]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_importance_unknown_pair_names_the_available_ones(m2m_data, m2m_baseline):
    from fairseq_interp.neurons.commands import _load_for_pair

    with pytest.raises(InterpretError, match="de-cs is not one the model was trained on \\(available: en-de, "
                                             "de-en, en-fr, fr-de\\)"):
        _load_for_pair(str(m2m_baseline), str(m2m_data), "de", "cs")


def test_pipeline_importance_allocate_finetune_generate(m2m_data, m2m_baseline, tmp_path):
    imp, masks, save = tmp_path / "importance.pt", tmp_path / "masks.pt", tmp_path / "masked"
    proc = run(["fairseq-interp", "neurons", "importance", str(m2m_data), "--path", str(m2m_baseline),
                "--pairs", *PAIRS, "--out", str(imp)], in_process=True)
    assert proc.stderr.count("sentences,") == len(PAIRS)  # one summary per pair, logged
    state = torch.load(imp, weights_only=True)
    assert state["pairs"] == PAIRS and state["taylor"]["decoder.layers.0.fc1"].shape == (4, 64)
    assert not torch.equal(state["taylor"]["encoder.layers.0.fc1"][0], state["taylor"]["encoder.layers.0.fc1"][1])
    run(["fairseq-interp", "neurons", "allocate", str(imp), "--rho", "0.8", "--k", "0.7", "--out", str(masks)],
        in_process=True)
    run(["fairseq-train", str(m2m_data), "--task", "translation_multi_neuron_masked", *MULTI,
         "--arch", "transformer_neuron_masked_test_tiny", "--neuron-masks", str(masks),
         "--finetune-from-model", str(m2m_baseline), "--max-update", "6", "--save-dir", str(save), *TRAIN])
    ckpt = save / "checkpoint_last.pt"
    gen = run(["fairseq-generate", str(m2m_data), "--user-dir", "fairseq_interp", "--task",
               "translation_multi_neuron_masked", *MULTI, "--source-lang", "fr", "--target-lang", "de",
               "--path", str(ckpt), "--gen-subset", "test", "--beam", "2", "--max-tokens", "1500", "--cpu",
               # fairseq's batch_by_size drops the last len % 8 sentences with the default multiple of 8
               "--required-batch-size-multiple", "1"])
    hyps = [line for line in gen.stdout.splitlines() if line.startswith("H-")]
    assert len(hyps) == 12 and not any("__de__" in h for h in hyps)  # language tokens stripped
    # generation ran with the fr-de mask (the model's own pair index), batch-wide
    from fairseq import checkpoint_utils, options, tasks

    parser = options.get_generation_parser()
    args = options.parse_args_and_arch(parser, [str(m2m_data), "--task", "translation_multi_neuron_masked", *MULTI,
                                                "--source-lang", "fr", "--target-lang", "de", "--beam", "2"])
    task = tasks.setup_task(args)
    [model], _ = checkpoint_utils.load_model_ensemble([str(ckpt)], task=task)
    assert model.pairs == PAIRS
    task.load_dataset("test")
    seen = []
    for layer in (model.encoder.layers[0], model.decoder.layers[0]):  # every encoder and decoder step
        layer.fc1.register_forward_pre_hook(lambda module, inputs: seen.append(model._router.ids.tolist()))
    batch = task.dataset("test").collater([task.dataset("test")[i] for i in range(4)])
    generator = task.build_generator([model], args)
    task.inference_step(generator, [model], batch)
    assert len(seen) > 2 and set(seen) == {PAIRS.index("fr-de")}


def test_many_to_many_masked_fine_tuning_under_ddp(m2m_data, m2m_baseline, tmp_path):
    """translation_multi_neuron_masked on 2 CPU ranks == one process with --update-freq 2 (same mixed batches, per-sample
    masks, all-reduced gradients): per-update losses and final parameters."""
    import distributed as ddp

    task, args = _setup(m2m_data)
    _mask_file(tmp_path / "masks.pt", task, args, PAIRS, rho=0.5)
    common = [str(m2m_data), "--task", "translation_multi_neuron_masked", *MULTI, "--arch",
              "transformer_neuron_masked_test_tiny", "--neuron-masks", str(tmp_path / "masks.pt"),
              "--finetune-from-model", str(m2m_baseline), *TRAIN, "--log-format", "json", "--log-interval", "1",
              "--disable-validation"]
    rank0, _ = ddp.two_ranks(None, tmp_path / "ddp", 3, [], common=common)
    single = ddp.one_process(None, tmp_path / "single", 3, [], common=common)
    ddp_logs, single_logs = ddp.per_update(rank0), ddp.per_update(single)
    assert sorted(ddp_logs) == sorted(single_logs) == [1, 2, 3]
    for u in (1, 2, 3):
        assert ddp_logs[u]["loss"] == pytest.approx(single_logs[u]["loss"], abs=2e-3)
    ddp.assert_same_parameters(tmp_path / "ddp" / "checkpoint_last.pt", tmp_path / "single" / "checkpoint_last.pt")


@pytest.fixture(scope="session")
def m2m_masked(m2m_data, m2m_baseline, tmp_path_factory):
    """A many-to-many masked checkpoint (ρ 0.5, k 1 masks of random importance: each specific neuron has one pair;
    4 updates from the baseline)."""
    def build():
        tmp = tmp_path_factory.mktemp("m2m_masked")
        task, args = _setup(m2m_data)
        _mask_file(tmp / "masks.pt", task, args, PAIRS, rho=0.5, k=1.0)
        run(["fairseq-train", str(m2m_data), "--task", "translation_multi_neuron_masked", *MULTI,
             "--arch", "transformer_neuron_masked_test_tiny", "--neuron-masks", str(tmp / "masks.pt"),
             "--finetune-from-model", str(m2m_baseline), "--max-update", "4", "--save-dir", str(tmp), *TRAIN,
             "--disable-validation"])
        (tmp / "masks.pt").unlink()  # the checkpoint alone holds the masks
        return tmp / "checkpoint_last.pt"

    return built_once(tmp_path_factory, "m2m_masked", build)


def _interpret_command(data, ckpt, out, *extra, task="translation_multi_neuron_masked"):
    return ["fairseq-interpret", str(data), "--user-dir", "fairseq_interp", "--path", str(ckpt), "--task", task,
            *MULTI, "--gen-subset", "test", "--cpu", "--num-sentences", "3", "--beam", "2", "--max-len-b", "10",
            "--attribution-score", "logprob", "--results-path", str(out), *extra]


def _interpret(data, ckpt, out, *extra, task="translation_multi_neuron_masked", check=True):
    return run(_interpret_command(data, ckpt, out, *extra, task=task), check=check, in_process=True)


def _direct_scores(ckpt, data, src_lang, tgt_lang):
    """Task, model and ``score(src, target, pair, prefix)``: log P of every target token, the model run directly
    (no adapter) with the mask of ``pair`` and the decoder reading EOS + ``prefix`` before the target."""
    from fairseq import checkpoint_utils, options, tasks

    parser = options.get_generation_parser()
    args = options.parse_args_and_arch(parser, [str(data), "--task", "translation_multi_neuron_masked", *MULTI,
                                                "--source-lang", src_lang, "--target-lang", tgt_lang, "--beam", "2",
                                                "--max-len-b", "10"])
    task = tasks.setup_task(args)
    [model], _ = checkpoint_utils.load_model_ensemble([str(ckpt)], task=task)
    model.eval()

    def score(src, target, pair, prefix):
        prev = torch.cat([torch.tensor([task.target_dictionary.eos(), *prefix]), target[:-1]])[None]
        with torch.no_grad(), model.using_pairs(model.pair_index(pair)):
            out = model(src[None], torch.tensor([src.numel()]), prev)
        lprobs = model.get_normalized_probs(out, log_probs=True)[0, len(prefix):]
        return lprobs.gather(-1, target[:, None])[:, 0]

    return task, model, args, score


def test_interpret_one_direction_uses_its_mask_and_language_tokens(m2m_data, m2m_masked, tmp_path):
    import json

    _interpret(m2m_data, m2m_masked, tmp_path / "out", "--source-lang", "fr", "--target-lang", "de")
    records = [json.loads(line) for line in (tmp_path / "out" / "attributions.jsonl").read_text().splitlines()]
    assert len(records) == 3
    task, model, args, score = _direct_scores(m2m_masked, m2m_data, "fr", "de")
    d = task.target_dictionary
    de, fr = d.index("__de__"), d.index("__fr__")
    task.load_dataset("test")
    dataset = task.dataset("test")
    batch = dataset.collater([dataset[r["id"]] for r in records])
    with model.using_pairs(0):  # generation must choose fr-de's mask itself, whatever the surrounding context
        hypos = task.inference_step(task.build_generator([model], args), [model], batch)
    order = batch["id"].tolist()
    for r in records:
        # the encoder's language token is a source token with its own row and its own word
        assert r["src_tokens"][0] == "__fr__" and r["src_words"][0] == "__fr__" and r["src_words"][1] != "__fr__"
        assert len(r["contributions"]) == len(r["src_tokens"]) and len(r["word_contributions"][0]) == \
            len(r["tgt_words"])
        # the decoder's language token is read, not attributed: the target is the translation
        assert "__de__" not in r["tgt_tokens"] and "__de__" not in r["translation"]
        src = torch.tensor([d.index(t) for t in r["src_tokens"]])
        tgt = torch.tensor([d.index(t) for t in r["tgt_tokens"]])
        assert int(src[0]) == fr
        hypo = hypos[order.index(r["id"])][0]
        assert hypo["tokens"][0] == de and hypo["tokens"][1:].tolist() == tgt.tolist()
        got = torch.tensor(r["target_scores"])
        # F(x) = the model's own scores of its hypothesis (beam search, fr-de mask, language token forced)
        torch.testing.assert_close(got, hypo["positional_scores"][1:], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got, score(src, tgt, "fr-de", [de]), atol=1e-4, rtol=1e-4)
        # ... and not what another pair's mask or a decoder without the language token would give
        assert not torch.allclose(got, score(src, tgt, "en-de", [de]), atol=1e-3)
        assert not torch.allclose(got, score(src, tgt, "fr-de", []), atol=1e-3)
        # integrated gradients under the same mask: completeness within 1% (of the sentence's largest gap: the
        # barely trained model's per-token gaps F(x) - F(0) can be tiny)
        contributions, delta = torch.tensor(r["contributions"]), torch.tensor(r["convergence_delta"])
        gap = got - torch.tensor(r["baseline_scores"])
        torch.testing.assert_close(contributions.sum(0) - gap, delta, atol=1e-5, rtol=0)
        assert delta.abs().max() < 0.01 * gap.abs().max()


def test_interpret_needs_one_direction_of_the_checkpoint(m2m_data, m2m_masked, tmp_path):
    from conftest import error_lines

    missing = _interpret(m2m_data, m2m_masked, tmp_path / "a", check=False)
    assert missing.returncode == 2 and len(error_lines(missing)) == 1
    assert "one direction at a time: pass --source-lang and --target-lang" in missing.stderr
    other = _interpret(m2m_data, m2m_masked, tmp_path / "b", "--source-lang", "de", "--target-lang", "fr",
                       check=False)  # its data exists (fr-de reads it), its mask does not
    assert other.returncode == 2 and len(error_lines(other)) == 1
    assert "direction de-fr is not one of the checkpoint's language pairs (en-de, de-en, en-fr, fr-de)" in \
        other.stderr
    no_langtok = run([a for a in _interpret_command(m2m_data, m2m_masked, tmp_path / "c", "--source-lang", "fr",
                                                    "--target-lang", "de") if a != "--decoder-langtok"], check=False)
    assert no_langtok.returncode == 2 and len(error_lines(no_langtok)) == 1
    assert "trained with --encoder-langtok src --decoder-langtok --lang-tok-style multilingual, not --encoder-" \
        "langtok src --lang-tok-style multilingual: pass the language-token options" in no_langtok.stderr
    assert not any((tmp_path / name).exists() for name in "abc")


def test_interpret_the_multilingual_baseline_one_direction(m2m_data, m2m_baseline, tmp_path):
    """The unmasked baseline with fairseq's own task: the same language-token handling, no mask."""
    import json

    from fairseq import checkpoint_utils

    _interpret(m2m_data, m2m_baseline, tmp_path / "out", "--source-lang", "en", "--target-lang", "fr",
               "--attribution", "attention", task="translation_multi_simple_epoch")
    records = [json.loads(line) for line in (tmp_path / "out" / "attributions.jsonl").read_text().splitlines()]
    task, _, _, _ = _direct_scores(m2m_baseline, m2m_data, "en", "fr")
    [model], _ = checkpoint_utils.load_model_ensemble([str(m2m_baseline)], task=task)
    model.eval()
    d = task.target_dictionary
    for r in records:
        assert r["src_words"][0] == "__en__" and "__fr__" not in r["tgt_tokens"]
        assert len(r["contributions"]) == len(r["src_tokens"]) and len(r["contributions"][0]) == len(r["tgt_tokens"])
        src = torch.tensor([d.index(t) for t in r["src_tokens"]])
        tgt = torch.tensor([d.index(t) for t in r["tgt_tokens"]])
        prev = torch.cat([torch.tensor([d.eos(), d.index("__fr__")]), tgt[:-1]])[None]
        with torch.no_grad():
            lprobs = model.get_normalized_probs(model(src[None], torch.tensor([src.numel()]), prev), log_probs=True)
        expected = lprobs[0, 1:].gather(-1, tgt[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(r["target_scores"]), expected, atol=1e-4, rtol=1e-4)
