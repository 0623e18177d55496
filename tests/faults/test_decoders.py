"""Property tests: any bytes and any JSON value decode or raise PiecesDecodeError, nothing else."""

from __future__ import annotations

import contextlib

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopieces import (
    Model,
    ModelDeleteCacheOutput,
    ModelDownloadProgress,
    Models,
    PiecesDecodeError,
)
from aiopieces._transport import decode

DECODERS = [
    msgspec.json.Decoder(t) for t in (Models, Model, ModelDownloadProgress, ModelDeleteCacheOutput)
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["iterable", "id", "name", "status", "percentage", "created", "x"])
            | st.text(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes(data: bytes) -> None:
    for decoder in DECODERS:
        with contextlib.suppress(PiecesDecodeError):
            decode(decoder, data, "fuzz")


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_value(value: object) -> None:
    data = msgspec.json.encode(value)
    for decoder in DECODERS:
        try:
            result = decode(decoder, data, "fuzz")
        except PiecesDecodeError as exc:
            assert "fuzz" in str(exc)
        else:
            assert isinstance(result, decoder.type)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30), st.floats(0, 100))
def test_any_status_string_decodes(status: str, percentage: float) -> None:
    event = decode(
        DECODERS[2], msgspec.json.encode({"status": status, "percentage": percentage}), "fuzz"
    )
    assert isinstance(event, ModelDownloadProgress)
    assert event.status == status
    assert msgspec.json.decode(msgspec.json.encode(event))["status"] == status


# Each names a string where raw bytes land: invalid UTF-8 there made msgspec raise
# UnicodeDecodeError, which escaped as is until `decode` mapped it.
STRING_SLOTS = [
    b'{"iterable":[{"id":"%s"}]}',
    b'{"id":"%s","name":"n"}',
    b'{"status":"%s","percentage":1}',
    b'{"model":{"id":"%s"}}',
    b'{"id":"m","created":{"value":"%s"}}',
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(STRING_SLOTS),
    st.binary(max_size=12) | st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88"]),
)
def test_raw_bytes_inside_a_json_string(template: bytes, raw: bytes) -> None:
    data = template.replace(b"%s", raw.replace(b'"', b"").replace(b"\\", b""))
    for decoder in DECODERS:
        with contextlib.suppress(PiecesDecodeError):
            decode(decoder, data, "fuzz")
