"""A minimal PiecesOS-shaped server for the benchmarks, run in its own process.

`python -m bench._server PORT FRAMES` serves fixed `/models` and `/model/{id}` bodies and a
progress WebSocket that sends FRAMES `IN-PROGRESS` frames, then `COMPLETED`.
"""

from __future__ import annotations

import sys

import msgspec
from aiohttp import web

from aiopieces.testing import default_catalog

CATALOG = default_catalog()
BY_ID = {m["id"]: msgspec.json.encode(m) for m in CATALOG}
MODELS = msgspec.json.encode({"iterable": CATALOG})


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

    app = web.Application()
    app.router.add_get("/models", models)
    app.router.add_get("/model/{model}", model)
    app.router.add_get("/model/{model}/download/progress", progress)
    return app


if __name__ == "__main__":
    port, frames = int(sys.argv[1]), int(sys.argv[2])
    print("ready", flush=True)
    web.run_app(make_app(frames), host="127.0.0.1", port=port, print=None, access_log=None)
