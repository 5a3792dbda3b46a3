#!/usr/bin/env python3
"""Conformance client-mode driver for the hub: starts `mcp-hub` ($MCP_HUB_BIN) with the scenario's
server (the last argument) as its only upstream, completes OAuth headlessly through the hub's REST
API (follows `authorizationUrl` without redirects, then calls the hub's own callback with the
`Location`), waits for `connected`, and calls the first tool, re-authorizing on step-up.

  NODE_OPTIONS=--require=.../loopback-only.cjs MCP_HUB_BIN=target/debug/mcp-hub \
    $MCP_HUB_NODE22 $MCP_HUB_CONFORMANCE client --suite auth \
    --command "python3 crates/auth/conformance/hub_client.py"

ADD_SERVER_NAME=1 appends `&server_name=s` to the callback URL, for an API that still requires
that Node-hub parameter (the hub finds the server from `state`)."""
import json, os, subprocess, sys, tempfile, time, urllib.request, urllib.error, http.client
from urllib.parse import urlsplit

HUB = os.environ.get("MCP_HUB_BIN", "mcp-hub")
url = sys.argv[-1]
ctx = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
oauth = {"client_metadata_url": "https://conformance-test.local/client-metadata.json"}
for k in ("client_id", "client_secret"):
    if ctx.get(k): oauth[k] = ctx[k]
tmp = tempfile.mkdtemp(prefix="hub-conf-")
cfg = os.path.join(tmp, "config.json")
json.dump({"mcpServers": {"s": {"url": url, "oauth": oauth}}}, open(cfg, "w"))
env = dict(os.environ, XDG_DATA_HOME=tmp + "/data", XDG_STATE_HOME=tmp + "/state",
           XDG_CONFIG_HOME=tmp + "/config", XDG_CACHE_HOME=tmp + "/cache", HOME=tmp)
hub = subprocess.Popen([HUB, "--port", "0", "--config", cfg], stdout=subprocess.PIPE, env=env)
try:
    line = hub.stdout.readline().decode()
    info = json.loads(line)
    base = info.get("url") or "http://%s" % (info.get("address") or info.get("addr"))
    base = base.rstrip("/")
    if base.endswith("/mcp"): base = base[:-4]
    def api(method, path, body=None):
        req = urllib.request.Request(base + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=20) as r: return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e: return e.code, json.loads(e.read() or b"null")
    def no_redirect_get(u):
        p = urlsplit(u); c = http.client.HTTPConnection(p.hostname, p.port, timeout=10)
        c.request("GET", p.path + ("?" + p.query if p.query else "")); r = c.getresponse(); r.read()
        return r.status, r.getheader("location")
    auths = 0
    def server():
        _, body = api("GET", "/api/servers")
        return next(s for s in body["servers"] if s["name"] == "s")
    def wait_connected():
        global auths
        deadline = time.time() + 20
        while time.time() < deadline:
            s = server()
            if s["status"] == "connected": return s
            if s["status"] == "unauthorized" and s.get("authorizationUrl"):
                if auths >= 3: sys.exit("too many authorizations")
                auths += 1
                st, loc = no_redirect_get(s["authorizationUrl"])
                if st not in (301, 302, 303, 307, 308) or not loc: sys.exit("authorize answered %s" % st)
                if os.environ.get("ADD_SERVER_NAME"): loc += "&server_name=s"
                try:
                    urllib.request.urlopen(loc, timeout=20).read()   # the hub's own callback
                except urllib.error.HTTPError as e:
                    sys.exit("callback %s answered %s: %s" % (loc, e.code, e.read()[:500]))
            elif s["status"] not in ("connecting", "unauthorized", "disconnected"):
                sys.exit("server status %s: %s" % (s["status"], s.get("error")))
            time.sleep(0.1)
        sys.exit("not connected: %s" % json.dumps(server()))
    s = wait_connected()
    tools = s["capabilities"]["tools"]
    for attempt in range(4):
        if not tools: break
        st, body = api("POST", "/api/servers/tools", {"server_name": "s", "tool": tools[0]["name"], "arguments": {}})
        if st == 200: break
        time.sleep(0.3)
        s = wait_connected()
    else:
        sys.exit("tool call failed: %s" % json.dumps(body))
finally:
    hub.terminate()
    try: hub.wait(5)
    except Exception: hub.kill()
