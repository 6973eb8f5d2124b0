"""Values of Zhu et al.'s figures from hand-made LCA records, worked out by hand from the paper's equations:
Eq. 3 (records hold means over an interval), Eq. 2 (cumulative = sum over updates), Eq. 4 (divided by |g|),
Figure 1's occupation ratios and Kendall's τ, Figure 2's sparse/dense bars, Figure 5's buckets."""

import json

import pytest

from fairseq_interp.lca import analysis
from fairseq_interp.lca.allocation import module_of
from fairseq_interp.lca.figures import FIGURES

GROUPS = [("encoder.embedding", 100), ("encoder.layer0", 10), ("encoder.layer1", 10), ("encoder.layer2", 10),
          ("decoder.embedding", 100), ("decoder.layer0", 20), ("decoder.layer1", 20), ("decoder.layer2", 20),
          ("output_projection", 100)]


def header(buckets=None):
    return {"type": "header", "format": "fairseq-interp-lca/1", "options": {"interval": 15, "split": "train"},
            "groups": [{"name": n, "size": s, "params": []} for n, s in GROUPS],
            "modules": [{"name": "encoder.layer0.self_attn", "size": 6, "group": "encoder.layer0"},
                        {"name": "encoder.layer0.ffn", "size": 4, "group": "encoder.layer0"}],
            "buckets": buckets or {}}


def interval(start, end, sums, modules=None, buckets=None):
    n = end - start + 1
    return {"type": "interval", "start": start, "end": end, "n_updates": n, "partial": False,
            "groups": {name: {"sum": v, "mean": v / dict(GROUPS)[name]} for name, v in sums.items()},
            "modules": {name: {"sum": v} for name, v in (modules or {}).items()},
            "buckets": buckets or {}, "lca_total": sum(sums.values())}


def sums(**values):
    base = {n: -0.01 for n, _ in GROUPS}
    base.update({k.replace("__", "."): v for k, v in values.items()})
    return base


def test_cumulative_is_eq2_over_eq3_means_and_eq4_divides_by_group_size():
    # two intervals of 15 updates: the records hold per-update means (Eq. 3), so the cumulative LCA (Eq. 2 over
    # updates 1..30) of encoder.layer0 is 15 * -0.3 + 15 * -0.1 = -6, and Eq. 4 divides by |g| = 10: -0.6
    records = [interval(1, 15, sums(encoder__layer0=-0.3)), interval(16, 30, sums(encoder__layer0=-0.1))]
    values = analysis.group_values(header(), records, "mean")
    assert values["encoder.layer0"] == pytest.approx(-0.6)
    assert analysis.group_values(header(), records, "sum")["encoder.layer0"] == pytest.approx(-6.0)
    assert values["decoder.layer0"] == pytest.approx(30 * -0.01 / 20)
    # a partial last interval of 3 updates counts 3 updates
    part = interval(31, 33, sums(encoder__layer0=-1.0))
    assert analysis.cumulative(records + [part])["groups"]["encoder.layer0"] == pytest.approx(-9.0)
    assert analysis.cumulative(records + [part])["updates"] == 33


def test_sparse_dense_bars_pool_groups_before_dividing():
    # en_dense = all encoder layers: (Σ LCA) / (Σ sizes) = 15 * (-0.3 - 0.6 - 0.9) / 30, not the mean of means
    records = [interval(1, 15, sums(encoder__layer0=-0.3, encoder__layer1=-0.6, encoder__layer2=-0.9))]
    bars = analysis.sparse_dense_values(header(), records, "mean")
    assert list(bars) == ["en_emb", "en_dense", "de_emb", "de_dense", "de_softmax"]
    assert bars["en_dense"] == pytest.approx(15 * (-1.8) / 30)
    assert bars["en_emb"] == pytest.approx(15 * -0.01 / 100)
    assert bars["de_dense"] == pytest.approx(15 * -0.03 / 60)
    assert analysis.sparse_dense_values(header(), records, "sum")["en_dense"] == pytest.approx(15 * -1.8)


def test_occupation_ratio_and_kendall_tau_by_hand():
    ratios = analysis.occupation_ratios({"a": -1.0, "b": -3.0, "c": 0.5, "d": -1.5})
    assert ratios == pytest.approx({"a": 0.2, "b": 0.6, "c": -0.1, "d": 0.3})
    assert sum(ratios.values()) == pytest.approx(1.0)
    # 4 items, one swapped neighbouring pair: 5 concordant, 1 discordant pairs → τ = (5 - 1) / 6
    assert analysis.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert analysis.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        analysis.occupation_ratios({"a": 1.0, "b": -1.0})


def test_buckets_divided_by_rows_times_dim():
    buckets = {"encoder.embedding": {"rows": [2, 3] + [0] * 23, "dim": 4, "dictionary": "src"}}
    rec = interval(1, 10, sums(), buckets={"encoder.embedding": {"sum": [-0.8, -0.6] + [0.0] * 23,
                                                                 "special": -0.1}})
    values = analysis.bucket_values(header(buckets), [rec], "mean")["encoder.embedding"]
    assert values[:2] == pytest.approx([10 * -0.8 / 8, 10 * -0.6 / 12]) and values[2] == 0.0
    assert analysis.cumulative([rec])["special"]["encoder.embedding"] == pytest.approx(-1.0)


def test_module_types_aggregate_over_layers():
    rec = interval(1, 15, sums(), modules={"encoder.layer0.self_attn": -0.6, "encoder.layer0.ffn": -0.2})
    series = analysis.module_type_series(header(), [rec], "mean")
    assert series == {"encoder.self_attn": [pytest.approx(-0.1)], "encoder.ffn": [pytest.approx(-0.05)]}


@pytest.mark.parametrize("name,module", [
    ("encoder.layers.0.self_attn.k_proj.weight", "encoder.layer0.self_attn"),
    ("decoder.layers.2.encoder_attn.out_proj.bias", "decoder.layer2.encoder_attn"),
    ("decoder.layers.1.fc1.weight", "decoder.layer1.ffn"),
    ("encoder.layers.3.final_layer_norm.weight", "encoder.layer3.layer_norm"),
    ("decoder.layers.0.self_attn_layer_norm.bias", "decoder.layer0.layer_norm"),
    ("encoder.embed_tokens.weight", "encoder.embedding"),
    ("decoder.output_projection.weight", "output_projection"),
    ("encoder.layer_norm.weight", "encoder.other"),
])
def test_module_of(name, module):
    assert module_of(name) == module


def claim_runs(enc, dec, emb=-1e-4, softmax=-2e-3, bucket0=-5.0):
    values = {"encoder.embedding": emb, "decoder.embedding": emb, "output_projection": softmax}
    values.update({f"encoder.layer{i}": v for i, v in enumerate(enc)})
    values.update({f"decoder.layer{i}": v for i, v in enumerate(dec)})
    sizes = dict(GROUPS)
    buckets = {"encoder.embedding": {"rows": [4] * 25, "dim": 1, "dictionary": "src"}}
    rec = interval(1, 1, {n: v * sizes[n] for n, v in values.items()},
                   buckets={"encoder.embedding": {"sum": [bucket0] + [-1.0] * 24, "special": 0.0}})
    return {"train": (header(buckets), [rec])}


def verdicts(runs):
    return {(c["figure"], c["row"]): c["ours"] for c in analysis.dynamics_claims(runs)}


def test_claims_follow_the_paper_statements():
    paper_like = verdicts(claim_runs(enc=[-0.04, -0.02, -0.05], dec=[-0.01, -0.03, -0.06]))
    assert set(paper_like.values()) == {"yes"}
    # encoder without a sandwich (middle layer largest), decoder not increasing, embeddings large, rare words first
    other = verdicts(claim_runs(enc=[-0.01, -0.05, -0.02], dec=[-0.06, -0.03, -0.01], emb=-0.5, bucket0=-0.1))
    for key in [("Figure 2", "embeddings contribute very little"),
                ("Figure 3", "encoder: first and last layer contribute more than the middle layers (sandwich)"),
                ("Figure 3", "decoder: the higher the layer, the more it contributes"),
                ("Figure 5", "encoder.embedding: the most frequent words contribute most")]:
        assert other[key] == "no", key


def test_every_claim_has_its_paper_statement():
    """The claims a train/test pair of runs yields are those paper_numbers.json holds (Figure 4: train only)."""
    from fairseq_interp.common.paper_numbers import load_paper_numbers

    run = claim_runs(enc=[-0.05, -0.02, -0.04], dec=[-0.01, -0.03, -0.06])["train"]
    claims = analysis.dynamics_claims({"train": run, "test": run})
    stated = {(n.table, n.row, n.column) for n in load_paper_numbers("lca").numbers}
    keys = {(c["figure"], c["row"], c["column"]) for c in claims}
    missing = {k for k in keys - stated if not (k[0] == "Figure 4" and k[2] == "test")}
    assert not missing
    # the statements the paper makes about figures appear among our claims (except buckets of roles not in run)
    claimed_figures = {k for k in stated if k[0] in ("Figure 2", "Figure 3", "Figure 4", "§4")}
    assert claimed_figures <= keys


def test_lca_plot_refuses_to_overwrite_and_repeated_labels(tmp_path, capsys):
    from fairseq_interp.commands import cli_main

    path = tmp_path / "lca.jsonl"
    records = [interval(1, 15, sums(encoder__layer0=-0.3)), interval(16, 30, sums(encoder__layer0=-0.1))]
    path.write_text("".join(json.dumps(x) + "\n" for x in [header()] + records))
    out = tmp_path / "figs"
    cli_main(["lca-plot", str(path), "--results-path", str(out), "--out", str(tmp_path / "v.json")])
    values = json.loads((tmp_path / "v.json").read_text())
    assert values["runs"][path.parent.name]["groups"]["encoder.layer0"] == pytest.approx(-0.6)
    # no buckets in these records: four figures, the values and the provenance
    assert sorted(p.name for p in out.iterdir()) == sorted([*FIGURES[:4], "values.json", "provenance.json"])
    for argv in (["lca-plot", str(path), "--results-path", str(out)],
                 ["lca-plot", str(path), str(path), "--results-path", str(tmp_path / "f2"), "--labels", "a"]):
        with pytest.raises(SystemExit) as e:
            cli_main(argv)
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "exists: pass --overwrite" in err and "--labels for 2 record files" in err
    with pytest.raises(SystemExit):
        cli_main(["lca-plot", str(path), str(path), "--labels", "a", "a", "--results-path", str(tmp_path / "f3")])
    assert "repeat" in capsys.readouterr().err

