"""``fairseq-interp probes``: attention α against the lexical probes β, β^uf, β^IBM, β^px and gradient saliency Δ
(Snell et al. 2021), as a Table-2-style agreement table. Thin: parse → load → ``analysis.probes`` → write."""

import json
import os
import time

from ..errors import InterpretError
from . import loading


def add_parser(sub):
    p = sub.add_parser("probes", help="agreement of attention with lexical probes (Snell et al. 2021)")
    p.add_argument("data", nargs="?", help="fairseq-preprocess output folder (translation tasks); omit for tasks "
                                           "without data such as permutation_copy")
    p.add_argument("--path", required=True, help="checkpoint of the model whose attention α is probed")
    p.add_argument("--uniform-path", help="checkpoint trained with --uniform-attention on the same data (β^uf)")
    p.add_argument("--second-seed-path", help="checkpoint of the same model trained with another seed (ξ)")
    p.add_argument("--subset", default="valid", help="split whose sentences are probed (default: valid)")
    p.add_argument("--train-subset", default="train", help="split IBM-1 and the proxy are trained on")
    p.add_argument("--num-sentences", type=int, default=200, help="probe the first N sentences (0 = all)")
    p.add_argument("--ibm1-iterations", type=int, default=5, help="EM iterations of IBM-1 (0 = no β^IBM)")
    p.add_argument("--ibm1-max-pairs", type=int, default=0, help="train IBM-1/proxy on the first N pairs (0 = all)")
    p.add_argument("--proxy-epochs", type=int, default=0, help="epochs of the bag-of-words proxy (0 = no β^px)")
    p.add_argument("--no-gradients", action="store_true", help="skip the gradient saliency Δ")
    p.add_argument("--head-layer", type=int, default=-1,
                   help="Transformers: decoder layer whose encoder-attention heads get per-head probes (default: last)")
    p.add_argument("--no-head-probes", action="store_true", help="skip the per-head probes of Transformers")
    p.add_argument("--top", type=float, default=0.05, help="top fraction of Eq. 10 (default 0.05)")
    p.add_argument("--results-path", required=True, help="folder for probes.json and probes.md")
    p.add_argument("--user-dir", help="another plugin folder to import (this plugin is already loaded)")
    p.add_argument("--seed", type=int, default=1, help="seed of the proxy training")
    p.set_defaults(func=run)
    return p


def _load(path, data):
    from omegaconf import open_dict

    if not os.path.isfile(path):
        raise InterpretError(f"checkpoint {path} not found: pass an existing file")
    state = loading.read_checkpoint(path)
    cfg = state.get("cfg")
    if cfg is None or cfg.get("task") is None:
        raise InterpretError(f"checkpoint {path} has no task config: use a checkpoint written by fairseq-train")
    task_cfg = cfg.task
    if "data" in task_cfg:
        if data:
            with open_dict(task_cfg):
                task_cfg.data = data
        if not task_cfg.data or not os.path.isdir(str(task_cfg.data).split(os.pathsep)[0]):
            raise InterpretError(f"data directory {task_cfg.data!r} not found: pass the fairseq-preprocess folder "
                                 "the model was trained on as DATA")
    task = loading.setup_task(task_cfg)
    model, _ = loading.load_model(path, task, {"data": data} if data and "data" in task_cfg else {})
    return task, task_cfg, model.eval()


def run(args):
    from ..analysis import probes

    if args.user_dir:
        from fairseq import utils
        from argparse import Namespace

        utils.import_user_module(Namespace(user_dir=loading.normalize_user_dir(["--user-dir", args.user_dir])[1]))
    if not 0 < args.top <= 1:
        raise InterpretError(f"--top {args.top} outside (0, 1]: pass e.g. 0.05")
    if os.path.exists(os.path.join(args.results_path, "probes.json")):
        raise InterpretError(f"{args.results_path}/probes.json exists: choose another --results-path")
    start = time.time()
    task, task_cfg, model = _load(args.path, args.data)
    others = {}
    for name in ("uniform_path", "second_seed_path"):
        if getattr(args, name):
            others[name] = _load(getattr(args, name), args.data)[2]
    if "uniform_path" in others and not hasattr(others["uniform_path"], "lexical_probe"):
        raise InterpretError(f"--uniform-path {args.uniform_path} is a {type(others['uniform_path']).__name__}: "
                             "β^uf needs an lstm_dot_attention model trained with --uniform-attention")
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    eos, pad = tgt_dict.eos(), tgt_dict.pad()
    ibm = proxy = None
    if args.ibm1_iterations > 0 or args.proxy_epochs > 0:
        train = loading.load_dataset(task, args.train_subset, task_cfg)
        pairs = probes.training_pairs(train, eos, pad, args.ibm1_max_pairs)
        if args.ibm1_iterations > 0:
            ibm = probes.train_ibm1(pairs, args.ibm1_iterations)
        if args.proxy_epochs > 0:
            import torch

            torch.manual_seed(args.seed)
            proxy = probes.BagOfWordsProxy(len(src_dict), len(tgt_dict))
            proxy.fit(pairs, epochs=args.proxy_epochs, seed=args.seed)
    layers = getattr(model.decoder, "layers", None)
    head_layer = None
    if not args.no_head_probes and layers is not None and len(layers) and hasattr(layers[0], "encoder_attn"):
        head_layer = args.head_layer
        if not -len(layers) <= head_layer < len(layers):
            raise InterpretError(f"--head-layer {head_layer} does not exist: pass a value between {-len(layers)} "
                                 f"and {len(layers) - 1}")
    dataset = loading.load_dataset(task, args.subset, task_cfg)
    n = len(dataset) if not args.num_sentences else min(args.num_sentences, len(dataset))
    records = []
    for i in range(n):
        item = dataset[i]
        if item.get("target") is None or len(item["source"]) < 2 or len(item["target"]) < 2:
            continue
        records.append(probes.sentence_probes(
            model, item["source"], item["target"], eos, uniform_model=others.get("uniform_path"), ibm=ibm,
            proxy=proxy, gradients=not args.no_gradients, second_model=others.get("second_seed_path"),
            head_layer=head_layer))
    rows = probes.agreement_table(records, args.top)
    table = probes.format_table(rows)
    os.makedirs(args.results_path, exist_ok=True)
    result = {"checkpoint": args.path, "subset": args.subset, "sentences": len(records), "top": args.top,
              "ibm1_iterations": args.ibm1_iterations, "proxy_epochs": args.proxy_epochs, "rows": rows,
              "seconds": round(time.time() - start, 1)}
    with open(os.path.join(args.results_path, "probes.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.results_path, "probes.md"), "w") as f:
        f.write(table)
    print(table, end="")
    print(f"| {len(records)} sentences of {args.subset}, {result['seconds']} s; written to {args.results_path}")
