"""The real app in a real headless Chromium: what a person sees.

Starts `streamlit run app.py` on a loopback port with MLSD_LLM=none, answers
the opening question, sees the reply and the stage map change, finishes the
interview and sees the radar chart.  Screenshots go to artifacts/ (git-ignored).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.browser, pytest.mark.real]


@pytest.fixture
def app_url(tmp_path, built_index):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed: `apt-get install chromium` (make test does it as root)")
    home = tmp_path / "home"
    home.mkdir()
    (home / "chroma").symlink_to(built_index)
    port = free_port()
    env = dict(os.environ, MLSD_LLM="none", MLSD_HOME=str(home), HF_HUB_OFFLINE="1")
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_for_port(port, 90):
        proc.kill()
        pytest.fail("streamlit did not start: " + (tmp_path / "streamlit.log").read_text()[-2000:])
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def test_interview_in_a_real_browser(app_url):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(app_url)
        expect(page.get_by_text("Start interview")).to_be_visible(timeout=90_000)
        page.screenshot(path=str(ARTIFACTS / "01-start.png"))
        # pick the case through the selectbox, as a person would: the default is a random case
        page.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option", name="Homepage video recommendations").click()
        page.get_by_text("Start interview").click()
        expect(page.get_by_text("Stage map")).to_be_visible(timeout=60_000)
        assert "iid=" in page.url
        expect(page.get_by_text("Homepage video recommendations").first).to_be_visible()
        expect(page.get_by_text("0.0/5 min").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "02-opening.png"))
        box = page.get_by_placeholder("Your answer, or a clarifying question…")
        box.fill("How many users do we have and what is the latency budget?")
        box.press("Enter")
        expect(page.locator('[data-testid="stChatMessage"]')).to_have_count(3, timeout=60_000)
        box.fill("I would frame it as ranking candidates by predicted engagement, with a two-tower retrieval model and a ranker trained on logged clicks and watch time, evaluated with nDCG and an A/B test.")
        box.press("Enter")
        expect(page.locator('[data-testid="stChatMessage"]')).to_have_count(5, timeout=60_000)
        # the stage map moved: some stage now shows coverage above zero
        expect(page.get_by_text("0% covered").first).to_be_visible()
        covered = page.locator("text=/[1-9][0-9]?% covered/")
        expect(covered.first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "03-interview.png"))
        page.get_by_text("End interview and get feedback").click()
        expect(page.get_by_text("Three things to improve")).to_be_visible(timeout=60_000)
        expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)  # the radar chart
        page.get_by_text("Three things to improve").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "04-feedback.png"))
        page.get_by_text("Stage by stage").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "05-feedback-stages.png"))
        browser.close()
