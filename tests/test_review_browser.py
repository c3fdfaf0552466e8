"""The review page in a real headless browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from matching.review import build_review, load_run, write_review
from test_review import HOSTILE_TITLE, build_run

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                                                     "(apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    run = build_run(root)
    review = build_review(load_run(run.path), "all", None)
    hostile = review.filter((pl.col("left_title") == HOSTILE_TITLE) | (pl.col("right_title") == HOSTILE_TITLE))
    # Every class and the hostile record on one page, small enough to load fast.
    parts = [review.filter(pl.col("decision") == c).head(6) for c in ("duplicate", "variant", "distinct")]
    write_review(pl.concat([*parts, hostile.head(2)]).unique(["left_id", "right_id"], keep="first", maintain_order=True),
                 root / "pkg")
    return root / "pkg"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, package: Path):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.errors, page.dialogs, page.requests = [], [], []
    page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto((package / "review.html").as_uri())
    page.wait_for_load_state("load")
    yield page
    context.close()


def visible_decisions(page) -> list[str]:
    return page.eval_on_selector_all("article.pair:not([hidden])", "rows => rows.map(r => r.dataset.decision)")


def test_page_loads_offline_without_errors(page, package: Path) -> None:
    review = pl.read_parquet(package / "review.parquet")
    assert page.errors == []
    assert page.locator("article.pair").count() == review.height
    assert page.text_content("#shown") == f"{review.height} of {review.height} pairs shown"
    # Nothing but the page itself was requested: no external assets.
    assert [u for u in page.requests if not u.startswith("file://")] == []


def test_filter_by_class_hides_the_other_rows(page, package: Path) -> None:
    review = pl.read_parquet(package / "review.parquet")
    page.select_option("#f-class", "variant")
    shown = visible_decisions(page)
    assert shown and set(shown) == {"variant"}
    assert len(shown) == review.filter(pl.col("decision") == "variant").height
    page.select_option("#f-class", "all")
    assert len(visible_decisions(page)) == review.height
    assert page.errors == []


def test_confidence_filter_and_sort(page, package: Path) -> None:
    review = pl.read_parquet(package / "review.parquet")
    cut = float(review["uncertainty"].median())
    most = 1 - cut
    page.eval_on_selector("#f-confidence", f"el => {{ el.value = '{most}'; el.dispatchEvent(new Event('input')); }}")
    step = float(page.get_attribute("#f-confidence", "step"))
    expected = review.filter(1 - pl.col("uncertainty") <= round(most / step) * step + 1e-9).height
    assert len(visible_decisions(page)) == expected
    page.eval_on_selector("#f-confidence", "el => { el.value = '1'; el.dispatchEvent(new Event('input')); }")
    order = page.eval_on_selector_all("article.pair", "rows => rows.map(r => parseFloat(r.dataset.uncertainty))")
    assert order == sorted(order, reverse=True)
    page.select_option("#f-sort", "certain-first")
    order = page.eval_on_selector_all("article.pair", "rows => rows.map(r => parseFloat(r.dataset.uncertainty))")
    assert order == sorted(order)
    assert page.errors == []


def test_hostile_title_is_shown_as_text(page) -> None:
    assert page.dialogs == []
    texts = page.eval_on_selector_all("article.pair table tbody tr:first-child td", "cells => cells.map(c => c.textContent)")
    assert HOSTILE_TITLE in texts
    assert "<script>alert(1)</script>" in page.text_content("#pairs")
    # The only script element is the page's own.
    assert page.eval_on_selector_all("script", "s => s.length") == 1


def test_verdicts_download_as_an_importable_csv(page, package: Path, tmp_path: Path) -> None:
    from matching.review import import_reviews
    from matching.labels import read_labels

    first = page.locator("article.pair").first
    first.locator("select.verdict-choice").select_option("distinct")
    first.locator("input.verdict-note").fill("=not the same")
    with page.expect_download() as info:
        page.click("#download")
    saved = tmp_path / "reviews.csv"
    info.value.save_as(saved)
    assert "'=not the same" in saved.read_text(encoding="utf-8")
    labels = tmp_path / "labels.csv"
    summary = import_reviews(saved, labels, package=package)
    assert summary.reviewed == 1
    left, right = first.get_attribute("data-left"), first.get_attribute("data-right")
    assert read_labels(labels).row(0) == (left, right, "distinct")
    assert page.errors == []
