"""Integrated gradients: completeness, convergence, agreement with plain Captum on a hand-written forward."""

import pytest
import torch

import fairseq_interp  # noqa: F401  (registers the test architectures)
from fairseq_interp.common.teacher_forcing import TeacherForcedAdapter
from fairseq_interp.word_importance.methods.integrated_gradients import IntegratedGradients
from fairseq_interp.common.errors import InterpretError

# (options, weight scale): fairseq's LSTM init is so small that a random LSTM hardly reads its source;
# scaling its weights gives attributions worth testing
MODELS = {
    "transformer_shared": (["--arch", "transformer_test_tiny", "--share-all-embeddings"], 1.0),
    "transformer_separate": (["--arch", "transformer_test_tiny"], 1.0),
    "lstm": (["--arch", "lstm_test_tiny"], 4.0),
}


def build(data_dir, spec, seed=3):
    """A randomly initialized model of the data's dictionaries, built by fairseq's own parser and task."""
    from fairseq import options as fairseq_options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    options, scale = spec
    parser = fairseq_options.get_training_parser()
    args = fairseq_options.parse_args_and_arch(parser, [str(data_dir / "bin"), "--cpu", *options])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(seed)
    model = task.build_model(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.eval(), task


@pytest.fixture(scope="module", params=sorted(MODELS))
def model_task(request, data_dir):
    return build(data_dir, MODELS[request.param])


def sentence(task, n_src=7, n_tgt=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    nspecial = task.source_dictionary.nspecial
    src = torch.randint(nspecial, len(task.source_dictionary), (n_src,), generator=g)
    tgt = torch.randint(nspecial, len(task.target_dictionary), (n_tgt,), generator=g)
    eos = task.source_dictionary.eos()
    return torch.cat([src, torch.tensor([eos])]), torch.cat([tgt, torch.tensor([eos])])


def fairseq_scores(model, src, tgt, eos, log=False):
    """F(x)_n from fairseq's own full forward pass (no adapter involved)."""
    prev = torch.cat([torch.tensor([eos]), tgt[:-1]]).view(1, -1)
    with torch.no_grad():
        out = model(src.view(1, -1), torch.tensor([src.numel()]), prev)
        lprobs = model.get_normalized_probs(out, log_probs=True)[0]
    picked = lprobs.gather(-1, tgt.view(-1, 1)).squeeze(-1)
    return picked if log else picked.exp()


@pytest.mark.parametrize("score", ["prob", "logprob"])
def test_completeness_and_scores(model_task, score):
    model, task = model_task
    src, tgt = sentence(task)
    adapter = TeacherForcedAdapter(model, task.target_dictionary.eos(), score=score)
    result = IntegratedGradients(adapter).attribute(src, tgt, n_steps=64, method="gausslegendre")
    assert result.contributions.shape == (src.numel(), tgt.numel())
    # F(x) equals fairseq's own forward: the adapter scores what the model scores
    expected = fairseq_scores(model, src, tgt, task.target_dictionary.eos(), log=score == "logprob")
    torch.testing.assert_close(result.target_scores, expected, atol=1e-5, rtol=1e-5)
    # completeness: contributions sum to F(x) - F(x') up to a small quadrature error
    gap = result.target_scores - result.baseline_scores
    assert gap.abs().max() > 0.01 * result.target_scores.abs().max(), "degenerate: baseline scores like input"
    residual = result.contributions.sum(0) - gap
    torch.testing.assert_close(residual, result.convergence_delta)
    assert result.convergence_delta.abs().max() < 0.01 * gap.abs().max()


def test_delta_shrinks_with_steps(model_task):
    model, task = model_task
    src, tgt = sentence(task, seed=1)
    ig = IntegratedGradients(TeacherForcedAdapter(model, task.target_dictionary.eos(), score="logprob"))
    deltas = [float(ig.attribute(src, tgt, n_steps=n, method="riemann_trapezoid").convergence_delta.abs().max())
              for n in (4, 16, 64)]
    assert deltas[0] > deltas[1] > deltas[2], deltas


def test_baseline_score_is_zero_embeddings(data_dir):
    """F(x') is the score with all-zero source token embeddings, computed here through fairseq's own hook."""
    model, task = build(data_dir, MODELS["transformer_shared"])
    src, tgt = sentence(task, seed=2)
    eos = task.target_dictionary.eos()
    result = IntegratedGradients(TeacherForcedAdapter(model, eos)).attribute(src, tgt, n_steps=8)
    zeros = torch.zeros(1, src.numel(), model.encoder.embed_tokens.embedding_dim)
    with torch.no_grad():
        enc = model.encoder(src.view(1, -1), torch.tensor([src.numel()]), token_embeddings=zeros)
        prev = torch.cat([torch.tensor([eos]), tgt[:-1]]).view(1, -1)
        lprobs = model.get_normalized_probs(model.decoder(prev, encoder_out=enc), log_probs=True)[0]
    torch.testing.assert_close(result.baseline_scores, lprobs.gather(-1, tgt.view(-1, 1)).squeeze(-1).exp())


def hand_written_forward(model, src, tgt, eos):
    """F(x)_n for a batch of source embeddings, written directly against fairseq's Transformer API."""
    prev = torch.cat([torch.tensor([eos]), tgt[:-1]]).view(1, -1)

    def forward(embeddings):
        b = embeddings.size(0)
        enc = model.encoder(src.view(1, -1).expand(b, -1), torch.full((b,), src.numel()),
                            token_embeddings=embeddings)
        out = model.decoder(prev.expand(b, -1), encoder_out=enc)
        lprobs = torch.log_softmax(out[0], dim=-1)
        return lprobs.gather(-1, tgt.view(1, -1, 1).expand(b, -1, 1)).squeeze(-1).exp()

    return forward


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_matches_plain_captum(data_dir, method):
    from captum.attr import IntegratedGradients as CaptumIG

    model, task = build(data_dir, MODELS["transformer_shared"])
    src, tgt = sentence(task, seed=4)
    eos = task.target_dictionary.eos()
    inputs = model.encoder.embed_tokens(src.view(1, -1)).detach()
    forward = hand_written_forward(model, src, tgt, eos)
    captum = CaptumIG(forward)
    expected = torch.stack([captum.attribute(inputs, baselines=torch.zeros_like(inputs), target=n, n_steps=20,
                                             method=method).sum(-1)[0] for n in range(tgt.numel())], dim=1)
    adapter = TeacherForcedAdapter(model, eos)
    for batched, chunk in ((True, None), (True, 7), (False, None)):
        got = IntegratedGradients(adapter, batched=batched).attribute(
            src, tgt, n_steps=20, method=method, internal_batch_size=chunk).contributions
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_shared_embeddings_untouched(data_dir):
    """With shared embeddings, the decoder keeps its lookups while the encoder's are replaced."""
    model, task = build(data_dir, MODELS["transformer_shared"])
    assert model.encoder.embed_tokens is model.decoder.embed_tokens
    src, tgt = sentence(task, seed=5)
    before = model.decoder.embed_tokens.weight.clone()
    IntegratedGradients(TeacherForcedAdapter(model, task.target_dictionary.eos())).attribute(src, tgt, n_steps=4)
    assert model.encoder.embed_tokens is model.decoder.embed_tokens
    assert torch.equal(before, model.decoder.embed_tokens.weight)


def test_refuses_language_model(data_dir):
    from fairseq.models.transformer_lm import TransformerLanguageModel

    model, task = build(data_dir, MODELS["transformer_shared"])
    lm = TransformerLanguageModel(model.decoder)
    with pytest.raises(InterpretError, match="encoder-decoder"):
        TeacherForcedAdapter(lm, task.target_dictionary.eos())


def test_bad_options(model_task):
    model, task = model_task
    src, tgt = sentence(task)
    ig = IntegratedGradients(TeacherForcedAdapter(model, task.target_dictionary.eos()))
    with pytest.raises(InterpretError, match="integration method"):
        ig.attribute(src, tgt, method="simpson")
    with pytest.raises(InterpretError, match="prob or logprob"):
        TeacherForcedAdapter(model, 2, score="logit")
