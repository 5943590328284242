// The review page: item cards with verdict buttons, kept in local storage and saved as a verdicts file.
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
    const name = String(data.sample.file || "review").replace(/\.html?$/i, "");
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
