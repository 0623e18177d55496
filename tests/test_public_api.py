"""The public surface: every public name reports `aiopieces`, and still works."""

from __future__ import annotations

import enum
import inspect
import os
import pickle
import re
import subprocess
import sys
import tarfile
import tomllib
import typing
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import msgspec
import pytest

import aiopieces
from aiopieces.testing import PiecesOSEmulator

from .helpers import BOUND

ROOT = Path(__file__).parent.parent
PUBLIC = [getattr(aiopieces, name) for name in aiopieces.__all__]
CLASSES = [obj for obj in PUBLIC if isinstance(obj, type)]
FUNCTIONS = [obj for obj in PUBLIC if inspect.isfunction(obj)]
STRUCTS = [cls for cls in CLASSES if issubclass(cls, msgspec.Struct)]
ENUMS = [cls for cls in CLASSES if issubclass(cls, enum.Enum) and len(cls)]  # not OpenEnum


def test_the_public_names_are_the_ones_we_check() -> None:
    others = [obj for obj in PUBLIC if obj not in CLASSES and obj not in FUNCTIONS]
    assert others == [aiopieces.DEFAULT_BASE_URL, aiopieces.__version__]  # plain strings
    assert len(STRUCTS) >= 15 and len(ENUMS) >= 6 and FUNCTIONS


@pytest.mark.parametrize("obj", CLASSES + FUNCTIONS, ids=lambda obj: obj.__name__)
def test_every_public_class_and_function_reports_the_public_module(obj: object) -> None:
    assert obj.__module__ == "aiopieces"  # type: ignore[attr-defined]
    assert getattr(aiopieces, obj.__qualname__) is obj  # type: ignore[attr-defined]


def test_an_error_names_its_public_class_in_a_traceback() -> None:
    """What a user sees: the error a refused connection gives, as Python prints it."""
    code = (
        "import asyncio, socket, aiopieces\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0))  # bound, not listening: refused\n"
        "url = 'http://127.0.0.1:%d' % s.getsockname()[1]\n"
        "async def main():\n"
        "    async with aiopieces.AsyncPiecesClient(url, retry=None) as client:\n"
        "        await client.list_models()\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("aiopieces.PiecesConnectionError: cannot reach PiecesOS"), last
    assert "aiopieces._" not in last


@pytest.mark.parametrize("cls", STRUCTS, ids=lambda cls: cls.__name__)
def test_wire_types_keep_their_type_hints_schema_and_repr(cls: type[msgspec.Struct]) -> None:
    hints = typing.get_type_hints(cls, include_extras=True)
    assert set(hints) >= set(cls.__struct_fields__)
    schema = msgspec.json.schema(cls)
    assert schema["$defs"][cls.__name__]["title"] == cls.__name__
    msgspec.inspect.type_info(cls)
    assert msgspec.json.Decoder(list[cls]).decode(b"[]") == []  # type: ignore[valid-type]


SAMPLES: list[msgspec.Struct] = [
    aiopieces.Model(id="m1", name="Phi-2", cloud=False),
    aiopieces.ModelDownloadProgress(
        status=aiopieces.ModelDownloadProgressStatusEnum.IN_PROGRESS, percentage=10.0
    ),
    aiopieces.SeededScoreIncrement(),
    aiopieces.Timeout(connect=1.0),
    aiopieces.Retry(attempts=2),
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda value: type(value).__name__)
def test_structs_pickle_and_repr_under_the_public_name(value: msgspec.Struct) -> None:
    assert pickle.loads(pickle.dumps(value)) == value
    name = type(value).__name__
    assert f"caiopieces\n{name}\n".encode() in pickle.dumps(value, protocol=0)
    assert repr(value).startswith(type(value).__name__ + "(")


def test_a_decoded_model_round_trips_through_json_and_pickle() -> None:
    raw = (
        b'{"id": "m1", "name": "Phi-2", "created": {"value": "2024-05-22T16:00:00.000Z"},'
        b' "foundation": "SOMETHING_NEW", "maxTokens": {"total": 2048}}'
    )
    model = msgspec.json.decode(raw, type=aiopieces.Model)
    assert pickle.loads(pickle.dumps(model)) == model
    assert msgspec.json.decode(msgspec.json.encode(model), type=aiopieces.Model) == model


@pytest.mark.parametrize("cls", ENUMS, ids=lambda cls: cls.__name__)
def test_enums_pickle_known_and_unknown_values(cls: type[enum.Enum]) -> None:
    member = next(iter(cls))
    assert pickle.loads(pickle.dumps(member)) is member
    assert repr(member).startswith(f"<{cls.__name__}.")
    if issubclass(cls, aiopieces.OpenEnum):
        unknown = cls("A_VALUE_FROM_THE_FUTURE")
        again = pickle.loads(pickle.dumps(unknown))
        assert again == unknown and type(again) is cls and not again.is_known


def test_the_wheel_and_the_sdist_carry_the_license(tmp_path: Path) -> None:
    """Both distributions, built by the backend pyproject.toml names, hold LICENSE whole."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    backend = tmp_path / "backend"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "--target", str(backend), *project["build-system"]["requires"]],
        check=True,
        timeout=120,
    )
    out = tmp_path / "dist"
    build = (
        "import sys, hatchling.build as b\n"
        "print(b.build_wheel(sys.argv[1]))\n"
        "print(b.build_sdist(sys.argv[1]))\n"
    )
    built = subprocess.run(
        [sys.executable, "-c", build, str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(backend)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    wheel, sdist = (out / name for name in built)
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License\n\nCopyright (c) 2026 the aiopieces authors\n")

    with zipfile.ZipFile(wheel) as archive:
        info = f"aiopieces-{aiopieces.__version__}.dist-info"
        assert archive.read(f"{info}/licenses/LICENSE").decode() == license_text
        metadata = archive.read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()

    with tarfile.open(sdist) as archive:
        member = archive.extractfile(f"aiopieces-{aiopieces.__version__}/LICENSE")
        assert member is not None and member.read().decode() == license_text


# -- which calls raise ModelNotFoundError (the README's "Errors") ----------------------

UNKNOWN_ID = "no-such-model"
POSTS_ON_A_MODEL: dict[str, Callable[[aiopieces.AsyncPiecesClient], Awaitable[object]]] = {
    "download_model": lambda client: client.download_model(UNKNOWN_ID),
    "cancel_download": lambda client: client.cancel_download(UNKNOWN_ID),
    "load_model": lambda client: client.load_model(UNKNOWN_ID),
    "unload_model": lambda client: client.unload_model(UNKNOWN_ID),
    "delete_model": lambda client: client.delete_model(UNKNOWN_ID),
    "delete_model_cache": lambda client: client.delete_model_cache(UNKNOWN_ID),
    "increment_model_score": lambda client: client.increment_model_score(UNKNOWN_ID),
}


async def test_get_model_on_an_unknown_id_is_model_not_found(
    pieces_client: aiopieces.AsyncPiecesClient,
) -> None:
    with anyio.fail_after(BOUND), pytest.raises(aiopieces.ModelNotFoundError) as caught:
        await pieces_client.get_model(UNKNOWN_ID)
    assert caught.value.status == 410
    assert caught.value.method == "GET" and caught.value.url.endswith(f"/model/{UNKNOWN_ID}")


async def test_update_model_on_an_unknown_id_is_model_not_found_it_reads_the_model_first(
    pieces_client: aiopieces.AsyncPiecesClient,
) -> None:
    model = (await pieces_client.list_models()).iterable[0]
    model.id = UNKNOWN_ID
    with anyio.fail_after(BOUND), pytest.raises(aiopieces.ModelNotFoundError) as caught:
        await pieces_client.update_model(model)
    assert caught.value.status == 410 and caught.value.method == "GET"


@pytest.mark.parametrize("start", [False, True], ids=["download_progress", "download"])
async def test_the_progress_websocket_on_an_unknown_id_is_model_not_found(
    pieces_client: aiopieces.AsyncPiecesClient, pieces_emulator: PiecesOSEmulator, start: bool
) -> None:
    stream = (
        pieces_client.download(UNKNOWN_ID, cancel_on_exit=True)
        if start
        else pieces_client.download_progress(UNKNOWN_ID)
    )
    with anyio.fail_after(BOUND), pytest.raises(aiopieces.ModelNotFoundError) as caught:
        async for _ in stream:
            pass
    assert caught.value.status == 410
    assert caught.value.url.endswith(f"/model/{UNKNOWN_ID}/download/progress")
    # Refused at the handshake: never retried, and `download()` never sent its POST.
    tries = [r for r in pieces_emulator.requests if UNKNOWN_ID in r[1]]
    assert tries == [("GET", f"/model/{UNKNOWN_ID}/download/progress")]


@pytest.mark.parametrize("call", sorted(POSTS_ON_A_MODEL))
async def test_a_post_on_an_unknown_model_is_a_plain_api_error_500(
    pieces_client: aiopieces.AsyncPiecesClient, pieces_emulator: PiecesOSEmulator, call: str
) -> None:
    """As PiecesOS does: 500 with a text body, not 410, so not ModelNotFoundError."""
    with anyio.fail_after(BOUND), pytest.raises(aiopieces.PiecesAPIError) as caught:
        await POSTS_ON_A_MODEL[call](pieces_client)
    assert type(caught.value) is aiopieces.PiecesAPIError
    assert caught.value.status == 500 and caught.value.method == "POST"
    assert f"model {UNKNOWN_ID!r} was not found." in caught.value.body
    tries = [r for r in pieces_emulator.requests if UNKNOWN_ID in r[1]]
    assert len(tries) == 1 and tries[0][0] == "POST"  # a 500 is not retried
    with pytest.raises(aiopieces.ModelNotFoundError):
        await pieces_client.get_model(UNKNOWN_ID)  # how to tell: ask GET /model/{id}


def test_every_post_on_a_model_is_covered() -> None:
    """Every client method whose endpoint is a POST on one model is in the table above."""
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)\(model_id[^`]*\)` \| `POST /models?/\{model\}", readme, re.M)
    assert sorted(rows) == sorted(POSTS_ON_A_MODEL)
