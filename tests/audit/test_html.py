"""The HTML audit page: its pieces (escaping, report segments, charts, thumbnails), then the whole page in
headless Chromium on the two-run build: counts match the database, filters work, no payload runs."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from cxrvqa.audit.html import bar_chart
from cxrvqa.cli import app
from cxrvqa.core.pages import json_for_script, report_segments, thumbnail
from cxrvqa.store import Store
from tests.audit.conftest import XSS_ERROR, XSS_IMG, XSS_SCRIPT, Build, open_page


def test_json_in_a_script_block_cannot_close_it() -> None:
    value = {"text": "a </script><script>alert(1)</script> <!-- b & c >", "n": [1, 2]}
    encoded = json_for_script(value)
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded
    assert json.loads(encoded) == value


def test_report_segments_cover_the_text_and_carry_sentence_ids() -> None:
    text = "FINDINGS: No effusion. Small pneumothorax.\nIMPRESSION: Pneumothorax."
    sentences = [(0, 10, 22), (1, 23, 42), (2, 55, 68), (3, 60, 200)]  # the last one runs past the text
    segments = report_segments(text, sentences)
    assert "".join(t for t, _ in segments) == text
    assert segments == [
        ["FINDINGS: ", None],
        ["No effusion.", 0],
        [" ", None],
        ["Small pneumothorax.", 1],
        ["\nIMPRESSION: ", None],
        ["Pneumothorax.", 2],
    ]


def test_bar_chart_escapes_labels_and_says_when_empty() -> None:
    chart = bar_chart("c", "Reasons <b>", [("<script>x</script>", 2.0, "2"), ("b", 1.0, "1")])
    assert "<script>" not in chart and "&lt;script&gt;x&lt;/script&gt;" in chart
    assert 'width="200.0"' in chart and 'width="100.0"' in chart  # scaled to the highest value
    assert "Reasons &lt;b&gt;" in chart
    assert '<p class="empty">none</p>' in bar_chart("e", "Nothing", [])


def test_bar_chart_draws_intervals_on_the_rows_scale() -> None:
    chart = bar_chart(
        "c", "Accuracy", [("a", 0.5, "50%"), ("b", 1.0, "100%")], maximum=1.0, intervals={"a": (0.25, 0.75)}
    )
    assert chart.count('class="interval"') == 1
    assert 'd="M240.0 8.0v6M240.0 11.0H340.0M340.0 8.0v6"' in chart  # 25% to 75% of the 200 px bar


def test_thumbnail_is_a_small_png_data_uri(tmp_path: Path) -> None:
    source = tmp_path / "x.png"
    Image.new("L", (400, 300), 128).save(source)
    uri = thumbnail(source)
    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        assert (image.format, image.size) == ("PNG", (192, 144))


@pytest.mark.flow
@pytest.mark.browser
def test_the_page_in_headless_chromium(audit_build: Build, browser, tmp_path: Path) -> None:
    page_file = tmp_path / "audit.html"
    result = CliRunner().invoke(app, ["audit", "--out", str(audit_build.out), "--html", str(page_file)])
    assert result.exit_code == 0, result.output
    with Store(audit_build.db, read_only=True) as store:
        q = store.query

        def count(sql: str) -> int:
            return q(sql)[0][0]

        expected_cells = {
            ("images", "kept"): count("SELECT count(*) FROM current_images"),
            ("images", "rejected"): count("SELECT count(*) FROM current_image_rejects"),
            ("reports", "kept"): count("SELECT count(*) FROM current_reports"),
            ("reports", "rejected"): count("SELECT count(*) FROM report_rejects"),
            ("extract", "failed"): count("SELECT count(*) FROM current_extraction_failures"),
            ("boxes", "kept"): count("SELECT count(*) FROM current_boxes"),
            ("qa", "kept"): count("SELECT count(*) FROM current_qa_items"),
            ("validate", "rejected"): count(
                "SELECT count(DISTINCT item_id) FROM current_validation_results WHERE status = 'reject'"
            ),
        }
        failing = count("SELECT count(DISTINCT item_id) FROM current_validation_results WHERE status <> 'ok'")
        by_validator = count(
            "SELECT count(DISTINCT item_id) FROM current_validation_results "
            "WHERE validator = 'answer_program' AND status <> 'ok'"
        )
        by_reason = count("SELECT count(DISTINCT item_id) FROM current_validation_results WHERE reason = 'no_image'")
        grade_d = count("SELECT count(*) FROM current_qa_grades WHERE label = 'D'")
        payload_answers = count("SELECT count(*) FROM current_qa_items WHERE answer LIKE '%<img src=x%'")
        rejecting = count("SELECT count(DISTINCT validator) FROM current_validation_results WHERE status = 'reject'")
        warning = count("SELECT count(DISTINCT validator) FROM current_validation_results WHERE status = 'warn'")
        boxes_of_ratio = count(
            "SELECT len(boxes) FROM current_qa_items WHERE template_id = 'cardiothoracic_ratio' "
            "AND study_id = 'demo-s3'"
        )
    assert f"{failing} failing items embedded" in " ".join(result.output.split())

    page, requests, errors = open_page(browser, page_file)

    # counts rendered = counts in the database
    for (stage, field), value in expected_cells.items():
        cell = page.locator(f'#stage-counts td[data-key="{stage}"][data-field="{field}"]')
        assert cell.inner_text() == str(value), (stage, field)
    assert page.locator("article.item").count() == failing
    assert page.get_attribute("#items-summary", "data-left-out") == "0"
    assert page.locator("#chart-validators g.bar").count() == rejecting > 0  # rejects and warnings apart
    assert page.locator("#chart-validator-warnings g.bar").count() == warning
    assert page.locator("#gallery figure").count() == expected_cells[("images", "kept")]
    assert page.locator("#gallery rect").count() == expected_cells[("boxes", "kept")]
    assert page.locator("#disagreements tbody tr").all_inner_texts() == [
        "cardiomegaly\tpresence\t1",
        "pneumothorax\tlaterality\t1",
    ]

    def shown() -> int:
        return int(page.get_attribute("#visible-count", "data-shown"))

    # filtering: each filter alone, then a text search
    assert shown() == failing
    page.select_option("#filter-validator", "answer_program")
    assert shown() == by_validator == 2
    assert page.locator("article.item:visible").count() == 2
    page.select_option("#filter-validator", "")
    page.select_option("#filter-reason", "no_image")
    assert shown() == by_reason
    page.select_option("#filter-reason", "")
    page.select_option("#filter-grade", "D")
    assert shown() == grade_d == 4  # the two planted answers, demo-s4's hedged item, one lateral
    page.select_option("#filter-grade", "")
    page.fill("#filter-search", "0.99")  # the changed cardiothoracic ratio
    assert shown() == 1
    ratio = page.locator("article.item:visible")
    assert ratio.locator("svg image").count() == 1 and ratio.locator("svg rect").count() == boxes_of_ratio == 2
    assert (
        ratio.locator(".failures").inner_text().startswith("reject answer_program: answer_mismatch (strictness reject)")
    )
    assert "view PA, frontal" in ratio.locator("h3 .ids").inner_text()
    page.fill("#filter-search", "")
    page.select_option("#filter-template", "finding_side")
    side = page.locator("article.item:visible", has_text="demo-s1")
    assert side.locator(".report mark").all_inner_texts() == [
        "There is a small right apical pneumothorax.",
        "Small right apical pneumothorax.",
    ]
    page.select_option("#filter-template", "")

    # the planted payloads show as text and never run
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('img, iframe, object, embed, [onerror], [onload]').length") == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 2  # the data block and the page's own
    report = page.locator("article.item", has_text="audit-s5").first.locator(".report").inner_text()
    assert XSS_IMG in report and XSS_SCRIPT in report
    answers = page.locator("article.item .a").all_inner_texts()
    assert payload_answers > 0 and sum(XSS_IMG in a for a in answers) == payload_answers
    assert XSS_ERROR in page.locator("#rejects-extract").inner_text()
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert errors == []

    shots = Path(os.environ.get("CXRVQA_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "audit-test-build.png"), full_page=True)
    page.locator("#failing").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "audit-test-build-items.png"))
    print(f"screenshots: {shots / 'audit-test-build.png'}, {shots / 'audit-test-build-items.png'}")
