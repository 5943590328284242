"""The review page: one self-contained HTML file for reviewers, written by `cxrvqa review sample --dest *.html`.

Per item: the image with the item's boxes, the report with the evidence sentences marked, question, options,
answer and its parts; buttons correct / wrong / unsupported / bad question (their meanings from grades.yaml's
`review`), a grammar tick and a note. There is no server: "Save verdicts" downloads a JSON file
(`format: cxrvqa-review-verdicts`) that `cxrvqa review import` reads; the browser also keeps the verdicts in its
local storage, so a reload or a crash loses nothing.

Built from the audit page's pieces (cxrvqa.audit.html): the same thumbnails, report segments, item views,
escaping and Content-Security-Policy. Nothing from the data becomes markup: Python escapes what it writes and
the script sets text only (`textContent`, form values).
"""

from __future__ import annotations

import hashlib
from html import escape
from pathlib import Path
from typing import Any

from markupsafe import Markup

from cxrvqa.audit.html import asset, document, item_media
from cxrvqa.review.sample import REVIEW_IMAGE_SIDE, Sample
from cxrvqa.store import Store
from cxrvqa.validation.grading import grading

#: What the page's file is called in the saved JSON (`format`), and its version.
SAVED_FORMAT = "cxrvqa-review-verdicts"
SAVED_VERSION = 1
#: Fields of an item the page shows.
#: Not its grade or validator results: reviewers judge blind, or the review could not measure the checks.
ITEM_FIELDS = ("item_id", "item_version", "template_id", "study_id", "image_id", "answer_format", "question",
               "answer", "options", "correct_option", "boxes", "evidence_ids")


def sample_key(items: list[dict[str, Any]]) -> str:
    """Names the sample in the browser's storage: the same items at the same versions, the same saved state."""
    digest = hashlib.sha256("\n".join(f"{i['item_id']} {i['item_version']}" for i in items).encode("utf-8"))
    return digest.hexdigest()[:16]


def render_review_page(store: Store, out_dir: Path, items: list[dict[str, Any]], sample: Sample, build: str,
                       file_name: str) -> str:
    """The page of these sampled items (the jsonl export's fields plus `item_version`, cxrvqa.review.sample)."""
    review = grading().review
    media = item_media(store, out_dir, [i["image_id"] for i in items if i["image_id"]], [i["study_id"] for i in items],
                       side=REVIEW_IMAGE_SIDE)
    shown = [{**{k: item[k] for k in ITEM_FIELDS},
              "answer_parts": [{"kind": p["kind"], "text": p["text"]} for p in item["answer_parts"]],
              "boxes": item["boxes"] or []} for item in items]
    data = {"sample": {**sample.describe(), "build": build, "file": file_name, "key": sample_key(items)},
            "verdicts": {verdict: spec["meaning"] for verdict, spec in review["verdicts"].items()},
            "grammar": review["grammar"]["meaning"], "format": SAVED_FORMAT, "version": SAVED_VERSION,
            "items": shown, **media}
    legend = "".join(f"<dt>{escape(verdict.replace('_', ' '))}</dt><dd>{escape(meaning)}</dd>"
                     for verdict, meaning in data["verdicts"].items())
    strata = (f", stratified by {escape(sample.stratify)}" if sample.stratify else ", uniform")
    body = (f"<header><h1>cxrvqa review</h1><p class=meta>{len(items)} items of <code>{escape(build)}</code> "
            f"(seed {sample.seed}{strata}, drawn from {sample.population} current items). Judge each answer "
            "against its report; the image is there to place boxes.</p>"
            f'<details><summary>What the verdicts mean</summary><dl class="legend">{legend}'
            f"<dt>grammar</dt><dd>{escape(data['grammar'])}</dd></dl></details></header>"
            '<div id="toolbar"><label>reviewer <input id="reviewer" autocomplete="name" placeholder="your name">'
            '</label><span id="progress"></span><label><input type="checkbox" id="only-open"> only items without '
            'a verdict</label><button id="save" type="button">Save verdicts</button><span id="message" '
            'role="status"></span></div><main id="items"></main>')
    return document(f"cxrvqa review: {build}", asset("view.css") + _STYLE, Markup(body), "review-data", data,
                    asset("view.js") + _SCRIPT)


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 1.5em 2em;color:#222;background:#fafafa}
h1{margin:.6em 0 .2em}.meta{color:#555}.legend{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}
.legend dt{font-weight:600}.legend dd{margin:0}
#toolbar{position:sticky;top:0;z-index:1;display:flex;flex-wrap:wrap;gap:1em;align-items:center;background:#fafafa;
padding:.5em 0;border-bottom:1px solid #ccc}#progress{font-weight:600}#message{color:#a60}
#save{font-weight:600;padding:.3em 1em}
[hidden]{display:none !important}
.item{display:grid;grid-template-columns:400px 1fr;gap:1.2em;background:#fff;border:1px solid #ddd;
border-left:5px solid #bbb;padding:.8em;margin:.8em 0}
.item.correct{border-left-color:#2e7d32}.item.wrong,.item.unsupported{border-left-color:#c62828}
.item.bad_question{border-left-color:#e0a800}
.thumb svg{width:384px}.noimage{width:384px}
.item h2{margin:0 0 .4em;font-size:15px}.item .ids{color:#666;font-weight:normal;font-size:12px}
.q{font-weight:600;margin-top:.6em}.a{margin-top:.3em}.parts{margin:.2em 0 .2em 1.2em;padding:0}
.options{margin:.3em 0}.options .correct{font-weight:600;color:#1b5e20}
.controls{display:flex;flex-wrap:wrap;gap:.5em;align-items:center;margin-top:.7em}
.controls button{padding:.3em .8em;border:1px solid #888;border-radius:4px;background:#f4f4f4;cursor:pointer}
.controls button[aria-pressed=true]{background:#1565c0;color:#fff;border-color:#1565c0}
.controls textarea{flex:1 1 100%;min-height:2.4em;font:inherit}
"""

_SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById("review-data").textContent);
  const views = itemViews(data);
  const el = views.el;
  const verdicts = Object.keys(data.verdicts);
  const storageKey = "cxrvqa-review:" + data.sample.key;
  let state = {reviewer: "", verdicts: {}};
  try {
    const saved = JSON.parse(window.localStorage.getItem(storageKey) || "null");
    if (saved && typeof saved === "object" && saved.verdicts) state = saved;
  } catch (e) { /* no storage (private window): the saved file is what counts */ }
  function persist() {
    try { window.localStorage.setItem(storageKey, JSON.stringify(state)); } catch (e) { /* see above */ }
  }
  function entry(itemId) {
    if (!state.verdicts[itemId]) state.verdicts[itemId] = {verdict: null, grammar: false, note: ""};
    return state.verdicts[itemId];
  }
  const cards = [];
  function card(item, index) {
    const article = el("article", "item");
    article.dataset.itemId = item.item_id;
    article.appendChild(views.thumb(item));
    const body = el("div", "body");
    const title = el("h2", null, (index + 1) + ". " + item.template_id + " ");
    title.appendChild(el("span", "ids", item.item_id + " · study " + item.study_id + " · " + item.answer_format));
    body.appendChild(title);
    body.appendChild(views.report(item));
    body.appendChild(el("div", "q", "Q: " + item.question));
    if (item.options) {
      const options = el("div", "options");
      item.options.forEach(function (option, position) {
        const letter = "ABCD"[position];
        options.appendChild(el("div", letter === item.correct_option ? "correct" : null,
                               letter + ") " + option + (letter === item.correct_option ? "  ← chosen" : "")));
      });
      body.appendChild(options);
    }
    const chosen = item.correct_option ? "[" + item.correct_option + "] " : "";
    body.appendChild(el("div", "a", "A: " + chosen + item.answer));
    if (item.answer_parts.length > 1) {
      const parts = el("ol", "parts");
      for (const part of item.answer_parts.slice(1)) parts.appendChild(el("li", null, part.kind + ": " + part.text));
      body.appendChild(parts);
    }
    const controls = el("div", "controls");
    const buttons = {};
    for (const verdict of verdicts) {
      const button = el("button", "verdict", verdict.replace("_", " "));
      button.type = "button";
      button.title = data.verdicts[verdict];
      button.dataset.verdict = verdict;
      button.addEventListener("click", function () {
        const current = entry(item.item_id);
        current.verdict = current.verdict === verdict ? null : verdict;
        current.reviewed_at = new Date().toISOString();
        persist();
        show();
      });
      buttons[verdict] = button;
      controls.appendChild(button);
    }
    const grammarLabel = el("label", "grammar");
    const grammar = el("input");
    grammar.type = "checkbox";
    grammar.title = data.grammar;
    grammar.addEventListener("change", function () { entry(item.item_id).grammar = grammar.checked; persist(); });
    grammarLabel.appendChild(grammar);
    grammarLabel.appendChild(document.createTextNode(" grammar error"));
    controls.appendChild(grammarLabel);
    const note = el("textarea", "note");
    note.placeholder = "note (optional): what is wrong, and why";
    note.addEventListener("input", function () { entry(item.item_id).note = note.value; persist(); });
    controls.appendChild(note);
    body.appendChild(controls);
    article.appendChild(body);
    function show() {
      const current = state.verdicts[item.item_id] || {};
      for (const verdict of verdicts) {
        buttons[verdict].setAttribute("aria-pressed", String(current.verdict === verdict));
      }
      article.className = "item" + (current.verdict ? " " + current.verdict : "");
      grammar.checked = Boolean(current.grammar);
      note.value = current.note || "";
      progress();
    }
    cards.push({item: item, node: article, show: show});
    return article;
  }
  const list = document.getElementById("items");
  data.items.forEach(function (item, index) { list.appendChild(card(item, index)); });
  const reviewer = document.getElementById("reviewer");
  reviewer.value = state.reviewer || "";
  reviewer.addEventListener("input", function () { state.reviewer = reviewer.value; persist(); });
  const onlyOpen = document.getElementById("only-open");
  onlyOpen.addEventListener("change", progress);
  const message = document.getElementById("message");
  function judged() {
    return data.items.filter(item => state.verdicts[item.item_id] && state.verdicts[item.item_id].verdict);
  }
  function progress() {
    const done = judged().length;
    const counter = document.getElementById("progress");
    counter.textContent = done + " of " + data.items.length + " judged";
    counter.dataset.judged = done;
    for (const entry_ of cards) {
      const current = state.verdicts[entry_.item.item_id];
      entry_.node.hidden = onlyOpen.checked && Boolean(current && current.verdict);
    }
  }
  function fileName() {
    const name = String(data.sample.file || "review").replace(/\\.html?$/i, "");
    return name + ".verdicts.json";
  }
  document.getElementById("save").addEventListener("click", function () {
    const name = reviewer.value.trim();
    if (!name) {
      message.textContent = "Enter your name first: it goes with every verdict.";
      reviewer.focus();
      return;
    }
    const saved = {
      format: data.format, version: data.version, reviewer: name, saved_at: new Date().toISOString(),
      sample: data.sample,
      verdicts: judged().map(function (item) {
        const current = state.verdicts[item.item_id];
        return {item_id: item.item_id, item_version: item.item_version, verdict: current.verdict,
                grammar: Boolean(current.grammar), note: current.note || "", reviewed_at: current.reviewed_at || null};
      }),
    };
    const blob = new Blob([JSON.stringify(saved, null, 1)], {type: "application/json"});
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = fileName();
    document.body.appendChild(link);
    link.click();
    link.remove();
    message.textContent = "Saved " + saved.verdicts.length + " verdicts as " + link.download +
      ": import them with `cxrvqa review import FILE --out BUILD`.";
  });
  for (const entry_ of cards) entry_.show();
  progress();
})();
"""
