"""Headless Chromium driven through chromedriver's W3C WebDriver HTTP API.

chromedriver is itself an HTTP server, so plain httpx drives it: no selenium
to install in the service's venv.
"""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import ChildProcess, free_port, http_ok, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # W3C WebDriver's element reference

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1000",
    # The page may name third-party hosts (error reporting, fonts): resolve
    # nothing but this machine, and send what is left to a closed local port.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
]


def browser_missing() -> str | None:
    """Why the browser cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} not found: run scripts/install-test-tools.sh (as root)"
    return None


class Browser:
    def __init__(self, work_dir: Path, log_path: Path) -> None:
        self.profile = work_dir / "chromium-profile"
        shutil.rmtree(self.profile, ignore_errors=True)
        self.profile.mkdir(parents=True)
        port = free_port()
        self.driver = ChildProcess(
            "chromedriver",
            [CHROMEDRIVER, f"--port={port}", "--allowed-ips=127.0.0.1"],
            {"PATH": "/usr/bin:/bin", "HOME": str(work_dir)},
            log_path,
        )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=120.0
        )
        self.session_id: str | None = None
        try:
            wait_until(
                "chromedriver", http_ok(f"http://127.0.0.1:{port}/status"), 30, child=self.driver
            )
            capabilities = {
                "browserName": "chrome",
                "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [*CHROMIUM_ARGS, f"--user-data-dir={self.profile}"],
                },
            }
            body = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
            self.session_id = body["sessionId"]
        except BaseException:
            self.close()
            raise

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        payload = response.json()
        if response.status_code != 200:
            raise RuntimeError(f"webdriver {method} {path}: {response.status_code} {payload}")
        return payload.get("value", payload)

    def _session(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, f"/session/{self.session_id}{path}", body)

    def open(self, url: str) -> None:
        self._session("POST", "/url", {"url": url})

    def _element(self, css: str) -> str:
        found = self._session("POST", "/element", {"using": "css selector", "value": css})
        return found[ELEMENT_KEY]

    def type_into(self, css: str, text: str) -> None:
        self._session("POST", f"/element/{self._element(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        self._session("POST", f"/element/{self._element(css)}/click", {})

    def current_url(self) -> str:
        return self._session("GET", "/url")

    def log_in(self, login_url: str, email: str, password: str) -> None:
        """Log in through Label Studio's login form, as a person does."""
        self.open(login_url)
        self.type_into("#email", email)
        self.type_into("#password", password)
        self.click("#login-form button[type=submit]")
        self.wait_for(
            "the page after logging in", "return !location.pathname.startsWith('/user/login')"
        )

    def script(self, source: str, *args: Any) -> Any:
        return self._session("POST", "/execute/sync", {"script": source, "args": list(args)})

    def wait_for(self, what: str, source: str, timeout_s: float = 60) -> Any:
        """Poll a JavaScript expression until it returns something truthy."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.script(source)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"browser: {what} not seen after {timeout_s:.0f} s")
            time.sleep(0.5)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._session("GET", "/screenshot")))
        return path

    def console_log(self) -> str:
        """The page's console messages so far (chromedriver's log extension)."""
        try:
            entries = self._session("POST", "/se/log", {"type": "browser"})
        except (httpx.HTTPError, RuntimeError) as error:
            return f"(console log unavailable: {error})"
        return "\n".join(f"{e.get('level')} {e.get('message')}" for e in entries)

    def close(self) -> None:
        try:
            if self.session_id is not None:
                self._session("DELETE", "")
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self.session_id = None
            self.http.close()
            self.driver.stop()
            shutil.rmtree(self.profile, ignore_errors=True)
