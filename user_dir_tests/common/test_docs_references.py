"""The README and docs point at things that exist: every relative link's file and heading anchor, and every file of
this repository they name in code spans (``scripts/...``, ``fairseq_interp/...``, a script's bare name)."""

import glob
import os
import re

from conftest import REPO

DOCS = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True))
#: files of the papers' released code that the docs cite (not in this repository)
EXTERNAL = {"translation/utils.py", "classification/utils.py", "importance.py", "importance_mask.py"}
TREES = ("scripts", "fairseq_interp", "user_dir_tests", "configs")


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation but word characters, hyphens and spaces dropped,
    spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path):
    anchors, seen = set(), {}
    in_code = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                in_code = not in_code
            match = None if in_code else re.match(r"^(#+)\s+(.*)", line)
            if match:
                slug = _slug(match.group(2))
                anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
                seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _repo_files():
    names = set()
    for tree in TREES:
        for folder, _, files in os.walk(os.path.join(REPO, tree)):
            names.update(files)
    return names


def test_relative_links_and_anchors_exist():
    broken = []
    for doc in DOCS:
        text = open(doc, encoding="utf-8").read().replace("\n", " ")
        for link in re.findall(r"\]\(\s*([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", link):
                continue
            target, _, anchor = link.partition("#")
            path = os.path.normpath(os.path.join(os.path.dirname(doc), target)) if target else doc
            if not os.path.exists(path):
                broken.append(f"{os.path.relpath(doc, REPO)}: {link} (no file)")
            elif anchor and path.endswith(".md") and anchor not in _anchors(path):
                broken.append(f"{os.path.relpath(doc, REPO)}: {link} (no heading)")
    assert not broken, "\n".join(broken)


def test_files_named_in_code_spans_exist():
    names = _repo_files()
    missing = []
    for doc in DOCS:
        text = open(doc, encoding="utf-8").read()
        for span in re.findall(r"`([^`\n]+)`", text):
            for word in span.split():
                word = word.strip("\"'(),;:")
                if not word.endswith(".py") or word in EXTERNAL or "=" in word:
                    continue
                if word.startswith(TREES):
                    found = glob.glob(os.path.join(REPO, word))
                elif "/" not in word:
                    found = word in names
                else:
                    continue  # a path under a results folder or another repository's layout
                if not found:
                    missing.append(f"{os.path.relpath(doc, REPO)}: {word}")
    assert not missing, "\n".join(missing)
