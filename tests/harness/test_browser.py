"""The HTML report in a real browser: headless Chromium driven by selenium.

Skipped, with the reason, only where no Chromium and chromedriver can be had; under CI=true a
missing browser fails the test instead (`.ci/run` installs Debian's chromium and chromium-driver).
"""

import base64
import os
import shutil

import pytest

from harness import report
from harness.store import Store

# Times whose text order differs from their numeric order ("10" < "2" as text), so a sort by
# text would be caught.
TIMES = {"gaussian-25k-d128-fp32": (0.002, 0.010), "gaussian-100k-d128-fp32": (0.009, 0.04),
         "gaussian-400k-d128-fp32": (0.03, 0.2)}


def _browser():
    """A headless Chromium session with its console log, or the reason there is none."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed (pip install -e '.[dev]')"
    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        return None, "no chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options), ""


@pytest.fixture
def browser():
    session, why = _browser()
    if session is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {why}")
        pytest.skip(why)
    yield session
    session.quit()


def _stored_report(tmp_path):
    """A store with FAERY CPU rows that the claims, speedup tables and plots all read; its report."""
    with Store(tmp_path / "r.sqlite") as store:
        run = store.begin_run("test", "quick", "abc", "m1", {"cpu": "test cpu", "cores": 2}, {"cpu": "available"}, {})
        for workload, (faery_s, baseline_s) in TIMES.items():
            for impl, value in (("faery", faery_s), ("faiss_topk", baseline_s)):
                params = {"scenario": "single-stream", "k": 100, "batch": 1}
                store.add(run_id=run, experiment_id=f"faery/{impl}/cpu/{workload}/batch=1,k=100,scenario=single-stream",
                          system="faery", impl=impl, backend="cpu", workload=workload, params=params, kind="measured",
                          tier="quick", status="ok", value=value, samples=[value] * 3, stats={"n": 3, "iqr": 0.0},
                          metrics={"time_s": value, "pass_rate": 0.01}, threads=2, device="test cpu",
                          git_commit="abc", machine_id="m1", machine={"cpu": "test cpu"}, versions={})
        return report.write(store, tmp_path / "reports")


def _click(browser, element):
    """A reader's click: the element scrolled into the middle of the window first."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def test_report_in_chromium(tmp_path, browser):
    from selenium.webdriver.common.by import By

    index = _stored_report(tmp_path)
    browser.get(index.as_uri())

    images = browser.find_elements(By.TAG_NAME, "img")
    assert images, "the report has no plot"
    for img in images:
        loaded = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        assert loaded, f"image {img.get_attribute('src')} did not load"

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors

    # Clicking the provenance table's time header sorts it by number, not by text.
    table = browser.find_element(By.XPATH, "//table[.//tr[starts-with(@id, 'row-')]]")
    headers = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    column = headers.index("time_s") + 1
    _click(browser, table.find_element(By.CSS_SELECTOR, f"thead th:nth-child({column})"))
    shown = [float(td.get_attribute("data-v")) for td in
             table.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({column})")]
    assert shown == sorted(shown) and len(shown) == 2 * len(TIMES)
    _click(browser, table.find_element(By.CSS_SELECTOR, f"thead th:nth-child({column})"))
    shown = [float(td.get_attribute("data-v")) for td in
             table.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({column})")]
    assert shown == sorted(shown, reverse=True)

    # A provenance link in the claims table lands on its row, in view.
    link = browser.find_element(By.CSS_SELECTOR, "#claims-table a[href^='#row-']")
    target = link.get_attribute("href").split("#", 1)[1]
    _click(browser, link)
    assert browser.execute_script("return location.hash") == f"#{target}"
    row = browser.find_element(By.ID, target)
    top = browser.execute_script("return arguments[0].getBoundingClientRect().top", row)
    assert 0 <= top < browser.execute_script("return window.innerHeight"), top
    assert browser.execute_script("return document.querySelector(':target') === arguments[0]", row)

    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path = tmp_path / "report-full-page.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000
