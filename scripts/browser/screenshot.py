#!/usr/bin/env python3
"""Takes the console screenshot of the README (docs/console.png): a hub with the fixture and
server-everything, the Servers tab, then a tool run. Usage (after scripts/setup-test-peers.sh and
a build): $MCP_HUB_PYTHON scripts/browser/screenshot.py docs/console.png"""

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import browser_test as bt  # noqa: E402


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    work = Path(tempfile.mkdtemp(prefix="mcp-hub-shot-"))
    (work / "home").mkdir()
    cfg = work / "servers.json"
    cfg.write_text(json.dumps({"mcpServers": {
        "everything": {"command": bt.NODE, "args": [bt.EVERYTHING], "description": "Reference server with every MCP feature"},
        "fixture": {"command": bt.FIXTURE, "description": "The workspace's test server"},
        "remote-docs": {"url": "http://127.0.0.1:9/mcp", "description": "A remote server that is down"},
    }}))
    hub = bt.Hub(cfg, work / "home")
    d = bt.browser(work / "profile")
    try:
        d.set_window_size(1280, 800)
        d.get(hub.base + "/ui/")
        c = bt.Console(d, hub)
        c.one("#token-input").send_keys(bt.TOKEN)
        c.one("#token-form button[type=submit]").click()
        c.wait_status("everything", "connected")
        c.wait_status("fixture", "connected")
        bt.wait_until("remote-docs to fail", lambda: c.status("remote-docs") == "disconnected")
        time.sleep(1.5)
        c.tab("tools")
        c.one("#tool-search").send_keys("echo")
        c.one('#tool-list li[data-server="everything"][data-tool="echo"]').click()
        c.one('#tool-detail [data-field="message"] input').send_keys("Hello from the console")
        c.one('#tool-detail button[data-action="run"]').click()
        bt.wait_until("the result", lambda: c.css('#tool-detail [data-role="tool-result"]'))
        d.save_screenshot(str(out.with_name(out.stem + "-tools.png")))
        c.tab("servers")
        d.save_screenshot(str(out))
        print(out)
        return 0
    finally:
        d.quit()
        hub.close()


if __name__ == "__main__":
    sys.exit(main())
