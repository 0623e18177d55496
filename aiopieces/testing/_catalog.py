"""The emulator's built-in catalog: models like the ones a PiecesOS install lists.

Two shapes of the same models. `"pieces"` is what PiecesOS 10 really sends: keys in its
declaration order, `cloud` only on cloud models, `downloaded` only once true, no
`description`, `bytes`, `capabilities` or `parameters`, timestamps with milliseconds and
a humanised age, internal models (OCR, search, ...) with no `foundation`. `"schema"` is
schema-complete: every field the `pieces-os-client` 5.0.1 schema knows, required or not,
as the official SDK can decode it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal, NamedTuple

__all__ = [
    "LLM_USAGES",
    "MODEL_KEY_ORDER",
    "OMITTED_WHEN_FALSE",
    "SHAPES",
    "Shape",
    "default_catalog",
    "humanised_age",
    "in_pieces_order",
    "is_llm",
    "put",
]

Shape = Literal["pieces", "schema"]
SHAPES: tuple[Shape, ...] = ("pieces", "schema")

_GIB = 1024**3
_MIB = 1024**2
_SCHEMA = {"migration": 0, "semantic": "MAJOR_0_MINOR_0_PATCH_1"}
#: Chat and generation models are the "LLMs" whose cache can be deleted.
LLM_USAGES = frozenset({"CODE_CONVERSATION", "CODE_GENERATION"})

#: A model's keys in the order PiecesOS writes them: the declaration order of its API
#: (the official SDKs' `__properties` before 5.0.1 sorted them), which a captured
#: `GET /models` follows. `organization` and `denied` came later; their place is a guess.
MODEL_KEY_ORDER = (
    "schema",
    "id",
    "version",
    "created",
    "name",
    "description",
    "cloud",
    "type",
    "usage",
    "bytes",
    "ram",
    "quantization",
    "foundation",
    "downloaded",
    "loaded",
    "unique",
    "parameters",
    "provider",
    "cpu",
    "downloading",
    "maxTokens",
    "custom",
    "capabilities",
    "score",
    "organization",
    "denied",
)
_RANK = {key: rank for rank, key in enumerate(MODEL_KEY_ORDER)}
#: Flags PiecesOS leaves out while they are false (it always sends `loaded`, `cpu` and
#: `downloading`).
OMITTED_WHEN_FALSE = frozenset({"cloud", "custom", "denied", "downloaded"})


class _Row(NamedTuple):
    """One built-in model, with everything either shape may show of it."""

    name: str
    kind: Literal["cloud", "local", "internal"]
    usage: str
    foundation: str | None
    provider: str | None
    version: str
    type: str = "BALANCED"
    context: int | None = None  # max input tokens, for LLMs
    output: int | None = None  # max output tokens, for LLMs
    params: float | None = None  # billions
    file: int | None = None  # bytes on disk
    ram: int | None = None  # bytes in memory
    quantization: str | None = None
    cpu: bool = False
    downloaded: bool = False
    loaded: bool = False
    #: Whether PiecesOS sends `unique` and `maxTokens` for it (cloud models: always).
    listed: bool = True
    #: Whether PiecesOS sends `provider` for it (the schema shape always does).
    sends_provider: bool = True
    description: str = ""


def _cloud(
    name: str, foundation: str, provider: str, version: str, context: int, output: int
) -> _Row:
    """A cloud LLM; `context` and `output` are its most input and output tokens."""
    host = provider.replace("_", " ").title()
    return _Row(
        name,
        "cloud",
        "CODE_CONVERSATION",
        foundation,
        provider,
        version,
        context=context,
        output=output,
        description=f"{name}, hosted by {host}.",
    )


# fmt: off
_CLOUD = [
    _cloud("GPT-4o", "GPT_LATEST", "OPENAI", "2024-08-06", 128_000, 16_384),
    _cloud("GPT-4o Mini", "GPT_LATEST", "OPENAI", "2024-07-18", 128_000, 16_384),
    _cloud("GPT-4 Turbo", "GPT_4", "OPENAI", "2024-04-09", 128_000, 4_096),
    _cloud("GPT-3.5 Turbo", "GPT_3.5", "OPENAI", "0125", 16_385, 4_096),
    _cloud("Claude 3.5 Sonnet", "CLAUDE_3.5", "ANTHROPIC", "20241022", 200_000, 8_192),
    _cloud("Claude 3 Opus", "CLAUDE_3", "ANTHROPIC", "20240229", 200_000, 4_096),
    _cloud("Claude 4 Sonnet", "CLAUDE_4", "ANTHROPIC", "20250514", 200_000, 64_000),
    _cloud("Gemini 1.5 Pro", "GEMINI_1.5", "GOOGLE", "002", 2_000_000, 8_192),
    _cloud("Gemini 2.0 Flash", "GEMINI_2", "GOOGLE", "001", 1_048_576, 8_192),
    _cloud("Codey (PaLM2) Chat", "CODECHAT_BISON", "GOOGLE", "002", 6_144, 1_024),
    _cloud("Perplexity Sonar", "PERPLEXITY_DEFAULT", "PERPLEXITY", "t11-v09-i01", 127_072, 8_000),
    _cloud("Azure GPT-4o", "AZURE_DEFAULT", "MSFT_AZURE_OPEN_AI", "2024-08-06", 128_000, 16_384),
]
# fmt: on


def _local(
    name: str,
    foundation: str,
    provider: str,
    version: str,
    params: float,
    file_gib: float,
    ram_gib: float,
    context: int,
    *,
    quantization: str = "q4f16_1",
    cpu: bool = False,
    downloaded: bool = False,
    listed: bool = True,
    sends_provider: bool = False,
) -> _Row:
    """A local LLM: `params` in billions, its sizes on disk and in memory in GiB."""
    return _Row(
        name,
        "local",
        "CODE_CONVERSATION",
        foundation,
        provider,
        version,
        type="SPEED" if params < 5 else "BALANCED",
        context=context,
        output=context // 2,
        params=params,
        file=int(file_gib * _GIB),
        ram=int(ram_gib * _GIB),
        quantization=quantization,
        cpu=cpu,
        downloaded=downloaded,
        listed=listed,
        sends_provider=sends_provider,
        description=f"{name}, running on this machine.",
    )


# fmt: off
_LOCAL = [
    _local("Llama-3 8B Instruct", "LLAMA_3_8B", "META", "t11-v09-i01", 8, 4.9, 6.2, 8_192,
           downloaded=True, sends_provider=True),
    _local("Llama-3 8B Instruct (CPU)", "LLAMA_3_8B", "META", "t11-v09-i02", 8, 4.9, 6.0, 8_192,
           quantization="q4f32_1", cpu=True, downloaded=True),
    _local("Llama-2 7B Chat", "LLAMA_2_7B", "META", "t09-v04-i01", 7, 3.8, 5.1, 4_096),
    _local("Code Llama 13B Instruct", "CODE_LLAMA_2_13B", "META", "t09-v05-i01", 13, 7.4, 9.6,
           16_384, listed=False),
    _local("Mistral 7B Instruct", "MISTRAL_7B", "HUGGING_FACE", "t10-v02-i03", 7.2, 4.1, 5.5,
           32_768),
    _local("Phi-3 Mini 4K", "PHI_3_MINI", "MICROSOFT", "t10-v07-i01", 3.8, 2.2, 3.1, 4_096),
    _local("Phi-2", "PHI_2", "MICROSOFT", "t08-v03-i02", 2.7, 1.6, 2.4, 2_048, cpu=True),
    _local("Gemma 1.1 7B", "GEMMA_1.1_7B", "GOOGLE", "t10-v01-i01", 8.5, 5.0, 6.6, 8_192,
           listed=False),
    _local("Gemma 2 9B", "GEMMA_2_9B", "GOOGLE", "t11-v02-i01", 9.2, 5.4, 7.3, 8_192),
    _local("Granite 8B Code Instruct", "GRANITE_8B", "IBM", "t10-v05-i02", 8.1, 4.6, 6.0, 4_096,
           listed=False),
    _local("Granite 3B Code Instruct", "GRANITE_3B", "IBM", "t10-v05-i01", 3.5, 2.0, 2.9, 2_048,
           cpu=True, listed=False),
    _local("StarCoder 15.5B", "STARCODER_15.5B", "BIGCODE", "t08-v01-i04", 15.5, 8.9, 11.2,
           8_192, listed=False),
    _local("Qwen2.5 Coder 7B", "QWEN_CODER_LATEST", "HUGGING_FACE", "t11-v08-i01", 7.6, 4.4, 5.9,
           32_768),
]
# fmt: on


def _internal(
    name: str,
    usage: str,
    version: str,
    file_mib: int,
    ram_mib: int,
    description: str,
    *,
    foundation: str | None = None,
    provider: str = "PIECES",
    sends_provider: bool = False,
) -> _Row:
    """A model PiecesOS uses itself (OCR, search, ...): its sizes in MiB."""
    return _Row(
        name,
        "internal",
        usage,
        foundation,
        provider,
        version,
        type="SPEED",
        file=file_mib * _MIB,
        ram=ram_mib * _MIB,
        cpu=True,
        downloaded=True,
        loaded=usage in {"OCR", "TEXT_VS_CODE"},
        listed=False,
        sends_provider=sends_provider,
        description=description,
    )


# fmt: off
_INTERNAL = [
    _internal("Pieces OCR", "OCR", "t11-v09-i01", 96, 210,
              "Reads code and text out of screenshots."),
    _internal("Pieces Video OCR", "VIDEO_OCR", "t11-v03-i02", 120, 260,
              "Reads code out of video frames."),
    _internal("Code Classifier", "CODE_CLASSIFICATION", "t07-v12-i01", 34, 80,
              "Tells which programming language a snippet is written in."),
    _internal("Text vs Code", "TEXT_VS_CODE", "t07-v04-i03", 12, 40, "Tells prose from code."),
    _internal("Neural Code Search", "TLP_NEURAL_CODE_SEARCH", "t10-v06-i01", 310, 520,
              "Ranks your snippets against a search in plain words."),
    _internal("Related People", "CODE_RELATED_PEOPLE", "t09-v02-i01", 48, 96,
              "Suggests who knows about a snippet."),
    _internal("Jina Embeddings v2 Code", "TEXT_EMBEDDING", "t11-v01-i01", 320, 640,
              "Embeds code and text for semantic search.", foundation="UNIXCODER",
              provider="JINA", sends_provider=True),
    _internal("Potion Embeddings", "TEXT_EMBEDDING", "t11-v04-i02", 30, 64,
              "A tiny static embedding model for fast local search.", foundation="POTION",
              provider="MINISHLABS"),
]
# fmt: on

_ROWS = [*_CLOUD, *_LOCAL, *_INTERNAL]
#: When the first built-in model was added; the others follow, a few days apart.
_FIRST_CREATED = dt.datetime(2024, 5, 22, 16, 0, tzinfo=dt.UTC)
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def humanised_age(then: dt.datetime, now: dt.datetime) -> str:
    """How long ago `then` was, the way PiecesOS writes `readable`: "5 months ago"."""
    seconds = max(0, int((now - then).total_seconds()))
    days = seconds // 86_400
    for amount, unit in [
        (days // 365, "year"),
        (days // 30, "month"),
        (days, "day"),
        (seconds // 3600, "hour"),
        (seconds // 60, "minute"),
    ]:
        if amount:
            return f"{amount} {unit}{'s' if amount > 1 else ''} ago"
    return "just now"


def _id(name: str) -> str:
    # Stable ids, so that examples and tests can name a model across runs.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"aiopieces-emulator/{name}"))


def _unique(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _bytes(value: int) -> dict[str, Any]:
    readable = f"{value / _GIB:.1f} GB" if value >= _GIB else f"{value / _MIB:.0f} MB"
    return {"value": value, "readable": readable}


def _capabilities(images: bool) -> dict[str, Any]:
    return {
        "assets": True,
        "codebases": True,
        "documents": True,
        "images": images,
        "temporal": True,
        "videos": False,
        "websites": True,
    }


def _created(n: int, shape: Shape, now: dt.datetime) -> dict[str, Any]:
    when = _FIRST_CREATED + dt.timedelta(days=9 * n, hours=n % 7, minutes=(n * 17) % 60)
    value = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if shape == "pieces":
        return {"value": value, "readable": humanised_age(when, now)}
    return {"value": value, "readable": f"{when.day} {_MONTHS[when.month - 1]} {when.year}"}


def _model(n: int, row: _Row, shape: Shape, now: dt.datetime) -> dict[str, Any]:
    llm = row.usage in LLM_USAGES
    total = None
    if row.context is not None and row.output is not None:
        total = row.context + row.output if row.kind == "cloud" else row.context
    schema_only = shape == "schema"
    fields: dict[str, Any] = {
        "schema": _SCHEMA,
        "id": _id(row.name),
        "version": row.version,
        "created": _created(n, shape, now),
        "name": row.name,
        "description": row.description if schema_only else None,
        "cloud": row.kind == "cloud",
        "type": row.type,
        "usage": row.usage,
        "bytes": _bytes(row.file) if schema_only and row.file else None,
        "ram": _bytes(row.ram) if schema_only and row.ram else None,
        "quantization": row.quantization if schema_only else None,
        "foundation": row.foundation,
        "downloaded": row.downloaded,
        "loaded": row.loaded,
        "unique": _unique(row.name) if schema_only or row.listed else None,
        "parameters": row.params if schema_only else None,
        "provider": row.provider if schema_only or row.sends_provider else None,
        "cpu": row.cpu,
        "downloading": False,
        "maxTokens": (
            {"total": total, "input": row.context, "output": row.output}
            if total is not None and (schema_only or row.listed)
            else None
        ),
        "custom": False,
        "capabilities": (
            _capabilities(
                images=row.foundation is not None and row.foundation[:3] in {"GPT", "CLA"}
            )
            if schema_only and llm
            else None
        ),
    }
    if schema_only:
        return {key: value for key, value in fields.items() if value is not None}
    return {
        key: value
        for key, value in fields.items()
        if value is not None and not (key in OMITTED_WHEN_FALSE and value is False)
    }


def default_catalog(
    shape: Shape = "pieces", *, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """A fresh copy of the built-in catalog, as the JSON objects PiecesOS sends.

    `shape` is `"pieces"` (what PiecesOS really sends) or `"schema"` (schema-complete, as
    the official SDK decodes it). `now` dates the humanised `readable` ages (default: now).
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, not {shape!r}")
    now = now or dt.datetime.now(dt.UTC)
    return [_model(n, row, shape, now) for n, row in enumerate(_ROWS)]


def is_llm(model: dict[str, Any]) -> bool:
    """Whether a model is an LLM, the only kind whose cache PiecesOS deletes."""
    return model.get("usage") in LLM_USAGES


def put(model: dict[str, Any], shape: Shape, **changes: Any) -> None:
    """Change fields of a stored model in place, keeping to `shape`.

    In the pieces shape a false flag PiecesOS leaves out (`cloud`, `custom`, `denied`,
    `downloaded`) or a `None` is removed, and a new key takes its place in PiecesOS's key
    order; in the schema shape fields are set as given.
    """
    for key, value in changes.items():
        if shape == "pieces" and (value is None or (key in OMITTED_WHEN_FALSE and value is False)):
            model.pop(key, None)
        elif key in model or shape == "schema" or key not in _RANK:
            model[key] = value
        else:
            _insert_in_order(model, key, value)


def _insert_in_order(model: dict[str, Any], key: str, value: Any) -> None:
    """Add `key` before the first known key that PiecesOS writes after it."""
    items = list(model.items())
    rank = _RANK[key]
    at = next((i for i, (k, _) in enumerate(items) if _RANK.get(k, -1) > rank), len(items))
    items.insert(at, (key, value))
    model.clear()
    model.update(items)


def in_pieces_order(model: dict[str, Any]) -> dict[str, Any]:
    """`model` as PiecesOS writes it: its key order, no nulls, no false flags it omits.

    Keys it does not know go last, in their order.
    """
    kept = {
        key: value
        for key, value in model.items()
        if value is not None and not (key in OMITTED_WHEN_FALSE and value is False)
    }
    known = sorted((k for k in kept if k in _RANK), key=_RANK.__getitem__)
    return {**{k: kept[k] for k in known}, **{k: v for k, v in kept.items() if k not in _RANK}}
