"""Randomised runs against a hostile server that mixes every fault, per request and per frame.

Each run draws, from its seed, a client (small timeouts), up to six concurrent calls and
streams, when to cancel them and whether to close the client under them; the server
(`chaos.py`) draws a fault for every request, handshake, frame and ending from the same
seed. After each run:

* every call ended within `BOUND` with a result, a `PiecesError`, or the cancellation the
  test itself caused; nothing from aiohttp, msgspec, asyncio or Python (`RuntimeError`,
  `UnicodeDecodeError`, a bare `TimeoutError`...) escaped;
* a call that began after the client closed failed with `PiecesClientStateError`;
* the client's session is closed, no socket to the server is left open, and no task of
  the client is left running.

`BOUND` is a guard against hangs, not a measurement: it is the worst case the configured
timeouts allow (see its derivation below), so a call past it waited on something no
timeout bounds. The server never stalls for ever either (`Run.cap`), so a hang shows as a
failed run rather than a stuck suite.

Reproduce: the test prints its base seed; run `i` uses seed `base + i`, and
`AIOPIECES_CHAOS_SEED=<seed> AIOPIECES_CHAOS_RUNS=1` replays exactly that run (its faults;
timing on a loaded machine may still differ). `AIOPIECES_CHAOS_RUNS` sets the number of
runs (default 1,000, kept under a minute); `nox -s soak` runs 20,000.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

import aiopieces
from aiopieces import (
    AsyncPiecesClient,
    PiecesClientStateError,
    PiecesError,
    Retry,
    Timeout,
    _progress,
)

from ..helpers import seeded
from .chaos import MAX_STEPS, Chaos, Run

RUNS = int(os.environ.get("AIOPIECES_CHAOS_RUNS", "1000"))
SEED_ENV = os.environ.get("AIOPIECES_CHAOS_SEED")
#: Stop after this many failed runs: each hang costs `BOUND` seconds, so by default the
#: first failed run ends the test (the soak session sets more, to group what it finds).
MAX_FAILED_RUNS = int(os.environ.get("AIOPIECES_CHAOS_MAX_FAILURES", "1"))

# -- the client's configuration, and the bound it implies ------------------------------------

CONNECT = 0.05
READ = 0.02
#: The wait for a request slot, in runs that allow only one or two at a time.
POOL = 0.05
#: The whole-request limit, in runs that set one.
TOTAL = 0.06
WS_IDLE = 0.03
RETRY = Retry(attempts=2, backoff=0.001, max_backoff=0.002, max_elapsed=0.5)
#: The client's `max_response_bytes`: normal answers fit, the server's huge ones do not.
MAX_BODY = 4096
#: The WebSocket close bound (`_progress._CLOSE_TIMEOUT`, documented as two seconds), shrunk
#: for these runs so that a server that never answers the close handshake costs 30 ms.
CLOSE = 0.03
#: The names the library has given that bound; each module that imports it is patched.
CLOSE_BOUND_NAMES = ("CLOSE_TIMEOUT", "_CLOSE_TIMEOUT")
MAX_RECONNECTS = getattr(_progress, "MAX_RECONNECTS", 10)

#: One HTTP try: a request slot, connect, then the server's slowest answer that keeps
#: within the read timeout (a body in four pieces, a third of the read timeout apart), or
#: the read timeout.
HTTP_TRY = POOL + CONNECT + 4 * READ
#: One call: every try (twice over: a redirect is a second request) and the backoffs.
HTTP_CALL = RETRY.attempts * (2 * HTTP_TRY + RETRY.max_backoff)
#: One WebSocket connection: the handshake's tries, the server's delays between frames
#: (at most a third of the idle timeout each), the idle timeout, and the close.
WS_CONNECTION = RETRY.attempts * HTTP_TRY + MAX_STEPS * WS_IDLE / 3 + WS_IDLE + CLOSE
#: A stream: the first connection and every reconnect, the download request, and the
#: cancel sent on exit (itself bounded by the close bound).
STREAM = (MAX_RECONNECTS + 1) * WS_CONNECTION + HTTP_CALL + CLOSE
#: The longest any call, stream or close may take (about 5 s with the values above).
BOUND = max(2 * HTTP_CALL, STREAM)
#: When leftover tasks of a closed client must have finished.
GRACE = 4 * CLOSE + 0.2

#: A consumer that reads a stream to its end stops after this many events all the same.
MAX_EVENTS = 200

OPS = [
    "list_models",
    "get_model",
    "download_model",
    "cancel_download",
    "load_model",
    "update_model",
    "create_model",
    "delete_model",
    "download",
    "download_progress",
]
#: The package's own directory: a leftover task running code from here is the client's.
PACKAGE_DIR = str(Path(aiopieces.__file__).parent)


@dataclass
class Op:
    """One call or stream of a run, and how the test will interfere with it."""

    index: int
    kind: str
    model_id: str
    #: Seconds after the run starts.
    start: float
    #: Cancel the call this long after it starts (a `move_on_after`), or never.
    cancel_after: float | None
    #: Streams: break out after this many events, or cancel the consumer then, or neither.
    break_after: int | None = None
    cancel_at_event: int | None = None
    cancel_on_exit: bool = False
    #: Streams: the consumer closes the client itself after this many events.
    close_at_event: int | None = None
    #: Streams: `async for event in stream`, `async with stream as events`, or an
    #: `async with` that reads nothing.
    form: str = "for"
    #: Streams: iterate the same stream object once more when the first pass ends.
    again: bool = False
    #: Call through `client.with_options(retry=None)`, a view sharing the session.
    view: bool = False

    def describe(self) -> str:
        extra = ""
        if self.kind in ("download", "download_progress"):
            extra = (
                f", form={self.form}, break_after={self.break_after}, "
                f"cancel_at_event={self.cancel_at_event}, close_at_event={self.close_at_event}, "
                f"cancel_on_exit={self.cancel_on_exit}, again={self.again}"
            )
        return (
            f"op{self.index} {self.kind}({self.model_id!r}) start={self.start:.3f} "
            f"cancel_after={self.cancel_after}, view={self.view}{extra}"
        )


@dataclass
class Plan:
    """What the client side of one run does."""

    ops: list[Op]
    #: `async with client` rather than `open()` and `aclose()`.
    async_with: bool
    #: Close the client these many seconds after the run starts, while the calls run.
    close_at: list[float]
    #: The client's request slots (`max_connections`), few in some runs so calls queue.
    max_connections: int = 100
    #: `Timeout.total`, set in some runs.
    total: float | None = None
    #: Cancel each of the `close_at` closes this long after it starts, or never.
    close_cancel_after: float | None = None


def make_plan(rng: random.Random) -> Plan:
    ops = []
    for i in range(rng.randint(1, 6)):
        kind = rng.choice(OPS)
        op = Op(
            index=i,
            kind=kind,
            # Sometimes an id that must be escaped to stay one path segment.
            model_id=rng.choice([f"m{i}"] * 4 + [f"m/{i}", f"..{i}", f"ü {i}?#", f"%2F{i}"]),
            start=rng.choice([0.0, rng.uniform(0, 0.02)]),
            cancel_after=rng.choice([None, None, None, rng.uniform(0, 0.04)]),
            view=rng.random() < 0.1,
        )
        if kind in ("download", "download_progress"):
            op.break_after = rng.choice([None, None, rng.randint(1, 5)])
            op.cancel_at_event = rng.choice([None, None, None, rng.randint(1, 5)])
            op.cancel_on_exit = kind == "download" and rng.random() < 0.5
            op.close_at_event = rng.choice([None] * 9 + [rng.randint(1, 3)])
            op.form = rng.choice(["for", "for", "with", "with", "enter_only"])
            op.again = rng.random() < 0.1
        ops.append(op)
    return Plan(
        ops=ops,
        async_with=rng.random() < 0.5,
        close_at=rng.choice([[], [], [rng.uniform(0, 0.04)], [rng.uniform(0, 0.04)] * 2]),
        max_connections=rng.choice([100, 100, 1, 2]),
        total=rng.choice([None, None, None, TOTAL]),
        close_cancel_after=rng.choice([None, None, None, rng.uniform(0, 0.01)]),
    )


# -- what a run leaves ---------------------------------------------------------------------


def socket_fds() -> dict[int, str]:
    """The sockets this process holds open: `socket:[inode]` by file descriptor."""
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the descriptor listdir itself used
            continue
        if link.startswith("socket:"):
            found[int(fd)] = link
    return found


def client_sockets(server_port: int) -> dict[str, str]:
    """Our open TCP sockets whose far end is the server (the client's, not the server's),
    described, by inode. Each is looked at through a duplicate descriptor, closed at once."""
    found = {}
    for fd, link in socket_fds().items():
        try:
            dup = os.dup(fd)
        except OSError:  # closed meanwhile
            continue
        with socket.socket(fileno=dup) as sock:  # closes the duplicate only
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                peer = sock.getpeername()
                local = sock.getsockname()
            except OSError:  # not connected
                continue
        if peer[1] == server_port:
            found[link] = f"{link} {local[0]}:{local[1]} -> {peer[0]}:{peer[1]}"
    return found


def is_server_task(task: asyncio.Task[Any]) -> bool:
    """Whether a task belongs to the test server (aiohttp's handlers or chaos.py's helpers)."""
    if task.get_name().startswith("chaos-server"):
        return True
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "/aiohttp/web" in code.co_filename


def coro_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return str(getattr(coro, "__qualname__", type(coro).__name__))


def task_summary(task: asyncio.Task[Any]) -> str:
    frames = [f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" for f in task.get_stack()]
    return f"{task.get_name()} {task.get_coro()!r} at {' <- '.join(reversed(frames)) or '?'}"


# -- one run -------------------------------------------------------------------------------


@dataclass
class Violation:
    seed: int
    what: str  # "escaped", "hang", "after close", "leaked socket", ...
    op: str
    detail: str
    key: str  # what makes two violations the same failure
    faults: list[tuple[str, int, str]] = field(default_factory=list)


def innermost(exc: BaseException, *, library_only: bool = False) -> str:
    """The deepest frame of `exc`'s traceback in aiopieces (or aiohttp, unless
    `library_only`), as `file:line function`: where the failure happened."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if "/aiopieces/" in frame.filename or (not library_only and "/aiohttp/" in frame.filename):
            return f"{Path(frame.filename).name}:{frame.lineno} {frame.name}"
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"


def tb_tail(exc: BaseException, lines: int = 14) -> str:
    text = "".join(traceback.format_exception(exc))
    return "\n".join(text.rstrip().splitlines()[-lines:])


class RunState:
    def __init__(self, seed: int, client: AsyncPiecesClient) -> None:
        self.seed = seed
        self.client = client
        self.closed = False  # aclose() has returned
        self.violations: list[Violation] = []
        self.outcomes: Counter[str] = Counter()

    def violate(self, what: str, op: str, detail: str, key: str) -> None:
        self.violations.append(Violation(self.seed, what, op, detail, key))


async def consume(
    state: RunState, client: AsyncPiecesClient, op: Op, scope: anyio.CancelScope
) -> int:
    """Iterate a stream as `op` says; the number of events seen."""
    if op.kind == "download":
        stream = client.download(op.model_id, cancel_on_exit=op.cancel_on_exit)
    else:
        stream = client.download_progress(op.model_id)
    seen = 0

    async def after_event() -> bool:
        nonlocal seen
        seen += 1
        if seen == op.cancel_at_event:
            scope.cancel()  # takes effect at the consumer's next checkpoint
        if seen == op.close_at_event:
            await client.aclose()  # from inside the stream's own loop
            state.closed = True
        # A server may send events for ever: even a consumer that reads to the end stops.
        return seen in (op.break_after, MAX_EVENTS)

    if op.form == "enter_only":
        async with stream:
            pass
    elif op.form == "with":
        async with stream as events:
            async for _ in events:
                if await after_event():
                    break
    else:
        async for _ in stream:
            if await after_event():
                break
    if op.again:
        async for _ in stream:
            break
    return seen


async def call(
    state: RunState, client: AsyncPiecesClient, op: Op, scope: anyio.CancelScope
) -> object:
    m = op.model_id
    if op.kind == "list_models":
        return await client.list_models()
    if op.kind == "get_model":
        return await client.get_model(m)
    if op.kind == "download_model":
        return await client.download_model(m)
    if op.kind == "cancel_download":
        return await client.cancel_download(m)
    if op.kind == "load_model":
        return await client.load_model(m)
    if op.kind == "update_model":
        return await client.update_model(await client.get_model(m))
    if op.kind == "create_model":
        return await client.create_model(seeded("chaos"))
    if op.kind == "delete_model":
        return await client.delete_model(m)
    return await consume(state, client, op, scope)


async def run_op(state: RunState, op: Op) -> None:
    await anyio.sleep(op.start)  # scheduling only; nothing is asserted about time here
    after_close = state.closed
    desc = op.describe()
    began = time.monotonic()
    outcome = "?"
    try:
        with anyio.fail_after(BOUND) as guard:
            with anyio.CancelScope() as ours:
                if op.cancel_after is not None:
                    ours.deadline = anyio.current_time() + op.cancel_after
                client = state.client.with_options(retry=None) if op.view else state.client
                await call(state, client, op, ours)
                outcome = "ok"
            if ours.cancelled_caught:
                outcome = "cancelled by the test"
    except PiecesError as exc:
        outcome = type(exc).__name__
    except TimeoutError as exc:
        if guard.cancel_called:
            outcome = "hang"
            waited = exc.__context__ or exc
            state.violate(
                "hang",
                desc,
                f"did not end within {BOUND:.1f} s; it waited in:\n{tb_tail(waited, 24)}",
                f"hang in {innermost(waited, library_only=True)} <- {innermost(waited)}",
            )
        else:
            outcome = "escaped"
            state.violate("escaped", desc, tb_tail(exc), f"{type(exc).__name__} {innermost(exc)}")
    except Exception as exc:  # the invariant: nothing but PiecesError may escape
        outcome = "escaped"
        state.violate("escaped", desc, tb_tail(exc), f"{type(exc).__name__} {innermost(exc)}")
    except asyncio.CancelledError as exc:  # no cancellation but the test's own may reach here
        outcome = "escaped"
        state.violate("escaped", desc, tb_tail(exc), f"stray CancelledError {innermost(exc)}")
    elapsed = time.monotonic() - began
    if elapsed > BOUND and outcome != "hang":  # a shielded wait the guard could not cut
        state.violate(
            "hang", desc, f"took {elapsed:.1f} s > {BOUND:.1f} s, then {outcome}", f"hang {op.kind}"
        )
    if after_close and outcome not in (PiecesClientStateError.__name__, "cancelled by the test"):
        state.violate(
            "after close",
            desc,
            f"began after aclose() returned, ended with {outcome} (not PiecesClientStateError)",
            f"after close {op.kind} {outcome}",
        )
    state.outcomes[f"{op.kind}: {outcome}"] += 1


async def close_client(
    state: RunState, delay: float, what: str, cancel_after: float | None = None
) -> None:
    await anyio.sleep(delay)
    began = time.monotonic()
    ours = anyio.CancelScope()
    try:
        with anyio.fail_after(BOUND) as guard, ours:
            if cancel_after is not None:
                ours.deadline = anyio.current_time() + cancel_after
            await state.client.aclose()
    except TimeoutError as exc:
        if guard.cancel_called:
            state.violate("hang", what, f"aclose() did not end within {BOUND:.1f} s", "hang aclose")
        else:
            state.violate("escaped", what, tb_tail(exc), f"aclose {type(exc).__name__}")
    except Exception as exc:  # aclose() raises nothing
        state.violate(
            "escaped", what, tb_tail(exc), f"aclose {type(exc).__name__} {innermost(exc)}"
        )
    if time.monotonic() - began > BOUND:
        state.violate("hang", what, "aclose() took longer than the bound", "hang aclose")
    if not ours.cancelled_caught:
        state.closed = True


async def one_run(chaos: Chaos, url: str, port: int, seed: int, leaked: set[str]) -> RunState:
    rng = random.Random(seed)
    plan = make_plan(rng)
    timeouts: dict[str, float | None] = {
        "connect": CONNECT,
        "read": READ,
        "ws_idle": WS_IDLE,
        "total": plan.total,
    }
    if "pool" in Timeout.__struct_fields__:
        timeouts["pool"] = POOL
    client = AsyncPiecesClient(
        url,
        timeout=Timeout(**timeouts),  # type: ignore[arg-type]
        retry=RETRY,
        max_connections=plan.max_connections,
        max_response_bytes=MAX_BODY,
    )
    state = RunState(seed, client)
    run = chaos.begin(seed, cap=BOUND + 1, read_timeout=READ, ws_idle=WS_IDLE)
    tasks_before = asyncio.all_tasks()
    try:
        exit_began = None
        try:
            if plan.async_with:
                async with client:
                    async with anyio.create_task_group() as tg:
                        start_all(tg, state, plan)
                    exit_began = time.monotonic()
            else:
                await client.open()
                async with anyio.create_task_group() as tg:
                    start_all(tg, state, plan)
        except Exception as exc:
            state.violate("escaped", "async with client", tb_tail(exc), f"exit {innermost(exc)}")
        if exit_began is not None and time.monotonic() - exit_began > BOUND:
            state.violate("hang", "async with client", "__aexit__ took too long", "hang aclose")
        await close_client(state, 0, "the final aclose()")
    finally:
        chaos.end(run)
    await check_leftovers(state, run, port, tasks_before, leaked)
    for v in state.violations:
        v.faults = run.log
    return state


def start_all(tg: anyio.abc.TaskGroup, state: RunState, plan: Plan) -> None:
    for op in plan.ops:
        tg.start_soon(run_op, state, op)
    for delay in plan.close_at:  # twice at once, sometimes
        what = f"aclose() at {delay:.3f} s, cancelled after {plan.close_cancel_after} s"
        tg.start_soon(close_client, state, delay, what, plan.close_cancel_after)


async def check_leftovers(
    state: RunState, run: Run, port: int, tasks_before: set[asyncio.Task[Any]], leaked: set[str]
) -> None:
    """No session, socket or task of the closed client is left."""
    session = state.client._conn.session
    if session is not None and not session.closed:
        state.violate("leaked session", "after the run", "the client's session is open", "session")
    current = asyncio.current_task()
    candidates = {
        t
        for t in asyncio.all_tasks() - tasks_before
        if t is not current and not t.done() and not is_server_task(t)
    }
    if candidates:  # a stream's finaliser may still be closing its socket: give it the grace
        await asyncio.wait(candidates, timeout=GRACE)
    for task in candidates:
        name = f"task {id(task)}"
        if not task.done() and name not in leaked:
            leaked.add(name)
            summary = task_summary(task)
            site = next((f for f in reversed(summary.split(" <- ")) if PACKAGE_DIR in f), "")
            state.violate(
                "leaked task",
                "after the run",
                summary,
                f"leaked task {site.rsplit('/', 1)[-1] or coro_name(task)}",
            )
    left = {inode: d for inode, d in client_sockets(port).items() if inode not in leaked}
    for _ in range(20):  # a closed transport releases its socket within a few loop turns
        if not left:
            break
        await asyncio.sleep(0)
        still_open = set(socket_fds().values())
        left = {inode: d for inode, d in left.items() if inode in still_open}
    for inode, desc in left.items():
        leaked.add(inode)
        state.violate("leaked socket", "after the run", desc, "leaked socket")


# -- the test ------------------------------------------------------------------------------


def report(base: int, runs: int, failed: list[RunState], elapsed: float) -> str:
    groups: dict[str, list[Violation]] = {}
    for state in failed:
        for v in state.violations:
            groups.setdefault(v.key, []).append(v)
    out = [
        f"{len(failed)} of {runs} chaos runs broke an invariant (base seed {base}, "
        f"{elapsed:.1f} s); {len(groups)} distinct failures:"
    ]
    for key, vs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        v = vs[0]
        faults = "; ".join(f"{path}#{n}: {f}" for path, n, f in v.faults[:12])
        out += [
            "",
            f"== {key}  ({len(vs)}x; seeds {sorted({x.seed for x in vs})[:6]})",
            f"   reproduce: AIOPIECES_CHAOS_SEED={v.seed} AIOPIECES_CHAOS_RUNS=1 "
            "python -m pytest tests/faults/test_chaos.py",
            f"   {v.what}: {v.op}",
            f"   server faults: {faults}",
            *("   | " + line for line in v.detail.splitlines()),
        ]
    return "\n".join(out)


def shrink_close_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set the library's WebSocket close bound (two seconds) to `CLOSE` wherever it is read."""
    for name, module in list(sys.modules.items()):
        if name == "aiopieces" or name.startswith("aiopieces."):
            for attr in CLOSE_BOUND_NAMES:
                if isinstance(getattr(module, attr, None), float):
                    monkeypatch.setattr(module, attr, CLOSE)


#: pytest-timeout: 0.2 s a run, and a bound for each failed run (each may be a hang).
@pytest.mark.timeout(max(120, RUNS // 5 + MAX_FAILED_RUNS * (BOUND + 1)))
async def test_randomised_faults_keep_every_invariant(
    aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = int(SEED_ENV) if SEED_ENV else secrets.randbits(32)
    print(f"chaos: base seed {base}, {RUNS} runs, bound {BOUND:.2f} s")
    print(f"reproduce all: AIOPIECES_CHAOS_SEED={base} AIOPIECES_CHAOS_RUNS={RUNS}")
    shrink_close_bound(monkeypatch)
    chaos = Chaos()
    server = await aiohttp_server(chaos.make_app(), host="127.0.0.1")
    url = str(server.make_url("")).rstrip("/")
    leaked: set[str] = set()
    failed: list[RunState] = []
    outcomes: Counter[str] = Counter()
    began = time.monotonic()
    for i in range(RUNS):
        state = await one_run(chaos, url, server.port, base + i, leaked)
        outcomes.update(state.outcomes)
        if state.violations:
            failed.append(state)
            if len(failed) >= MAX_FAILED_RUNS:
                break
    elapsed = time.monotonic() - began
    for kind, count in sorted(outcomes.items()):
        print(f"  {count:6d}  {kind}")
    print(f"chaos: {i + 1} runs in {elapsed:.1f} s")
    assert not failed, report(base, i + 1, failed, elapsed)
