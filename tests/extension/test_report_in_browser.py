"""The HTML report as a person sees it: rendered by a real browser (headless Chromium, driven
by Playwright), checked for what it must show, and photographed.

The selection is the demo's synthetic samples (what the stage would rank); the charts are
the real ones. Needs Debian's Chromium (``apt-get install chromium``; CI installs it and sets
POSTCONV_REQUIRE_BROWSER=1, so there the test runs, never skips)."""

import os
import shutil

import numpy as np
import pytest

from postconv.ranking.config import SelectionConfig
from postconv.ranking.select import select
from postconv.review import figures
from postconv.review.html_report import write_html_report
from postconv.storage.demo import demo_samples

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("POSTCONV_REQUIRE_BROWSER") == "1":
    raise RuntimeError("POSTCONV_REQUIRE_BROWSER=1 but no chromium on PATH; apt-get install chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (apt-get install chromium)")

# as this machine's notes advise: no background networking (the network is closed), no sandbox (root)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def _report(tmp_path):
    samples = demo_samples(0)
    pooled = select(samples, SelectionConfig(n_boot=50))
    out = tmp_path / "run" / "postconv" / "report"
    made = [
        figures.estimates_chart(pooled, out / "estimates.png"),
        figures.worst_case_vs_k_chart(pooled, out / "worst_case_vs_k.png"),
        figures.rank_change_chart(pooled, out / "rank_change.png"),
    ]
    path = write_html_report(out / "report.html", tmp_path / "run", pooled, {}, made, candidates="the last 6")
    return path, pooled


def test_a_browser_shows_the_ranking_the_choice_and_every_chart(tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    path, pooled = _report(tmp_path)
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        heading = page.inner_text("h1")
        rows = page.locator("table").first.locator("tr").count()
        chosen = page.locator("tr.chosen").first.inner_text()
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.alt, i.naturalWidth, i.getBoundingClientRect().width])"
        )
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == []
    assert "Checkpoint selection for run" in heading
    assert rows == 1 + len(pooled.checkpoints)  # a header, a row per checkpoint
    assert chosen.split()[0] == pooled.chosen  # the chosen checkpoint is the highlighted row
    assert [alt for alt, _, _ in images] == ["estimates", "worst_case_vs_k", "rank_change"]
    for alt, natural, shown in images:
        assert natural > 0, f"{alt} did not decode"
        assert shown >= 500, f"{alt} is drawn {shown} px wide"
    picture = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert picture.shape[1] == 1200
    assert picture.shape[0] > 900  # the charts go below the fold
    assert picture.std() > 10  # not a blank page


def test_at_fifty_candidates_every_checkpoint_gets_a_readable_row_and_the_picks_stand_out(tmp_path):
    from playwright.sync_api import sync_playwright

    from postconv.storage.samples_file import SampleSet

    rng = np.random.default_rng(0)
    psi = rng.normal(size=(50, 200)) + 0.2 * rng.normal(size=(50, 1))
    names = tuple(f"model_{700 + 10 * i}" for i in range(50))
    pooled = select(SampleSet(psi=psi, names=names, groups=np.arange(200) // 10), SelectionConfig(n_boot=50))
    out = tmp_path / "run" / "postconv" / "report"
    made = [
        figures.estimates_chart(pooled, out / "estimates.png"),
        figures.worst_case_vs_k_chart(pooled, out / "worst_case_vs_k.png"),
        figures.rank_change_chart(pooled, out / "rank_change.png"),
    ]
    path = write_html_report(out / "report.html", tmp_path / "run", pooled, {}, made)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(path.as_uri())
        shown = dict(
            page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => [i.alt, i.getBoundingClientRect().height])"
            )
        )
        page.screenshot(path=str(tmp_path / "report-50.png"), full_page=True)
        browser.close()
    # a row per checkpoint at least 18 px high as drawn (the old wide bar chart gave the 50 about 3 px of height)
    assert shown["estimates"] / 50 >= 18
    assert shown["rank_change"] / 50 >= 18
    # the picks keep their own colours; the other 47 share one grey
    assert len(pooled.picks) >= 2
    assert {p.name for p in pooled.picks} <= set(names)
