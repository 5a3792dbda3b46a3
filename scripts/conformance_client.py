#!/usr/bin/env python3
"""Client-mode conformance driver: puts the hub in front of a conformance scenario's server.

The conformance runner calls `<command> <server-url>` (with MCP_CONFORMANCE_SCENARIO and, for
scenarios with credentials, MCP_CONFORMANCE_CONTEXT). This script:
  1. writes a config with that URL as the hub's only upstream (`s`), with the settings a user would
     write for that kind of server: `oauth` client settings for the interactive flow, or an `auth`
     grant (client credentials with a secret or a private key, a workload JWT, an enterprise ID
     token) for the machine-to-machine scenarios (the scenario name says which, as it does for the
     suite's own reference client);
  2. starts `mcp-hub` ($MCP_HUB_BIN) on port 0 with private XDG directories;
  3. completes OAuth headlessly whenever the server is `unauthorized`: it opens the
     `authorizationUrl` like a browser would (the scenario's authorization server redirects at
     once) and delivers the redirect to the hub's own callback route;
  4. connects to the hub's /mcp with the Python `mcp` SDK (declaring elicitation, answering with
     the schema's defaults, as SEP-1034 clients do) and calls the upstream's first tool through
     the hub; a step-up (the server refusing the call) is authorized again, at most 3 times.
     For `sep-2322-client-request-state` it calls every `test_mrtr_*` tool in turn; for
     `http-custom-headers` it calls the annotated tools with values that need Base64 and a null.
     For `json-schema-2020-12-preservation` it echoes the focal tool's inputSchema, as listed by
     the hub, back through the echo tool (what reaches the upstream is what the hub preserved).
     For the skills scenarios (`sep-2640-client-*`) it is a host using skills through the hub: it
     lists them, and (except in `no-prefetch`, where nothing calls for a skill) loads the first
     skill's SKILL.md and, if that read succeeds, the files the skill lists. The verification the
     scenarios test (digest, size, frontmatter against the listed entry) is the hub's: a file that
     fails it is refused by the hub, so the driver never gets to the supporting files.
  5. audits every channel the hub has for leaked credentials: it runs at TRACE, and its stderr,
     its log file, everything /api/events sent and the answers of the REST API are searched for
     the scenario's client secrets, private key, ID token and workload JWTs, the tokens and secrets
     in the hub's token store, its DPoP key, and any JWT at all (`eyJ`, the start of every
     compact JWS: assertions, ID-JAGs, DPoP proofs). A hit fails the run, naming the channel and
     the kind of credential, never the value.
Exit 0 on success.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import mcp
import mcp.types as types
from mcp import Client

HUB = os.environ.get("MCP_HUB_BIN", "mcp-hub")
MAX_AUTHORIZATIONS = 3


def log(*a) -> None:
    print("[driver]", *a, file=sys.stderr, flush=True)


def secret_file(tmp: str, name: str, value: str) -> str:
    path = os.path.join(tmp, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return path


def server_entry(upstream: str, scenario: str, ctx: dict, tmp: str) -> dict:
    """The config entry a user would write for this scenario's server."""
    entry: dict = {"url": upstream}
    if scenario.startswith("auth/client-credentials-"):
        auth = {"type": "client_credentials", "client_id": ctx["client_id"]}
        if ctx.get("private_key_pem"):
            auth["private_key_file"] = secret_file(tmp, "client-key.pem", ctx["private_key_pem"])
            if ctx.get("signing_algorithm"):
                auth["signing_algorithm"] = ctx["signing_algorithm"]
        else:
            # From the environment, as a user would keep it out of the file.
            auth["client_secret"] = "${env:CONFORMANCE_CLIENT_SECRET}"
        entry["auth"] = auth
    elif scenario in ("auth/cross-app-access-complete-flow", "auth/enterprise-managed-authorization"):
        entry["auth"] = {
            "type": "enterprise_managed",
            "client_id": ctx["client_id"],
            "client_secret": ctx["client_secret"],
            "idp_token_endpoint": ctx["idp_token_endpoint"],
            "idp_client_id": ctx["idp_client_id"],
            "id_token_file": secret_file(tmp, "id-token", ctx["idp_id_token"]),
        }
    elif scenario == "auth/wif-jwt-bearer":
        entry["auth"] = {
            "type": "jwt_bearer",
            "client_id": ctx["client_id"],
            # A projected service account token, as a platform would mount it.
            "assertion_file": secret_file(tmp, "workload-token", ctx["valid_jwt"]),
        }
    else:
        oauth = {"client_metadata_url": "https://conformance-test.local/client-metadata.json"}
        if ctx.get("client_id"):
            oauth["client_id"] = ctx["client_id"]
        if ctx.get("client_secret"):
            oauth["client_secret"] = "${env:CONFORMANCE_CLIENT_SECRET}"
        entry["oauth"] = oauth
    return entry


class Hub:
    def __init__(self, upstream: str) -> None:
        ctx = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
        scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
        self.tmp = tempfile.mkdtemp(prefix="mcp-hub-conformance-")
        cfg = os.path.join(self.tmp, "servers.json")
        with open(cfg, "w") as f:
            json.dump({"mcpServers": {"s": server_entry(upstream, scenario, ctx, self.tmp)}}, f)
        env = dict(os.environ, HOME=self.tmp, XDG_DATA_HOME=self.tmp + "/data", XDG_STATE_HOME=self.tmp + "/state",
                   XDG_CACHE_HOME=self.tmp + "/cache", XDG_CONFIG_HOME=self.tmp + "/config",
                   CONFORMANCE_CLIENT_SECRET=ctx.get("client_secret") or "")
        self.ctx = ctx
        self.stderr_path = os.path.join(self.tmp, "hub-stderr.log")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([HUB, "--port", "0", "--config", cfg, "--log-level", "trace"],
                                     stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        line = self.proc.stdout.readline().decode()
        addr = json.loads(line)["addr"]
        self.base = "http://" + addr
        self.authorizations = 0
        self.events = bytearray()
        self.answers: list[tuple[str, bytes]] = []
        host, port = addr.rsplit(":", 1)
        threading.Thread(target=self._collect_events, args=(host, int(port)), daemon=True).start()

    def _collect_events(self, host: str, port: int) -> None:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=120)
            self._events_conn = conn
            conn.request("GET", "/api/events", headers={"accept": "text/event-stream"})
            r = conn.getresponse()
            while True:
                chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
                if not chunk:
                    return
                self.events.extend(chunk)
        except Exception:  # noqa: BLE001 - the stream ends when the hub stops
            return

    def close(self) -> None:
        # Hang up the event stream first, so the hub's shutdown has no stream to drain.
        conn = getattr(self, "_events_conn", None)
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.stderr.close()

    def collect_answers(self) -> None:
        """The REST answers a user or editor plugin would see about the server (reads only: an
        authorize request would start a new flow against the scenario's server)."""
        for method, path, body in [("GET", "/api/servers", None), ("GET", "/api/health", None),
                                   ("POST", "/api/servers/info", {"server_name": "s"})]:
            req = urllib.request.Request(self.base + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=20) as r:
                    self.answers.append((f"{method} {path}", r.read()))
            except urllib.error.HTTPError as e:
                self.answers.append((f"{method} {path}", e.read()))

    def credentials(self) -> list[tuple[str, str]]:
        """(kind, value) of every credential this run involved."""
        found: list[tuple[str, str]] = []
        for k, v in self.ctx.items():
            # Credentials by name (secrets, keys, tokens, JWTs); not ids, issuers or endpoints.
            credential = any(w in k for w in ("secret", "private", "token", "jwt", "assertion", "password")) \
                and not k.endswith(("_endpoint", "_url", "issuer"))
            if isinstance(v, str) and credential:
                found += [(f"context {k}", line) for line in v.splitlines() if "-----" not in line]
        store = os.path.join(self.tmp, "data", "mcp-hub", "oauth-tokens.json")
        if os.path.exists(store):
            with open(store) as f:
                data = json.load(f)
            for t in data.get("tokens", []):
                for k in ("access_token", "refresh_token"):
                    if t.get(k):
                        found.append((f"stored {k}", t[k]))
            for c in data.get("clients", []):
                if c.get("client_secret"):
                    found.append(("registered client_secret", c["client_secret"]))
        key = os.path.join(self.tmp, "data", "mcp-hub", "oauth-dpop-key.pem")
        if os.path.exists(key):
            with open(key) as f:
                found += [("DPoP private key", line) for line in f.read().splitlines() if "-----" not in line]
        return [(k, v) for k, v in found if len(v) >= 8]

    def audit(self) -> list[str]:
        channels: list[tuple[str, bytes]] = [("/api/events", bytes(self.events))] + self.answers
        with open(self.stderr_path, "rb") as f:
            channels.append(("stderr", f.read()))
        log_file = os.path.join(self.tmp, "state", "mcp-hub", "logs", "mcp-hub.log")
        if os.path.exists(log_file):
            with open(log_file, "rb") as f:
                channels.append(("log file", f.read()))
        assert any(b"TRACE" in text or b'"trace"' in text.lower() for _, text in channels), "no trace output"
        leaks = []
        secrets = self.credentials() + [("a JWT (eyJ...)", "eyJ")]
        for channel, text in channels:
            for kind, value in secrets:
                if value.encode() in text:
                    leaks.append(f"{kind} appears in {channel}")
        return leaks

    def api(self, method: str, path: str, body=None):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def server(self) -> dict:
        _, body = self.api("GET", "/api/servers")
        return next(s for s in body["servers"] if s["name"] == "s")

    def authorize(self, url: str) -> None:
        if self.authorizations >= MAX_AUTHORIZATIONS:
            raise SystemExit("too many authorizations")
        self.authorizations += 1
        p = urlsplit(url)
        conn = http.client.HTTPConnection(p.hostname, p.port, timeout=10)
        conn.request("GET", p.path + ("?" + p.query if p.query else ""))
        r = conn.getresponse()
        r.read()
        location = r.getheader("location")
        if r.status not in (301, 302, 303, 307, 308) or not location:
            raise SystemExit(f"the authorization server answered {r.status}")
        c = urlsplit(location)
        conn = http.client.HTTPConnection(c.hostname, c.port, timeout=20)
        conn.request("GET", c.path + ("?" + c.query if c.query else ""))
        r = conn.getresponse()
        r.read()
        log("callback answered", r.status)

    def wait_connected(self) -> dict:
        deadline = time.time() + 30
        while time.time() < deadline:
            s = self.server()
            if s["status"] == "connected":
                return s
            if s["status"] == "unauthorized" and s.get("authorizationUrl"):
                self.authorize(s["authorizationUrl"])
                continue
            if s["status"] == "disconnected" and s.get("error"):
                raise SystemExit(f"the hub gave up on the server: {s['error']}")
            time.sleep(0.05)
        raise SystemExit(f"server never connected: {self.server()}")


def default_of(prop: dict):
    if "default" in prop:
        return prop["default"]
    return None


def sample(prop: dict):
    """A value of the property's type: its default, else something plausible."""
    if "default" in prop:
        return prop["default"]
    return {"number": 1, "integer": 1, "boolean": True, "object": {}, "array": []}.get(prop.get("type"), "x")


async def on_elicit(context, params: types.ElicitRequestParams):
    schema = getattr(params, "requested_schema", None) or {}
    content = {k: default_of(v) for k, v in (schema.get("properties") or {}).items() if default_of(v) is not None}
    return types.ElicitResult(action="accept", content=content)


async def call_first_tool(hub: Hub) -> None:
    async with Client(hub.base + "/mcp", elicitation_callback=on_elicit, read_timeout_seconds=30,
                      client_info=mcp.Implementation(name="conformance-driver", version="1")) as client:
        tools = (await client.list_tools()).tools
        if not tools:
            log("the upstream has no tools")
            return
        echo = next((t for t in tools if t.name.endswith("json_schema_echo")), None)
        focal = next((t for t in tools if t.name.endswith("json_schema_2020_12_tool")), None)
        if echo and focal:
            # The schema as the hub lists it goes back upstream verbatim.
            result = await client.call_tool(echo.name, {"schema": focal.input_schema})
            log("echoed", focal.name, "is_error:", result.is_error)
            return
        custom = next((t for t in tools if t.name.endswith("test_custom_headers")), None)
        if custom:
            # SEP-2243: values the hub must mirror into Mcp-Param-* headers, Base64 where unsafe,
            # and (second tool) a null it must omit.
            unsafe = {"non_ascii_val": "h\u00e9llo", "whitespace_val": " padded ",
                      "leading_space_val": " x", "trailing_space_val": "x ", "internal_space_val": "a b",
                      "control_char_val": "a\u0001b", "crlf_val": "a\r\nb", "tab_val": "\tx"}
            args = {"region": "us-west1", "priority": 5, "verbose": True, "debug": True, "empty_val": "",
                    "method_val": "m", "float_val": 1.5, "query": "q", **unsafe}
            result = await client.call_tool(custom.name, args)
            log("called", custom.name, "is_error:", result.is_error)
            null = next((t for t in tools if t.name.endswith("test_custom_headers_null")), None)
            if null:
                result = await client.call_tool(
                    null.name, {"region": "us-west1", "priority": 1, "verbose": None, "query": "q"})
                log("called", null.name, "is_error:", result.is_error)
            return
        mrtr = [t for t in tools if "test_mrtr_" in t.name]
        if mrtr:
            # SEP-2322: every tool of the scenario, one after the other (the hub answers the
            # server's input requests through this client and retries upstream).
            for tool in mrtr:
                result = await client.call_tool(tool.name, {})
                log("called", tool.name, "is_error:", result.is_error)
            return
        tool = tools[0]
        args = {k: sample(v) for k, v in ((tool.input_schema or {}).get("properties") or {}).items()}
        result = await client.call_tool(tool.name, args)
        log("called", tool.name, "is_error:", result.is_error)


class McpHttp:
    """A minimal Streamable HTTP client for methods the SDK has no call for (`skills/*`)."""

    def __init__(self, url: str) -> None:
        self.url = urlsplit(url)
        self.session = None
        self.next_id = 1
        init = self.call("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                        "clientInfo": {"name": "conformance-driver", "version": "1"}})
        if "result" not in init:
            raise SystemExit(f"initialize failed: {init}")
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, body: dict):
        conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=60)
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if self.session:
            headers["mcp-session-id"] = self.session
            headers["mcp-protocol-version"] = "2025-11-25"
        conn.request("POST", self.url.path, body=json.dumps(body), headers=headers)
        r = conn.getresponse()
        self.session = r.getheader("mcp-session-id") or self.session
        return r.getheader("content-type") or "", r.read().decode()

    def call(self, method: str, params: dict) -> dict:
        rid = self.next_id
        self.next_id += 1
        ctype, text = self.post({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        if ctype.startswith("application/json"):
            return json.loads(text)
        for event in text.split("\n\n"):
            data = "\n".join(l[5:].lstrip() for l in event.splitlines() if l.startswith("data:"))
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            if msg.get("id") == rid:
                return msg
        raise SystemExit(f"no answer to {method}: {text[:300]}")


def use_skills(hub: Hub, scenario: str) -> None:
    client = McpHttp(hub.base + "/mcp")
    listed = client.call("skills/list", {})
    skills = (listed.get("result") or {}).get("skills") or []
    log("skills listed:", [s.get("uri") for s in skills])
    if scenario.endswith("no-prefetch") or not skills:
        return
    entry = skills[0]
    loaded = client.call("resources/read", {"uri": entry["uri"]})
    if "error" in loaded:
        log("the hub refused the skill:", loaded["error"].get("message"))
        return
    for f in entry.get("resources") if isinstance(entry.get("resources"), list) else []:
        if f.get("uri") != entry["uri"]:
            r = client.call("resources/read", {"uri": f["uri"]})
            log("read", f["uri"], "ok" if "result" in r else r.get("error"))


def run(hub: Hub) -> int:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    if scenario.startswith("sep-2640-client-"):
        hub.wait_connected()
        use_skills(hub, scenario)
        return 0
    for _ in range(MAX_AUTHORIZATIONS + 1):
        hub.wait_connected()
        failed = False
        try:
            asyncio.run(call_first_tool(hub))
        except Exception as exc:  # noqa: BLE001 - a refused call may mean step-up; see below
            log("call failed:", type(exc).__name__, exc)
            failed = True
        # A refused call (step-up) turns the server `unauthorized` once the hub has run
        # discovery for the new authorization: give it time when the call failed.
        deadline = time.time() + (15 if failed else 0)
        while True:
            if hub.server()["status"] == "unauthorized":
                break
            if time.time() >= deadline:
                return 0
            time.sleep(0.05)
        # step-up: authorize again and retry
    return 1


def main() -> int:
    hub = Hub(sys.argv[-1])
    try:
        try:
            code = run(hub)
        finally:
            hub.collect_answers()
    finally:
        hub.close()
    try:
        leaks = hub.audit()
    finally:
        shutil.rmtree(hub.tmp, ignore_errors=True)  # it holds tokens and keys
    for leak in leaks:
        log("LEAK:", leak)
    return 1 if leaks else code


if __name__ == "__main__":
    sys.exit(main())
