"""fairseq's many-to-many task ``translation_multi_simple_epoch`` (language tokens of Johnson et al. 2017) at
inference: one direction per run, the language-token options the checkpoint was trained with, and the
target-language token the decoder reads before every target."""

from .errors import InterpretError


def is_multilingual(task):
    """Whether ``task`` is fairseq's ``translation_multi_simple_epoch`` (or a subclass)."""
    from fairseq.tasks.translation_multi_simple_epoch import TranslationMultiSimpleEpochTask

    return isinstance(task, TranslationMultiSimpleEpochTask)


def inference_direction(task, name):
    """The one direction a ``translation_multi_simple_epoch`` task was set up for at inference (``SRC-TGT``)."""
    if task.training or task.args.source_lang is None or task.args.target_lang is None:
        raise InterpretError(f"attribution runs one direction at a time: pass --source-lang and "
                             f"--target-lang with --task {name} (pairs: {', '.join(task.args.lang_pairs)})")
    return f"{task.args.source_lang}-{task.args.target_lang}"


def check_langtoks(task, saved_task_cfg):
    """Refuse language-token options other than those the checkpoint was trained with (its saved task config)."""
    def options(cfg):
        enc, dec = getattr(cfg, "encoder_langtok", None), bool(getattr(cfg, "decoder_langtok", False))
        return " ".join(([f"--encoder-langtok {enc}"] if enc else []) + (["--decoder-langtok"] if dec else [])
                        + [f"--lang-tok-style {getattr(cfg, 'lang_tok_style', 'multilingual')}"])

    if saved_task_cfg is not None and hasattr(saved_task_cfg, "encoder_langtok") and \
            options(saved_task_cfg) != options(task.args):
        raise InterpretError(f"the checkpoint was trained with {options(saved_task_cfg)}, not "
                             f"{options(task.args)}: pass the language-token options it was trained with")


def decoder_langtok_prefix(task):
    """``--decoder-langtok`` (without ``--lang-tok-replacing-bos-eos``): fairseq prepends the target-language token
    to every target, so the decoder reads EOS, the language token, then the words, and generation forces the token
    as the first output (``prefix_tokens`` of ``inference_step``). Returns ``[token]`` or ``[]``."""
    if task.args.lang_tok_replacing_bos_eos:
        raise InterpretError("fairseq-interpret does not support --lang-tok-replacing-bos-eos (its language tokens "
                             "replace EOS in the source and BOS in the target): train with --encoder-langtok / "
                             "--decoder-langtok")
    _, spec = task.args.langtoks["main"]
    return [task.data_manager.get_decoder_langtok(task.args.target_lang, spec)] if spec else []
