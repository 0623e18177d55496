"""Generate `aiopieces/_enums/_generated.py` from the pieces-os-client 5.0.1 JSON schema.

    python scripts/gen_enums.py [SCHEMA] [--output FILE] [--check]

SCHEMA defaults to `../shared/reference/pieces-os-client-5.0.1-schemas.json` beside the
repository. The values, their order and the class docstrings come from the schema's
`$defs`; member names follow the official SDK's rule (`member_name`); `RENAMED` in the
hand-written `aiopieces/_enums/_base.py` gives some values our name instead, with the
official name kept as an alias. The output is the same for the same inputs: no dates,
no absolute paths. When `pieces_os_client` is importable, every official name is also
checked against it; it is not needed. `--check` writes nothing and exits 1 when FILE
differs from what would be written.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEMA = ROOT.parent / "shared" / "reference" / "pieces-os-client-5.0.1-schemas.json"
DEFAULT_OUTPUT = ROOT / "aiopieces" / "_enums" / "_generated.py"
BASE = ROOT / "aiopieces" / "_enums" / "_base.py"

#: The schema's enums that aiopieces's types use, in the order they are written.
ENUMS = (
    "ModelFoundationEnum",
    "ModelTypeEnum",
    "ModelUsageEnum",
    "ExternalMLProviderEnum",
    "ModelDownloadProgressStatusEnum",
    "EmbeddedModelSchemaSemanticVersionEnum",
)

#: What the official SDK (openapi-generator) writes for a character that cannot be in a
#: name. Only these three occur in its 5.0.1 enums; another one stops the generator, so
#: that its name is checked against a real SDK rather than guessed.
SPECIAL = {".": "DOT", "-": "MINUS", "+": "PLUS"}

#: A docstring that fits the line length (ruff's) is one line; a longer one is wrapped
#: to the width of the hand-written ones.
LINE_LENGTH = 100
WIDTH = 88


def member_name(value: str) -> str:
    """The official SDK's member name for `value`: `GPT_3.5` -> `GPT_3_DOT_5`.

    The rule, which gives every name of all 1079 members of the SDK 5.0.1's enums: each
    special character becomes `_NAME_` (`.` DOT, `-` MINUS, `+` PLUS); a digit followed
    by a capital letter gets an underscore between them (`7B` -> `7_B`, but `MV2`,
    `mp4a` and `tmLanguage` stay whole); runs of underscores become one, none is kept at
    either end, and the result is upper-cased.
    """
    parts = []
    for char in value:
        if char.isalnum() or char == "_":
            parts.append(char)
        elif char in SPECIAL:
            parts.append(f"_{SPECIAL[char]}_")
        else:
            raise ValueError(f"no known SDK name for {char!r} in {value!r}: add it to SPECIAL")
    name = re.sub(r"(\d)([A-Z])", r"\1_\2", "".join(parts))
    name = re.sub(r"_+", "_", name).strip("_").upper()
    if not name.isidentifier() or name[0].isdigit():
        raise ValueError(f"{value!r} gives {name!r}, not a name")
    return name


def read_renamed(path: Path) -> dict[str, dict[str, str]]:
    """`RENAMED` from the hand-written base module, read as a literal, not imported."""
    target: ast.expr
    value: ast.expr | None
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == "RENAMED" and value is not None:
            renamed = ast.literal_eval(value)
            if not isinstance(renamed, dict):
                raise ValueError(f"RENAMED in {path} is not a dict")
            return renamed
    raise ValueError(f"no RENAMED in {path}")


def docstring(text: str, indent: str) -> list[str]:
    """`text` whole (white space runs made one space) as a docstring's lines."""
    text = " ".join(text.split()).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text = text[:-1] + '\\"'
    one = f'{indent}"""{text}"""'
    if len(one) <= LINE_LENGTH:
        return [one]
    lines = textwrap.wrap(
        text,
        WIDTH - len(indent),
        initial_indent=f'{indent}"""',
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [*lines, f'{indent}"""']


def official_members(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """(official name, value) of each value of one schema enum, in the schema's order."""
    values = definition["enum"]
    if not all(isinstance(v, str) for v in values) or len(set(values)) != len(values):
        raise ValueError(f"{definition.get('title')}: values must be distinct strings")
    members = [(member_name(v), v) for v in values]
    names = [name for name, _ in members]
    if len(set(names)) != len(names):
        raise ValueError(f"{definition.get('title')}: two values give one name: {names}")
    return members


def render(schema: dict[str, Any], schema_name: str, renamed: dict[str, dict[str, str]]) -> str:
    """The generated module's text."""
    defs = schema["$defs"]
    unknown = set(renamed) - set(ENUMS)
    if unknown:
        raise ValueError(f"RENAMED names enums that are not generated: {sorted(unknown)}")
    out = [
        f"# DO NOT EDIT: generated by scripts/gen_enums.py from {schema_name}",
        "# (its $defs). Hand-written parts are in _base.py; see README.md here.",
        '"""PiecesOS enums, as the pieces-os-client 5.0.1 schema lists them (generated).',
        "",
        'Member names follow the official SDK (`GPT_3_DOT_5` for `"GPT_3.5"`), except those',
        "`_base.RENAMED` names, which keep the official name as an alias.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from ._base import OpenEnum",
        "",
        "__all__ = [",
        *(f'    "{name}",' for name in sorted(ENUMS)),
        "]",
    ]
    for enum_name in ENUMS:
        definition = defs[enum_name]
        ours = renamed.get(enum_name, {})
        members = official_members(definition)
        missing = set(ours) - {value for _, value in members}
        if missing:
            raise ValueError(f"RENAMED[{enum_name!r}] has values the schema lacks: {missing}")
        out += ["", "", f"class {enum_name}(OpenEnum):"]
        out += docstring(definition.get("description") or enum_name, "    ")
        out.append("")
        out += [f'    {ours.get(value, name)} = "{value}"' for name, value in members]
        out += [
            f'    {name} = "{value}"  # the official SDK\'s name, kept as an alias'
            for name, value in members
            if value in ours
        ]
    return "\n".join(out) + "\n"


def check_against_sdk(schema: dict[str, Any]) -> str:
    """Compare each official name with pieces_os_client's, when it is importable."""
    try:
        importlib.import_module("pieces_os_client.models")
    except ImportError:
        return "pieces_os_client is not installed: names not cross-checked"
    for enum_name in ENUMS:
        # One module a class, named as the SDK names them: ExternalMLProviderEnum is in
        # external_ml_provider_enum.
        module = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", enum_name).lower()
        sdk_enum = getattr(importlib.import_module(f"pieces_os_client.models.{module}"), enum_name)
        sdk = [(m.name, m.value) for m in sdk_enum]
        ours = official_members(schema["$defs"][enum_name])
        if sdk != ours:
            diff = sorted(set(sdk) ^ set(ours)) or "the order differs"
            raise SystemExit(f"{enum_name} differs from pieces_os_client's: {diff}")
    return "names cross-checked against pieces_os_client"


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with --check, compare) the generated module; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("schema", nargs="?", type=Path, default=DEFAULT_SCHEMA)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    schema = json.loads(args.schema.read_text(encoding="utf-8"))
    text = render(schema, args.schema.name, read_renamed(BASE))
    note = check_against_sdk(schema)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != text:
            print(f"{args.output} is out of date: run scripts/gen_enums.py", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date ({note})", file=sys.stderr)
        return 0
    args.output.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {args.output} ({note})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
