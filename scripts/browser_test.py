#!/usr/bin/env python3
"""Drives the web console (/ui) in a real headless Chromium (Selenium) against the real mcp-hub
binary and real upstreams: the workspace's fixture server, server-everything, a Python SDK server
with hostile HTML in its texts, a server that cannot start, and (when a URL is given as the last
argument, as the conformance suite's client runner does) an OAuth-protected server with its
authorization server.

Checks, each with a screenshot in $MCP_HUB_SCREENSHOTS:
  the token prompt (the hub runs with --token); servers coming up live, including one added to the
  config while the page is open; stop/start from the console and from outside, seen without a
  reload; hostile HTML shown as text; a tool run from its form (text and image results); an API
  error shown as given; a resource read; a prompt got with arguments; the log filtered by level
  and server; workspaces and the merged config with secrets redacted; an OAuth authorization
  completed from the "Authorize" button.
Exit 0 when every check passed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

ROOT = Path(__file__).resolve().parent.parent
HUB = os.environ.get("MCP_HUB_BIN") or str(ROOT / "target/debug/mcp-hub")
FIXTURE = os.environ.get("MCP_HUB_FIXTURE") or str(Path(HUB).with_name("mcp-hub-fixture"))
PYTHON = os.environ.get("MCP_HUB_PYTHON") or sys.executable
NODE = os.environ.get("MCP_HUB_NODE22")
EVERYTHING = os.environ.get("MCP_HUB_SERVER_EVERYTHING")
SHOTS = Path(os.environ.get("MCP_HUB_SCREENSHOTS") or tempfile.mkdtemp(prefix="mcp-hub-console-"))
TOKEN = "console-test-token"
SECRET = "hunter2-never-shown"
WAIT = 45.0
HOSTILE_CONFIG = '<i id="cfg-xss">config description</i>'
BROKEN_COMMAND = '/nonexistent/<b id="err-xss">bold</b>'


def log(*a) -> None:
    print("[browser]", *a, file=sys.stderr, flush=True)


class Failed(Exception):
    pass


def wait_until(what: str, fn, timeout: float = WAIT):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except (NoSuchElementException, StaleElementReferenceException, WebDriverException) as e:
            last = e
        time.sleep(0.1)
    raise Failed(f"timed out waiting for {what}" + (f" ({last.__class__.__name__})" if last else ""))


class Hub:
    def __init__(self, cfg_path: Path, home: Path) -> None:
        env = dict(os.environ, HOME=str(home), XDG_STATE_HOME=str(home / "state"),
                   XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "cache"),
                   XDG_CONFIG_HOME=str(home / "config"), MCP_HUB_LOG="debug")
        env.pop("MCP_HUB_TOKEN", None)
        self.stderr = open(home / "hub.log", "w")
        self.proc = subprocess.Popen([HUB, "--port", "0", "--config", str(cfg_path), "--watch", "--token", TOKEN],
                                     stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        line = self.proc.stdout.readline().decode()
        if not line:
            raise Failed("the hub printed no listening line")
        self.port = json.loads(line)["port"]
        self.base = f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, body=None):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def browser(profile: Path) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1440,1000", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=opts)


class Console:
    def __init__(self, driver: webdriver.Chrome, hub: Hub) -> None:
        self.d = driver
        self.hub = hub
        self.step = 0

    def shot(self, name: str) -> None:
        self.step += 1
        path = SHOTS / f"{self.step:02d}-{name}.png"
        self.d.save_screenshot(str(path))
        log("screenshot", path)

    def css(self, sel: str):
        return self.d.find_elements(By.CSS_SELECTOR, sel)

    def one(self, sel: str):
        return wait_until(f"element {sel}", lambda: (self.css(sel) or [None])[0])

    def tab(self, name: str) -> None:
        self.click(f'#tabs button[data-tab="{name}"]')
        wait_until(f"tab {name}", lambda: self.one(f"#tab-{name}").is_displayed())

    def select(self, sel: str, value: str) -> None:
        def attempt():
            Select(self.one(sel)).select_by_value(value)
            return True
        try:
            wait_until(f"option {value} of {sel}", attempt, 10)
        except Failed:
            opts = self.d.execute_script("return [...document.querySelectorAll(arguments[0] + ' option')].map(o => o.value)", sel)
            raise Failed(f"{sel} has no option {value}: {opts}")

    def status(self, server: str) -> str | None:
        return self.d.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
            f'tr[data-server="{server}"] [data-role="status"]')

    def wait_status(self, server: str, want: str, timeout: float = WAIT) -> None:
        wait_until(f"{server} to show {want} (shows {self.status(server)})", lambda: self.status(server) == want, timeout)

    def click(self, sel: str) -> None:
        """Clicks, retrying when the element was re-rendered (the tables follow live events)."""
        def attempt():
            self.one(sel).click()
            return True
        wait_until(f"a click on {sel}", attempt)

    def text(self, sel: str) -> str:
        return wait_until(f"text of {sel}", lambda: self.d.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null", sel))

    def click_action(self, server: str, action: str) -> None:
        self.click(f'tr[data-server="{server}"] button[data-action="{action}"]')

    def not_reloaded(self) -> None:
        if self.d.execute_script("return window.__sameDocument") != 1:
            raise Failed("the page was reloaded")

    def no_injection(self) -> None:
        if self.d.execute_script("return window.__pwned") is not None:
            raise Failed("hostile HTML ran script")
        for sel in ("img[src='x']", "#cfg-xss", "#err-xss", "script:not([src])"):
            if self.css(sel):
                raise Failed(f"hostile HTML became an element: {sel}")


def write_config(path: Path, upstream: str | None, extra: bool) -> None:
    servers = {
        "fx": {"command": FIXTURE, "args": ["--name", "fixture"], "env": {"SECRET_TOKEN": SECRET, "PLAIN": "${env:HOME}"}},
        "hostile": {"command": PYTHON, "args": [str(ROOT / "scripts/browser/hostile_server.py")],
                    "description": HOSTILE_CONFIG},
        "broken": {"command": BROKEN_COMMAND},
    }
    if NODE and EVERYTHING:
        servers["everything"] = {"command": NODE, "args": [EVERYTHING]}
    if upstream:
        servers["oauth"] = {"url": upstream, "oauth": {"client_metadata_url": "https://conformance-test.local/client-metadata.json"}}
    if extra:
        servers["late"] = {"command": FIXTURE, "args": ["--name", "late"]}
    tmp = path.with_suffix(".tmp")
    profiles = {"fixture-only": {"description": "the fixture's echo", "servers": {"fx": {"tools": {"include": ["echo"]}}}}}
    tmp.write_text(json.dumps({"mcpServers": servers, "profiles": profiles}, indent=2))
    tmp.replace(path)


def run(c: Console, cfg: Path, upstream: str | None) -> None:
    d = c.d
    # 1. The token prompt.
    d.get(c.hub.base + "/ui/")
    dialog = c.one("#token-dialog")
    wait_until("the token dialog", lambda: dialog.get_attribute("open") is not None)
    c.one("#token-input").send_keys("wrong-token")
    c.click("#token-form button[type=submit]")
    wait_until("the refusal", lambda: "refused" in c.one("#token-error").text)
    c.shot("token-refused")
    c.one("#token-input").clear()
    c.one("#token-input").send_keys(TOKEN)
    c.click("#token-form button[type=submit]")
    wait_until("the dialog to close", lambda: dialog.get_attribute("open") is None)
    d.execute_script("window.__sameDocument = 1")
    stored = d.execute_script("return sessionStorage.getItem('mcp-hub-token')")
    if stored != TOKEN or d.execute_script("return localStorage.length") != 0:
        raise Failed("the token is not kept in sessionStorage only")

    # 2. Servers come up live.
    wait_until("live events", lambda: "live" in c.one("#live").text)
    for s in ["fx", "hostile"] + (["everything"] if NODE and EVERYTHING else []):
        c.wait_status(s, "connected")
    c.wait_status("broken", "disconnected")
    write_config(cfg, upstream, extra=True)
    c.wait_status("late", "connected")
    c.not_reloaded()
    c.shot("servers-live")

    # 3. Hostile HTML is text.
    desc = c.text('tr[data-server="hostile"] [data-role="description"]')
    if desc != HOSTILE_CONFIG:
        raise Failed(f"the description was not shown verbatim: {desc!r}")
    err = c.text('tr[data-server="broken"] [data-role="error"]')
    if "<b id=\"err-xss\">bold</b>" not in err:
        raise Failed(f"the error was not shown verbatim: {err!r}")
    c.no_injection()

    # 4. Stop and start from the console, then from outside; the page follows without reload.
    c.click_action("fx", "stop")
    c.wait_status("fx", "disconnected")
    c.shot("fx-stopped")
    c.click_action("fx", "start")
    c.wait_status("fx", "connected")
    c.hub.api("POST", "/api/servers/stop", {"server_name": "late"})
    c.wait_status("late", "disconnected")
    c.shot("late-stopped-from-outside")
    c.hub.api("POST", "/api/servers/start", {"server_name": "late"})
    c.wait_status("late", "connected")
    c.not_reloaded()

    # 5. A tool from its form: text, then hostile text and an image.
    c.tab("tools")
    c.one("#tool-search").send_keys("echo")
    c.click('#tool-list li[data-server="fx"][data-tool="echo"]')
    c.one('#tool-detail [data-field="text"] input').send_keys("hello from the console")
    c.click('#tool-detail button[data-action="run"]')
    wait_until("the tool result", lambda: "hello from the console" in c.one('#tool-detail [data-role="tool-result"]').text)
    c.shot("tool-result")
    c.one("#tool-search").clear()
    c.one("#tool-search").send_keys("html")
    c.click('#tool-list li[data-server="hostile"][data-tool="html_echo"]')
    tdesc = c.one('#tool-detail [data-role="description"]').text
    if "<script>window.__pwned=2</script>" not in tdesc:
        raise Failed(f"the tool description was not shown verbatim: {tdesc!r}")
    c.one('#tool-detail [data-field="text"] input').send_keys("x")
    c.click('#tool-detail button[data-action="run"]')
    img = c.one('#tool-detail [data-role="tool-result"] img[data-role="image"]')
    wait_until("the image to load", lambda: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) == 1)
    c.no_injection()
    c.shot("tool-hostile-and-image")
    # An API error as the API gives it: a required argument left out.
    c.one("#tool-search").clear()
    c.one("#tool-search").send_keys("add")
    c.click('#tool-list li[data-server="fx"][data-tool="add"]')
    c.click('#tool-detail [data-role="raw-toggle"]')
    raw = c.one('#tool-detail [data-role="raw-args"]')
    raw.clear()
    raw.send_keys('{"a": "not a number"')
    c.click('#tool-detail button[data-action="run"]')
    wait_until("the local JSON error", lambda: c.css('#tool-detail [data-role="error"]'))
    c.one("#tool-search").clear()
    c.one("#tool-search").send_keys("echo")
    c.click('#tool-list li[data-server="fx"][data-tool="echo"]')
    c.hub.api("POST", "/api/servers/stop", {"server_name": "fx"})
    c.wait_status("fx", "disconnected")
    c.click('#tool-detail button[data-action="run"]')
    wait_until("the API error", lambda: "SERVER_NOT_CONNECTED" in c.one('#tool-detail [data-role="error"]').text
               or "not connected" in c.one('#tool-detail [data-role="error"]').text.lower())
    c.shot("tool-api-error")
    c.hub.api("POST", "/api/servers/start", {"server_name": "fx"})

    # 6. A resource.
    c.tab("resources")
    c.click('#resource-list li[data-server="fx"][data-uri="test://static-text"]')
    c.click('#resource-detail button[data-action="read"]')
    wait_until("the resource text", lambda: c.one('#resource-detail [data-role="resource-result"] [data-role="text"]').text.strip())
    c.shot("resource")

    # 7. A prompt with arguments.
    c.tab("prompts")
    c.click('#prompt-list li[data-server="fx"][data-prompt="test_prompt_with_arguments"]')
    c.one('#prompt-detail [data-field="arg1"] input').send_keys("alpha")
    c.one('#prompt-detail [data-field="arg2"] input').send_keys("<beta>")
    c.click('#prompt-detail button[data-action="get"]')
    wait_until("the prompt", lambda: "arg2='<beta>'" in c.one('#prompt-detail [data-role="prompt-result"]').text)
    c.shot("prompt")

    # 8. The log, filtered by level and by server.
    c.tab("log")
    c.select("#log-level", "debug")
    c.hub.api("POST", "/api/servers/refresh", {"server_name": "late"})
    wait_until("log lines", lambda: len(c.css("#log li")) > 3)
    wait_until("a log line of server late", lambda: c.css('#log li[data-server="late"]'))
    c.select("#log-server", "late")
    lines = c.css("#log li")
    if not lines or any(li.get_attribute("data-server") != "late" for li in lines):
        raise Failed("the server filter let other servers' lines through")
    c.shot("log-server-filter")
    c.select("#log-server", "")
    c.select("#log-level", "warn")
    lines = c.css("#log li")
    if any(li.get_attribute("data-level") not in ("warn", "error") for li in lines):
        raise Failed("the level filter let lower levels through")
    c.shot("log-level-filter")

    # 9. Workspaces and the merged config, redacted.
    c.tab("config")
    c.one(f'#workspaces tr[data-port="{c.hub.port}"]')
    src = c.one('#config .cfg-server[data-server="fx"] [data-role="source"]').text
    if src != str(cfg):
        raise Failed(f"fx's source file is {src!r}, not {cfg}")
    text = c.one("#config").text
    if SECRET in text or SECRET in d.page_source:
        raise Failed("a secret reached the console")
    if "${env:HOME}" not in text:
        raise Failed("a placeholder reference was hidden")
    row = c.one('#profiles tr[data-profile="fixture-only"]').text
    if "/mcp/fixture-only" not in row or "1 tools" not in row:
        raise Failed(f"the profile row shows {row!r}")
    c.shot("config")

    # 10. OAuth: the Authorize button runs the flow in a new tab; the console follows.
    if upstream:
        c.tab("servers")
        c.wait_status("oauth", "unauthorized")
        c.shot("oauth-unauthorized")
        main = d.current_window_handle
        before = set(d.window_handles)
        c.click_action("oauth", "authorize")
        new = wait_until("the authorization tab", lambda: set(d.window_handles) - before)
        d.switch_to.window(new.pop())
        wait_until("the callback page", lambda: "Authorization Successful" in d.find_element(By.TAG_NAME, "body").text)
        c.shot("oauth-callback")
        d.close()
        d.switch_to.window(main)
        c.wait_status("oauth", "connected")
        c.not_reloaded()
        c.shot("oauth-connected")
        # A tool of the protected server, through the console.
        c.tab("tools")
        # Selenium's clear() fires no `input` event, so the list would stay filtered by the last
        # search until something else redraws it; fire the event a user's edit would.
        box = c.one("#tool-search")
        box.clear()
        d.execute_script("arguments[0].dispatchEvent(new Event('input'))", box)
        c.click('#tool-list li[data-server="oauth"]')
        c.click('#tool-detail button[data-action="run"]')
        wait_until("the protected tool's result", lambda: c.css('#tool-detail [data-role="tool-result"]') or c.css('#tool-detail [data-role="error"]'))
        c.shot("oauth-tool")
    c.no_injection()
    c.not_reloaded()
    errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE" and "Content Security Policy" in e.get("message", "")]
    if errors:
        raise Failed(f"CSP violations: {errors}")


def main() -> int:
    upstream = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1].startswith("http") else None
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots: {SHOTS}", file=sys.stderr, flush=True)
    work = Path(tempfile.mkdtemp(prefix="mcp-hub-browser-"))
    cfg = work / "servers.json"
    write_config(cfg, upstream, extra=False)
    home = work / "home"
    home.mkdir()
    hub = Hub(cfg, home)
    driver = None
    try:
        driver = browser(work / "chromium-profile")
        c = Console(driver, hub)
        try:
            run(c, cfg, upstream)
        except Exception as e:  # noqa: BLE001 - any failure gets a screenshot and the hub's log
            c.shot("FAILED")
            log("FAILED:", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            log("hub log tail:\n" + (home / "hub.log").read_text()[-3000:])
            return 1
        log(f"all console checks passed; {c.step} screenshots in {SHOTS}")
        return 0
    finally:
        if driver:
            driver.quit()
        hub.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
