"""Target-prefix attribution (source and previous target tokens together) and contrastive attribution (F = log P(y_n)
− log P(y′_n) at one step), through the adapter, for every method that attributes through it; checked against
Captum on hand-written forwards, fairseq's own forward, completeness and causality."""

import inspect

import pytest
import torch

from tiny_translation import build, sentence, write_dictionaries

from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.teacher_forcing import TeacherForcedAdapter
from fairseq_interp.word_importance.context import MethodContext
from fairseq_interp.word_importance.methods import METHODS
from fairseq_interp.word_importance.methods.integrated_gradients import IntegratedGradients
from fairseq_interp.word_importance.runner import WordImportanceRunner, contrast_step

ARCHS = ("transformer_shared", "transformer_separate", "lstm")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = write_dictionaries(tmp_path_factory.mktemp("dicts"))
    return {arch: build(folder, arch)[:2] for arch in ARCHS}


def fairseq_lprobs(model, src, tgt, eos):
    prev = torch.cat([torch.tensor([eos]), tgt[:-1]]).view(1, -1)
    with torch.no_grad():
        out = model(src.view(1, -1), torch.tensor([src.numel()]), prev)
        return model.get_normalized_probs(out, log_probs=True)[0]  # (T, V)


def joint_forward(model, src, tgt, eos, log=False):
    """F(x)_n of a batch of joint rows [source embeddings; decoder input embeddings], by hand: the encoder takes
    the source rows (``token_embeddings`` or a hook on its own table), a forward hook on the decoder's table returns
    the decoder rows."""
    prev = torch.cat([torch.tensor([eos]), tgt[:-1]]).view(1, -1)
    n_src = src.numel()
    takes_embeddings = "token_embeddings" in inspect.signature(model.encoder.forward).parameters

    def forward(joint):
        b = joint.size(0)
        source, decoder_rows = joint[:, :n_src], joint[:, n_src:]
        tokens, lengths = src.view(1, -1).expand(b, -1), torch.full((b,), n_src)
        if takes_embeddings:
            enc = model.encoder(tokens, lengths, token_embeddings=source)
        else:
            handle = model.encoder.embed_tokens.register_forward_hook(lambda m, i, o: source)
            try:
                enc = model.encoder(tokens, lengths)
            finally:
                handle.remove()
        handle = model.decoder.embed_tokens.register_forward_hook(lambda m, i, o: decoder_rows)
        try:
            out = model.decoder(prev.expand(b, -1), encoder_out=enc)
        finally:
            handle.remove()
        lprobs = torch.log_softmax(out[0], dim=-1)
        picked = lprobs.gather(-1, tgt.view(1, -1, 1).expand(b, -1, 1)).squeeze(-1)
        return picked if log else picked.exp()

    return forward


@pytest.mark.parametrize("arch", ARCHS)
def test_target_prefix_ig_completeness_causality_and_captum(models, arch):
    from captum.attr import IntegratedGradients as CaptumIG

    model, task = models[arch]
    src, tgt = sentence(task, seed=1)
    eos = task.target_dictionary.eos()
    adapter = TeacherForcedAdapter(model, eos)
    with adapter.attributing(tgt, target_prefix=True):
        inputs = adapter.source_embeddings(src.view(1, -1))
        batched = IntegratedGradients(adapter).attribute(src, tgt, n_steps=32)
        plain = IntegratedGradients(adapter, batched=False).attribute(src, tgt, n_steps=32)
    L, T = src.numel(), tgt.numel()
    assert inputs.shape[1] == L + T and batched.contributions.shape == (L + T, T)
    # the rows after the source are the decoder's input embeddings: EOS, y_1 .. y_{T-1}
    prev = torch.cat([torch.tensor([eos]), tgt[:-1]])
    torch.testing.assert_close(inputs[0, L:], model.decoder.embed_tokens(prev).detach())
    # F(x) is the model's own score; F(x') has zero source *and* decoder input embeddings
    torch.testing.assert_close(batched.target_scores, fairseq_lprobs(model, src, tgt, eos).gather(
        -1, tgt.view(-1, 1)).squeeze(-1).exp(), atol=1e-6, rtol=1e-5)
    forward = joint_forward(model, src, tgt, eos)
    with torch.no_grad():
        torch.testing.assert_close(batched.baseline_scores, forward(torch.zeros_like(inputs))[0])
    # completeness over source and prefix together
    gap = batched.target_scores - batched.baseline_scores
    torch.testing.assert_close(batched.convergence_delta, batched.contributions.sum(0) - gap)
    assert batched.convergence_delta.abs().max() < 0.02 * gap.abs().max()
    # causality: decoder input j (EOS = 0, y_j) cannot affect target positions n < j
    prefix = batched.contributions[L:]
    for n in range(T):
        assert torch.all(prefix[n + 1:, n] == 0), (n, prefix[:, n])
    assert prefix.abs().sum() > 0 and batched.contributions[:L].abs().sum() > 0
    # Captum on the hand-written joint forward
    expected = torch.stack([CaptumIG(forward).attribute(inputs, baselines=torch.zeros_like(inputs), target=n,
                                                        n_steps=32).sum(-1)[0] for n in range(T)], dim=1)
    torch.testing.assert_close(batched.contributions, expected, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(plain.contributions, expected, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", ["saliency", "input_x_gradient", "occlusion", "gradient_shap"])
def test_target_prefix_other_methods_equal_captum(models, name):
    import captum.attr as ca

    model, task = models["transformer_shared"]
    src, tgt = sentence(task, seed=2)
    eos = task.target_dictionary.eos()
    adapter = TeacherForcedAdapter(model, eos)
    method = METHODS[name](adapter)
    with adapter.attributing(tgt, target_prefix=True):
        inputs = adapter.source_embeddings(src.view(1, -1)).requires_grad_(True)
        got = method.attribute(src, tgt, sentence_id=3).contributions
    forward = joint_forward(model, src, tgt, eos)
    dim = inputs.size(-1)

    def column(n):
        if name == "saliency":
            return ca.Saliency(forward).attribute(inputs, target=n, abs=False).norm(dim=-1)[0]
        if name == "input_x_gradient":
            return ca.InputXGradient(forward).attribute(inputs, target=n).sum(-1)[0]
        if name == "occlusion":
            return ca.Occlusion(forward).attribute(inputs.detach(), sliding_window_shapes=(1, dim), strides=(1, dim),
                                                   baselines=0.0, target=n)[0, :, 0]
        return ca.GradientShap(forward).attribute(inputs, baselines=torch.zeros_like(inputs), n_samples=20,
                                                  target=n).sum(-1)[0]

    if name == "gradient_shap":
        import random

        import numpy as np

        seed = random.Random("1:3").randrange(2 ** 31)
        torch.manual_seed(seed)
        np.random.seed(seed)
    expected = torch.stack([column(n) for n in range(tgt.numel())], dim=1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)
    L = src.numel()
    for n in range(tgt.numel()):
        future = got[L + n + 1:, n]
        # a causal decoder: later target tokens cannot change token n (occlusion differences two
        # forward passes, so its zeros are zeros up to float rounding)
        torch.testing.assert_close(future, torch.zeros_like(future), atol=1e-7, rtol=0)


def test_layer_ig_refuses_target_prefix(models):
    model, task = models["transformer_shared"]
    src, tgt = sentence(task)
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
    method = METHODS["layer_ig"](adapter, task.source_dictionary.pad())
    with adapter.attributing(tgt, target_prefix=True), pytest.raises(InterpretError, match="layer_ig"):
        method.attribute(src, tgt)


@pytest.mark.parametrize("arch", ["transformer_shared", "lstm"])
def test_contrastive_scores_and_gradients(models, arch):
    """F_n = log P(y_n | y_<n, x) − log P(y′_n | y_<n, x) at the contrast step, 0 elsewhere; its input × gradient is
    the difference of the two log-probabilities' (the gradient is linear), and IG stays complete."""
    model, task = models[arch]
    src, tgt = sentence(task, seed=4)
    eos = task.target_dictionary.eos()
    step = 2
    alternative = (int(tgt[step]) + 1 - task.target_dictionary.nspecial) % (
        len(task.target_dictionary) - task.target_dictionary.nspecial) + task.target_dictionary.nspecial
    adapter = TeacherForcedAdapter(model, eos, score="logprob")
    ixg = METHODS["input_x_gradient"](adapter)
    with adapter.attributing(tgt, contrast=(step, alternative)):
        assert not adapter.supports_row_projection()
        contrastive = ixg.attribute(src, tgt)
        ig = IntegratedGradients(adapter).attribute(src, tgt, n_steps=32)
        ig_plain = IntegratedGradients(adapter, batched=False).attribute(src, tgt, n_steps=32)
    lprobs = fairseq_lprobs(model, src, tgt, eos)
    expected_scores = torch.zeros(tgt.numel())
    expected_scores[step] = lprobs[step, tgt[step]] - lprobs[step, alternative]
    torch.testing.assert_close(contrastive.target_scores, expected_scores, atol=1e-5, rtol=1e-5)
    others = [n for n in range(tgt.numel()) if n != step]
    assert torch.all(contrastive.contributions[:, others] == 0) and torch.all(ig.contributions[:, others] == 0)
    alt_target = tgt.clone()
    alt_target[step] = alternative
    plain_y = ixg.attribute(src, tgt).contributions[:, step]
    plain_alt = ixg.attribute(src, alt_target).contributions[:, step]
    torch.testing.assert_close(contrastive.contributions[:, step], plain_y - plain_alt, atol=1e-6, rtol=1e-5)
    gap = ig.target_scores - ig.baseline_scores
    assert ig.convergence_delta.abs().max() < 0.02 * gap.abs().max()
    torch.testing.assert_close(ig.contributions, ig_plain.contributions, atol=1e-6, rtol=1e-4)
    # both modes at once: the prefix rows of a contrastive attribution
    with adapter.attributing(tgt, target_prefix=True, contrast=(step, alternative)):
        both = IntegratedGradients(adapter).attribute(src, tgt, n_steps=32)
    assert both.contributions.shape == (src.numel() + tgt.numel(), tgt.numel())
    assert both.convergence_delta.abs().max() < 0.02 * (both.target_scores - both.baseline_scores).abs().max()


def test_binding_checks_and_default_path(models):
    model, task = models["transformer_shared"]
    src, tgt = sentence(task, seed=5)
    eos = task.target_dictionary.eos()
    prob = TeacherForcedAdapter(model, eos)
    with pytest.raises(InterpretError, match="logprob"):
        with prob.attributing(tgt, contrast=(1, 5)):
            pass
    adapter = TeacherForcedAdapter(model, eos, score="logprob")
    with pytest.raises(InterpretError, match="target token itself"):
        with adapter.attributing(tgt, contrast=(1, int(tgt[1]))):
            pass
    with pytest.raises(InterpretError, match="outside"):
        with adapter.attributing(tgt, contrast=(tgt.numel(), 5)):
            pass
    with adapter.attributing(tgt, target_prefix=True):
        with pytest.raises(InterpretError, match="already"):
            with adapter.attributing(tgt):
                pass
        with pytest.raises(InterpretError, match="another target"):
            adapter.scores(src, tgt[:-1])
    with pytest.raises(RuntimeError):
        with adapter.attributing(tgt, target_prefix=True):
            raise RuntimeError("inside")
    # released: the default path again (source rows only, the model's own scores)
    assert adapter.source_embeddings(src.view(1, -1)).shape[1] == src.numel()
    torch.testing.assert_close(adapter.scores(src, tgt)[0], fairseq_lprobs(model, src, tgt, eos).gather(
        -1, tgt.view(-1, 1)).squeeze(-1), atol=1e-6, rtol=1e-5)
    # B rows of token ids score B times the same sentence
    torch.testing.assert_close(adapter.scores(src.view(1, -1).expand(3, -1), tgt),
                               adapter.scores(src, tgt).expand(3, -1))


def test_contrast_step_is_the_first_difference():
    t = torch.tensor([5, 6, 7, 2])
    assert contrast_step(t, torch.tensor([5, 6, 9, 8, 2])) == (2, 9)
    assert contrast_step(t, torch.tensor([5, 6, 2])) == (2, 2)  # why y_3 rather than ending the sentence
    with pytest.raises(InterpretError, match="does not differ"):
        contrast_step(t, torch.tensor([5, 6]))


def runner(model, task, method, **options):
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos(),
                                   score=options.pop("score", "prob"))
    context = MethodContext(adapter, task, "none", options=dict(ig_steps=16, **options))
    return WordImportanceRunner(method, context)


def test_runner_records_of_both_modes(models):
    model, task = models["transformer_separate"]
    src, tgt = sentence(task, seed=6)
    tgt_dict = task.target_dictionary
    plain = runner(model, task, "ig").record(0, src, tgt, tgt, None, method="ig")
    assert list(plain)[:11] == ["id", "src_tokens", "tgt_tokens", "src_words", "tgt_words", "contributions",
                                "word_contributions", "word_importance", "target_scores", "baseline_scores",
                                "convergence_delta"]
    assert not any(k.startswith(("prefix_", "contrast_")) for k in plain)
    record = runner(model, task, "ig", attribute_target_prefix=True).record(0, src, tgt, tgt, None, method="ig")
    assert record["prefix_tokens"] == ["</s>"] + [tgt_dict[i] for i in tgt[:-1].tolist()]
    assert len(record["prefix_contributions"]) == tgt.numel() and len(record["contributions"]) == src.numel()
    for n in range(tgt.numel()):  # completeness over source and prefix, in the record
        column = sum(row[n] for row in record["contributions"]) + sum(row[n] for row in record["prefix_contributions"])
        gap = record["target_scores"][n] - record["baseline_scores"][n]
        assert column - gap == pytest.approx(record["convergence_delta"][n], abs=1e-6)
    keys = list(record)
    assert keys.index("prefix_tokens") == keys.index("convergence_delta") + 1
    alternative = tgt.clone()
    alternative[1] = (int(tgt[1]) + 1) % len(tgt_dict)
    contrastive = runner(model, task, "saliency", score="logprob").record(0, src, tgt, tgt, None,
                                                                          contrast=alternative)
    assert contrastive["contrast_step"] == 1 and contrastive["contrast_token"] == tgt_dict[int(alternative[1])]
    assert contrastive["contrast_word"] == 1  # scheme none: one word per token
    with pytest.raises(InterpretError, match="target-prefix attribution needs a method"):
        runner(model, task, "attention", attribute_target_prefix=True)
    with pytest.raises(InterpretError, match="contrastive attribution needs a method"):
        runner(model, task, "attention", score="logprob").record(0, src, tgt, tgt, None, contrast=alternative)
