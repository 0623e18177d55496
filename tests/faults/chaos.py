"""A randomised hostile PiecesOS on 127.0.0.1: every request and every frame picks a fault.

One server serves many runs, one run at a time: `begin(seed)` starts a run, `end(run)`
releases whatever the server still holds for it. Each request draws its fault from a
`random.Random` seeded with the run's seed, its path and how often the run has asked for
that path, so a run replays the same faults in the same order, whatever else is running.

Nothing here waits for ever: a stall ends when its run ends or after `Run.cap` seconds,
whichever comes first, so a client that hangs makes its run slow and detected, never the
test suite stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import WSMsgType, web

#: aiohttp's default `max_msg_size` for a client WebSocket; one byte more is too big.
WS_MAX_MSG_SIZE = 4 * 1024 * 1024
_OVERSIZED = b"x" * (WS_MAX_MSG_SIZE + 1)
#: The progress WebSocket path, as `AsyncPiecesClient` builds it.
PROGRESS_ROUTE = "/model/{model}/download/progress"


@dataclass
class Run:
    """What the server knows of the run in progress."""

    seed: int
    #: Longest any stall, silence or endless stream of the server lasts.
    cap: float
    #: Stalls that must outlast a client's read timeout sleep this long (or until released).
    read_timeout: float
    #: The client's WebSocket idle timeout: pings-only streams ping faster than this.
    ws_idle: float
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hits: dict[str, int] = field(default_factory=dict)
    #: Every fault served in this run, in order: (path, hit number, fault).
    log: list[tuple[str, int, str]] = field(default_factory=list)

    def rng(self, kind: str, path: str) -> tuple[random.Random, int]:
        """The generator for the next `kind` request to `path`, and its hit number."""
        key = f"{kind} {path}"
        n = self.hits[key] = self.hits.get(key, 0) + 1
        return random.Random(f"{self.seed}|{key}|{n}"), n

    async def stall(self, seconds: float | None = None) -> None:
        """Sleep `seconds` (default: until released), never past the cap or the release."""
        limit = self.cap if seconds is None else min(seconds, self.cap)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await self.release.wait()


def pick(rng: random.Random, weights: dict[str, float]) -> str:
    """One key of `weights`, drawn with those weights."""
    return rng.choices(list(weights), weights=list(weights.values()))[0]


#: HTTP faults and their weights: one is drawn for each request.
HTTP_FAULTS: dict[str, float] = {
    "ok": 40,
    "slow_ok": 8,  # a delay shorter than the read timeout
    "late_ok": 3,  # a delay longer than the read timeout
    "never_answer": 4,
    "stall_body": 3,  # headers and part of the body, then nothing
    "trickle": 2,  # the body a few bytes at a time, each gap inside the read timeout
    "reset_before_headers": 4,
    "close_before_headers": 3,  # a FIN, no answer
    "reset_mid_body": 4,
    "short_body_fin": 3,  # Content-Length larger than what comes before the FIN
    "garbage_status_line": 2,
    "garbage_bytes": 2,
    "bad_chunking": 2,
    "bad_gzip": 2,
    "truncated_json": 3,
    "garbage_200": 3,
    "invalid_utf8_200": 3,
    "wrong_shape_200": 3,
    "empty_200": 2,
    "no_content_204": 1,
    "status_5xx": 6,  # 500, 502, 503, 504, with or without a Retry-After of any sort
    "status_4xx": 4,  # 400, 404, 410, 422; bodies plain, invalid UTF-8 or empty
    "huge_known": 2,  # Content-Length over the client's max_response_bytes
    "huge_chunked": 2,
    "huge_error": 1,  # a 500 with a body over max_response_bytes
    "redirect": 1,  # 307 to /moved/..., which draws its own fault
}

#: How the progress WebSocket handshake goes, one draw per connection.
HANDSHAKE_FAULTS: dict[str, float] = {
    "accept": 80,
    "status_404": 3,
    "status_500": 2,
    "status_503": 2,
    "reset": 2,
    "never_answer": 2,
    "no_upgrade_200": 2,  # a plain 200 where a 101 belongs
}

#: One step of an accepted WebSocket; a connection makes 0 to `MAX_STEPS` of them.
STEP_FAULTS: dict[str, float] = {
    "event": 40,
    "terminal": 6,  # early terminal statuses: more frames may follow
    "delay": 10,  # shorter than the idle timeout
    "ping": 5,
    "pong": 2,
    "garbage_text": 2,
    "garbage_binary": 2,
    "invalid_utf8_text": 2,
    "wrong_shape": 2,
    "null_frame": 1,
    "oversized": 0.5,  # one byte over the client's max_msg_size
    "bad_frame_bytes": 1,  # bytes that are no WebSocket frame (reserved bits set)
}
MAX_STEPS = 6

#: How an accepted WebSocket ends, after its steps.
END_FAULTS: dict[str, float] = {
    "terminal_then_read": 20,  # a terminal status, then wait for the client to close
    "late_terminal": 5,  # many events, then a terminal status
    "close_1000": 3,
    "close_1001": 2,
    "close_1007": 2,
    "close_1011": 2,
    "close_1012": 3,
    "close_1013": 1,
    "close_4000": 1,
    "close_bad_reason": 1,  # a close reason that is not UTF-8
    "close_bad_code": 1,  # a code no endpoint may send (999)
    "close_one_byte": 1,  # a close payload of one byte
    "drop": 8,  # no close frame: the connection is aborted
    "fin": 4,  # no close frame: the TCP connection is closed
    "silent_reading": 6,  # nothing more; the close handshake is answered
    "silent_deaf": 4,  # nothing more; the close handshake is never answered
    "pings_only": 3,  # pings faster than the idle timeout, no event, never a close reply
    "endless_deaf": 4,  # events for ever, never answering the close handshake
    "endless_reading": 3,  # events for ever; the close handshake is answered
}

STATUSES = ["INITIALIZED", "IN-PROGRESS", "IN-PROGRESS", "UNKNOWN", "RESET", "PAUSED"]
TERMINAL = ["COMPLETED", "FAILED", "CANCELED"]


def model_json(model_id: str, rng: random.Random) -> dict[str, object]:
    """A valid Model for `model_id`, with random download flags."""
    return {
        "id": model_id,
        "name": "M",
        "version": "1",
        "cloud": False,
        "created": {"value": "2025-01-01T00:00:00Z"},
        "type": "BALANCED",
        "usage": "CODE_CONVERSATION",
        "custom": True,
        "downloaded": rng.random() < 0.3,
        "downloading": rng.random() < 0.5,
        "unknownField": {"kept": True},
    }


def ok_body(request: web.Request, rng: random.Random) -> bytes:
    """The correct answer for the path."""
    path = request.raw_path.split("?", 1)[0].removeprefix("/moved")
    if path == "/models":
        models = [model_json(f"listed{i}", rng) for i in range(rng.randint(0, 3))]
        return json.dumps({"iterable": models}).encode()
    parts = path.split("/")
    model_id = unquote(parts[2]) if len(parts) > 2 and parts[1] == "model" else "m"
    if model_id == "update":
        model_id = "m"
    return json.dumps(model_json(model_id, rng)).encode()


def event(rng: random.Random, statuses: list[str]) -> str:
    """One progress frame."""
    return json.dumps({"status": rng.choice(statuses), "percentage": rng.randint(0, 100)})


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked server frame (FIN set), written by hand to send what aiohttp would not."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


class Chaos:
    """The server: `make_app()` for aiohttp, `begin()` and `end()` around each run."""

    def __init__(self) -> None:
        self.run: Run | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def begin(self, seed: int, *, cap: float, read_timeout: float, ws_idle: float) -> Run:
        """Start a run: requests from now on draw their faults from `seed`."""
        self.run = Run(seed, cap=cap, read_timeout=read_timeout, ws_idle=ws_idle)
        return self.run

    def end(self, run: Run) -> None:
        """End a run: every stall it left ends now."""
        run.release.set()
        if self.run is run:
            self.run = None

    def make_app(self) -> web.Application:
        """Every HTTP path and the progress WebSocket go through the fault draw."""
        app = web.Application()
        app.router.add_get(PROGRESS_ROUTE, self.progress)
        app.router.add_route("*", "/{tail:.*}", self.http)
        return app

    def _current(self) -> Run:
        if self.run is None:  # a request outside any run: stall briefly, answer nothing
            return Run(0, cap=0.5, read_timeout=0.1, ws_idle=0.1)
        return self.run

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[assignment]
        task.set_name(f"chaos-server {name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- HTTP ----------------------------------------------------------------------------------

    async def http(self, request: web.Request) -> web.StreamResponse:
        run = self._current()
        rng, n = run.rng("http", request.path)
        fault = pick(rng, HTTP_FAULTS)
        if fault == "redirect" and request.path.startswith("/moved"):
            fault = "ok"
        run.log.append((f"{request.method} {request.path}", n, fault))
        with contextlib.suppress(ConnectionError):
            await request.read()  # the request body, so that a reset is not about it
        transport = request.transport
        if transport is None:  # the client has gone already
            return web.Response()
        body = ok_body(request, rng)
        limit = 4096  # the client's max_response_bytes in chaos runs is at most this
        if fault == "ok":
            return web.Response(body=body, content_type="application/json")
        if fault in ("slow_ok", "late_ok", "never_answer"):
            delay = {
                "slow_ok": rng.uniform(0, run.read_timeout / 2),
                "late_ok": run.read_timeout * rng.uniform(2, 4),
                "never_answer": None,
            }[fault]
            await run.stall(delay)
            return web.Response(body=body, content_type="application/json")
        if fault in ("stall_body", "trickle", "reset_mid_body", "short_body_fin"):
            resp = web.StreamResponse(headers={"Content-Length": str(len(body))})
            resp.content_type = "application/json"
            await resp.prepare(request)
            cut = rng.randint(0, len(body) - 1)
            if fault == "trickle":
                for start in range(0, len(body), max(1, len(body) // 4)):
                    await resp.write(body[start : start + max(1, len(body) // 4)])
                    await run.stall(rng.uniform(0, run.read_timeout / 3))
                await resp.write_eof()
                return resp
            await resp.write(body[:cut])
            if fault == "stall_body":
                await run.stall()
            elif fault == "reset_mid_body":
                transport.abort()
            else:
                transport.close()
            return resp
        if fault in ("reset_before_headers", "close_before_headers"):
            if fault == "reset_before_headers":
                transport.abort()
            else:
                transport.close()
            return web.Response()
        if fault in ("garbage_status_line", "garbage_bytes", "bad_chunking", "bad_gzip"):
            raw = {
                "garbage_status_line": b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}",
                "garbage_bytes": rng.randbytes(rng.randint(1, 64)),
                "bad_chunking": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}",
                "bad_gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body,
            }[fault]
            transport.write(raw)
            transport.close()
            return web.Response()
        if fault in ("truncated_json", "garbage_200", "invalid_utf8_200", "wrong_shape_200"):
            payload = {
                "truncated_json": body[: rng.randint(0, len(body) - 1)],
                "garbage_200": rng.randbytes(rng.randint(1, 200)),
                "invalid_utf8_200": body.replace(b'"M"', b'"\xff\xfe\xc3("', 1)
                if b'"M"' in body
                else b'{"iterable": "\xff\xfe"}',
                "wrong_shape_200": rng.choice([b"null", b"[]", b'{"id": 7}', b'"x"', b"1e999"]),
            }[fault]
            return web.Response(body=payload, content_type="application/json")
        if fault == "empty_200":
            return web.Response(body=b"", content_type="application/json")
        if fault == "no_content_204":
            return web.Response(status=204)
        if fault == "status_5xx":
            headers = {}
            retry_after = rng.choice([None, "0", "1", "120", "-1", "abc", "1e9", "Wed, 21 Oct"])
            if retry_after is not None:
                headers["Retry-After"] = retry_after
            status = rng.choice([500, 502, 503, 504])
            text = rng.choice([b"", b"PiecesOS is starting", b"<html>502</html>", b"\xff\xfe"])
            return web.Response(status=status, body=text, headers=headers)
        if fault == "status_4xx":
            status = rng.choice([400, 404, 410, 422])
            text = rng.choice([b"", b"model was not found.", b"\xff\xfe\x80", b"\n\n \n"])
            return web.Response(status=status, body=text, content_type="text/plain")
        if fault == "huge_known":
            return web.Response(body=b" " * (limit + 1), content_type="application/json")
        if fault in ("huge_chunked", "huge_error"):
            resp = web.StreamResponse(status=200 if fault == "huge_chunked" else 500)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for _ in range(3):
                await resp.write(b" " * (limit // 2 + 1))
            await resp.write_eof()
            return resp
        if fault == "redirect":
            raise web.HTTPTemporaryRedirect("/moved" + request.path)
        raise AssertionError(f"unknown fault {fault}")  # pragma: no cover

    # -- the progress WebSocket ---------------------------------------------------------------

    async def progress(self, request: web.Request) -> web.StreamResponse:
        run = self._current()
        rng, n = run.rng("ws", request.path)
        handshake = pick(rng, HANDSHAKE_FAULTS)
        steps = [pick(rng, STEP_FAULTS) for _ in range(rng.randint(0, MAX_STEPS))]
        end = pick(rng, END_FAULTS)
        plan = f"{handshake}: {' '.join(steps)} | {end}" if handshake == "accept" else handshake
        run.log.append((f"WS {request.path}", n, plan))
        transport = request.transport
        if transport is None:
            return web.Response()
        if handshake != "accept":
            return await self._refuse(request, run, handshake)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        try:
            for step in steps:
                await self._step(ws, transport, run, rng, step)
            await self._end(ws, transport, run, rng, end)
        except ConnectionError:
            pass  # the client went away, or a fault closed the transport
        except RuntimeError as exc:  # aiohttp: "Cannot call send_... after close"
            if "close" not in str(exc).lower():
                raise
        return ws

    async def _refuse(self, request: web.Request, run: Run, fault: str) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        if fault == "reset":
            transport.abort()
            return web.Response()
        if fault == "never_answer":
            await run.stall()
            return web.Response(status=503)
        if fault == "no_upgrade_200":
            return web.Response(body=b'{"status":"COMPLETED"}', content_type="application/json")
        status = int(fault.removeprefix("status_"))
        return web.Response(status=status, text="no such model", content_type="text/plain")

    async def _step(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        run: Run,
        rng: random.Random,
        step: str,
    ) -> None:
        if step == "event":
            await ws.send_str(event(rng, STATUSES))
        elif step == "terminal":
            await ws.send_str(event(rng, TERMINAL))
        elif step == "delay":
            await run.stall(rng.uniform(0, run.ws_idle / 3))
        elif step == "ping":
            await ws.ping(rng.randbytes(rng.randint(0, 8)))
        elif step == "pong":
            await ws.pong()
        elif step == "garbage_text":
            await ws.send_str(rng.choice(["<html>oops</html>", "{", "", "[1,2]", '"IN-PROGRESS"']))
        elif step == "garbage_binary":
            await ws.send_bytes(rng.randbytes(rng.randint(0, 32)))
        elif step == "invalid_utf8_text":
            await ws.send_frame(b'{"status":"\xff\xfe"}', WSMsgType.TEXT)
        elif step == "wrong_shape":
            await ws.send_str(rng.choice(['{"status": 7}', '{"percentage": "x"}', "[]", "1"]))
        elif step == "null_frame":
            await ws.send_str("null")
        elif step == "oversized":
            await ws.send_bytes(_OVERSIZED)
        elif step == "bad_frame_bytes":
            transport.write(b"\xf1\x05hello")  # RSV1-3 set on a text frame: a protocol error
        else:  # pragma: no cover
            raise AssertionError(f"unknown step {step}")

    async def _end(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        run: Run,
        rng: random.Random,
        end: str,
    ) -> None:
        if end == "terminal_then_read":
            await ws.send_str(event(rng, TERMINAL))
            await self._read_until_closed(ws, run)
        elif end == "late_terminal":
            for _ in range(rng.randint(5, 50)):
                await ws.send_str(event(rng, ["IN-PROGRESS"]))
            await ws.send_str(event(rng, TERMINAL))
            await self._read_until_closed(ws, run)
        elif end.startswith("close_") and end.removeprefix("close_").isdigit():
            await ws.close(code=int(end.removeprefix("close_")), message=b"chaos")
        elif end in ("close_bad_reason", "close_bad_code", "close_one_byte"):
            payload = {
                "close_bad_reason": struct.pack("!H", 1011) + b"\xff\xfe",
                "close_bad_code": struct.pack("!H", 999),
                "close_one_byte": b"\x03",
            }[end]
            transport.write(ws_frame(0x8, payload))
            await run.stall(run.read_timeout)
            transport.close()
        elif end == "drop":
            transport.abort()
        elif end == "fin":
            transport.close()
        elif end == "silent_reading":
            await self._read_until_closed(ws, run)
        elif end == "silent_deaf":
            await run.stall()
        elif end == "pings_only":
            await self._until_release(run, lambda: self._pings(ws, run))
        elif end == "endless_deaf":
            await self._until_release(run, lambda: self._endless(ws))
        elif end == "endless_reading":
            sender = self._spawn(self._endless(ws), "endless sender")
            try:
                await self._read_until_closed(ws, run)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        else:  # pragma: no cover
            raise AssertionError(f"unknown end {end}")

    async def _until_release(self, run: Run, body: Callable[[], Awaitable[None]]) -> None:
        """Run `body` until it returns, the run ends, or the cap."""

        async def go() -> None:
            await body()

        task = self._spawn(go(), "bounded")
        released = self._spawn(self._wait(run.release), "release")
        try:
            await asyncio.wait(
                {task, released}, timeout=run.cap, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for t in (task, released):
                t.cancel()
            await asyncio.gather(task, released, return_exceptions=True)

    @staticmethod
    async def _wait(event: asyncio.Event) -> None:
        await event.wait()

    async def _read_until_closed(self, ws: web.WebSocketResponse, run: Run) -> None:
        """Read (which answers pings and the close handshake) until the client closes."""

        async def read() -> None:
            async for _ in ws:
                pass

        await self._until_release(run, read)

    @staticmethod
    async def _pings(ws: web.WebSocketResponse, run: Run) -> None:
        while not ws.closed:
            await ws.ping()
            await asyncio.sleep(run.ws_idle / 3)

    @staticmethod
    async def _endless(ws: web.WebSocketResponse) -> None:
        percentage = 0
        while not ws.closed:
            percentage = (percentage + 1) % 100
            await ws.send_str(f'{{"status":"IN-PROGRESS","percentage":{percentage}}}')
            await asyncio.sleep(0)  # send_str alone never yields
