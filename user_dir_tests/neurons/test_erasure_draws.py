"""scripts/reproduce/xie2021/erasure_draws.py: Figure 5's comparison over erasure draws, end to end on three real
``fairseq-interp neurons erase --random-control`` runs of a tiny many-to-many masked model; every number of its table
recomputed by hand from the runs' own records, and its refusals."""

import json
import os
import random
import shutil
import sys

import pytest

from conftest import REPO, run
from test_neurons_multilingual import m2m_baseline, m2m_data, m2m_masked  # noqa: F401

SCRIPT = os.path.join(REPO, "scripts", "reproduce", "xie2021", "erasure_draws.py")
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def draws(m2m_data, m2m_masked, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("draws")
    folders = []
    for seed in SEEDS:
        out = root / f"seed{seed}"
        run(["fairseq-interp", "neurons", "erase", str(m2m_data), "--path", str(m2m_masked), "--references",
             str(m2m_data.parent / "raw" / "test.{tgt}"), "--beam", "2", "--max-len-b", "8", "--seed", str(seed),
             "--random-control", "--gen-subset", "test", "--max-tokens", "1500", "--results-path", str(out)],
            in_process=True)
        folders.append(out)
    return folders


def mean_sd(values):
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def with_bleu(folder, tmp_path, draw):
    """A copy of a real draw with made-up BLEU (the tiny model translates at BLEU 0): every condition below the
    unerased BLEU by a different amount, so each quantity of the table has its own value."""
    rng = random.Random(draw)

    def change(record):
        none = {p: round(rng.uniform(20, 30), 4) for p in record["pairs"]}
        record["bleu"] = {"none": none, **{c: {p: round(none[p] - rng.uniform(0, 5), 4) for p in record["pairs"]}
                                           for c in record["conditions"]}}
        record["delta"] = {c: {p: round(record["bleu"][c][p] - none[p], 4) for p in record["pairs"]}
                           for c in record["conditions"]}

    return copy_with(folder, tmp_path, f"draw{draw}", change)


def test_table_is_the_draws_records(draws, tmp_path):
    real = [json.loads((folder / "erasure.json").read_text()) for folder in draws]
    assert all(r["conditions"][f"random:{p}"]["erased"] == r["conditions"][f"specific:{p}"]["erased"] > 0
               for r in real for p in r["pairs"])
    folders = [with_bleu(folder, tmp_path, k) for k, folder in enumerate(draws)]
    records = [json.loads((folder / "erasure.json").read_text()) for folder in folders]
    run([sys.executable, SCRIPT, *map(str, folders), "--out", str(tmp_path / "t.md"), "--json",
         str(tmp_path / "t.json")])
    text, data = (tmp_path / "t.md").read_text(), json.loads((tmp_path / "t.json").read_text())
    pairs = records[0]["pairs"]
    assert [d["seed"] for d in data["draws"]] == list(SEEDS)
    assert list(data["summary"]["pairs"]) == pairs
    own_minus_random = [0.0] * len(SEEDS)
    for pair in pairs:
        others = [p for p in pairs if p != pair]
        own = [r["bleu"][f"specific:{pair}"][pair] - r["bleu"]["none"][pair] for r in records]
        own_random = [r["bleu"][f"random:{pair}"][pair] - r["bleu"]["none"][pair] for r in records]
        rest = [sum(r["bleu"][f"specific:{pair}"][p] - r["bleu"]["none"][p] for p in others) / len(others)
                for r in records]
        got = data["summary"]["pairs"][pair]
        assert got["own"] == pytest.approx(own, abs=1e-3) and got["own_random"] == pytest.approx(own_random, abs=1e-3)
        assert got["others"] == pytest.approx(rest, abs=1e-3)
        # the random control erases as many neurons as the pair's specific condition, in every draw
        assert got["erased"] == [r["conditions"][f"random:{pair}"]["erased"] for r in records]
        below = sum(a < b for a, b in zip(own, own_random))
        m, s = mean_sd(own)
        assert f"| {pair} | " in text and f"{m:.2f} ± {s:.2f}".replace("-", "−") in text
        assert f"| {below}/{len(SEEDS)} |" in text.split(f"| {pair} | ")[1].splitlines()[0]
        for k in range(len(SEEDS)):
            own_minus_random[k] += (own[k] - own_random[k]) / len(pairs)
    m, s = mean_sd(own_minus_random)
    assert f"neurons {m:.2f} ± {s:.2f}".replace("-", "−") in text
    general = [sum(r["delta"]["general"].values()) / len(pairs) for r in records]
    assert data["summary"]["general"] == pytest.approx(general)
    assert "| Figure 5: BLEU change, 20% of the general neurons erased" in text and "| -20 to -15 |" in text
    # the real draws erase different neurons (the choice follows the seed): their hypotheses' scores differ
    pair = real[0]["pairs"][0]
    scores = {(folder / "translations" / "general" / f"{pair}.scores").read_text() for folder in draws}
    assert len(scores) == len(SEEDS)


def copy_with(folder, tmp_path, name, change):
    out = tmp_path / name
    shutil.copytree(folder, out)
    record = json.loads((out / "erasure.json").read_text())
    change(record)
    (out / "erasure.json").write_text(json.dumps(record))
    return out


@pytest.mark.parametrize("case,message", [
    ("same seed", "each draw needs its own --seed"),
    ("no control", "made without --random-control"),
    ("other beam", "differ in beam"),
    ("other model", "erased another checkpoint"),
    ("unreadable", "is not an erasure.json"),
    ("not erasure", "is not an erasure.json of fairseq-interp neurons erase"),
])
def test_refusals_are_one_line(draws, tmp_path, case, message):
    seed_of = {"same seed": 1, "no control": 7, "other beam": 8, "other model": 9, "not erasure": 10}

    def change(record):
        options = record["provenance"]["options"]
        options["seed"] = seed_of[case]
        if case == "no control":
            options["random_control"] = False
        if case == "other beam":
            options["beam"] = 5
        if case == "other model":
            record["provenance"]["checkpoint"]["weights_sha256"] = "0" * 64
        if case == "not erasure":
            record["provenance"]["format"] = "fairseq-interp/probes"

    if case == "unreadable":
        other = tmp_path / "broken"
        other.mkdir()
        (other / "erasure.json").write_text("{not json")
    else:
        other = copy_with(draws[1], tmp_path, "other", change)
    bad = run([sys.executable, SCRIPT, str(draws[0]), str(other), "--out", str(tmp_path / "t.md")], check=False)
    assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "t.md").exists()


def test_an_output_naming_an_input_is_refused(draws, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(draws[1], copy)
    before = (copy / "erasure.json").read_text()
    bad = run([sys.executable, SCRIPT, str(draws[0]), str(copy), "--json", str(copy / "erasure.json"), "--overwrite"],
              check=False)
    assert bad.returncode == 2 and "input" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert (copy / "erasure.json").read_text() == before
