"""The review page in headless Chromium: it shows each item as stored (image, boxes, report with evidence),
its verdicts survive a reload, "Save verdicts" downloads a file `review import` reads, and planted payloads
stay text."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrvqa.cli import app
from cxrvqa.review.page import sample_key
from cxrvqa.store import Store
from tests.audit.conftest import XSS_IMG, XSS_SCRIPT, open_page
from tests.review.conftest import rows

pytestmark = [pytest.mark.flow, pytest.mark.browser]


def test_review_page_round_trip(build: Path, browser, tmp_path: Path) -> None:
    with Store(build / "cxrvqa.duckdb") as store:  # reports carrying payloads, as a hostile report would
        store.con.execute("UPDATE reports SET text = text || ?", [f" {XSS_IMG} {XSS_SCRIPT}"])
    page_file = tmp_path / "review.html"
    result = CliRunner().invoke(
        app,
        [
            "review",
            "sample",
            "--out",
            str(build),
            "--n",
            "6",
            "--seed",
            "5",
            "--stratify",
            "template",
            "--dest",
            str(page_file),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(page_file.read_text(encoding="utf-8").split('id="review-data">')[1].split("</script>")[0])
    items = data["items"]
    assert len(items) == 6 and data["sample"]["key"] == sample_key(items)
    stored = {
        r["item_id"]: r
        for r in rows(build, "SELECT item_id, question, boxes, image_id, evidence_ids, study_id FROM current_qa_items")
    }

    page, requests, errors = open_page(browser, page_file)
    cards = page.locator("article.item")
    assert cards.count() == 6
    assert page.locator("#progress").inner_text() == "0 of 6 judged"

    # each card shows its item as stored
    for position, item in enumerate(items):
        card = cards.nth(position)
        row = stored[item["item_id"]]
        assert card.get_attribute("data-item-id") == item["item_id"]
        assert card.locator(".q").inner_text() == "Q: " + row["question"]
        assert card.locator("svg image").count() == (1 if row["image_id"] else 0)
        assert card.locator("svg rect").count() == len(row["boxes"])
        sentences = {
            r["sentence_id"]: r["text"]
            for r in rows(
                build, "SELECT sentence_id, text FROM current_sentences WHERE study_id = ?", [row["study_id"]]
            )
        }
        assert card.locator(".report mark").all_inner_texts() == [sentences[i] for i in sorted(row["evidence_ids"])]
        assert card.locator("button.verdict").all_inner_texts() == ["correct", "wrong", "unsupported", "bad question"]

    # verdicts: clicked, ticked, typed; clicking a pressed button takes it back
    clicks = {0: "wrong", 1: "correct", 2: "bad_question", 3: "unsupported"}
    for position, verdict in clicks.items():
        cards.nth(position).locator(f'button[data-verdict="{verdict}"]').click()
    cards.nth(1).locator('input[type="checkbox"]').check()
    cards.nth(1).locator("textarea").fill('a note with <b>markup</b> & "quotes"')
    cards.nth(4).locator('button[data-verdict="correct"]').click()
    cards.nth(4).locator('button[data-verdict="correct"]').click()
    assert cards.nth(0).locator('button[data-verdict="wrong"]').get_attribute("aria-pressed") == "true"
    assert cards.nth(4).locator('button[aria-pressed="true"]').count() == 0
    assert page.locator("#progress").inner_text() == "4 of 6 judged"
    page.check("#only-open")
    assert page.locator("article.item:visible").count() == 2
    page.uncheck("#only-open")

    # the browser keeps them: a reload shows the same state
    page.reload()
    page.wait_for_selector("article.item")
    assert page.locator("#progress").inner_text() == "4 of 6 judged"
    assert cards.nth(2).locator('button[data-verdict="bad_question"]').get_attribute("aria-pressed") == "true"
    assert cards.nth(1).locator("textarea").input_value() == 'a note with <b>markup</b> & "quotes"'

    # saving needs a name, then downloads the verdicts
    page.click("#save")
    assert page.locator("#message").inner_text() == "Enter your name first: it goes with every verdict."
    page.fill("#reviewer", "Ana Reviewer")
    with page.expect_download() as download_info:
        page.click("#save")
    download = download_info.value
    assert download.suggested_filename == "review.verdicts.json"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert "Saved 4 verdicts as review.verdicts.json" in page.locator("#message").inner_text()

    # nothing ran, nothing was fetched
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('img, iframe, object, embed, [onerror], [onload]').length") == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    for report in page.locator(".report").all_inner_texts():
        assert report.endswith(f" {XSS_IMG} {XSS_SCRIPT}")
    assert all(url.startswith(("file:", "data:", "blob:")) for url in requests), requests
    assert errors == []
    shots = Path(os.environ.get("CXRVQA_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "review-page.png"))

    # the saved file imports as is
    document = json.loads(saved.read_text(encoding="utf-8"))
    assert (document["format"], document["reviewer"], len(document["verdicts"])) == (
        "cxrvqa-review-verdicts",
        "Ana Reviewer",
        4,
    )
    result = CliRunner().invoke(app, ["review", "import", str(saved), "--out", str(build)])
    assert result.exit_code == 0, result.output
    assert "(html): 4 verdicts read, 4 imported" in " ".join(result.output.split())
    imported = {r["item_id"]: r for r in rows(build, "SELECT * FROM review_verdicts")}
    assert {items[p]["item_id"]: v for p, v in clicks.items()} == {i: r["verdict"] for i, r in imported.items()}
    second = imported[items[1]["item_id"]]
    assert (second["grammar"], second["note"], second["reviewer"]) == (
        True,
        'a note with <b>markup</b> & "quotes"',
        "Ana Reviewer",
    )
    assert second["reviewed_at"] is not None and second["item_version"] == items[1]["item_version"]
    labels = {r["item_id"]: r["label"] for r in rows(build, "SELECT item_id, label FROM current_qa_grades")}
    assert [labels[items[p]["item_id"]] for p in clicks] == ["D", "B", "C", "D"]
