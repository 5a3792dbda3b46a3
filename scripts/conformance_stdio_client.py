#!/usr/bin/env python3
"""Client-mode conformance driver through the stdio door: like conformance_client.py, but the
Python SDK spawns `mcp-hub stdio --config FILE` (as a desktop client would) and speaks MCP over
its stdin/stdout. That process starts the hub; its HTTP side (found in the workspace cache, as a
second `mcp-hub stdio` finds it) serves the OAuth callback, completed headlessly as in
conformance_client.py. The upstream's first tool is then called through stdio.
Exit 0 on success.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import mcp
from mcp import Client
from mcp.client.stdio import StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conformance_client as base  # noqa: E402

log = base.log


class StdioHub(base.Hub):
    """The REST side of the hub that `mcp-hub stdio` started (no process of its own)."""

    def __init__(self, upstream: str) -> None:  # noqa: D107 - replaces the parent's, which spawns a hub
        ctx = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
        oauth = {"client_metadata_url": "https://conformance-test.local/client-metadata.json"}
        for k in ("client_id", "client_secret"):
            if ctx.get(k):
                oauth[k] = ctx[k]
        self.tmp = tempfile.mkdtemp(prefix="mcp-hub-conformance-stdio-")
        self.cfg = os.path.join(self.tmp, "servers.json")
        with open(self.cfg, "w") as f:
            json.dump({"mcpServers": {"s": {"url": upstream, "oauth": oauth}}}, f)
        self.env = {"HOME": self.tmp, "XDG_DATA_HOME": self.tmp + "/data", "XDG_STATE_HOME": self.tmp + "/state",
                    "XDG_CACHE_HOME": self.tmp + "/cache", "XDG_CONFIG_HOME": self.tmp + "/config"}
        self.base = None
        self.authorizations = 0

    def params(self) -> StdioServerParameters:
        return StdioServerParameters(command=base.HUB, args=["stdio", "--config", self.cfg], env=self.env)

    def find(self) -> None:
        """The hub's HTTP address from the workspace cache."""
        cache = Path(self.tmp) / "state" / "mcp-hub" / "workspaces.json"
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                entries = json.loads(cache.read_text())
                for port, e in entries.items():
                    if e.get("config_files") == [os.path.realpath(self.cfg)]:
                        self.base = f"http://127.0.0.1:{e.get('port', port)}"
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise SystemExit("mcp-hub stdio registered no hub in the workspace cache")

    def close(self) -> None:
        pass


async def session(hub: StdioHub) -> bool:
    """One stdio session: authorize as needed, call the first tool. True when done."""
    async with Client(hub.params(), elicitation_callback=base.on_elicit, read_timeout_seconds=30,
                      client_info=mcp.Implementation(name="conformance-stdio-driver", version="1")) as client:
        hub.find()
        for _ in range(base.MAX_AUTHORIZATIONS + 1):
            await asyncio.to_thread(hub.wait_connected)
            tools = []
            for _ in range(100):
                tools = (await client.list_tools()).tools
                if tools or (await asyncio.to_thread(hub.server))["status"] != "connected":
                    break
                await asyncio.sleep(0.05)
            if not tools:
                if (await asyncio.to_thread(hub.server))["status"] == "unauthorized":
                    continue  # authorize (again) and retry
                log("the upstream has no tools (listed through mcp-hub stdio)")
                return True
            tool = tools[0]
            args = {k: base.default_of(v) or "x" for k, v in ((tool.input_schema or {}).get("properties") or {}).items()}
            try:
                result = await client.call_tool(tool.name, args)
                log("called", tool.name, "through mcp-hub stdio; is_error:", result.is_error)
                failed = False
            except Exception as exc:  # noqa: BLE001 - a refused call may mean step-up
                log("call failed:", type(exc).__name__, exc)
                failed = True
            # A refused call (step-up) turns the server `unauthorized` just after it fails.
            deadline = time.time() + (5 if failed else 0)
            while True:
                if (await asyncio.to_thread(hub.server))["status"] == "unauthorized":
                    break
                if time.time() >= deadline:
                    return True
                await asyncio.sleep(0.05)
    return False


def main() -> int:
    hub = StdioHub(sys.argv[-1])
    return 0 if asyncio.run(session(hub)) else 1


if __name__ == "__main__":
    sys.exit(main())
