"""Driving the Dagster UI as a person does: ``dg dev`` on a loopback port, headless Chromium.

``dg dev`` runs ``dagster dev``, which ignores SIGTERM when started without job control, so it runs
in a session of its own and is stopped through its process group: SIGINT (its Ctrl-C path, which
shuts the webserver, daemon and code servers down), then SIGKILL after a grace period. Processes
are found by session id, so a child that left the process group is still seen.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Flags that work as root, offline, in a container without a GPU.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
WINDOW = (1600, 2600)  # tall enough for a definition's whole asset graph (timeline and blend beside it)
DAGSTER = Path(sys.executable).with_name("dagster")
DG = Path(sys.executable).with_name("dg")
ASSETS_QUERY = (
    "{ assetsOrError { __typename ... on AssetConnection { nodes { key { path }"
    " assetMaterializations(limit: 1) { runId metadataEntries { label } } } } } }"
)
LOCATION_QUERY = (
    "{ workspaceOrError { __typename ... on Workspace { locationEntries"
    " { name loadStatus locationOrLoadError { __typename } } } } }"
)


def browser_missing() -> str | None:
    """Why the UI test cannot run here, or None when Chromium, its driver and Selenium are present."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install -e '.[dev]')"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# A shell without job control (CI, nohup, `cmd &`) starts children with SIGINT ignored, and an ignored
# signal stays ignored across exec: dagster dev would then ignore Ctrl-C. Start it through a one-liner
# that gives SIGINT back its default before exec'ing it.
WITH_SIGINT = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def wait_until(condition: Callable[[], object], timeout: float, what: str, poll: float = 0.5) -> object:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def session_pids(session_id: int) -> list[int]:
    """Live processes of a session (zombies excluded: they are gone, only not yet reaped)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def pids_with_argument(text: str) -> list[int]:
    """Processes whose command line mentions ``text`` (e.g. a browser's unique profile folder)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return [pid for pid in pids if pid != os.getpid()]


class DagsterDev:
    """``dg dev`` (or ``dagster dev``) run from ``cwd`` like the README says, on 127.0.0.1 and a free port."""

    def __init__(self, cwd: Path, env: dict[str, str], log_path: Path, command: tuple[Path, ...] = (DG,)):
        self.cwd, self.env, self.log_path, self.command = cwd, env, log_path, command
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.killed: list[int] = []  # pids that needed SIGKILL; empty after a clean shutdown

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WITH_SIGINT,
                    *map(str, self.command),
                    "dev",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, n_chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n_chars:] if self.log_path.exists() else ""

    def _alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")

    def _get(self, path: str, body: dict | None = None) -> dict | None:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            return None

    def _location_entries(self) -> list[dict]:
        answer = self._get("/graphql", {"query": LOCATION_QUERY}) or {}
        workspace = (answer.get("data") or {}).get("workspaceOrError") or {}
        return workspace.get("locationEntries") or []

    def materializations(self) -> dict[str, list[str]]:
        """Asset key -> metadata labels of its latest materialization, for every asset the UI lists."""
        answer = self._get("/graphql", {"query": ASSETS_QUERY}) or {}
        nodes = ((answer.get("data") or {}).get("assetsOrError") or {}).get("nodes") or []
        return {
            "/".join(node["key"]["path"]): [entry["label"] for entry in latest[0]["metadataEntries"]]
            for node in nodes
            if (latest := node["assetMaterializations"])
        }

    def location_names(self) -> list[str]:
        return [entry["name"] for entry in self._location_entries()]

    def _location_loaded(self) -> bool:
        self._alive()
        entries = self._location_entries()
        errors = [
            e for e in entries if (e.get("locationOrLoadError") or {}).get("__typename") == "PythonError"
        ]
        if errors:
            raise RuntimeError(f"code location failed to load: {errors}\n{self.log_tail()}")
        return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)

    def wait_ready(self, timeout: float = 180) -> None:
        """The webserver answers and every code location has loaded the definitions."""
        started = time.monotonic()
        wait_until(lambda: self._alive() or self._get("/server_info"), timeout, "dagster dev /server_info")
        wait_until(self._location_loaded, timeout - (time.monotonic() - started), "the code location")

    def stop(self, grace: float = 120) -> None:
        """SIGINT to the process group, SIGKILL whatever is left after ``grace`` s; waits until none is."""
        if self.process is None:
            return
        session = self.process.pid
        if self.process.poll() is None:
            os.killpg(session, signal.SIGINT)
        try:
            self.process.wait(timeout=grace)
            wait_until(lambda: not session_pids(session), 10, "dagster dev's children to exit")
        except (subprocess.TimeoutExpired, TimeoutError):
            self.killed = session_pids(session)
            for pid in self.killed:  # by pid: a child may have left the process group, not the session
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            wait_until(lambda: not session_pids(session), 30, "killed processes to disappear")

    @property
    def session_id(self) -> int:
        return self.process.pid


@contextmanager
def chromium(profile_dir: Path) -> Iterator:
    """A headless Chromium driven by Selenium, with a fresh profile; quit (and checked gone) on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "--window-size={},{}".format(*WINDOW)):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        wait_until(lambda: not pids_with_argument(str(profile_dir)), 30, "Chromium to exit")


def page_text(driver) -> str:
    return driver.execute_script("return document.body ? document.body.innerText : ''")


def wait_for_texts(driver, texts: list[str], timeout: float = 90, absent: tuple[str, ...] = ()) -> str:
    """Wait until the page shows every one of ``texts`` and none of ``absent``; the page text."""

    def shown() -> str | None:
        text = page_text(driver)
        return text if all(t in text for t in texts) and not any(t in text for t in absent) else None

    try:
        return wait_until(shown, timeout, f"{texts} on {driver.current_url}")
    except TimeoutError as error:
        text = page_text(driver)
        missing = [t for t in texts if t not in text] + [f"no {t!r}" for t in absent if t in text]
        raise AssertionError(f"{error}; missing {missing}; the page shows:\n{text[:3000]}") from None


# From an asset's link, climb to the largest ancestor linking to no other asset: its catalog row.
_ROW_OF_LINK = """
const link = document.querySelector(`a[href$="/assets/${arguments[0]}"]`);
if (!link) return null;
const only = (node) => [...node.querySelectorAll('a[href*="/assets/"]')].every((a) => a.href === link.href);
let row = link;
while (row.parentElement && only(row.parentElement)) row = row.parentElement;
return row.innerText;
"""


def catalog_row(driver, key: str) -> str | None:
    """The text of asset ``key``'s row in the catalog (name, description, location, group, status)."""
    return driver.execute_script(_ROW_OF_LINK, key)


def wait_for_rows(driver, keys: list[str], status: str, timeout: float = 90) -> dict[str, str]:
    """Wait until the catalog row of every key shows ``status`` (e.g. 'Materialized'); the rows' text."""

    def rows() -> dict[str, str] | None:
        found = {key: catalog_row(driver, key) or "" for key in keys}
        return found if all(status in row.split("\n") for row in found.values()) else None

    try:
        return wait_until(rows, timeout, f"every row to show {status!r} on {driver.current_url}")
    except TimeoutError as error:
        found = {key: catalog_row(driver, key) for key in keys}
        raise AssertionError(f"{error}; rows: {found}") from None


def metadata_value(driver, key: str) -> str:
    """The value cell of the metadata table row whose key is ``key``, as rendered text."""
    from selenium.webdriver.common.by import By

    cell = driver.find_element(By.XPATH, f"//tr[td[1][normalize-space()='{key}']]/td[last()]")
    return driver.execute_script("return arguments[0].innerText", cell)  # also what is scrolled away


def folded_markdown(driver, key: str, timeout: float = 30) -> str:
    """The text of a metadata row's Markdown, opening it as a person would when the UI folds a long
    one behind its "Show Markdown" button (and closing the dialog again)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    shown = metadata_value(driver, key)
    if "Show Markdown" not in shown:
        return shown
    cell = driver.find_element(By.XPATH, f"//tr[td[1][normalize-space()='{key}']]/td[last()]")
    cell.find_element(By.XPATH, ".//*[contains(text(), 'Show Markdown')]").click()

    def shown_dialog(d):
        return next((x for x in d.find_elements(By.CSS_SELECTOR, "[role=dialog]") if x.is_displayed()), None)

    dialog = WebDriverWait(driver, timeout).until(shown_dialog)
    text = driver.execute_script("return arguments[0].innerText", dialog)
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    return text


def scroll_to_metadata(driver, key: str) -> None:
    """Bring a metadata row to the middle of the window, for a screenshot a person can read."""
    from selenium.webdriver.common.by import By

    row = driver.find_element(By.XPATH, f"//tr[td[1][normalize-space()='{key}']]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)


def dismiss_dialogs(driver, timeout: float = 15) -> None:
    """Close Dagster's first-visit 'Join the community' dialog if it is up, as a person would."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def dialogs() -> list:
        try:
            return [d for d in driver.find_elements(By.CSS_SELECTOR, "[role=dialog]") if d.is_displayed()]
        except StaleElementReferenceException:  # closed while we looked
            return dialogs()

    for dialog in dialogs():
        for button in dialog.find_elements(By.XPATH, ".//button[normalize-space()='Skip']"):
            button.click()
    wait_until(lambda: not dialogs(), timeout, "dialogs to close")
