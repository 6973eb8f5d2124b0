"""Error-controlled integrated gradients (``--ig-tolerance``, ``--ig-max-steps``, ``--ig-adaptive-rule``) and several
sentences per attribution pass (``--ig-sentences-per-pass``): the Gauss–Kronrod rule from its defining equations,
completeness within the tolerance on every token marked converged, the result against a path integral known in
closed form, the per-entry error estimate, tokens that cannot converge flagged, fewer gradient evaluations than the
fixed 50 points, batched sentences equal to one at a time (padding of different lengths included), and the
fixed-step default untouched."""


import numpy as np
import pytest
import torch

from tiny_translation import build, sentence, write_dictionaries

import fairseq_interp.word_importance.methods.ig_paths as ig_paths
import fairseq_interp.word_importance.methods.integrated_gradients as integrated_gradients
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.teacher_forcing import TeacherForcedAdapter
from fairseq_interp.word_importance.context import MethodContext
from fairseq_interp.word_importance.methods.integrated_gradients import IntegratedGradients
from fairseq_interp.word_importance.methods.quadrature import (KRONROD_RULES, RULES, first_rule_points, gauss_kronrod,
                                                              gauss_legendre)
from fairseq_interp.word_importance.runner import WordImportanceRunner

ARCHS = ("transformer_shared", "transformer_separate", "lstm")
#: (source tokens, target tokens) before EOS: different lengths on both sides, so a batch of them is padded
LENGTHS = [(6, 5), (3, 7), (9, 2), (5, 5), (1, 4)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_dictionaries(tmp_path_factory.mktemp("dicts"))


@pytest.fixture(scope="module")
def models(folder):
    return {arch: build(folder, arch)[:2] for arch in ARCHS}


def pairs_of(task, lengths=LENGTHS):
    return [sentence(task, n_src, n_tgt, seed=seed) for seed, (n_src, n_tgt) in enumerate(lengths)]


def relative_errors(result):
    gap = (result.target_scores - result.baseline_scores).abs().double()
    return result.convergence_delta.abs().double() / gap


class GradientCount:
    """Counts the gradient evaluations ∂F(γ(α))_n/∂x (one per row and target position) of the several-sentence
    path, by wrapping its one gradient pass."""

    def __init__(self, monkeypatch):
        self.evaluations = 0
        original = ig_paths._gradient_pass

        def counting(batch, rows):
            self.evaluations += sum(len(r.positions) for r in rows)
            return original(batch, rows)

        monkeypatch.setattr(ig_paths, "_gradient_pass", counting)


def test_gauss_legendre_nodes_integrate_polynomials_exactly():
    # an m-point Gauss-Legendre rule is exact for polynomials of degree 2m - 1 on [0, 1]
    nodes, weights = gauss_legendre(4)
    for degree in range(8):
        assert sum(w * t ** degree for t, w in zip(nodes, weights)) == pytest.approx(1 / (degree + 1), abs=1e-14)


# --- the Gauss–Kronrod rule ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 7, 10])
def test_gauss_kronrod_rule_meets_its_defining_properties(m):
    nodes, kronrod_weights, gauss_weights = gauss_kronrod(m)
    assert len(nodes) == 2 * m + 1 and np.all(np.diff(nodes) > 0) and 0 < nodes[0] and nodes[-1] < 1
    # the m Gauss nodes are kept, bit for bit (their integrands are reused), with the Gauss weights
    gauss_nodes, weights = gauss_legendre(m)
    kept = gauss_weights != 0
    assert sorted(nodes[kept].tolist()) == sorted(gauss_nodes.tolist())
    assert sorted(gauss_weights[kept].tolist()) == pytest.approx(sorted(weights.tolist()), abs=1e-15)
    # the new nodes interlace with them: new, Gauss, new, ..., new
    assert kept.tolist() == [k % 2 == 1 for k in range(2 * m + 1)]
    assert np.all(kronrod_weights > 0)
    # exact for polynomials of degree 3m + 1 on [0, 1] (the Gauss rule alone: 2m - 1)
    for degree in range(3 * m + 2):
        assert np.dot(kronrod_weights, nodes ** degree) == pytest.approx(1 / (degree + 1), rel=1e-13, abs=1e-15)
    # ... and the Gauss rule alone is not exact for degree 2m: P_m² vanishes on its nodes, ∫_0^1 P_m(2t − 1)² dt > 0
    p_m = np.polynomial.legendre.Legendre.basis(m)(2 * nodes - 1)
    assert np.dot(gauss_weights, p_m ** 2) == pytest.approx(0, abs=1e-14)
    assert np.dot(kronrod_weights, p_m ** 2) == pytest.approx(1 / (2 * m + 1), rel=1e-13)


def test_kronrod_21_points_agree_with_scipy():
    """An independent implementation: scipy's ``quad_vec`` with its GK21 rule and no subdivision (21 points)."""
    integrate = pytest.importorskip("scipy.integrate")
    nodes, kronrod_weights, gauss_weights = gauss_kronrod(10)
    for f in (lambda t: 1 / (t + 0.05), lambda t: np.cos(17 * t) * np.exp(t)):
        value, _, info = integrate.quad_vec(f, 0, 1, quadrature="gk21", epsabs=1e10, epsrel=0, limit=1,
                                            full_output=True)
        assert info.neval == 21
        assert np.dot(kronrod_weights, f(nodes)) == pytest.approx(value, rel=1e-13)


# --- a model whose path integral is known in closed form ------------------------------------------------------------

class SeparableAdapter:
    """F(x)_n = Σ_l c[y_n, s_l] sin(ω[y_n] u_l) with u_l = Σ_d x_l,d (s_l the source token, y_n the target token):
    with the zero baseline IG_l,n = c[y_n, s_l] sin(ω[y_n] u_l) exactly (Sundararajan et al. 2017, Eq. 1). What
    :class:`~fairseq_interp.word_importance.methods.ig_paths.PathBatch` needs of a TeacherForcedAdapter."""

    def __init__(self, embeddings, coefficients, frequencies):
        self.embeddings, self.coefficients, self.frequencies = embeddings, coefficients, frequencies

    def pad_batch(self, sources, targets):
        src = torch.zeros(len(sources), max(len(s) for s in sources), dtype=torch.long)
        tgt = torch.zeros(len(targets), max(len(t) for t in targets), dtype=torch.long)
        for b, (s, t) in enumerate(zip(sources, targets)):
            src[b, src.size(1) - len(s):] = s
            tgt[b, : len(t)] = t
        return src, torch.tensor([len(s) for s in sources]), tgt, torch.tensor([len(t) for t in targets])

    def source_embeddings(self, src_tokens):
        return self.embeddings[src_tokens]

    def supports_row_projection(self):
        return False

    def scores_rows(self, src_tokens, src_lengths, target_tokens, rows, src_embeddings=None):
        source, target = src_tokens[rows], target_tokens[rows]
        vectors = self.embeddings[source] if src_embeddings is None else src_embeddings
        c = self.coefficients[target.unsqueeze(-1), source.unsqueeze(1)]  # (R, T, L)
        angle = self.frequencies[target].unsqueeze(-1) * vectors.sum(-1).unsqueeze(1)
        return (c * torch.sin(angle)).sum(-1)

    def exact(self, src, tgt):
        """IG (L, T) in closed form."""
        u = self.embeddings[src].sum(-1)
        return (self.coefficients[tgt.view(1, -1), src.view(-1, 1)]
                * torch.sin(self.frequencies[tgt].view(1, -1) * u.view(-1, 1)))


def separable_model(seed=0, vocabulary=12, dim=3):
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.rand(vocabulary, dim, generator=g, dtype=torch.float64) / dim
    embeddings[0] = 0  # padding
    coefficients = torch.randn(vocabulary, vocabulary, generator=g, dtype=torch.float64)
    frequencies = 10 + 30 * torch.rand(vocabulary, generator=g, dtype=torch.float64)  # ω u up to 40: 6 periods
    return SeparableAdapter(embeddings, coefficients, frequencies)


#: (source, target) token ids of different lengths
SEPARABLE_PAIRS = [(torch.tensor([3, 5, 7, 2]), torch.tensor([4, 9, 1])),
                   (torch.tensor([6, 1]), torch.tensor([2, 3, 8, 5, 11])),
                   (torch.tensor([10, 11, 4, 8, 9, 1]), torch.tensor([7]))]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("tolerance", [1e-2, 1e-4])
def test_adaptive_result_matches_the_closed_form_path_integral(rule, tolerance):
    adapter = separable_model()
    ig = IntegratedGradients(adapter, tolerance=tolerance, max_steps=128, adaptive_rule=rule)
    converged = refined = 0
    for (src, tgt), result in zip(SEPARABLE_PAIRS, ig.attribute_adaptive(SEPARABLE_PAIRS)):
        exact = adapter.exact(src, tgt)
        gap = (result.target_scores - result.baseline_scores).abs()
        torch.testing.assert_close(result.target_scores - result.baseline_scores, exact.sum(0))  # completeness of F
        entry_errors = (result.contributions - exact).abs().max(0).values / gap
        for n, ok in enumerate(result.extras["ig_converged"]):
            refined += result.extras["ig_points"][n] > first_rule_points(rule)
            if not ok:
                continue
            converged += 1
            assert abs(float(result.contributions[:, n].sum() - exact[:, n].sum())) <= tolerance * gap[n]
            estimate = result.extras.get("ig_entry_error", [None] * len(gap))[n]
            if rule == "gauss-kronrod" or estimate is not None:
                # the recorded estimate max_l Σ_p |K − G| bounds the true error of every entry (smooth integrand)
                assert entry_errors[n] <= estimate
    tokens = sum(t.numel() for _, t in SEPARABLE_PAIRS)
    assert converged == tokens and refined > 0


def test_entry_errors_that_cancel_in_completeness_are_estimated():
    """Two source tokens with the same embedding and opposite coefficients: their quadrature errors cancel exactly
    in the completeness error, which then cannot see them; the Kronrod estimate per entry does."""
    adapter = separable_model()
    adapter.embeddings[2] = adapter.embeddings[1] = 1.0 / 3  # u = 1
    adapter.coefficients[:, 2] = -adapter.coefficients[:, 1]
    adapter.embeddings[3] = 0.01  # the gap comes from token 3, on a nearly linear stretch of sin
    adapter.frequencies[5] = 30.0
    src, tgt = torch.tensor([1, 2, 3]), torch.tensor([5])
    exact = adapter.exact(src, tgt)
    for rule in RULES:
        (result,) = IntegratedGradients(adapter, tolerance=1e-2, adaptive_rule=rule).attribute_adaptive([(src, tgt)])
        gap = float((result.target_scores - result.baseline_scores).abs())
        error = float((result.contributions - exact).abs().max()) / gap
        # converged on the first rule (the completeness error is ~0), although entries 1 and 2 are off by far more
        # than the tolerance
        assert result.extras["ig_converged"] == [True] and result.extras["ig_points"] == [first_rule_points(rule)]
        assert error > 10 * 1e-2
        if rule == "gauss-kronrod":
            assert result.extras["ig_entry_error"][0] >= error
        elif rule == "legendre-kronrod":  # stopped on its first Gauss panels: no panel extended, no estimate
            assert result.extras["ig_entry_error"] == [None]
        else:
            assert "ig_entry_error" not in result.extras


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("arch", ["transformer_shared", "transformer_separate"])
@pytest.mark.parametrize("tolerance", [1e-2, 3e-3])
def test_converged_tokens_meet_the_tolerance(models, arch, tolerance, rule):
    model, task = models[arch]
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
    results = IntegratedGradients(adapter, tolerance=tolerance, max_steps=128,
                                  adaptive_rule=rule).attribute_adaptive(pairs_of(task))
    first = first_rule_points(rule)
    converged, refined = 0, 0
    for result in results:
        # completeness holds exactly as recorded: the delta is the column sum minus F(x) - F(x')
        residual = result.contributions.sum(0) - (result.target_scores - result.baseline_scores)
        torch.testing.assert_close(residual, result.convergence_delta)
        errors = relative_errors(result)
        for n, ok in enumerate(result.extras["ig_converged"]):
            points = result.extras["ig_points"][n]
            assert first <= points <= 128
            if ok:
                assert errors[n] <= tolerance
                converged += 1
            refined += points > first
    assert converged >= 0.5 * sum(r.contributions.size(1) for r in results)  # the check above is not vacuous
    assert refined > 0  # and the first rule alone did not already meet the tolerance everywhere


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("arch", ["transformer_shared", "lstm"])
def test_token_that_cannot_converge_is_flagged(models, arch, rule):
    model, task = models[arch]
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
    first = first_rule_points(rule)
    # no room to refine, and a tolerance below float rounding: no token can meet it
    ig = IntegratedGradients(adapter, tolerance=1e-12, max_steps=first, adaptive_rule=rule)
    for result in ig.attribute_adaptive(pairs_of(task)):
        assert result.extras["ig_points"] == [first] * result.contributions.size(1)
        assert not any(result.extras["ig_converged"])
    # a flag is never set on a token that misses the tolerance: with room to refine, the flags follow the errors
    ig = IntegratedGradients(adapter, tolerance=1e-3, max_steps=16, adaptive_rule=rule)
    for result in ig.attribute_adaptive(pairs_of(task)):
        errors = relative_errors(result)
        for n, ok in enumerate(result.extras["ig_converged"]):
            assert (not ok) or errors[n] <= 1e-3


@pytest.mark.parametrize("rule", RULES)
def test_refinement_uses_fewer_gradient_evaluations_than_fixed_50(models, monkeypatch, rule):
    counter = GradientCount(monkeypatch)
    fixed = adaptive = 0
    for arch in ARCHS:
        model, task = models[arch]
        adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
        pairs = pairs_of(task)
        ig = IntegratedGradients(adapter)
        counter.evaluations = 0
        ig.attribute_batch(pairs, n_steps=50)
        fixed += counter.evaluations
        assert counter.evaluations == 50 * sum(t.numel() for _, t in pairs)  # the counter counts what it should
        counter.evaluations = 0
        results = IntegratedGradients(adapter, tolerance=1e-2, adaptive_rule=rule).attribute_adaptive(pairs)
        adaptive += counter.evaluations
        assert counter.evaluations == sum(sum(r.extras["ig_points"]) for r in results)
        converged = [ok for result in results for ok in result.extras["ig_converged"]]
        assert sum(converged) >= 0.8 * len(converged)
    assert adaptive < 0.6 * fixed


@pytest.mark.parametrize("arch,tolerance", [("transformer_separate", 3e-3), ("lstm", 1e-5)])
def test_legendre_kronrod_starts_as_gauss_legendre_and_reuses_its_points(models, arch, tolerance):
    """``legendre-kronrod`` makes the first decision of ``gauss-legendre`` on the same 2 × 4 Gauss points: the same
    tokens stop there with the same contributions; the others extend before halving, which discards no point, and
    need fewer gradient evaluations in all."""
    model, task = models[arch]
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
    pairs = pairs_of(task)
    halving, extending = (
        IntegratedGradients(adapter, tolerance=tolerance, adaptive_rule=rule).attribute_adaptive(pairs)
        for rule in ("gauss-legendre", "legendre-kronrod"))
    first = first_rule_points("gauss-legendre")
    assert first == first_rule_points("legendre-kronrod") == 8
    stopped = 0
    for a, b in zip(halving, extending):
        for n, (points_a, points_b) in enumerate(zip(a.extras["ig_points"], b.extras["ig_points"])):
            assert (points_a == first) == (points_b == first)
            if points_a == first:
                torch.testing.assert_close(b.contributions[:, n], a.contributions[:, n], atol=0, rtol=0)
                assert b.extras["ig_converged"][n] == a.extras["ig_converged"][n]
                stopped += 1
            else:  # 8 + 5 per extension + 8 per halving; the first refinement of a panel extends it
                assert points_b >= first + 5
    tokens = sum(r.contributions.size(1) for r in halving)
    assert 0 < stopped < tokens
    assert (sum(sum(r.extras["ig_points"]) for r in extending)
            < sum(sum(r.extras["ig_points"]) for r in halving))


@pytest.mark.parametrize("rule", ["gauss-kronrod", "legendre-kronrod"])
def test_halving_an_extended_panel_needs_no_new_forward_pass(models, monkeypatch, rule):
    """The middle Kronrod node of a panel is its midpoint, so F(γ(mid)) of a token that halves an extended panel
    comes from that token's own gradient point: the only forward passes without gradients are those of the first
    panels' inner end (α = 1/2 under ``legendre-kronrod``, none under ``gauss-kronrod``)."""
    nodes, _, _ = gauss_kronrod(4)
    assert nodes[4] == 0.5
    model, task = models["transformer_separate"]
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
    pairs = pairs_of(task)
    ends = []
    original = ig_paths.evaluate_rows

    def recording(batch, rows, rows_per_pass=None):
        ends.extend((r.sentence, r.alpha) for r in rows if not len(r.positions))
        return original(batch, rows, rows_per_pass)

    monkeypatch.setattr(integrated_gradients, "evaluate_rows", recording)
    results = IntegratedGradients(adapter, tolerance=3e-3, adaptive_rule=rule).attribute_adaptive(pairs)
    assert max(p for r in results for p in r.extras["ig_points"]) > first_rule_points(rule) + 5  # halved
    assert sorted(ends) == ([(b, 0.5) for b in range(len(pairs))] if rule == "legendre-kronrod" else [])
    for result in results:  # the panel ends taken from gradient points keep completeness exact as recorded
        residual = result.contributions.sum(0) - (result.target_scores - result.baseline_scores)
        torch.testing.assert_close(residual, result.convergence_delta)
        errors = relative_errors(result)
        assert all(errors[n] <= 3e-3 for n, ok in enumerate(result.extras["ig_converged"]) if ok)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("arch", ARCHS)
def test_several_sentences_per_pass_equal_one_at_a_time(models, arch, rule):
    model, task = models[arch]
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
    pairs = pairs_of(task)
    ig = IntegratedGradients(adapter)
    one_by_one = [ig.attribute(src, tgt) for src, tgt in pairs]
    # all at once, and in passes of 7 rows (sentences x points) at most: --ig-internal-batch-size keeps its meaning
    for internal_batch_size in (None, 7):
        batched = ig.attribute_batch(pairs, internal_batch_size=internal_batch_size)
        for single, several in zip(one_by_one, batched):
            assert several.contributions.shape == single.contributions.shape
            for name in ("contributions", "target_scores", "baseline_scores", "convergence_delta"):
                torch.testing.assert_close(getattr(several, name), getattr(single, name), atol=1e-5, rtol=1e-5)
    # error-controlled: the same records whenever a token made the same refinements (a decision at the tolerance's
    # edge may flip with rounding; then both results still meet the tolerance)
    adaptive = IntegratedGradients(adapter, tolerance=1e-2, adaptive_rule=rule)
    alone = [adaptive.attribute(src, tgt) for src, tgt in pairs]
    together = adaptive.attribute_adaptive(pairs)
    same = 0
    for single, several in zip(alone, together):
        for n in range(single.contributions.size(1)):
            if single.extras["ig_points"][n] == several.extras["ig_points"][n]:
                torch.testing.assert_close(several.contributions[:, n], single.contributions[:, n], atol=1e-5,
                                           rtol=1e-5)
                assert several.extras["ig_converged"][n] == single.extras["ig_converged"][n]
                if rule in KRONROD_RULES:
                    estimates = several.extras["ig_entry_error"][n], single.extras["ig_entry_error"][n]
                    assert estimates[0] is estimates[1] is None or estimates[0] == pytest.approx(estimates[1],
                                                                                                 rel=1e-3, abs=1e-6)
                same += 1
    assert same >= 0.9 * sum(r.contributions.size(1) for r in alone)


def test_runner_records_several_per_pass_equal_one_at_a_time(models):
    model, task = models["transformer_separate"]
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
    sentences = [(sid, src, tgt, tgt, None) for sid, (src, tgt) in enumerate(pairs_of(task))]
    one = WordImportanceRunner("ig", MethodContext(adapter, task, "none"))
    several = WordImportanceRunner("ig", MethodContext(adapter, task, "none", options={"ig_sentences_per_pass": 3}))
    expected = list(one.records(sentences))
    got = list(several.records(sentences))
    assert [r["id"] for r in got] == [r["id"] for r in expected] == list(range(len(sentences)))
    for a, b in zip(got, expected):
        assert a.keys() == b.keys()
        for key in a:
            if key in ("contributions", "word_contributions", "word_importance", "target_scores",
                       "baseline_scores", "convergence_delta"):
                assert torch.tensor(a[key]).double() == pytest.approx(torch.tensor(b[key]).double(), abs=1e-5)
            else:
                assert a[key] == b[key]


@pytest.mark.parametrize("rule", RULES)
def test_records_state_the_rule_and_its_estimates(models, rule):
    model, task = models["transformer_separate"]
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
    options = {"ig_tolerance": 0.01, "ig_adaptive_rule": rule, "ig_sentences_per_pass": 2}
    runner = WordImportanceRunner("ig", MethodContext(adapter, task, "none", options=options))
    sentences = [(sid, src, tgt, tgt, None) for sid, (src, tgt) in enumerate(pairs_of(task))]
    # the run-level provenance names the default rule; the record names the rule that made it
    seen = 0
    for record in runner.records(sentences, ig_method="adaptive_gausslegendre"):
        assert record["ig_method"] == {"gauss-legendre": "adaptive_gausslegendre",
                                       "gauss-kronrod": "adaptive_gausskronrod",
                                       "legendre-kronrod": "adaptive_legendrekronrod"}[rule]
        assert len(record["ig_points"]) == len(record["ig_converged"]) == len(record["tgt_tokens"])
        if rule in KRONROD_RULES:
            estimates = record["ig_entry_error"]
            assert len(estimates) == len(record["tgt_tokens"])
            assert all(e is None or e >= 0 for e in estimates)
            # a token that stopped on its first rule has an estimate when that rule is extended (gauss-kronrod), none
            # when it is two Gauss panels (legendre-kronrod)
            first = [e for e, p in zip(estimates, record["ig_points"]) if p == first_rule_points(rule)]
            assert all((e is not None) == (rule == "gauss-kronrod") for e in first)
            seen += len(first)
        else:
            assert "ig_entry_error" not in record
    assert seen > 0 or rule not in KRONROD_RULES


def test_default_options_take_the_fixed_step_path_unchanged(models, monkeypatch):
    """The default run (no tolerance, one sentence per pass) never enters the new code: the same calls to
    ``attribute`` with the same options, the same record fields, the same numbers as calling the fixed rule."""
    model, task = models["transformer_shared"]
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
    runner = WordImportanceRunner("ig", MethodContext(adapter, task, "none"))
    assert runner.method.tolerance is None and runner.sentences_per_pass() == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the default path reached the several-sentence code")

    monkeypatch.setattr(ig_paths, "evaluate_rows", refuse)
    monkeypatch.setattr(IntegratedGradients, "attribute_adaptive", refuse)
    monkeypatch.setattr(IntegratedGradients, "attribute_batch", refuse)
    sentences = [(sid, src, tgt, tgt, None) for sid, (src, tgt) in enumerate(pairs_of(task))]
    for record, (_, src, tgt, _, _) in zip(runner.records(sentences), sentences):
        assert "ig_points" not in record and "ig_converged" not in record
        plain = IntegratedGradients(adapter).attribute(src, tgt, n_steps=50, method="gausslegendre")
        assert record["contributions"] == [[float(v) for v in row] for row in plain.contributions.tolist()]
        assert record["convergence_delta"] == [float(v) for v in plain.convergence_delta.tolist()]


def test_bad_options_are_one_line_errors(models):
    model, task = models["transformer_shared"]
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())

    def runner(**options):
        return WordImportanceRunner("ig", MethodContext(adapter, task, "none", options=options))

    with pytest.raises(InterpretError, match="--ig-tolerance must be positive"):
        runner(ig_tolerance=-0.1)
    with pytest.raises(InterpretError, match="--ig-max-steps 4 is below"):
        runner(ig_tolerance=0.01, ig_max_steps=4)
    with pytest.raises(InterpretError, match="--ig-max-steps 8 is below the 9 points .* gauss-kronrod"):
        runner(ig_tolerance=0.01, ig_max_steps=8, ig_adaptive_rule="gauss-kronrod")
    with pytest.raises(InterpretError, match="unknown --ig-adaptive-rule 'simpson'"):
        runner(ig_tolerance=0.01, ig_adaptive_rule="simpson")
    with pytest.raises(InterpretError, match="needs --ig-implementation batched"):
        runner(ig_tolerance=0.01, ig_implementation="captum")
    with pytest.raises(InterpretError, match="--ig-sentences-per-pass must be at least 1"):
        runner(ig_sentences_per_pass=0)
    with pytest.raises(InterpretError, match="--attribute-target-prefix needs fixed-step IG one sentence"):
        runner(ig_tolerance=0.01, attribute_target_prefix=True)
    with pytest.raises(InterpretError, match="--attribute-target-prefix needs fixed-step IG one sentence"):
        runner(ig_sentences_per_pass=4, attribute_target_prefix=True)
    src, tgt = sentence(task)
    alternative = tgt.clone()
    alternative[1] = (int(tgt[1]) + 1 - task.target_dictionary.nspecial) % (
        len(task.target_dictionary) - task.target_dictionary.nspecial) + task.target_dictionary.nspecial
    with pytest.raises(InterpretError, match="--contrast needs fixed-step IG one sentence"):
        list(runner(ig_sentences_per_pass=2, attribution_score="logprob").records(
            [(0, src, tgt, tgt, None, alternative)]))


@pytest.mark.slow
def test_interpret_cli_error_controlled_several_per_pass(data_dir, transformer_ckpt, tmp_path):
    """fairseq-interpret with --ig-tolerance, each --ig-adaptive-rule and --ig-sentences-per-pass on a trained tiny
    model and real Multi30k sentences: converged tokens within the tolerance, flags, points and the rule in the
    records, the same sentences and hypotheses as the default run."""
    from test_interpret_cli import interpret, records

    default = tmp_path / "default"
    interpret(data_dir, transformer_ckpt, default, "--num-sentences", "6", in_process=True)
    by_id = {r["id"]: r for r in records(default)}
    got = []
    for rule in RULES:
        interpret(data_dir, transformer_ckpt, tmp_path / rule, "--num-sentences", "6", "--ig-tolerance", "0.01",
                  "--ig-max-steps", "64", "--ig-sentences-per-pass", "4", "--ig-adaptive-rule", rule, in_process=True)
        got += [(rule, r) for r in records(tmp_path / rule)]
    assert sorted(r["id"] for _, r in got) == sorted(list(by_id) * len(RULES)) == sorted(list(range(6)) * len(RULES))
    converged = 0
    for rule, r in got:
        assert r["tgt_tokens"] == by_id[r["id"]]["tgt_tokens"]
        assert r["ig_tolerance"] == 0.01 and r["ig_max_steps"] == 64 and r["ig_steps"] is None
        assert r["ig_method"] == "adaptive_" + rule.replace("-", "")
        assert len(r["ig_converged"]) == len(r["ig_points"]) == len(r["tgt_tokens"])
        assert ("ig_entry_error" in r) == (rule in KRONROD_RULES)
        for delta, target, baseline, ok, points in zip(r["convergence_delta"], r["target_scores"],
                                                        r["baseline_scores"], r["ig_converged"], r["ig_points"]):
            assert first_rule_points(rule) <= points <= 64
            if ok:
                assert abs(delta) <= 0.01 * abs(target - baseline)
                converged += 1
    assert converged >= 0.8 * sum(len(r["ig_converged"]) for _, r in got)
