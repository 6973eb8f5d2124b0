"""Tiny randomly initialized translation models on a made-up vocabulary, built by fairseq's own parser and task
(no real data, no training: seconds), and a sentencepiece model + checkpoint folder for the Python API."""

import os

import torch

import fairseq_interp  # noqa: F401  (registers the test architectures)

WORDS = ["a", "man", "in", "an", "orange", "hat", ".", "dog", "runs", "on", "the", "grass", "two", "women",
         "sit", "bench", "un", "homme", "avec", "chapeau", "orange", "chien", "court", "sur", "herbe", "deux",
         "femmes", "assises", "banc", "le", "la", "l'", "casquette", "une"]

# (options, weight scale): fairseq's LSTM init is so small that a random LSTM hardly reads its source
ARCHS = {
    "transformer_shared": (["--arch", "transformer_test_tiny", "--share-all-embeddings"], 1.0),
    "transformer_separate": (["--arch", "transformer_test_tiny"], 1.0),
    "lstm": (["--arch", "lstm_test_tiny"], 4.0),
}


def write_dictionaries(folder, symbols=WORDS, langs=("en", "fr")):
    """``dict.{lang}.txt`` files holding ``symbols`` (one joint vocabulary)."""
    os.makedirs(folder, exist_ok=True)
    for lang in langs:
        with open(os.path.join(folder, f"dict.{lang}.txt"), "w", encoding="utf-8") as f:
            for k, word in enumerate(dict.fromkeys(symbols)):
                f.write(f"{word} {1000 - k}\n")
    return folder


def build(folder, arch="transformer_shared", seed=3, extra=()):
    """``(model, task, cfg)``: a random model of the dictionaries in ``folder``, in eval mode."""
    from fairseq import options as fairseq_options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    arch_options, scale = ARCHS[arch]
    parser = fairseq_options.get_training_parser()
    args = fairseq_options.parse_args_and_arch(
        parser, [str(folder), "--cpu", "--task", "translation", "-s", "en", "-t", "fr", *arch_options, *extra])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(seed)
    model = task.build_model(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.eval(), task, cfg


def sentence(task, n_src=6, n_tgt=5, seed=0):
    """Random source and target ids, EOS last."""
    g = torch.Generator().manual_seed(seed)
    nspecial = task.source_dictionary.nspecial
    src = torch.randint(nspecial, len(task.source_dictionary), (n_src,), generator=g)
    tgt = torch.randint(nspecial, len(task.target_dictionary), (n_tgt,), generator=g)
    eos = task.source_dictionary.eos()
    return torch.cat([src, torch.tensor([eos])]), torch.cat([tgt, torch.tensor([eos])])


def save_checkpoint(model, cfg, path):
    """A fairseq checkpoint of ``model`` as fairseq-train writes it (cfg, model, optimizer history)."""
    from fairseq import checkpoint_utils

    state = {"cfg": cfg, "args": None, "model": model.state_dict(), "extra_state": {},
             "optimizer_history": [{"criterion_name": "CrossEntropyCriterion", "optimizer_name": "Adam",
                                    "lr_scheduler_state": {"best": None}, "num_updates": 0}],
             "last_optimizer_state": None}
    checkpoint_utils.torch_persistent_save(state, str(path))
    return path


def sentencepiece_folder(folder, sentences, vocab_size=60):
    """Train a small sentencepiece model on ``sentences``; return ``(model path, pieces)``."""
    import sentencepiece as spm

    os.makedirs(folder, exist_ok=True)
    text = os.path.join(folder, "train.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("\n".join(sentences * 20) + "\n")
    prefix = os.path.join(folder, "spm")
    spm.SentencePieceTrainer.train(input=text, model_prefix=prefix, vocab_size=vocab_size, model_type="unigram",
                                   character_coverage=1.0, hard_vocab_limit=False, bos_id=-1, eos_id=-1, unk_id=0,
                                   pad_id=-1, minloglevel=2)
    processor = spm.SentencePieceProcessor(model_file=prefix + ".model")
    pieces = [processor.id_to_piece(i) for i in range(1, processor.get_piece_size())]
    return prefix + ".model", pieces
