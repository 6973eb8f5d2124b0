"""The Python API on fairseq's hub interface: a tiny random checkpoint with a real sentencepiece model, raw
sentences in, results shown, plotted, tabulated, saved and loaded in the JSONL schema of the command line."""

import os
import subprocess
import sys

import pytest

from tiny_translation import WORDS, build, save_checkpoint, sentencepiece_folder, write_dictionaries

from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.jsonl import read_records

SENTENCE = "A man in an orange hat."
MOSES_WORDS = ["A", "man", "in", "an", "orange", "hat", "."]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """``(folder, data, spm model)``: a random transformer_test_tiny (shared embeddings) saved as fairseq-train
    saves it, the dictionaries of a sentencepiece model trained on made-up sentences."""
    import random

    root = tmp_path_factory.mktemp("api")
    rng = random.Random(0)
    sentences = [SENTENCE, "Un homme avec un chapeau orange ."] + [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(300)]
    spm_model, pieces = sentencepiece_folder(str(root / "spm"), sentences, vocab_size=70)
    data = write_dictionaries(str(root / "bin"), pieces + ["A", "Un"])
    model, task, cfg = build(data, "transformer_shared")
    os.makedirs(root / "ckpt")
    save_checkpoint(model, cfg, root / "ckpt" / "checkpoint_best.pt")
    return str(root / "ckpt"), data, spm_model


@pytest.fixture(scope="module")
def hub(checkpoint):
    from fairseq_interp.word_importance import from_pretrained

    folder, data, spm_model = checkpoint
    return from_pretrained(folder, "checkpoint_best.pt", data, tokenizer="moses", bpe="sentencepiece",
                           sentencepiece_model=spm_model, max_len_b=6)


def check_ig_record(record, tol=0.02):
    for n in range(len(record["tgt_tokens"])):
        column = sum(row[n] for row in record["contributions"])
        column += sum(row[n] for row in record.get("prefix_contributions") or [])
        gap = record["target_scores"][n] - record["baseline_scores"][n]
        assert column - gap == pytest.approx(record["convergence_delta"][n], abs=1e-6)
        assert abs(record["convergence_delta"][n]) < tol


def test_sentence_to_heatmap(hub, capsys, tmp_path):
    result = hub.attribute(SENTENCE, ig_steps=16)
    record = result.record
    assert record["src_words"] == MOSES_WORDS + ["</s>"]  # Moses tokens, merged from their pieces
    assert record["method"] == "ig" and record["score"] == "prob" and record["checkpoint"].endswith(
        "checkpoint_best.pt") and record["ig_steps"] == 16
    check_ig_record(record)
    assert result.word_importance.shape == (7,) and result.word_importance.sum() == pytest.approx(1.0)
    assert result.word_contributions.shape == (8, len(record["tgt_words"]))
    result.show()  # not a notebook: the text view
    out = capsys.readouterr().out
    assert out.startswith("S-0\tA man in an orange hat .\n") and "I-0\t" in out
    page = result._repr_html_()
    assert "word importance" in page and all(f">{w}</span>" in page for w in MOSES_WORDS)
    assert "checkpoint=" in page and "method=ig" in page
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    ax = result.plot(ax=axes[1])
    assert ax is axes[1] and [t.get_text() for t in ax.get_yticklabels()] == MOSES_WORDS + ["</s>"]
    plt.close(fig)
    # save / load: the command line's schema, one writer and one reader
    path = tmp_path / "attributions.jsonl"
    result.save(path)
    assert read_records(path) == [record]
    from fairseq_interp.word_importance import load

    loaded = load(path)
    assert len(loaded) == 1 and loaded[0].record == record
    with pytest.raises(InterpretError, match="already exists"):
        result.save(path)
    hub.attribute([SENTENCE, "Two women ."], ig_steps=4).save(path, overwrite=True)
    assert [r["id"] for r in read_records(path)] == [0, 1]


def test_lists_files_references_and_methods(hub, tmp_path):
    from fairseq_interp.word_importance.results import Attributions

    text = tmp_path / "input.txt"
    text.write_text(f"{SENTENCE}\tUn homme avec un chapeau orange .\nTwo women .\tDeux femmes .\n",
                    encoding="utf-8")
    by_path = hub.attribute(text, method="occlusion", attribute_target="reference")
    with open(text, encoding="utf-8") as f:
        by_file = hub.attribute(f, method="occlusion", attribute_target="reference")
    assert isinstance(by_path, Attributions) and [a.record for a in by_path] == [a.record for a in by_file]
    assert by_path[0].record["reference"] == "Un homme avec un chapeau orange ."
    assert by_path[0].tgt_words[:-1] == "Un homme avec un chapeau orange .".split()
    assert by_path[1].record["attribute_target"] == "reference" and by_path[1].record["method"] == "occlusion"
    forced = hub.attribute([SENTENCE, "Two women ."], method="occlusion",
                           target=["Un homme avec un chapeau orange .", "Deux femmes ."])
    assert [a.record["contributions"] for a in forced] == [a.record["contributions"] for a in by_path]
    assert "2 sentence" in repr(forced)
    erasure = hub.attribute(SENTENCE, method="erasure", reference="Un homme avec un chapeau orange .").record
    assert erasure["word_contributions"] is None and len(erasure["erasure_bleus"]) == len(MOSES_WORDS)


def test_target_prefix_and_contrast(hub):
    result = hub.attribute(SENTENCE, target="Un homme avec un chapeau orange .", target_prefix=True, ig_steps=16)
    record = result.record
    assert record["prefix_words"] == ["</s>"] + "Un homme avec un chapeau orange .".split()  # EOS, y_1 .. y_{T-1}
    check_ig_record(record)
    assert result.prefix_word_contributions.shape == (len(record["prefix_words"]), len(record["tgt_words"]))
    contrastive = hub.attribute(SENTENCE, target="Un homme avec un chapeau orange .",
                                contrast="Un homme avec un casquette", method="input_x_gradient").record
    assert contrastive["score"] == "logprob"  # F = log P(y) - log P(y')
    step = contrastive["contrast_step"]
    assert contrastive["tgt_words"][contrastive["contrast_word"]] == "chapeau"
    assert [n for n, s in enumerate(contrastive["target_scores"]) if s != 0] == [step]
    assert "contrast" in hub.attribute(SENTENCE, target="Un homme .", contrast="Un chien .", ig_steps=4) \
        ._repr_html_()


def test_dataframes_and_arrays(hub, monkeypatch):
    results = hub.attribute([SENTENCE, "Two women ."], method="saliency")
    if _has("pandas"):  # optional: the test environment may not have it
        frame = results[0].to_dataframe()
        assert list(frame.index.get_level_values("word")) == MOSES_WORDS + ["</s>"]
        long = results.to_dataframe()
        assert set(long["id"]) == {0, 1} and len(long) == sum(
            len(a.src_words) * len(a.tgt_words) for a in results)
    monkeypatch.setitem(sys.modules, "pandas", None)  # pandas missing: one line naming the arrays
    with pytest.raises(InterpretError, match="pip install pandas.*word_importance"):
        results.to_dataframe()
    assert results[1].word_contributions.shape[0] == len(results[1].src_words)


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_fairseq_hub_interface_is_kept(hub, checkpoint):
    """The result is fairseq's hub interface (translate works), and one fairseq itself loaded attributes too."""
    from fairseq.hub_utils import GeneratorHubInterface
    from fairseq.models.transformer import TransformerModel

    from fairseq_interp.word_importance.hub import AttributionHub

    assert isinstance(hub, GeneratorHubInterface) and isinstance(hub.translate(SENTENCE, beam=2), str)
    folder, data, spm_model = checkpoint
    fairseq_hub = TransformerModel.from_pretrained(folder, "checkpoint_best.pt", data, bpe="sentencepiece",
                                                   sentencepiece_model=spm_model, tokenizer="moses", max_len_b=6)
    ours = AttributionHub.from_hub(fairseq_hub).attribute(SENTENCE, method="input_x_gradient").record
    again = hub.attribute(SENTENCE, method="input_x_gradient").record
    assert ours["contributions"] == again["contributions"] and ours["src_tokens"] == again["src_tokens"]


def test_errors_are_one_line(hub, checkpoint, tmp_path):
    from fairseq_interp.word_importance import from_pretrained

    folder, data, spm_model = checkpoint
    with pytest.raises(InterpretError, match="not found"):
        from_pretrained(str(tmp_path / "none"), "checkpoint_best.pt", data)
    with pytest.raises(InterpretError, match="checkpoint_file"):
        from_pretrained(folder, "model.pt", data)
    with pytest.raises(InterpretError, match="data directory"):
        from_pretrained(folder, "checkpoint_best.pt", str(tmp_path / "nodata"))
    with pytest.raises(InterpretError, match="sentencepiece_model .* not found"):
        from_pretrained(folder, "checkpoint_best.pt", data, bpe="sentencepiece",
                        sentencepiece_model=str(tmp_path / "x.model"))
    with pytest.raises(InterpretError, match="unknown option 'ig_step'"):
        hub.attribute(SENTENCE, ig_step=3)
    with pytest.raises(InterpretError, match="unknown attribution method"):
        hub.attribute(SENTENCE, method="lrp")
    with pytest.raises(InterpretError, match="1 references for 2 sentences"):
        hub.attribute([SENTENCE, "Two women ."], target=["Un homme ."])
    with pytest.raises(InterpretError, match="needs references"):
        hub.attribute(SENTENCE, method="erasure")
    with pytest.raises(InterpretError, match="empty"):
        hub.attribute("  ")
    with pytest.raises(InterpretError, match="needs a method"):
        hub.attribute(SENTENCE, method="attention", target_prefix=True)


def test_import_and_use_are_quiet(checkpoint, tmp_path):
    """Importing the package and the API, loading and attributing leave the root logger as it was and print
    nothing a user did not ask for."""
    folder, data, spm_model = checkpoint
    script = f"""
import logging, sys
root = logging.getLogger()
before = (root.level, list(root.handlers))
import fairseq_interp
from fairseq_interp.word_importance import from_pretrained
assert (root.level, list(root.handlers)) == before, ("import", root.level, root.handlers)
model = from_pretrained({folder!r}, "checkpoint_best.pt", {data!r}, tokenizer="moses", bpe="sentencepiece",
                        sentencepiece_model={spm_model!r}, max_len_b=4)
model.attribute("A man .", ig_steps=2)
assert (root.level, list(root.handlers)) == before, ("use", root.level, root.handlers)
print("ok")
"""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "ok\n"
    assert "DEBUG" not in proc.stderr and "INFO" not in proc.stderr, proc.stderr[-3000:]


def test_data_of_another_language_pair_is_refused(checkpoint, tmp_path):
    """The checkpoint-vs-data check of the command line, before the model is loaded: data of en-de for an en->fr
    checkpoint raises one line naming the keyword that allows it; with the keyword the model loads."""
    import shutil

    from fairseq_interp.word_importance import from_pretrained

    folder, data, spm_model = checkpoint
    other = tmp_path / "en-de"
    other.mkdir()
    shutil.copy(os.path.join(data, "dict.en.txt"), other / "dict.en.txt")
    shutil.copy(os.path.join(data, "dict.fr.txt"), other / "dict.de.txt")
    options = dict(tokenizer="moses", bpe="sentencepiece", sentencepiece_model=spm_model, source_lang="en",
                   target_lang="de")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(InterpretError) as refused:
        from_pretrained(folder, "checkpoint_best.pt", str(other), **options)
    message = str(refused.value)
    assert "\n" not in message and "translates en->fr" in message and "reads en->de" in message
    assert "allow_data_mismatch=True" in message and "--allow-data-mismatch" not in message
    assert sorted(os.listdir(tmp_path)) == before
    hub = from_pretrained(folder, "checkpoint_best.pt", str(other), allow_data_mismatch=True, **options)
    assert hub.task.cfg.target_lang == "de"
