"""`nox -s bench` (or `python -m bench`): every figure of the performance issue, in one run.

Times are medians of repeated runs; each target is a ratio of two figures measured in
this same run, so the verdicts do not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

import aiohttp
import msgspec

import aiopieces
from aiopieces import AsyncPiecesClient, Models
from aiopieces.testing import default_catalog

REPEATS = 7
IMPORT_REPEATS = 11
ROWS: list[tuple[str, str, str]] = []
VERDICTS: list[tuple[str, float, str, bool]] = []


def row(section: str, what: str, value: str) -> None:
    ROWS.append((section, what, value))
    print(f"  {section:12} {what:48} {value}", flush=True)


def target(name: str, ratio: float, goal: str, ok: bool) -> None:
    VERDICTS.append((name, ratio, goal, ok))


def median_time(fn: Callable[[], Any], repeats: int = REPEATS) -> float:
    """Median of `repeats` runs, with the garbage collector off while timing (as timeit)."""
    times = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return statistics.median(times)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


# -- 1. import -----------------------------------------------------------------------------

IMPORT_PROBE = (
    "import resource, sys, time; t = time.perf_counter(); {stmt}; "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
    "sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'mcp', 'mcp_types') "
    "or m.startswith('aiopieces.testing') or m in ('aiopieces._cli', 'aiopieces._mcp')))"
)


def measure_import(stmt: str) -> tuple[float, float, float, list[str]]:
    """Wall time of the whole process, of the import alone, and peak RSS (MB), once."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE.format(stmt=stmt)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall = time.perf_counter() - start
    seconds, maxrss, modules = out.split(" ", 2)
    return wall, float(seconds), int(maxrss) / 1024, json.loads(modules.replace("'", '"'))


def bench_import() -> None:
    print("1. import", flush=True)
    statements = {
        "ours": "import aiopieces",
        "floor": "import aiohttp, msgspec, anyio",
        "official": "from pieces_os_client.api.model_api import ModelApi; "
        "from pieces_os_client.api.models_api import ModelsApi",
    }
    samples: dict[str, list[tuple[float, float, float, list[str]]]] = {k: [] for k in statements}
    for _ in range(IMPORT_REPEATS):  # interleaved, so drift hits all three alike
        for key, stmt in statements.items():
            samples[key].append(measure_import(stmt))

    def med(key: str) -> tuple[float, float, float, list[str]]:
        runs = samples[key]
        return (
            statistics.median(r[0] for r in runs),
            statistics.median(r[1] for r in runs),
            statistics.median(r[2] for r in runs),
            runs[-1][3],
        )

    ours, floor, official = med("ours"), med("floor"), med("official")
    for name, (wall, imp, rss, _) in [
        ("aiopieces", ours),
        ("aiohttp+msgspec+anyio (floor)", floor),
        ("official ModelApi+ModelsApi", official),
    ]:
        row(
            "import",
            name,
            f"{wall * 1000:7.1f} ms process, {imp * 1000:6.1f} ms import, {rss:6.1f} MB RSS",
        )
    time_ratio, rss_ratio = ours[0] / floor[0], ours[2] / floor[2]
    target("import time vs floor", time_ratio, "<= 1.2x", time_ratio <= 1.2)
    target("import RSS vs floor", rss_ratio, "<= 1.2x", rss_ratio <= 1.2)
    target("optional extras not imported", float(len(ours[3])), "none", not ours[3])


# -- 2. decode -----------------------------------------------------------------------------


def models_body(count: int) -> bytes:
    catalog = default_catalog("schema")  # the only shape the official SDK can decode
    models = []
    for i in range(count):
        m = dict(catalog[i % len(catalog)])
        m["id"] = f"{m['id'][:-6]}{i:06d}"
        models.append(m)
    return msgspec.json.encode({"iterable": models})


def bench_decode() -> None:
    print("2. decode", flush=True)
    from pieces_os_client.models.models import Models as OfficialModels

    decoder = msgspec.json.Decoder(Models)

    def per_call(fn: Callable[[], object]) -> float:
        """Median seconds per call: timeit picks the loop count (0.2 s a run), GC off."""
        timer = timeit.Timer(fn)
        number, _ = timer.autorange()
        return statistics.median(timer.repeat(repeat=REPEATS, number=number)) / number

    def figures(body: bytes) -> tuple[float, ...]:
        text = body.decode()
        ours = per_call(lambda: decoder.decode(body))
        untyped = per_call(lambda: msgspec.json.decode(body))
        official = per_call(lambda: OfficialModels.from_json(text))
        return ours, untyped, official

    for count in (120, 1000):
        ours, untyped, official = figures(models_body(count))
        row("decode", f"{count} models: aiopieces Models", f"{ours * 1e3:8.3f} ms")
        row("decode", f"{count} models: msgspec untyped (floor)", f"{untyped * 1e3:8.3f} ms")
        row("decode", f"{count} models: official Models.from_json", f"{official * 1e3:8.3f} ms")
        speedup = official / ours
        target(f"decode {count}: speed-up over official", speedup, ">= 10x", speedup >= 10)
        target(f"decode {count}: time vs untyped", ours / untyped, "<= 1.0x", ours <= untyped)


# -- 3-6. calls over loopback -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The minimal server, in its own process so it does not share our event loop."""

    def __init__(self, frames: int) -> None:
        http_port, ws_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{http_port}"
        self.ws_url = f"http://127.0.0.1:{ws_port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._server", str(http_port), str(ws_port), str(frames)],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "ready": both servers listen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


async def amedian(fn: Callable[[], Awaitable[Any]], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def interleaved(
    first: Callable[[], Awaitable[Any]], second: Callable[[], Awaitable[Any]], repeats: int = 7
) -> tuple[float, float]:
    """Median times of two jobs run alternately, so that drift hits both alike."""
    a, b = [], []
    for _ in range(repeats):
        a.append(await amedian(first, 1))
        b.append(await amedian(second, 1))
    return statistics.median(a), statistics.median(b)


async def bench_calls(server: Server) -> None:
    print("3. sequential calls, 4. concurrency, 6. memory", flush=True)
    model_id = default_catalog()[0]["id"]
    n_seq, n_conc = 2000, 500
    model_decoder = msgspec.json.Decoder(aiopieces.Model)
    models_decoder = msgspec.json.Decoder(Models)

    async with AsyncPiecesClient(server.url) as client, aiohttp.ClientSession() as session:

        async def ours_seq() -> None:
            for _ in range(n_seq):
                await client.get_model(model_id)

        async def bare_seq() -> None:
            for _ in range(n_seq):
                async with session.get(f"{server.url}/model/{model_id}") as resp:
                    model_decoder.decode(await resp.read())

        async def ours_conc() -> None:
            await asyncio.gather(*(client.list_models() for _ in range(n_conc)))

        async def bare_one() -> None:
            async with session.get(f"{server.url}/models") as resp:
                models_decoder.decode(await resp.read())

        async def bare_conc() -> None:
            await asyncio.gather(*(bare_one() for _ in range(n_conc)))

        await ours_seq(), await bare_seq(), await ours_conc(), await bare_conc()  # warm up
        t_ours, t_bare = await interleaved(ours_seq, bare_seq)
        c_ours, c_bare = await interleaved(ours_conc, bare_conc)

        gc.collect()
        before = rss_bytes()
        for _ in range(5):
            await ours_seq()
        gc.collect()
        growth = (rss_bytes() - before) / 1024 / 1024

    t_official = official_sequential(server.url, model_id, n_seq)
    row("sequential", f"{n_seq} get_model: aiopieces", f"{n_seq / t_ours:8.0f} calls/s")
    row(
        "sequential",
        f"{n_seq} get_model: bare aiohttp + msgspec (floor)",
        f"{n_seq / t_bare:8.0f} calls/s",
    )
    row("sequential", f"{n_seq} get_model: official sync SDK", f"{n_seq / t_official:8.0f} calls/s")
    row("concurrent", f"{n_conc} list_models: aiopieces", f"{n_conc / c_ours:8.0f} calls/s")
    row(
        "concurrent",
        f"{n_conc} list_models: bare aiohttp gather (floor)",
        f"{n_conc / c_bare:8.0f} calls/s",
    )
    row("memory", "RSS growth across 10,000 get_model calls", f"{growth:8.2f} MB")
    target("sequential vs bare aiohttp", t_bare / t_ours, ">= 0.90x", t_bare / t_ours >= 0.90)
    target("sequential vs official SDK", t_official / t_ours, ">= 1.5x", t_official / t_ours >= 1.5)
    target("concurrent vs bare aiohttp", c_bare / c_ours, ">= 0.90x", c_bare / c_ours >= 0.90)
    target("memory growth (MB) over 10,000 calls", growth, "< 5 MB", growth < 5)


def official_sequential(url: str, model_id: str, n: int) -> float:
    from pieces_os_client.api.model_api import ModelApi
    from pieces_os_client.api_client import ApiClient
    from pieces_os_client.configuration import Configuration

    api = ModelApi(ApiClient(Configuration(host=url)))
    for _ in range(50):
        api.models_specific_model_snapshot(model_id)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            api.models_specific_model_snapshot(model_id)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def bench_websocket(server: Server, frames: int) -> None:
    print("5. WebSocket", flush=True)
    decoder = msgspec.json.Decoder(aiopieces.ModelDownloadProgress)
    async with AsyncPiecesClient(server.ws_url) as client, aiohttp.ClientSession() as session:

        async def ours() -> None:
            count = 0
            async for _ in client.download_progress("m"):
                count += 1
            assert count == frames + 1

        async def bare() -> None:
            count = 0
            async with session.ws_connect(f"{server.ws_url}/model/m/download/progress") as ws:
                async for msg in ws:
                    event = decoder.decode(msg.data)
                    count += 1
                    if event.status == "COMPLETED":
                        break
            assert count == frames + 1

        await ours(), await bare()
        t_ours, t_bare = await interleaved(ours, bare)
    row(
        "websocket",
        f"{frames} frames: aiopieces download_progress",
        f"{frames / t_ours:8.0f} frames/s",
    )
    row(
        "websocket",
        f"{frames} frames: bare aiohttp loop (floor)",
        f"{frames / t_bare:8.0f} frames/s",
    )
    target("websocket vs bare loop", t_bare / t_ours, ">= 0.8x", t_bare / t_ours >= 0.8)


async def bench_identifiers(server: Server, batches: int) -> None:
    print("7. model identifier stream", flush=True)
    decoder = msgspec.json.Decoder(aiopieces.StreamedIdentifiers)
    async with AsyncPiecesClient(server.ws_url) as client, aiohttp.ClientSession() as session:

        async def ours() -> None:
            count = 0
            async for _ in client.watch_models():
                count += 1
                if count == batches:
                    break

        async def bare() -> None:
            count = 0
            async with session.ws_connect(f"{server.ws_url}/models/stream/identifiers") as ws:
                async for msg in ws:
                    decoder.decode(msg.data)
                    count += 1
                    if count == batches:
                        break

        await ours(), await bare()
        t_ours, t_bare = await interleaved(ours, bare)
    row(
        "identifiers",
        f"{batches} batches: aiopieces watch_models",
        f"{batches / t_ours:8.0f} batches/s",
    )
    row(
        "identifiers",
        f"{batches} batches: bare aiohttp loop (floor)",
        f"{batches / t_bare:8.0f} batches/s",
    )
    target("identifier stream vs bare loop", t_bare / t_ours, ">= 0.8x", t_bare / t_ours >= 0.8)


def main() -> None:
    versions = {
        p: metadata.version(p)
        for p in ("aiopieces", "aiohttp", "msgspec", "anyio", "pieces-os-client")
    }
    print(
        f"machine: {platform.machine()}, {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"python: {platform.python_version()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    bench_import()
    bench_decode()
    frames = 50_000
    server = Server(frames)
    try:
        asyncio.run(bench_calls(server))
        asyncio.run(bench_websocket(server, frames))
        asyncio.run(bench_identifiers(server, frames))
    finally:
        server.stop()
    print("\ntargets (ratios measured in this run):")
    for name, ratio, goal, ok in VERDICTS:
        print(f"  {'met ' if ok else 'MISS'}  {name:42} {ratio:8.2f}   target {goal}")
    if "--json" in sys.argv:
        print(json.dumps({"rows": ROWS, "targets": VERDICTS}))


if __name__ == "__main__":
    main()
