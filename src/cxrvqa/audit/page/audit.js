// The audit page: failing item cards, the image gallery and the filters, built from the page's JSON data.
(function () {
  const data = JSON.parse(document.getElementById("audit-data").textContent);
  const views = itemViews(data);
  const el = views.el, thumb = views.thumb, report = views.report;
  function card(item) {
    const article = el("article", "item " + item.status);
    article.dataset.itemId = item.item_id;
    article.appendChild(thumb(item));
    const body = el("div", "body");
    const title = el("h3", null, item.template_id + " ");
    title.appendChild(el("span", "ids", item.item_id + " · study " + item.study_id + " · " + item.answer_format
                                          + " · " + (item.view ? "view " + item.view : "no image")));
    title.appendChild(el("span", "grade", "grade " + (item.grade || "-")));
    body.appendChild(title);
    body.appendChild(el("div", "q", "Q: " + item.question));
    const correct = item.correct_option ? "  [" + item.correct_option + "]" : "";
    body.appendChild(el("div", "a", "A: " + item.answer + correct));
    if (item.answer_parts.length > 1) {
      const parts = el("ol", "parts");
      for (const part of item.answer_parts) parts.appendChild(el("li", null, part.kind + ": " + part.text));
      body.appendChild(parts);
    }
    if (item.options) {
      const options = el("div", "options");
      item.options.forEach(function (option, index) {
        const letter = "ABCD"[index];
        const cls = letter === item.correct_option ? "correct" : null;
        options.appendChild(el("span", cls, letter + ") " + option + "  "));
      });
      body.appendChild(options);
    }
    const failures = el("ul", "failures");
    for (const f of item.failures) {
      const line = el("li", f.status);
      line.appendChild(el("b", null, f.status + " " + f.validator + ": " + f.reason));
      line.appendChild(el("span", "strictness", " (strictness " + f.strictness + ")"));
      line.appendChild(document.createTextNode(" — " + f.detail));
      failures.appendChild(line);
    }
    body.appendChild(failures);
    body.appendChild(report(item));
    article.appendChild(body);
    return article;
  }
  const list = document.getElementById("items");
  const cards = [];
  for (const item of data.items) {
    const node = card(item);
    const reportText = (data.reports[item.study_id] || []).map(s => s[0]).join("");
    const text = [item.question, item.answer, reportText].concat(
      item.answer_parts.map(p => p.text), item.failures.map(f => f.detail)).join("\n").toLowerCase();
    cards.push({node: node, item: item, text: text});
    list.appendChild(node);
  }
  const gallery = document.getElementById("gallery");
  for (const entry of (gallery ? data.gallery : [])) {
    const figure = thumb({image_id: entry.image_id, boxes: entry.boxes});
    figure.insertBefore(el("figcaption", null, "study " + entry.study_id + " · " + entry.view), figure.firstChild);
    gallery.appendChild(figure);
  }
  const filters = {
    validator: item => item.failures.map(f => f.validator),
    reason: item => item.failures.map(f => f.reason),
    template: item => [item.template_id],
    grade: item => [item.grade || "-"],
  };
  const selects = {};
  for (const name of Object.keys(filters)) {
    const select = document.getElementById("filter-" + name);
    const values = new Set();
    for (const item of data.items) for (const value of filters[name](item)) values.add(value);
    select.appendChild(el("option", null, "all"));
    select.options[0].value = "";
    for (const value of Array.from(values).sort()) {
      const option = el("option", null, value);
      option.value = value;
      select.appendChild(option);
    }
    select.addEventListener("change", apply);
    selects[name] = select;
  }
  const search = document.getElementById("filter-search");
  search.addEventListener("input", apply);
  const count = document.getElementById("visible-count");
  function apply() {
    const needle = search.value.trim().toLowerCase();
    let shown = 0;
    for (const entry of cards) {
      let visible = !needle || entry.text.includes(needle);
      for (const name of Object.keys(filters)) {
        const wanted = selects[name].value;
        if (visible && wanted && !filters[name](entry.item).includes(wanted)) visible = false;
      }
      entry.node.hidden = !visible;
      if (visible) shown += 1;
    }
    count.textContent = shown + " of " + cards.length + " shown";
    count.dataset.shown = shown;
  }
  apply();
})();
