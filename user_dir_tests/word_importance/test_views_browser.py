"""The HTML views rendered by a real browser (headless Chromium from the system's packages): legends exist, every
source word is present, visible and not cut, near-uniform importance stays pale. Skipped, saying why, when no
Chromium is installed (Debian/Ubuntu: ``apt-get install -y chromium``)."""

import json
import re
import shutil
import subprocess

import pytest

from fairseq_interp.word_importance.views.html import render, render_fragment

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install -y chromium): "
                                                         "the HTML views are not rendered in a browser")

LONG = "Donaudampfschifffahrtsgesellschaftskapitänsmütze"

# the page measures itself after layout and writes what it saw into the DOM, which --dump-dom prints
PROBE = """
<script>
(function () {
  function box(el) {
    var r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return {text: el.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width,
            height: r.height, visibility: s.visibility, display: s.display, opacity: s.opacity, color: s.color,
            background: s.backgroundColor, scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
            scrollHeight: el.scrollHeight, clientHeight: el.clientHeight};
  }
  var out = {pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth, sections: []};
  document.querySelectorAll("section").forEach(function (section) {
    var first = section.querySelector(".w"), source = first ? first.parentElement : section;
    out.sections.push({
      id: section.id,
      words: Array.prototype.map.call(source.querySelectorAll(".w"), box),
      legends: Array.prototype.map.call(section.querySelectorAll(".legend"), function (l) {
        var b = box(l); b.text = l.innerText; return b; }),
      headers: Array.prototype.map.call(section.querySelectorAll("th"), box),
      meta: Array.prototype.map.call(section.querySelectorAll(".meta"), function (m) { return m.innerText; })
    });
  });
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


def records():
    near_uniform = [0.142, 0.143, 0.144, 0.142, 0.143, 0.143, 0.143]
    words = ["A", "man", "in", "an", LONG, "hat", "."]
    matrix = [[0.011 * ((i + j) % 3 - 1) + 0.01 for j in range(4)] for i in range(8)]
    return [
        {"id": 0, "src_words": words + ["</s>"], "tgt_words": ["Un", "homme", "chapeau", "</s>"],
         "tgt_tokens": ["\u2581Un", "\u2581homme", "\u2581chapeau", "</s>"], "word_importance": near_uniform,
         "word_contributions": matrix, "reference": "Un homme .", "method": "ig", "score": "prob",
         "attribute_target": "hypothesis", "ig_steps": 50, "checkpoint": "checkpoints/demo/checkpoint_last.pt"},
        {"id": 1, "src_words": ["Two", "women", "sit", "x", "</s>"], "tgt_words": ["Deux", "femmes", "</s>"],
         "tgt_tokens": ["\u2581Deux", "\u2581femmes", "</s>"], "word_importance": [0.01, 0.96, 0.02, 0.01],
         "word_contributions": [[0.0, 0.0, 0.0], [0.9, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.0],
                                [0.0, 0.0, 0.01]],
         "prefix_words": ["</s>", "Deux", "femmes"], "prefix_word_contributions": [[0.1, 0.0, 0.0], [0.0, -0.2, 0.0],
                                                                                   [0.0, 0.0, 0.05]],
         "contrast_step": 1, "contrast_token": "\u2581hommes", "contrast_word": 1, "method": "saliency",
         "score": "logprob", "attribute_target": "reference"},
        {"id": 2, "src_words": ["Hello", "</s>"], "tgt_words": ["Bonjour", "</s>"], "word_importance": [1.0],
         "word_contributions": None, "method": "random"},
    ]


def render_in_chromium(html, tmp_path, width=700):
    page = tmp_path / "page.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    profile = tmp_path / "profile"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--no-first-run", f"--user-data-dir={profile}", f"--window-size={width},900",
                           "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"Chromium printed no probe (exit {proc.returncode}): {proc.stderr[-2000:]}"
    import html as html_module

    return json.loads(html_module.unescape(match.group(1)))


def rgba(css):
    values = [float(v) for v in re.findall(r"[\d.]+", css)]
    return values + [1.0] * (4 - len(values))


def luminance(rgb):
    def channel(c):
        c /= 255.0
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def on_white(background):
    r, g, b, a = rgba(background)
    return [a * c + (1 - a) * 255 for c in (r, g, b)]


def contrast_ratio(color, background):
    hi, lo = sorted([luminance(rgba(color)), luminance(on_white(background))], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def check_page(probe, recs):
    sections = {s["id"]: s for s in probe["sections"]}
    assert probe["pageWidth"] <= probe["viewport"] + 1, "the page scrolls sideways"
    for record in recs:
        section = sections[f"s{record['id']}"]
        words = [w for w in record["src_words"] if w != "</s>"]
        assert [w["text"] for w in section["words"]] == words  # every source word, in order
        for i, word in enumerate(section["words"]):
            assert word["width"] > 0 and word["height"] > 0, word
            assert word["visibility"] == "visible" and word["display"] != "none" and float(word["opacity"]) == 1
            assert word["left"] >= 0 and word["right"] <= probe["viewport"], ("outside the page", word)
            assert word["scrollWidth"] <= word["clientWidth"] + 1, ("text cut", word)
            assert contrast_ratio(word["color"], word["background"]) >= 4.5, ("unreadable", word)
            if i:
                previous = section["words"][i - 1]
                same_line = abs(previous["top"] - word["top"]) < 1
                assert not same_line or previous["right"] <= word["left"] + 0.5, ("overlap", previous, word)
        legends = [legend["text"] for legend in section["legends"]]
        assert any("word importance" in t for t in legends), legends
        assert all(legend["width"] > 0 and legend["visibility"] == "visible" for legend in section["legends"])
        if record.get("word_contributions") is not None:
            assert any("contribution" in t and re.search(r"[+-]\d", t) for t in legends), legends
        for header in section["headers"]:
            assert header["scrollWidth"] <= header["clientWidth"] + 1, ("header cut", header)
            assert header["scrollHeight"] <= header["clientHeight"] + 1, ("header cut", header)
        assert any(f"method={record['method']}" in m for m in section["meta"])
    return sections


def test_page_renders_legible_and_complete(tmp_path):
    recs = records()
    sections = check_page(render_in_chromium(render(recs), tmp_path), recs)
    # near-uniform importance stays pale; a dominant word is strongly shaded
    assert max(rgba(w["background"])[3] for w in sections["s0"]["words"]) < 0.2
    assert rgba(sections["s1"]["words"][1]["background"])[3] > 0.9
    assert any("checkpoint=checkpoints/demo/checkpoint_last.pt" in m for m in sections["s0"]["meta"])
    # the long word is one box, on the page, whole
    long_box = sections["s0"]["words"][4]
    assert long_box["text"] == LONG and long_box["right"] <= 700


def test_notebook_fragment_renders_the_same_way(tmp_path):
    recs = records()[:2]
    html = ("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><div class='cell-output'>"
            + render_fragment(recs) + "</div></body></html>")
    check_page(render_in_chromium(html, tmp_path, width=600), recs)
