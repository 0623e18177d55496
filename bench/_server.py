"""Minimal PiecesOS-shaped servers for the benchmarks, run in their own process.

`python -m bench._server HTTP_PORT WS_PORT FRAMES` serves, on HTTP_PORT, fixed `/models`
and `/model/{id}` answers from a bare asyncio protocol (so that the server, not the
clients under test, is never the bottleneck), and on WS_PORT an aiohttp progress
WebSocket that sends FRAMES `IN-PROGRESS` frames, then `COMPLETED`, and an identifier
WebSocket that sends the current identifiers, then FRAMES - 1 batches of one change.
"""

from __future__ import annotations

import asyncio
import sys

import msgspec
from aiohttp import web

from aiopieces.testing import default_catalog

CATALOG = default_catalog("schema")  # the official SDK cannot decode the pieces shape
BY_ID = {m["id"]: msgspec.json.encode(m) for m in CATALOG}
MODELS = msgspec.json.encode({"iterable": CATALOG})
SNAPSHOT = msgspec.json.encode({"iterable": [{"model": {"id": m["id"]}} for m in CATALOG]})
CHANGES = [msgspec.json.encode({"iterable": [{"model": {"id": m["id"]}}]}) for m in CATALOG]


def make_app(frames: int) -> web.Application:
    """The app: three routes, answers prepared in advance."""

    async def models(request: web.Request) -> web.Response:
        return web.Response(body=MODELS, content_type="application/json")

    async def model(request: web.Request) -> web.Response:
        return web.Response(
            body=BY_ID[request.match_info["model"]], content_type="application/json"
        )

    async def progress(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for i in range(frames):
            await ws.send_str('{"status":"IN-PROGRESS","percentage":%.4f}' % (100 * i / frames))
        await ws.send_str('{"status":"COMPLETED","percentage":100}')
        async for _ in ws:
            pass
        return ws

    async def identifiers(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(SNAPSHOT)  # the current identifiers, as PiecesOS sends first
        for i in range(frames - 1):
            await ws.send_bytes(CHANGES[i % len(CHANGES)])
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/models/stream/identifiers", identifiers)
    app.router.add_get("/models", models)
    app.router.add_get("/model/{model}", model)
    app.router.add_get("/model/{model}/download/progress", progress)
    return app


def _response(body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


RESPONSES = {b"/models": _response(MODELS)} | {
    f"/model/{key}".encode(): _response(value) for key, value in BY_ID.items()
}


class FixedAnswers(asyncio.Protocol):
    """Keep-alive HTTP/1.1 with prepared answers: GET requests without bodies only."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            path = head.split(b" ", 2)[1]
            answer = RESPONSES.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            self.transport.write(answer)  # type: ignore[attr-defined]


async def serve(http_port: int, ws_port: int, frames: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FixedAnswers, "127.0.0.1", http_port)
    runner = web.AppRunner(make_app(frames), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", ws_port).start()
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
