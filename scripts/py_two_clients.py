#!/usr/bin/env python3
"""Two clients of the official Python `mcp` SDK on one hub, at once, on one upstream server.

Each client ("alpha", "bravo") declares sampling, elicitation and roots and answers each of
them with its own name. Both call the upstream's `ask_client` tool concurrently, many rounds, for
sampling, elicitation and roots, with prompts that carry their own name (`secret-<name>-<n>`);
they also call its `log` tool and record every log message they receive.

Checks (each printed as `ok`/`FAIL`):
  - no client ever receives a request or log naming the other client (zero cross deliveries);
  - with `exact`: every request reaches its caller (every answer is the caller's own);
    with `sound`: every answer is the caller's own or a refusal by the hub, never the other's.
Then prints one line `PIDS <alpha pid> <bravo pid>` (the upstream process each client's `pid`
tool call reached) and closes both sessions. Exits 0 when every check passed.

Usage: py_two_clients.py URL TOOL_PREFIX ROUNDS exact|sound [call_tool]

With `call_tool` (a search-mode profile's endpoint), every tool is called through the hub's
`call_tool` tool instead of directly.
"""

from __future__ import annotations

import sys
import warnings

import anyio
import mcp
from mcp import Client, types

warnings.simplefilter("ignore")

NAMES = ("alpha", "bravo")


def text_of(result) -> str:
    return " ".join(getattr(c, "text", "") or "" for c in result.content)


async def main(url: str, prefix: str, rounds: int, mode: str, via: str) -> int:
    failures: list[str] = []
    pids: dict[str, str] = {}
    received: dict[str, list[str]] = {n: [] for n in NAMES}
    answers: dict[str, dict[str, int]] = {n: {"own": 0, "refused": 0, "other": 0} for n in NAMES}

    def check(cond: bool, what: str) -> None:
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            failures.append(what)

    async def run(name: str, ready: anyio.Event, go: anyio.Event, done: anyio.Event) -> None:
        async def sampling(ctx, params):
            received[name].append(str(params.messages[0].content.text))
            return types.CreateMessageResult(
                role="assistant",
                content=types.TextContent(type="text", text=f"answer-from-{name}"),
                model="test",
                stop_reason="endTurn",
            )

        async def elicitation(ctx, params):
            received[name].append(str(params.message))
            return types.ElicitResult(action="accept", content={"answer": f"answer-from-{name}"})

        async def roots(ctx):
            received[name].append("roots/list")
            return types.ListRootsResult(roots=[types.Root(uri=f"file:///answer-from-{name}")])

        async def log(params):
            received[name].append(str(params.data))

        client = Client(
            url,
            sampling_callback=sampling,
            elicitation_callback=elicitation,
            list_roots_callback=roots,
            logging_callback=log,
            client_info=mcp.Implementation(name=f"py-{name}", version="1"),
            read_timeout_seconds=60,
        )
        async def call(tool: str, args: dict):
            if via == "call_tool":
                return await client.call_tool("call_tool", {"name": tool, "arguments": args})
            return await client.call_tool(tool, args)

        async with client:
            ready.set()
            await go.wait()
            for n in range(rounds):
                for kind in ("sampling", "elicitation", "roots"):
                    r = await call(
                        f"{prefix}ask_client",
                        {"kind": kind, "text": f"secret-{name}-{n}", "delay_ms": n % 3},
                    )
                    text = text_of(r)
                    other = NAMES[1 - NAMES.index(name)]
                    if f"answer-from-{name}" in text and not r.is_error:
                        answers[name]["own"] += 1
                    elif f"answer-from-{other}" in text:
                        answers[name]["other"] += 1
                        print(f"FAIL {name} got {other}'s answer: {text}", flush=True)
                    elif r.is_error and "mcp-hub cannot forward" in text:
                        answers[name]["refused"] += 1
                    else:
                        answers[name]["other"] += 1
                        print(f"FAIL {name}: unexpected answer {text!r}", flush=True)
                await call(f"{prefix}log", {"text": f"secret-{name}-log-{n}", "count": 2})
            r = await call(f"{prefix}pid", {})
            pids[name] = text_of(r).strip()
            done.set()
            # Both sessions stay open until both clients are done, so they overlap throughout.
            await all_done.wait()

    events = {n: (anyio.Event(), anyio.Event()) for n in NAMES}
    go = anyio.Event()
    all_done = anyio.Event()
    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            for n in NAMES:
                tg.start_soon(run, n, events[n][0], go, events[n][1])
            for n in NAMES:
                await events[n][0].wait()
            go.set()
            for n in NAMES:
                await events[n][1].wait()
            print(f"PIDS {pids['alpha']} {pids['bravo']}", flush=True)
            all_done.set()

    for name in NAMES:
        other = NAMES[1 - NAMES.index(name)]
        crossed = [m for m in received[name] if f"secret-{other}" in m]
        check(not crossed, f"{name} received nothing of {other}'s ({len(received[name])} messages)")
        a = answers[name]
        total = 3 * rounds
        check(a["other"] == 0, f"{name}: no answer came from {other} ({a})")
        if mode == "exact":
            check(a["own"] == total, f"{name}: {a['own']}/{total} requests reached their caller")
        else:
            check(a["own"] + a["refused"] == total, f"{name}: own or refused, {a}")
    return 1 if failures else 0


if __name__ == "__main__":
    url, prefix, rounds, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    via = sys.argv[5] if len(sys.argv) > 5 else "direct"
    sys.exit(anyio.run(main, url, prefix, rounds, mode, via))
