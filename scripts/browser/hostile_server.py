#!/usr/bin/env python3
"""A stdio MCP server (Python `mcp` SDK) whose texts are hostile HTML: the console must show them
as text. Used by scripts/browser_test.py; it also answers with an image, for the result view."""

from mcp.server.mcpserver import MCPServer
from mcp.types import ImageContent, TextContent

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>not bold</b>'
# A 1x1 red PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="

server = MCPServer("hostile", instructions=HOSTILE)


@server.tool(name="html_echo", description="Echoes its text. " + HOSTILE)
def html_echo(text: str) -> list:
    return [TextContent(type="text", text=HOSTILE + " " + text), ImageContent(type="image", data=PNG, mimeType="image/png")]


if __name__ == "__main__":
    server.run()
