"""Debian's chromium under Selenium, headless, with nothing downloaded (no Selenium Manager)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--lang=zh-CN",
)


def chromium(width: int = 1366, height: int = 768) -> webdriver.Chrome:
    """A fresh headless chromium (own profile directory) driven through chromedriver."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            raise RuntimeError(f"{path} missing: apt-get install -y chromium chromium-driver")
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='console-chromium-')}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait(driver: webdriver.Chrome, cond: Callable[[Any], Any], what: str, timeout: float = 20.0):
    """Wait until ``cond(driver)`` is truthy; fail naming ``what``."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(cond, f"timed out: {what}")
