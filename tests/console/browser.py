"""The console test harness: Debian's chromium under Selenium, headless, with nothing downloaded
(no Selenium Manager); the controller served by uvicorn in a thread; sign-in and waiting."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from fleet.api import create_app
from fleet.auth import Auth
from fleet.loadgen import StationClient
from fleet.response.config import ResponseConfig
from fleet.response.service import Response
from fleet.rollout import RolloutPolicy
from fleet.service import FleetService
from fleet.store import Store, open_store
from roadside import signing
from roadside.clock import SystemClock
from sim.broker import MosquittoBroker, free_port
from sim.pki import CONTROLLER_IDENTITY
from sim.receivers import (
    WEBHOOK_SECRET,
    SmsGateway,
    SmtpSink,
    WebhookReceiver,
    channel_specs,
)

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


USERS = {"duty": "operator", "chief": "approver", "admin": "admin", "guest": "viewer"}
PASSWORD = "-password-1"  # each user's password is its name followed by this


class Server:
    """uvicorn serving one app in a thread; stop and start again on the same port (a restart)."""

    def __init__(self, make_app: Callable[[], Any], port: int) -> None:
        self.make_app, self.port = make_app, port
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            self.make_app(),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"console server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(15)


@dataclass
class Console:
    """The controller behind the console and what tests need to drive it."""

    url: str
    store: Store
    service: FleetService
    auth: Auth
    broker: MosquittoBroker
    key: Ed25519PrivateKey
    server: Server
    receivers: dict[str, Any]
    response: Response
    stations: list[StationClient] = field(default_factory=list)

    def station(self, name: str, cell: str, **kw: Any) -> StationClient:
        client = StationClient(
            self.broker.settings(name),
            name,
            public_key=self.key.public_key(),
            grid_cell=cell,
            **kw,
        ).start()
        self.stations.append(client)
        return client


@contextlib.contextmanager
def running_console(work: Path, broker: MosquittoBroker) -> Iterator[Console]:
    """A controller on SQLite in ``work`` with the response chain over the sample district and
    every channel kind (real SMTP, webhook and SMS receivers, MQTT on ``broker``, Atom files),
    the test users, and the API with the console served by uvicorn on a free port."""
    receivers: dict[str, Any] = {
        "smtp": SmtpSink().start(),
        "smtp_drill": SmtpSink().start(),
        "webhook": WebhookReceiver(WEBHOOK_SECRET).start(),
        "sms": SmsGateway().start(),
    }
    store = open_store(f"sqlite:///{work / 'fleet.db'}")
    key = signing.generate_key()
    service = FleetService(
        store,
        SystemClock(),
        broker.settings(CONTROLLER_IDENTITY),
        key,
        tick_s=0.1,
        policy=RolloutPolicy(canary_timeout_s=30, retry_s=0.5, max_retries=3),
    )
    service.start()
    auth = Auth(store)
    for name, role in USERS.items():
        auth.add_user(name, name + PASSWORD, [role])
    port = free_port()
    config = ResponseConfig(
        channels=tuple(channel_specs(receivers, broker, work)),
        base_url=f"http://127.0.0.1:{port}",
        poll_s=0.2,
    )
    response = Response(store, SystemClock(), config)
    response.grid.load_sample("admin", response.now())
    response.start()

    def app() -> Any:
        made = create_app(store, service.config, service.health, auth=auth)
        made.state.response = response
        return made

    server = Server(app, port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    c = Console(url, store, service, auth, broker, key, server, receivers, response)
    try:
        yield c
    finally:
        for s in c.stations:
            s.stop()
        server.stop()
        response.close()
        service.stop()
        store.close()
        for r in receivers.values():
            r.stop()


def ready(driver: Any, name: str, timeout: float = 30.0) -> None:
    """Wait until the console has drawn view ``name`` (``document.body.dataset.ready``)."""
    wait(
        driver,
        lambda d: d.execute_script("return document.body.dataset.ready") == name,
        f"view {name!r} drawn",
        timeout,
    )


def sign_in(
    driver: Any,
    url: str,
    name: str,
    lang: str = "zh-CN",
    route: str = "district",
    password: str | None = None,
) -> None:
    """Open the console, sign in through its form (``password``: the test users' by default),
    and wait for ``route``."""
    driver.get(f"{url}/console/?lang={lang}#/{route}")
    ready(driver, "signin")
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(password or name + PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()
    ready(driver, route.split("/")[0])


def click(driver: Any, css: str, what: str = "", timeout: float = 20.0) -> None:
    """Click the element ``css`` selects, again if the live page redrew it meanwhile."""

    def attempt(d: Any) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, css).click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False

    wait(driver, attempt, what or f"click {css}", timeout)


def disabled(driver: Any, css: str) -> bool:
    """Whether the control ``css`` selects is disabled (read in one step: no stale handles)."""
    return bool(driver.execute_script("return document.querySelector(arguments[0]).disabled", css))


def text(driver: Any, css: str) -> str:
    """The text of the element ``css`` selects (read in one step)."""
    return str(driver.execute_script("return document.querySelector(arguments[0]).innerText", css))


def fake_location(driver: Any, origin: str, lat: float = 31.3721, lon: float = 121.4753) -> None:
    """Let ``origin`` read the phone's location, and make it (``lat``, ``lon``) ±12 m."""
    driver.execute_cdp_cmd(
        "Browser.grantPermissions", {"origin": origin, "permissions": ["geolocation"]}
    )
    driver.execute_cdp_cmd(
        "Emulation.setGeolocationOverride", {"latitude": lat, "longitude": lon, "accuracy": 12}
    )
