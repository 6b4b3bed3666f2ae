"""A child process that does call key exchanges with real ntgcalls, driven by JSON lines.

Run as ``python ntgcalls_dh_peer.py``; each stdin line is one command, each answer one stdout
line. It lives in its own process so that no ntgcalls thread ever exists in the test process
(tests that move the process into a network namespace need that).

Commands (bytes as hex):
  {"op": "protocol"} -> {"versions": [...], "min_layer": n, "max_layer": n}
  {"op": "init", "who": s, "peer": id, "g": n, "p": hex, "random": hex, "g_a_hash": hex|null}
      -> {"value": hex}   (g_a_hash for the caller, g_b for the callee)
  {"op": "exchange", "who": s, "g_a_or_b": hex, "fingerprint": n}
      -> {"g_a_or_b": hex, "fingerprint": n} or {"error": "<type>: <message>"}
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import ntgcalls  # type: ignore[import-not-found, unused-ignore]


async def main() -> None:
    loop = asyncio.get_running_loop()
    calls: dict[str, tuple[Any, int]] = {}
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        answer: dict[str, Any]
        try:
            if cmd["op"] == "protocol":
                proto = ntgcalls.NTgCalls.get_protocol()
                answer = {
                    "versions": list(proto.library_versions),
                    "min_layer": proto.min_layer,
                    "max_layer": proto.max_layer,
                }
            elif cmd["op"] == "init":
                instance = ntgcalls.NTgCalls()
                await instance.create_p2p_call(cmd["peer"])
                calls[cmd["who"]] = (instance, cmd["peer"])
                config = ntgcalls.DhConfig(
                    cmd["g"], bytes.fromhex(cmd["p"]), bytes.fromhex(cmd["random"])
                )
                g_a_hash = bytes.fromhex(cmd["g_a_hash"]) if cmd["g_a_hash"] else None
                value = await instance.init_exchange(cmd["peer"], config, g_a_hash)
                answer = {"value": bytes(value).hex()}
            else:
                instance, peer = calls[cmd["who"]]
                auth = await instance.exchange_keys(
                    peer, bytes.fromhex(cmd["g_a_or_b"]), cmd["fingerprint"]
                )
                answer = {
                    "g_a_or_b": bytes(auth.g_a_or_b).hex(),
                    "fingerprint": auth.key_fingerprint,
                }
        except Exception as exc:  # reported to the test, which decides
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for instance, peer in calls.values():
        await instance.stop(peer)


if __name__ == "__main__":
    asyncio.run(main())
