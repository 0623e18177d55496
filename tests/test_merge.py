"""The lossless merge: the server's JSON back, changed only where the caller changed it."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from aiopieces import ByteDescriptor, Model, ModelMaxTokens
from aiopieces._merge import merge_into

#: A model as PiecesOS sends it: keys we do not know, a timestamp in its own precision,
#: an explicit null, and flags left out (no `cloud`, no `downloaded`).
SERVED: dict[str, Any] = {
    "id": "m-1",
    "name": "Mine",
    "version": "1.0",
    "created": {"value": "2030-01-01T00:00:00.000Z", "readable": "in 4 years"},
    "type": "BALANCED",
    "usage": "CODE_CONVERSATION",
    "custom": True,
    "maxTokens": {"total": None, "input": 4096},
    "capabilities": {"images": True, "telepathy": True},
    "quantumState": {"spin": "up"},
}


def merged(change: Any) -> dict[str, Any]:
    """Decode `SERVED`, let `change` edit the model, and merge the result back."""
    current = copy.deepcopy(SERVED)
    served = msgspec.json.decode(msgspec.json.encode(current), type=Model)
    wanted = msgspec.structs.replace(served)
    change(wanted)
    result = merge_into(current, served, wanted)
    assert current == SERVED  # the server's JSON is not modified
    return result


def test_nothing_changed_is_the_servers_json_exactly() -> None:
    assert merged(lambda m: None) == SERVED


def test_a_changed_field_goes_out_under_its_wire_name() -> None:
    def change(m: Model) -> None:
        m.max_tokens = ModelMaxTokens(total=8192, input=4096)

    result = merged(change)
    assert result["maxTokens"] == {"total": 8192, "input": 4096}
    assert "max_tokens" not in result
    assert {k: v for k, v in result.items() if k != "maxTokens"} == {
        k: v for k, v in SERVED.items() if k != "maxTokens"
    }


def test_inside_a_nested_value_only_the_changed_field_is_rewritten() -> None:
    def change(m: Model) -> None:
        assert m.created is not None
        m.created = msgspec.structs.replace(m.created, readable="soon")

    # The timestamp keeps the server's own spelling (our encoding would drop the ".000").
    assert merged(change)["created"] == {"value": "2030-01-01T00:00:00.000Z", "readable": "soon"}


def test_a_nested_value_keeps_keys_we_do_not_know() -> None:
    def change(m: Model) -> None:
        assert m.capabilities is not None
        m.capabilities = msgspec.structs.replace(m.capabilities, images=False)

    assert merged(change)["capabilities"] == {"images": False, "telepathy": True}


def test_a_nested_value_the_server_left_out_is_written_whole() -> None:
    def change(m: Model) -> None:
        m.description = "new"
        m.bytes = ByteDescriptor(value=5, readable="5 B")
        m.ram = None  # absent, and set to None: nothing to remove

    result = merged(change)
    assert result["description"] == "new" and "ram" not in result
    assert result["bytes"] == {"value": 5, "readable": "5 B"}


def test_a_value_where_the_server_sent_none_is_written_in_our_encoding() -> None:
    def change(m: Model) -> None:
        m.max_tokens = None
        m.foundation = "GPT_9"  # type: ignore[assignment]  # an open enum takes any text

    result = merged(change)
    assert "maxTokens" not in result  # None removes the key, as PiecesOS leaves it out
    assert result["foundation"] == "GPT_9"


def test_none_for_a_field_whose_absence_decoded_to_a_default_removes_nothing() -> None:
    # `cloud` is absent (decoded as False); setting it to None must not fail on the key.
    def change(m: Model) -> None:
        m.cloud = None  # type: ignore[assignment]

    assert merged(change) == SERVED


def test_a_required_nullable_key_is_sent_as_null() -> None:
    def change(m: Model) -> None:
        m.max_tokens = ModelMaxTokens(total=None, input=2048)

    assert merged(change)["maxTokens"] == {"total": None, "input": 2048}


@pytest.mark.parametrize("field", ["name", "version", "type", "custom"])
def test_setting_a_present_field_to_none_removes_its_key(field: str) -> None:
    def change(m: Model) -> None:
        setattr(m, field, None)

    result = merged(change)
    assert field not in result
    assert {k: v for k, v in SERVED.items() if k != field} == result
