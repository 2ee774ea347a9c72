"""The page at / in a real headless browser (Debian's chromium and chromedriver, driven by selenium): submit a
prompt on the tiny model, watch the progress bar reach 100 %, and the <video> element load the result."""

import shutil
import tempfile
import time

import pytest

from t2vrt.serve.service import Service

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        pytest.skip("chromium not installed")  # .ci/run installs it, so CI never skips this
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    profile = tempfile.mkdtemp(prefix="t2vrt-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=DRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(what, check, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s")


def test_the_page_submits_shows_progress_and_plays_the_video(browser, tiny_engines, tmp_path):
    from selenium.webdriver.common.by import By

    service = Service(tiny_engines, tmp_path / "videos", port=0, model_name="tiny").start()
    try:
        browser.get(service.url + "/")
        assert wait("the model name", lambda: browser.find_element(By.ID, "model").text) == "tiny"
        browser.find_element(By.ID, "prompt").send_keys("a green field")
        browser.find_element(By.ID, "size").send_keys("48x32")
        browser.find_element(By.ID, "num_frames").send_keys("4")
        browser.find_element(By.ID, "num_inference_steps").send_keys("6")
        browser.find_element(By.ID, "seed").send_keys("7")
        browser.find_element(By.ID, "submit").click()
        job = wait("a job on the page", lambda: browser.find_elements(By.CSS_SELECTOR, ".job"))[0]
        job_id = job.get_attribute("id")
        assert job_id.startswith("video_") and "seed 7" in job.find_element(By.CSS_SELECTOR, ".meta").text
        wait("progress 100", lambda: job.find_element(By.TAG_NAME, "progress").get_attribute("value") == "100")
        assert job.get_attribute("data-status") == "completed"
        video = wait("a <video>", lambda: job.find_elements(By.TAG_NAME, "video"))[0]
        wait("the video loaded", lambda: browser.execute_script("return arguments[0].readyState", video) >= 2)
        assert browser.execute_script("return arguments[0].videoWidth", video) == 48
        job.find_element(By.CSS_SELECTOR, ".delete").click()
        wait("the job gone", lambda: not browser.find_elements(By.ID, job_id))
        assert service.store.get(job_id) is None
        browser.find_element(By.ID, "num_frames").clear()
        browser.find_element(By.ID, "num_frames").send_keys("99")
        browser.find_element(By.ID, "submit").click()
        assert "num_frames=99" in wait("an error line", lambda: browser.find_element(By.ID, "error").text)
    finally:
        service.stop(grace_s=0)
