"""The Voita et al. table drivers on a real tiny Transformer: ``head_roles.py`` lists every head of ``heads.json``
sorted by relevance within its layer, and ``lrp_rules.py`` prints scipy's rank correlations of two rules' head
relevances; both refuse to replace an existing ``--out``."""

import json
import re
import sys

import pytest
from scipy.stats import kendalltau, spearmanr

from conftest import run

ROLES = "scripts/reproduce/voita2019/head_roles.py"
RULES = "scripts/reproduce/voita2019/lrp_rules.py"


@pytest.fixture(scope="module")
def reports(data_dir, transformer_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("voita_drivers")
    paths = {}
    for rule in ("ding", "conservative"):
        run(["fairseq-interp", "heads", str(data_dir / "bin"), "--user-dir", "fairseq_interp", "--path",
             str(transformer_ckpt), "--gen-subset", "valid", "--num-sentences", "4", "--beam", "1", "--cpu",
             "--lrp-rule", rule, "--results-path", str(out / rule)], in_process=True)
        paths[rule] = out / rule / "heads.json"
    return out, paths


def relevances(path):
    report = json.loads(path.read_text())
    return {(kind, i, h): head["relevance"] for kind, data in report["kinds"].items()
            for i, layer in enumerate(data["layers"]) for h, head in enumerate(layer)}


def test_head_roles_lists_every_head_by_relevance_within_its_layer(reports):
    out, paths = reports
    report = json.loads(paths["ding"].read_text())
    text = run([sys.executable, ROLES, "--heads", str(paths["ding"]), "--setting", "tiny",
                "--out", str(out / "roles.md")], in_process=True).stdout
    assert (out / "roles.md").read_text() == text
    for kind, data in report["kinds"].items():
        for i, layer in enumerate(data["layers"]):
            row = next(line for line in text.splitlines() if line.startswith(f"| {kind} | {i} |"))
            order = [int(h) for h in re.findall(r"h(\d+): ", row.split(" | ")[2])]
            expected = sorted(range(len(layer)), key=lambda h: -layer[h]["relevance"])
            assert order == expected, row
            # each head's confidence with its 95% interval over sentences (heads' default --bootstrap 1000)
            assert len(re.findall(r"/ \d\.\d\d \[\d\.\d\d, \d\.\d\d\] /", row)) == len(layer), row
    assert "| quantity | paper | ours |" in text  # the paper's Table 1 / §5 numbers beside ours
    again = run([sys.executable, ROLES, "--heads", str(paths["ding"]), "--out", str(out / "roles.md")], check=False)
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr


def test_lrp_rules_rank_agreement_is_scipys_on_the_two_reports(reports):
    out, paths = reports
    text = run([sys.executable, RULES, "--heads", f"ding={paths['ding']}",
                f"conservative={paths['conservative']}"], in_process=True).stdout
    a, b = relevances(paths["ding"]), relevances(paths["conservative"])
    for name in sorted({k[0] for k in a}) + ["all"]:
        keys = sorted(k for k in a if name in ("all", k[0]))
        x, y = [a[k] for k in keys], [b[k] for k in keys]
        row = next(line for line in text.splitlines() if line.startswith(f"| ding vs conservative | {name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert int(cells[2]) == len(keys)
        assert cells[3] == f"{kendalltau(x, y).statistic:.3f}" and cells[4] == f"{spearmanr(x, y).statistic:.3f}"
    one = run([sys.executable, RULES, "--heads", f"ding={paths['ding']}"], check=False)
    assert one.returncode == 2 and "at least two rules" in one.stderr
