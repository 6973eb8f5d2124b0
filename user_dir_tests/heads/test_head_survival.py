"""Role survival of pruned heads: hand-made gates and roles with known counts."""

import pytest
import torch

from fairseq_interp.common.errors import InterpretError
from fairseq_interp.heads.survival import open_head_masks, role_survival


def _state(enc, cross):
    sd = {}
    for i, values in enumerate(enc):
        sd[f"encoder.layers.{i}.self_attn.out_proj.weight"] = torch.zeros(4, 4)
        sd[f"encoder.layers.{i}.self_attn.head_gate.log_alpha"] = torch.tensor(values)
    for i, values in enumerate(cross):
        sd[f"decoder.layers.{i}.encoder_attn.out_proj.weight"] = torch.zeros(4, 4)
        sd[f"decoder.layers.{i}.encoder_attn.head_gate.log_alpha"] = torch.tensor(values)
        sd[f"decoder.layers.{i}.self_attn.out_proj.weight"] = torch.zeros(4, 4)  # not gated
    return {"cfg": {"model": {"gate_temperature": 0.33, "gate_stretch_low": -0.1, "gate_stretch_high": 1.1}},
            "model": sd}


def _report(enc_roles, cross_roles):
    return {"kinds": {"encoder_self": {"layers": [[{"roles": r} for r in layer] for layer in enc_roles]},
                      "cross": {"layers": [[{"roles": r} for r in layer] for layer in cross_roles]}}}


def test_open_masks_follow_the_sign_of_log_alpha_and_skip_ungated_kinds():
    # with l = -0.1, r = 1.1 the evaluation gate is open iff log α > 0
    masks = open_head_masks(_state([[2.0, -0.5], [-3.0, 0.1]], [[-1.0, 4.0]]))
    assert masks == {"encoder_self": [[True, False], [False, True]], "cross": [[False, True]]}


def test_role_survival_counts_each_role_and_the_overall_share():
    masks = {"encoder_self": [[True, False], [False, True]], "cross": [[False, True]]}
    report = _report([[["positional"], ["rare"]], [["syntactic:nsubj", "positional"], []]],
                     [[[], ["syntactic:dobj", "syntactic:amod"]]])
    rows = role_survival(report, masks)
    assert rows["all"] == {"heads": 6, "kept": 3, "survival": 0.5}
    assert rows["positional"] == {"heads": 2, "kept": 1, "survival": 0.5}
    assert rows["rare"] == {"heads": 1, "kept": 0, "survival": 0.0}
    # a head with two syntactic relations counts once as syntactic
    assert rows["syntactic"] == {"heads": 2, "kept": 1, "survival": 0.5}
    assert rows["no role"] == {"heads": 2, "kept": 1, "survival": 0.5}


def test_mismatched_report_or_ungated_checkpoint_is_a_clear_error():
    masks = {"encoder_self": [[True, False]]}
    with pytest.raises(InterpretError, match="fairseq-interp heads on the baseline"):
        role_survival(_report([[[], [], []]], []), masks)
    state = _state([], [])
    state["model"]["encoder.layers.0.self_attn.out_proj.weight"] = torch.zeros(4, 4)
    with pytest.raises(InterpretError, match="no head gates"):
        open_head_masks(state)


def test_kept_vs_pruned_means_per_kind_and_overall():
    from fairseq_interp.heads.survival import kept_vs_pruned

    masks = {"encoder_self": [[True, False], [False, True]], "cross": [[False, True]]}
    report = {"kinds": {
        "encoder_self": {"layers": [[{"relevance": 0.4}, {"relevance": 0.1}], [{"relevance": 0.2}, {"relevance": 0.6}]]},
        "cross": {"layers": [[{"relevance": 0.0}, {"relevance": 0.9}]]}}}
    rows = kept_vs_pruned(report, masks)
    assert rows["encoder_self"] == {"kept": pytest.approx(0.5), "pruned": pytest.approx(0.15), "n_kept": 2,
                                    "n_pruned": 2}
    assert rows["cross"] == {"kept": pytest.approx(0.9), "pruned": pytest.approx(0.0), "n_kept": 1, "n_pruned": 1}
    assert rows["all"]["kept"] == pytest.approx((0.4 + 0.6 + 0.9) / 3)
    assert rows["all"]["pruned"] == pytest.approx((0.1 + 0.2 + 0.0) / 3)
    with pytest.raises(InterpretError, match="no 'confidence'"):
        kept_vs_pruned(report, masks, "confidence")


def test_kept_vs_pruned_graded_roles_skip_undefined_kinds():
    """positional = the share of the head's most frequent offset; rare is defined for encoder heads only, so other
    kinds are left out."""
    from fairseq_interp.heads.survival import kept_vs_pruned

    masks = {"encoder_self": [[True, False]], "cross": [[True, False]]}
    report = {"kinds": {
        "encoder_self": {"layers": [[{"positional_share": 0.95, "rare": 0.3},
                                     {"positional_share": 0.40, "rare": 0.1}]]},
        "cross": {"layers": [[{"positional_share": None, "rare": None}, {"positional_share": None, "rare": None}]]}}}
    positional = kept_vs_pruned(report, masks, "positional")
    assert positional["encoder_self"]["kept"] == pytest.approx(0.95)
    assert positional["encoder_self"]["pruned"] == pytest.approx(0.40)
    assert list(positional) == ["encoder_self", "all"]  # no relative positions across sequences
    assert positional["all"]["kept"] == pytest.approx(0.95)
    rare = kept_vs_pruned(report, masks, "rare")
    assert list(rare) == ["encoder_self", "all"]
    assert (rare["all"]["kept"], rare["all"]["pruned"]) == (pytest.approx(0.3), pytest.approx(0.1))
    with pytest.raises(InterpretError, match="no 'rare' for the cross heads"):
        kept_vs_pruned({"kinds": {"cross": report["kinds"]["cross"]}}, {"cross": masks["cross"]}, "rare")


def _relevance_report(values):
    """``heads.json``-like report: ``values`` = {kind: [[relevance per head] per layer]}."""
    return {"kinds": {kind: {"layers": [[{"relevance": v} for v in layer] for layer in layers]}
                      for kind, layers in values.items()}}


def test_rank_agreement_of_two_rules():
    """Kendall τ by hand: same order → 1; one layer reversed, the other kept → within-layer mean 0."""
    from fairseq_interp.heads.survival import rank_agreement

    a = _relevance_report({"encoder_self": [[0.1, 0.5, 0.4], [0.3, 0.2, 0.9]]})
    same = _relevance_report({"encoder_self": [[1.0, 5.0, 4.0], [3.0, 2.0, 9.0]]})
    r = rank_agreement(a, same)
    assert r["all"]["kendall_tau"] == pytest.approx(1.0) and r["all"]["spearman_rho"] == pytest.approx(1.0)
    flipped = _relevance_report({"encoder_self": [[0.5, 0.1, 0.25], [0.3, 0.2, 0.9]]})  # layer 0 reversed
    r = rank_agreement(a, flipped)["encoder_self"]
    assert r["layer_kendall_tau"] == pytest.approx(0.0) and r["heads"] == 6  # (-1 + 1) / 2
    # the 15 pairs of the 6 heads, counted by hand: 7 concordant, 8 discordant, no ties
    assert r["kendall_tau"] == pytest.approx(-1 / 15)


def test_kept_prediction_auc():
    """AUC = share of (kept, pruned) pairs where the kept head has the higher relevance."""
    from fairseq_interp.heads.survival import kept_prediction

    report = _relevance_report({"encoder_self": [[0.1, 0.5, 0.4], [0.2, 0.3, 0.9]]})
    masks = {"encoder_self": [[False, False, True], [False, True, True]]}
    result = kept_prediction(report, masks)
    # kept: 0.4, 0.3, 0.9; pruned: 0.1, 0.5, 0.2 → wins: 0.4 beats 0.1, 0.2 (2); 0.3 beats 0.1, 0.2 (2); 0.9 all (3)
    assert result["all"] == {"auc": pytest.approx(7 / 9), "n_kept": 3, "n_pruned": 3}


def test_paper_rows_beside_ours_from_a_report():
    """§5.3 and Table 1 rows: the paper's values from paper_numbers.json, ours from the report (as %)."""
    from fairseq_interp.heads.paper import analysis_rows

    head = {"relevance": 0.2, "confidence": 0.85, "rare": 0.3, "rare_top2": 0.6, "roles": ["positional"],
            "syntactic": {"nsubj_dep2head": 0.55}}
    other = dict(head, rare=0.9, rare_top2=0.1, roles=[], confidence=0.5, syntactic={"nsubj_dep2head": 0.2})
    report = {"sentences": 10, "rare_sentences": 4, "rare_top_frequent": 500, "positional_threshold": 0.9,
              "kinds": {"encoder_self": {"layers": [[head, other]]}},
              "syntax": {"nsubj_dep2head": {"arcs": 12, "baseline": 0.4, "baseline_offset": 1}}}
    rows = {r[0]: r for r in analysis_rows(report)}
    # the best rare-word head is the one with the highest top-2 share (0.6), not the highest rarest share
    def values(key):
        return pytest.approx(rows[key][1:3])

    assert values("§5.3 OpenSubtitles rare-word head: points to the rarest token (%)") == (66, 30.0)
    assert values("§5.3 WMT rare-word head: points to one of the two least frequent tokens (%)") == (50, 60.0)
    assert values("§5.1 lowest confidence of a positional head") == (0.8, 0.85)
    assert values("Table 1, nsubj s → v: best head accuracy (%)") == (52, 55.0)
    assert values("Table 1, nsubj s → v: positional baseline (%)") == (35, 40.0)


def test_last_standing_ranks_the_heads_kept_at_the_largest_lambda_by_hand():
    from fairseq_interp.heads.survival import last_standing

    head = lambda rel, conf, rare=None: {"relevance": rel, "confidence": conf, "rare": rare}  # noqa: E731
    report = {"kinds": {
        "encoder_self": {"layers": [[head(0.3, 0.5, 0.1), head(0.1, 0.9, 0.4)], [head(0.2, 0.7, 0.4), head(0.0, 0.2, 0.0)]]},
        "cross": {"layers": [[head(0.6, 0.1), head(0.4, 0.8)]]},
        "decoder_self": {"layers": [[head(0.1, 0.1), head(0.2, 0.2)]]}}}
    masks = {0.01: {"encoder_self": [[True, True], [True, False]], "cross": [[True, True]],
                    "decoder_self": [[False, False]]},
             0.05: {"encoder_self": [[False, True], [True, False]], "cross": [[True, False]],
                    "decoder_self": [[False, False]]},
             0.1: {"encoder_self": [[False, False], [True, False]], "cross": [[False, False]],
                   "decoder_self": [[False, False]]}}
    out = last_standing(report, masks, ["relevance", "confidence", "rare"])
    # decoder self-attention is pruned at every λ: no row
    assert list(out) == ["encoder_self", "cross"]
    # encoder: only head 1.0 is left at λ = 0.1; relevance 0.2 is 2nd of (0.3, 0.1, 0.2, 0.0), confidence 0.7 2nd of
    # (0.5, 0.9, 0.7, 0.2), rare 0.4 ties with head 0.1 for the highest: both rank 1
    assert out["encoder_self"] == {"lambda": 0.1, "heads": ["1.0"], "of": 4,
                                   "ranks": {"relevance": [2], "confidence": [2], "rare": [1]}}
    # cross: nothing at λ = 0.1, head 0.0 at λ = 0.05: relevance 1st, confidence 2nd; no rare statistic at all
    assert out["cross"] == {"lambda": 0.05, "heads": ["0.0"], "of": 2, "ranks": {"relevance": [1], "confidence": [2]}}
