"use strict";
// Pieces both pages use to show an item: `itemViews(data)` gives `el` (an element with text, never markup),
// `thumb(item)` (the image as SVG with the item's boxes drawn over it) and `report(item)` (the report with the
// item's evidence sentences marked), over the page data's `images` and `reports` (html.py `item_media`).
function itemViews(data) {
  const SVG = "http://www.w3.org/2000/svg";
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function thumb(item) {
    const figure = el("figure", "thumb");
    const image = item.image_id ? data.images[item.image_id] : null;
    if (!image || !String(image.src).startsWith("data:image/png;base64,")) {
      figure.appendChild(el("div", "noimage", item.image_id ? "image file not found" : "no image (report-only)"));
      return figure;
    }
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + Number(image.width) + " " + Number(image.height));
    const picture = document.createElementNS(SVG, "image");
    picture.setAttribute("href", image.src);
    picture.setAttribute("width", Number(image.width));
    picture.setAttribute("height", Number(image.height));
    svg.appendChild(picture);
    for (const box of item.boxes) {
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", Number(box.x_min));
      rect.setAttribute("y", Number(box.y_min));
      rect.setAttribute("width", Number(box.x_max) - Number(box.x_min));
      rect.setAttribute("height", Number(box.y_max) - Number(box.y_min));
      const title = document.createElementNS(SVG, "title");
      title.textContent = String(box.label);
      rect.appendChild(title);
      svg.appendChild(rect);
    }
    figure.appendChild(svg);
    if (item.boxes.length) {
      figure.appendChild(el("figcaption", null, "boxes: " + item.boxes.map(b => b.label).join(", ")));
    }
    return figure;
  }
  function report(item) {
    const box = el("div", "report");
    const segments = data.reports[item.study_id];
    if (!segments) { box.textContent = "(no current report)"; return box; }
    const evidence = new Set(item.evidence_ids);
    for (const [text, sentence] of segments) {
      box.appendChild(sentence !== null && evidence.has(sentence) ? el("mark", null, text)
                                                                  : document.createTextNode(text));
    }
    return box;
  }
  return {el: el, thumb: thumb, report: report};
}
