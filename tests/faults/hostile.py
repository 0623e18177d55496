"""A hostile PiecesOS stand-in on 127.0.0.1: one switch per fault, and what it saw."""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass, field

from aiohttp import web

OK_MODELS = b'{"iterable": []}'
#: An unknown field nested 50,000 deep: valid JSON, far beyond any decoder's recursion.
DEEP_JSON = b'{"status":"IN-PROGRESS","x":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
OK_MODEL = (
    b'{"id":"m","name":"M","version":"1","cloud":false,"created":{"value":"2025-01-01T00:00:00Z"},'
    b'"type":"BALANCED","usage":"CODE_CONVERSATION","custom":true,"downloading":true}'
)


@dataclass
class Hostile:
    """Set `fault` to choose the misbehaviour; `hits` counts requests per path."""

    fault: str = "none"
    hits: dict[str, int] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    body_started: asyncio.Event = field(default_factory=asyncio.Event)
    ws_closed: asyncio.Event = field(default_factory=asyncio.Event)
    ws_connections: int = 0
    #: Set when a WebSocket handshake after the first has been answered.
    ws_reconnected: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set when a download request has arrived (`stall_download` keeps it waiting).
    download_received: asyncio.Event = field(default_factory=asyncio.Event)
    #: What `GET /model/{id}` answers instead of the default model, when set.
    model_body: bytes | None = None
    #: The `Retry-After` header of `503_retry_after`.
    retry_after: str = "0"
    #: The size of the frame `ws_oversized` sends.
    frame_size: int = 0
    #: Requests to this path wait for `release`, whatever the fault.
    stall_path: str | None = None
    #: Set when a request to `stall_path` has arrived.
    stalled: asyncio.Event = field(default_factory=asyncio.Event)

    def make_app(self) -> web.Application:
        """The app: every HTTP path and the progress WebSocket go through the fault switch."""
        app = web.Application()
        app.router.add_get("/model/{model}/download/progress", self.progress)
        app.router.add_get("/redirect/{n}", self.redirect)
        app.router.add_route("*", "/{tail:.*}", self.http)
        return app

    async def http(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        self.received.set()
        fault = self.fault
        body = OK_MODELS if path == "/models" else OK_MODEL
        if self.model_body is not None and request.method == "GET" and path.startswith("/model/"):
            body = self.model_body
        if path == self.stall_path:
            self.stalled.set()
            await self.release.wait()
        if fault == "deep_nesting":  # valid JSON that msgspec cannot descend
            return web.Response(body=DEEP_JSON, content_type="application/json")
        if fault == "stall_download" and path.endswith("/download"):
            self.download_received.set()
            await self.release.wait()
        if fault == "gzip_bomb":
            packed = gzip.compress(b" " * 5_000_000 + b"{}")  # about 5 KB on the wire
            return web.Response(
                body=packed,
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        if fault == "invalid_utf8":
            return web.Response(body=b'{"id":"m\xff\xfe"}', content_type="application/json")
        if fault == "503_retry_after":
            return web.Response(
                status=503,
                text="busy",
                headers={"Retry-After": self.retry_after},
                content_type="text/plain",
            )
        if fault == "reset_mid_body":
            resp = web.StreamResponse(headers={"Content-Length": "1000"})
            await resp.prepare(request)
            await resp.write(b'{"iterable": [')
            assert request.transport is not None
            request.transport.abort()
            return resp
        if fault in ("never_answer", "stall_body"):
            if fault == "stall_body":
                resp = web.StreamResponse(headers={"Content-Length": "1000"})
                await resp.prepare(request)
                await resp.write(b'{"iterable": [')
                self.body_started.set()
            await self.release.wait()
            return web.Response(body=body)
        simple = {
            "truncated_json": (200, b'{"iterable": [{"id": "m"', "application/json"),
            "empty_200": (200, b"", "application/json"),
            "null_body": (200, b"null", "application/json"),
            "wrong_shape": (200, b'{"iterable": {"id": "m"}}', "application/json"),
            "html_502": (
                502,
                b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>",
                "text/html",
            ),
            "plain_500": (500, b"database is locked", "text/plain"),
            "gone_410": (410, b"model was not found.", "text/plain"),
        }
        if fault in simple:
            status, payload, ctype = simple[fault]
            return web.Response(status=status, body=payload, content_type=ctype)
        if fault == "503_then_ok" and self.hits[path] == 1:
            return web.Response(status=503, text="PiecesOS is starting", content_type="text/plain")
        if fault == "redirect_once" and not path.startswith("/moved"):
            raise web.HTTPTemporaryRedirect("/moved" + path)
        if fault == "redirect_loop":
            raise web.HTTPTemporaryRedirect("/redirect/1")
        if fault == "huge_known":
            return web.Response(body=b" " * 2_000_000, content_type="application/json")
        if fault == "huge_chunked":
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for _ in range(64):
                await resp.write(b" " * 65536)
            await resp.write_eof()
            return resp
        return web.Response(body=body, content_type="application/json")

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        raise web.HTTPTemporaryRedirect(f"/redirect/{n + 1}")

    async def progress(self, request: web.Request) -> web.StreamResponse:
        fault = self.fault
        self.ws_connections += 1
        if fault == "ws_404":
            return web.Response(status=404, text="no such model", content_type="text/plain")
        if fault == "ws_500":
            return web.Response(status=500, text="boom", content_type="text/plain")
        if fault == "ws_drop_then_503" and self.ws_connections > 1:
            self.ws_reconnected.set()
            return web.Response(status=503, text="restarting", content_type="text/plain")
        if fault == "ws_endless_deaf":
            return await self._endless_deaf(request)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if self.ws_connections > 1:
            self.ws_reconnected.set()
        sender: asyncio.Task[None] | None = None
        try:
            if fault == "ws_endless":
                sender = asyncio.create_task(self._endless(ws))
            elif fault == "ws_pings_only":
                sender = asyncio.create_task(self._pings(ws))
            elif fault == "ws_same_percentage":
                sender = asyncio.create_task(self._same_percentage(ws))
            else:
                await self._frames(ws, request, fault)
            async for _ in ws:  # until the client closes
                pass
        finally:
            self.ws_closed.set()  # first: aiohttp may cancel this handler as it ends
            if sender is not None:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        return ws

    @staticmethod
    async def _endless(ws: web.WebSocketResponse) -> None:
        percentage = 0.0
        while not ws.closed:
            percentage = (percentage + 0.01) % 100
            await ws.send_str(f'{{"status":"IN-PROGRESS","percentage":{percentage:.2f}}}')
            await asyncio.sleep(0)  # let the loop run: send_str alone never yields

    async def _endless_deaf(self, request: web.Request) -> web.StreamResponse:
        """Progress frames for ever, and never a reply to the client's close frame."""
        ws = web.WebSocketResponse(autoclose=False)
        await ws.prepare(request)
        try:
            while True:  # never reads, so never sees (or answers) a close frame
                await ws.send_str('{"status":"IN-PROGRESS","percentage":1}')
                await asyncio.sleep(0.001)  # pacing: the loop must breathe
        except (ConnectionError, RuntimeError):
            return ws  # the client dropped the connection
        finally:
            self.ws_closed.set()

    @staticmethod
    async def _same_percentage(ws: web.WebSocketResponse) -> None:
        while not ws.closed:  # events flow, but the download does not move
            await ws.send_str('{"status":"IN-PROGRESS","percentage":40}')
            await asyncio.sleep(0.01)  # the server's pacing, not a wait for an event

    @staticmethod
    async def _pings(ws: web.WebSocketResponse) -> None:
        await ws.send_str('{"status":"INITIALIZED","percentage":0}')
        while not ws.closed:
            await ws.ping()
            await asyncio.sleep(0.01)  # pacing of the server's pings, not a wait for an event

    async def _frames(self, ws: web.WebSocketResponse, request: web.Request, fault: str) -> None:
        if fault == "ws_unknown_then_drop" and self.ws_connections == 1:
            await ws.send_str('{"status":"UNKNOWN"}')  # PiecesOS knows no download yet
            assert request.transport is not None
            request.transport.abort()  # then a drop, before the download starts
            return
        await ws.send_str('{"status":"INITIALIZED","percentage":0}')
        if fault == "ws_unknown_then_drop":
            await ws.send_str('{"status":"COMPLETED","percentage":100}')
        if fault == "ws_text_not_json":
            await ws.send_str("<html>oops</html>")
        elif fault == "ws_binary_json":
            await ws.send_bytes(b'{"status":"COMPLETED","percentage":100}')
        elif fault == "ws_binary_garbage":
            await ws.send_bytes(b"\x00\xff\x10")
        elif fault == "ws_wrong_shape":
            await ws.send_str('{"status": 7}')
        elif fault == "ws_close_1011":
            await ws.close(code=1011, message=b"internal error")
        elif fault == "ws_drop_once":
            if self.ws_connections == 1:
                await ws.send_str('{"status":"IN-PROGRESS","percentage":40}')
                assert request.transport is not None
                request.transport.abort()
            else:
                await ws.send_str('{"status":"IN-PROGRESS","percentage":60}')
                await ws.send_str('{"status":"COMPLETED","percentage":100}')
        elif fault == "ws_drop_always":
            assert request.transport is not None
            request.transport.abort()
        elif fault == "ws_restart_1012":
            if self.ws_connections == 1:
                await ws.close(code=1012, message=b"service restart")
            else:
                await ws.send_str('{"status":"COMPLETED","percentage":100}')
        elif fault in ("ws_drop_then_done", "ws_drop_then_503") and self.ws_connections == 1:
            await ws.send_str('{"status":"IN-PROGRESS","percentage":40}')
            assert request.transport is not None
            request.transport.abort()
        elif fault == "ws_deep_nesting":
            await ws.send_bytes(DEEP_JSON)
        elif fault == "ws_oversized":
            padding = " " * self.frame_size
            await ws.send_str('{"status":"IN-PROGRESS","percentage":1' + padding + "}")
        elif fault == "ws_close_1007":
            await ws.close(code=1007, message=b"invalid frame payload data")
        elif fault == "ws_invalid_utf8":
            await ws.send_bytes(b'{"status":"IN-\xff\xfe"}')
        elif fault == "ws_silent":
            pass  # answers pings (aiohttp does), sends nothing more
