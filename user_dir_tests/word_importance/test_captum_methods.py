"""Captum's other attribution methods through the shared adapter, each checked against Captum called directly on a
hand-written fairseq forward (no adapter), or against a hand computation from the method's definition."""

import inspect
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tiny_translation import build, sentence, write_dictionaries

from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.teacher_forcing import TeacherForcedAdapter
from fairseq_interp.word_importance.methods import METHODS
from fairseq_interp.word_importance.methods.deeplift import DeepLiftAttribution
from fairseq_interp.word_importance.methods.gradient_shap import GradientShapAttribution
from fairseq_interp.word_importance.methods.integrated_gradients import IntegratedGradients
from fairseq_interp.word_importance.methods.layer_integrated_gradients import LayerIntegratedGradientsAttribution
from fairseq_interp.word_importance.methods.occlusion import OcclusionAttribution


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_dictionaries(tmp_path_factory.mktemp("dicts"))


@pytest.fixture(scope="module")
def models(folder):
    return {arch: build(folder, arch)[:2] for arch in ("transformer_shared", "transformer_separate", "lstm")}


def hand_forward(model, src, tgt, eos, log=False):
    """F(x)_n for a batch of source embeddings written against fairseq's encoder and decoder directly: the
    transformer takes ``token_embeddings``; the (separate-embedding) LSTM gets them through a forward hook."""
    prev = torch.cat([torch.tensor([eos]), tgt[:-1]]).view(1, -1)
    takes_embeddings = "token_embeddings" in inspect.signature(model.encoder.forward).parameters

    def forward(embeddings):
        b = embeddings.size(0)
        tokens, lengths = src.view(1, -1).expand(b, -1), torch.full((b,), src.numel())
        if takes_embeddings:
            enc = model.encoder(tokens, lengths, token_embeddings=embeddings)
        else:
            assert model.encoder.embed_tokens is not model.decoder.embed_tokens
            handle = model.encoder.embed_tokens.register_forward_hook(lambda m, i, o: embeddings)
            try:
                enc = model.encoder(tokens, lengths)
            finally:
                handle.remove()
        out = model.decoder(prev.expand(b, -1), encoder_out=enc)
        lprobs = torch.log_softmax(out[0], dim=-1)
        picked = lprobs.gather(-1, tgt.view(1, -1, 1).expand(b, -1, 1)).squeeze(-1)
        return picked if log else picked.exp()

    return forward


def setup(models, arch, seed=0, score="prob"):
    model, task = models[arch]
    src, tgt = sentence(task, seed=seed)
    eos = task.target_dictionary.eos()
    inputs = model.encoder.embed_tokens(src.view(1, -1)).detach().requires_grad_(True)
    return model, task, src, tgt, inputs, hand_forward(model, src, tgt, eos, score == "logprob"), \
        TeacherForcedAdapter(model, eos, score=score)


def columns(attribute, tgt):
    return torch.stack([attribute(n) for n in range(tgt.numel())], dim=1)


@pytest.mark.parametrize("arch", ["transformer_shared", "lstm"])
@pytest.mark.parametrize("score", ["prob", "logprob"])
def test_saliency_and_input_x_gradient_equal_captum(models, arch, score):
    from captum.attr import InputXGradient, Saliency

    model, task, src, tgt, inputs, forward, adapter = setup(models, arch, score=score)
    expected = columns(lambda n: Saliency(forward).attribute(inputs, target=n, abs=False).norm(dim=-1)[0], tgt)
    result = METHODS["saliency"](adapter).attribute(src, tgt)
    torch.testing.assert_close(result.contributions, expected, atol=1e-7, rtol=1e-5)
    assert (result.contributions >= 0).all() and result.convergence_delta is None
    torch.testing.assert_close(result.target_scores, forward(inputs.detach())[0])
    expected = columns(lambda n: InputXGradient(forward).attribute(inputs, target=n).sum(-1)[0], tgt)
    got = METHODS["input_x_gradient"](adapter).attribute(src, tgt).contributions
    torch.testing.assert_close(got, expected, atol=1e-7, rtol=1e-5)
    assert (got < 0).any() and (got > 0).any()  # signed


@pytest.mark.parametrize("arch", ["transformer_separate", "lstm"])
def test_occlusion_is_the_score_drop_of_zeroing_a_token(models, arch):
    """Window 1: contributions[l, n] = F(x)_n − F(x with row l zeroed)_n, computed here by hand."""
    model, task, src, tgt, inputs, forward, adapter = setup(models, arch, seed=1)
    x = inputs.detach()
    with torch.no_grad():
        full = forward(x)[0]
        erased = []
        for l in range(src.numel()):
            hidden = x.clone()
            hidden[0, l] = 0.0
            erased.append(forward(hidden)[0])
    expected = full.view(1, -1) - torch.stack(erased)
    got = OcclusionAttribution(adapter).attribute(src, tgt).contributions
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_occlusion_window_equals_captum(models):
    from captum.attr import Occlusion

    model, task, src, tgt, inputs, forward, adapter = setup(models, "transformer_shared", seed=2)
    dim = inputs.size(-1)
    expected = columns(lambda n: Occlusion(forward).attribute(
        inputs.detach(), sliding_window_shapes=(3, dim), strides=(1, dim), baselines=0.0, target=n)[0, :, 0], tgt)
    got = OcclusionAttribution(adapter, window=3).attribute(src, tgt).contributions
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    with pytest.raises(InterpretError, match="--occlusion-window"):
        OcclusionAttribution(adapter, window=0)


def shap_seed(seed, sentence_id):
    """The documented seeding: one seed per (--seed, sentence id)."""
    return random.Random(f"{seed}:{sentence_id}").randrange(2 ** 31)


def test_gradient_shap_equals_captum_with_the_same_draws(models):
    from captum.attr import GradientShap

    model, task, src, tgt, inputs, forward, adapter = setup(models, "transformer_shared", seed=3)
    method = GradientShapAttribution(adapter, n_samples=6, stdev=0.01, seed=5)
    torch.manual_seed(123)
    np.random.seed(123)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy())
    got = method.attribute(src, tgt, sentence_id=7)
    assert torch.equal(torch.get_rng_state(), before[0]) and np.array_equal(np.random.get_state()[1], before[1])
    torch.manual_seed(shap_seed(5, 7))
    np.random.seed(shap_seed(5, 7))
    zeros = torch.zeros_like(inputs)
    expected = columns(lambda n: GradientShap(forward).attribute(inputs, baselines=zeros, n_samples=6, stdevs=0.01,
                                                                 target=n).sum(-1)[0], tgt)
    torch.testing.assert_close(got.contributions, expected, atol=1e-7, rtol=1e-5)
    again = method.attribute(src, tgt, sentence_id=7).contributions
    other = method.attribute(src, tgt, sentence_id=8).contributions
    assert torch.equal(again, got.contributions) and not torch.equal(other, got.contributions)
    torch.testing.assert_close(got.convergence_delta, got.contributions.sum(0) - (got.target_scores
                                                                                 - got.baseline_scores))


def test_gradient_shap_converges_to_integrated_gradients(models):
    """With a zero baseline and no noise, gradient SHAP is a Monte Carlo estimate of He et al.'s IG: its error
    shrinks with the number of samples."""
    model, task, src, tgt, inputs, forward, adapter = setup(models, "transformer_shared", seed=4)
    ig = IntegratedGradients(adapter).attribute(src, tgt, n_steps=64).contributions
    errors = [float((GradientShapAttribution(adapter, n_samples=k, seed=s).attribute(src, tgt).contributions - ig)
                    .abs().mean()) for k in (2, 200) for s in (1, 2, 3)]
    assert np.mean(errors[3:]) < 0.5 * np.mean(errors[:3]), errors


def relu_batch_first(model):
    """The test's own swap of the transformer's functional ReLU for an nn.ReLU that sees batch-first tensors."""
    class Swap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.relu = torch.nn.ReLU()

        def forward(self, x):
            return self.relu(x.transpose(0, 1)).transpose(0, 1)

    layers = list(model.encoder.layers) + list(model.decoder.layers)
    for layer in layers:
        layer.activation_fn = Swap()
    return layers


def test_deeplift_equals_captum_and_applies_its_rule(models):
    from captum.attr import DeepLift

    model, task, src, tgt, inputs, forward, adapter = setup(models, "transformer_separate", seed=5)
    got = DeepLiftAttribution(adapter).attribute(src, tgt)
    layers = list(model.encoder.layers) + list(model.decoder.layers)
    assert all(layer.activation_fn is F.relu for layer in layers)  # restored

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, embeddings):
            return forward(embeddings)

    swapped = relu_batch_first(model)
    try:
        zeros = torch.zeros_like(inputs)
        expected = columns(lambda n: DeepLift(Wrapper()).attribute(inputs, baselines=zeros, target=n).sum(-1)[0],
                           tgt)
    finally:
        for layer in swapped:
            del layer.activation_fn
            layer.activation_fn = F.relu
    torch.testing.assert_close(got.contributions, expected, atol=1e-7, rtol=1e-5)
    # the Rescale rule changes the numbers: DeepLIFT is not gradient x input here
    ixg = METHODS["input_x_gradient"](adapter).attribute(src, tgt).contributions
    assert (got.contributions - ixg).abs().max() > 1e-4
    torch.testing.assert_close(got.convergence_delta, got.contributions.sum(0) - (got.target_scores
                                                                                 - got.baseline_scores))


def test_deeplift_refuses_models_it_cannot_handle(models, folder):
    model, task = models["lstm"]
    with pytest.raises(InterpretError, match="deeplift cannot attribute LSTMModel"):
        DeepLiftAttribution(TeacherForcedAdapter(model, task.target_dictionary.eos()))
    gelu, task, _ = build(folder, "transformer_separate", extra=["--activation-fn", "gelu"])
    with pytest.raises(InterpretError, match="ReLU only.*gelu"):
        DeepLiftAttribution(TeacherForcedAdapter(gelu, task.target_dictionary.eos()))


@pytest.mark.parametrize("arch", ["transformer_shared", "lstm"])
def test_layer_ig_with_pad_baseline_is_integrated_gradients(models, arch):
    """fairseq keeps the padding row of the embedding table at zero, so layer IG from pad tokens is IG from zero
    embeddings; with shared embeddings only the encoder's lookup is interpolated."""
    model, task = models[arch]
    src, tgt = sentence(task, seed=6)
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos())
    assert model.encoder.embed_tokens.weight[task.source_dictionary.pad()].abs().max() == 0
    layer = LayerIntegratedGradientsAttribution(adapter, task.source_dictionary.pad(), n_steps=20).attribute(src, tgt)
    ig = IntegratedGradients(adapter).attribute(src, tgt, n_steps=20)
    torch.testing.assert_close(layer.contributions, ig.contributions, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(layer.baseline_scores, ig.baseline_scores)
    assert model.encoder.embed_tokens is not None and type(model.encoder.embed_tokens).__name__ == "Embedding"


def test_layer_ig_equals_captum_layer_ig(models):
    """Separate embeddings, where Captum's LayerIntegratedGradients on the encoder's table works as it is."""
    from captum.attr import LayerIntegratedGradients

    model, task = models["transformer_separate"]
    src, tgt = sentence(task, seed=7)
    eos, unk = task.target_dictionary.eos(), task.source_dictionary.unk()
    prev = torch.cat([torch.tensor([eos]), tgt[:-1]]).view(1, -1)

    def forward(tokens):
        b = tokens.size(0)
        out = model(tokens, torch.full((b,), tokens.size(1)), prev.expand(b, -1))
        return torch.log_softmax(out[0], -1).gather(-1, tgt.view(1, -1, 1).expand(b, -1, 1)).squeeze(-1).exp()

    captum = LayerIntegratedGradients(forward, model.encoder.embed_tokens)
    baseline = torch.full((1, src.numel()), unk)
    expected = columns(lambda n: captum.attribute(src.view(1, -1), baselines=baseline, target=n, n_steps=16,
                                                  method="riemann_trapezoid").sum(-1)[0], tgt)
    adapter = TeacherForcedAdapter(model, eos)
    got = LayerIntegratedGradientsAttribution(adapter, unk, n_steps=16, method="riemann_trapezoid").attribute(src, tgt)
    torch.testing.assert_close(got.contributions, expected, atol=1e-6, rtol=1e-4)
    with torch.no_grad():  # F(x') = the score with <unk> embeddings everywhere
        unk_rows = model.encoder.embed_tokens(baseline)
        expected_baseline = hand_forward(model, src, tgt, eos)(unk_rows)[0]
    torch.testing.assert_close(got.baseline_scores, expected_baseline)


def test_new_methods_are_registered_and_compose():
    for name in ("saliency", "input_x_gradient", "deeplift", "gradient_shap", "occlusion", "layer_ig"):
        assert name in METHODS and METHODS[name].attributes_adapter_inputs
    assert METHODS["ig"].attributes_adapter_inputs and not METHODS["attention"].attributes_adapter_inputs
    assert not METHODS["erasure"].attributes_adapter_inputs
