"""The demo page in headless Chromium: enter the API key, upload a digit, read the predicted label."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from serve_support import API_KEY, digit_files, torch_predictions

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Chromium and chromedriver are not installed (apt-get install chromium chromium-driver; .ci/run does it)",
)

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1000,900",
    # No network beyond this machine: every name but 127.0.0.1 fails to resolve, as on an air-gapped host.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="the selenium package is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_upload_a_digit_and_see_the_right_label(browser, server, tiny_digits, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    model, _ = tiny_digits
    files = digit_files(tmp_path / "digits", 20, "png")
    predicted = torch_predictions(model, [path for path, _ in files])
    # A digit the model gets right, so "the right label" is both the true and the predicted one.
    path, label = next((p, y) for (p, y), guess in zip(files, predicted, strict=True) if guess == y and y != 0)

    browser.get(f"{server.url}/")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda d: "API key" in d.find_element(By.ID, "error").text)  # the model list needs the key
    assert browser.find_element(By.ID, "error").is_displayed()
    assert not browser.find_element(By.ID, "result").is_displayed()  # no empty result card beside the error
    assert "trained on scikit-learn's 8" in browser.find_element(By.ID, "trained-on").text
    browser.find_element(By.ID, "api-key").send_keys(API_KEY, Keys.TAB)
    wait.until(lambda d: "digits" in [o.get_attribute("value") for o in Select(d.find_element(By.ID, "model")).options])
    assert not browser.find_element(By.ID, "error").is_displayed()
    options = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "model")).options]
    assert "arith" not in options  # only image classifiers are offered
    Select(browser.find_element(By.ID, "model")).select_by_value("digits")
    browser.find_element(By.ID, "file").send_keys(str(path))
    browser.find_element(By.ID, "classify").click()
    wait.until(lambda d: d.find_element(By.ID, "top-label").text != "")

    assert browser.find_element(By.ID, "top-label").text == str(label)
    rows = browser.find_elements(By.CSS_SELECTOR, "#predictions tbody tr")
    assert len(rows) == 5
    scores = [float(row.find_elements(By.TAG_NAME, "td")[2].text) for row in rows]
    assert scores == sorted(scores, reverse=True) and np.isclose(scores[0], max(scores))
    latency = browser.find_element(By.ID, "latency").text
    assert latency.startswith("Latency: ") and " ms on the server" in latency
    assert browser.find_element(By.ID, "result").is_displayed()
    assert not browser.find_element(By.ID, "error").is_displayed()
    seen = browser.find_element(By.ID, "model-input")
    assert seen.is_displayed()  # the preprocessed input, at the model's resolution
    assert browser.execute_script("return arguments[0].naturalWidth", seen) == 16
    browser.save_screenshot(str(tmp_path / "page.png"))

    # An error after a result: the error shows, the stale result card goes.
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"definitely not a PNG")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    browser.find_element(By.ID, "classify").click()
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "not a readable image" in browser.find_element(By.ID, "error").text
    assert not browser.find_element(By.ID, "result").is_displayed()


def test_api_docs_render_with_no_network(browser, server):
    """/docs draws Swagger UI from assets this server ships (no CDN), with every other host unreachable."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server.url}/docs")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    assert "vitrt inference server" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    paths = {e.text.replace("\u200b", "") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert "/v2/models/{model_name}/infer" in paths
