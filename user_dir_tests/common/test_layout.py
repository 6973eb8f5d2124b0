"""The package layout: one package per paper on shared plumbing, and what importing the plugin registers."""

import ast
import json
import os
import sys

import fairseq_interp
from conftest import run

PLUGIN = os.path.dirname(os.path.abspath(fairseq_interp.__file__))
PAPER_PACKAGES = ("word_importance", "heads", "neurons", "lca", "attention_learning")

#: everything ``import fairseq_interp`` adds to fairseq's registries
REGISTERED = {
    "arch": sorted(["lstm_attention_classifier", "lstm_attention_classifier_tiny", "lstm_dot_attention",
             "lstm_dot_attention_multi30k", "lstm_dot_attention_paper", "lstm_test_tiny",
             # every plugin Transformer in fairseq's sizes and the plugin's (common/model_config.py)
             *(f"{model}{size}" for model in ("transformer_gated_heads", "transformer_lang_adapter",
                                               "transformer_neuron_masked", "transformer_target_attention")
               for size in ("", "_iwslt_de_en", "_multi30k", "_test_tiny", "_vaswani_wmt_en_de_big",
                            "_vaswani_wmt_en_fr_big", "_wmt_en_de", "_wmt_en_de_big", "_wmt_en_de_big_t2t")),
             "transformer_multi30k", "transformer_test_tiny"]),
    "model": ["lstm_attention_classifier", "lstm_dot_attention", "transformer_gated_heads", "transformer_lang_adapter",
              "transformer_neuron_masked", "transformer_target_attention"],
    "task": ["keyword_classification", "permutation_copy", "translation_lca", "translation_multi_lang_specific",
             "translation_multi_neuron_masked", "translation_neuron_masked"],
    "criterion": ["label_smoothed_cross_entropy_l0"],
}


def test_import_registers_exactly_the_plugin_components():
    code = ("import json, fairseq.models as m, fairseq.tasks as t, fairseq.criterions as c\n"
            "def names(): return {'arch': set(m.ARCH_MODEL_REGISTRY), 'model': set(m.MODEL_REGISTRY), "
            "'task': set(t.TASK_REGISTRY), 'criterion': set(c.CRITERION_REGISTRY)}\n"
            "before = names()\nimport fairseq_interp\nafter = names()\n"
            "print(json.dumps({k: sorted(after[k] - before[k]) for k in after}))")
    added = json.loads(run([sys.executable, "-c", code]).stdout.strip().splitlines()[-1])
    assert added == REGISTERED


def _imported_modules(path, module):
    """Absolute names of the ``fairseq_interp`` modules a source file imports (relative imports resolved)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # ``from . import heads``
    return {name for name in found if name and name.split(".")[0] == "fairseq_interp"}


def _modules():
    for folder, _, files in os.walk(PLUGIN):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, os.path.dirname(PLUGIN))[:-3].replace(os.sep, ".")
                yield path, rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _paper_of(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PAPER_PACKAGES else None


def test_common_imports_no_paper_package_and_papers_import_no_other_paper():
    modules = list(_modules())
    assert len(modules) > 40 and any(m == "fairseq_interp.common.checkpoints" for _, m in modules)
    violations = []
    for path, module in modules:
        parts = module.split(".")
        own = _paper_of(module)
        is_common = len(parts) > 1 and parts[1] == "common"
        for imported in _imported_modules(path, module):
            other = _paper_of(imported)
            if other is not None and (is_common or (own is not None and other != own)):
                violations.append(f"{module} imports {imported}")
    assert violations == []


def test_import_walk_sees_a_planted_violation(tmp_path):
    """The walk above can fail: a common module importing a paper package is found."""
    path = tmp_path / "bad.py"
    path.write_text("from ..heads import model\nfrom .errors import InterpretError\n", encoding="utf-8")
    imported = _imported_modules(str(path), "fairseq_interp.common.bad")
    assert "fairseq_interp.heads.model" in imported and _paper_of("fairseq_interp.heads.model") == "heads"
    assert "fairseq_interp.common.errors" in imported


def test_every_paper_package_contributes_its_subcommands():
    from fairseq_interp import commands

    parser = commands.get_parser()
    names = set(parser._subparsers._group_actions[0].choices)
    expected = {"interpret", "view", "plot", "html", "merge", "perturbation", "undertranslation", "pos", "fertility",
                "aer", "heads", "prune-export", "neurons", "lca-plot", "probes"}
    assert expected <= names
    assert {package.__name__.split(".")[1] for package in commands.PACKAGES} == set(PAPER_PACKAGES)
