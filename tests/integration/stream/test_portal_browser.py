"""The portal in a real browser: headless Chromium (Debian's ``chromium``) through Selenium
and Debian's ``chromium-driver``. Loads each page of a simulated month's tenant, checks the bars
and numbers shown, submits the prior-notice form and sees the notice pending, then in force once
the worker has taken it in; screenshots go to ``var/screenshots/portal/`` (docs/portal.md shows
the standing and history ones)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from portal_support import PortalMonth
from stream_harness import REPO_ROOT, wait_for

from fairuse.portal.pages import amount

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
SHOTS = REPO_ROOT / "var" / "screenshots" / "portal"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=960,1400", "--lang=en-US"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.set_page_load_timeout(120)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture
def page_kept_on_failure(
    browser, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[object]:
    """The browser; if the test fails, the page it was on (URL, HTML, screenshot) is kept in the
    test's tmp dir, which deploy/test.sh keeps for failed tests."""
    yield browser
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        (tmp_path / "failed-page.txt").write_text(f"{browser.current_url}\n\n{browser.page_source}")
        browser.save_screenshot(str(tmp_path / "failed-page.png"))


def _shot(driver, name: str) -> Path:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(960, min(max(int(height) + 40, 600), 4000))
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _busiest(month: PortalMonth) -> str:
    """The tenant whose standing shows most: the highest share of a limit."""

    def worst(tenant: str) -> float:
        usage = month.api(f"/v1/tenants/{tenant}/usage")
        return max(float(m["percent"]) for m in usage["metrics"].values())

    return max(month.tenants, key=worst)


def test_each_page_in_chromium_with_bars_numbers_and_the_notice_form(
    month_portal: PortalMonth, page_kept_on_failure
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = page_kept_on_failure
    tenant = _busiest(month_portal)
    base = month_portal.link(tenant)
    usage = month_portal.api(f"/v1/tenants/{tenant}/usage")

    driver.get(base + "/standing")
    assert driver.title.startswith("Standing")
    sections = driver.find_elements(By.CSS_SELECTOR, "section.metric")
    assert [s.get_attribute("data-metric") for s in sections] == list(usage["metrics"])
    for section in sections:
        view = usage["metrics"][section.get_attribute("data-metric")]
        assert amount(view["observed"], view["unit"]) in section.text
        assert amount(view["limit"], view["unit"]) in section.text
        fill = section.find_element(By.CSS_SELECTOR, "svg.bar rect.fill")
        limit_line = section.find_element(By.CSS_SELECTOR, "svg.bar line.limit-line")
        drawn = float(fill.get_attribute("width")) / float(limit_line.get_attribute("x1"))
        assert drawn == pytest.approx(view["observed"] / view["limit"], rel=0.01, abs=0.01)
        assert section.find_elements(By.CSS_SELECTOR, "svg.bar line.warning-line")
    _shot(driver, "standing")
    # the page fits a phone's width, and the keyboard reaches the skip link first
    driver.set_window_size(390, 844)
    assert driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"
    )
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Skip to content"
    driver.save_screenshot(str(SHOTS / "standing-phone.png"))

    driver.get(base + "/history")
    charts = driver.find_elements(By.CSS_SELECTOR, "svg.history")
    assert len(charts) == 3
    days = len(driver.find_elements(By.CSS_SELECTOR, "#history-audio_hours tr[data-day]"))
    assert days in (28, 29, 30, 31)
    for chart in charts:
        assert len(chart.find_elements(By.CSS_SELECTOR, "rect.day")) == days
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.history line.pace-line")) == 2
    _shot(driver, "history-current")
    driver.get(base + "/history?month=2026-11")  # the simulated month's first, whole month
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.history")) == 3
    _shot(driver, "history")

    driver.get(base + "/notices")
    assert driver.find_element(By.TAG_NAME, "h2").text == "Advance notices and actions"
    _shot(driver, "notices")

    driver.get(base + "/notice")
    _fill(driver, "2099-05-01T08:00", "2099-05-02T20:00", "")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(  # the answer to the submit replaces the page: read it once it has come
        lambda: any(
            "Say briefly why traffic will be high." in found.text
            for found in driver.find_elements(By.ID, "error-reason")
        ),
        60,
        "the form's error for a missing reason",
    )
    _fill(driver, "2099-05-01T08:00", "2099-05-02T20:00", "Product launch webinar")
    _shot(driver, "notice-form")
    # The worker is held (SIGSTOP) while the notice is sent, so the page cannot but show it
    # pending; released, the worker takes the notice in and the page shows it in force.
    month_portal.worker.pause()
    try:
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(lambda: "/notices" in driver.current_url, 60, "the notices page after submitting")
        (row,) = [r for r in _prior_rows(driver) if "Product launch webinar" in r.text]
        assert row.get_attribute("data-state") == "pending" and "pending" in row.text
        assert "your prior notice was sent" in driver.page_source
        _shot(driver, "notice-sent")
    finally:
        month_portal.worker.resume()
    event_id = row.get_attribute("data-event-id")

    def in_force() -> bool:
        driver.refresh()
        rows = [r for r in _prior_rows(driver) if r.get_attribute("data-event-id") == event_id]
        return bool(rows) and rows[0].get_attribute("data-state") == "in-force"

    wait_for(in_force, 300, "the worker to put the notice in force", every_s=1)
    usage = month_portal.api(f"/v1/tenants/{tenant}/usage")
    assert [n["accepted"] for n in usage["notices"] if n["event_id"] == event_id] == [True]
    _shot(driver, "notice-in-force")


def _prior_rows(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#prior-notices tr[data-event-id]")


def _fill(driver, starts: str, ends: str, reason: str) -> None:
    from selenium.webdriver.common.by import By

    for field, value in (("starts", starts), ("ends", ends)):
        element = driver.find_element(By.ID, field)
        driver.execute_script("arguments[0].value = arguments[1]", element, value)
    box = driver.find_element(By.ID, "metric-api_calls")
    if not box.is_selected():
        box.click()
    text = driver.find_element(By.ID, "reason")
    text.clear()
    text.send_keys(reason)
