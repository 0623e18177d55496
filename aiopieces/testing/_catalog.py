"""The emulator's built-in catalog: models like the ones a PiecesOS install lists."""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["default_catalog", "is_llm"]

_GIB = 1024**3
_MIB = 1024**2
_SCHEMA = {"migration": 0, "semantic": "MAJOR_0_MINOR_0_PATCH_1"}
#: Chat and generation models are the "LLMs" whose cache can be deleted.
LLM_USAGES = frozenset({"CODE_CONVERSATION", "CODE_GENERATION"})

# name, foundation, provider, cloud, usage, params (B), bytes, ram, max tokens (in, out)
_CLOUD_LLMS: list[tuple[str, str, str, int, int]] = [
    ("GPT-4o", "GPT_LATEST", "OPENAI", 128_000, 16_384),
    ("GPT-4o Mini", "GPT_LATEST", "OPENAI", 128_000, 16_384),
    ("GPT-4 Turbo", "GPT_4", "OPENAI", 128_000, 4_096),
    ("GPT-3.5 Turbo", "GPT_3.5", "OPENAI", 16_385, 4_096),
    ("Claude 3.5 Sonnet", "CLAUDE_3.5", "ANTHROPIC", 200_000, 8_192),
    ("Claude 3 Opus", "CLAUDE_3", "ANTHROPIC", 200_000, 4_096),
    ("Claude 4 Sonnet", "CLAUDE_4", "ANTHROPIC", 200_000, 64_000),
    ("Gemini 1.5 Pro", "GEMINI_1.5", "GOOGLE", 2_000_000, 8_192),
    ("Gemini 2.0 Flash", "GEMINI_2", "GOOGLE", 1_048_576, 8_192),
    ("Codey (PaLM2) Chat", "CODECHAT_BISON", "GOOGLE", 6_144, 1_024),
    ("Perplexity Sonar", "PERPLEXITY_DEFAULT", "PERPLEXITY", 127_072, 8_000),
    ("Azure GPT-4o", "AZURE_DEFAULT", "MSFT_AZURE_OPEN_AI", 128_000, 16_384),
]
# name, foundation, provider, params (B), file GiB, ram GiB, context, quantization, cpu
_LOCAL_LLMS: list[tuple[str, str, str, float, float, float, int, str, bool]] = [
    ("Llama-3 8B Instruct", "LLAMA_3_8B", "META", 8, 4.9, 6.2, 8_192, "q4f16_1", False),
    ("Llama-3 8B Instruct (CPU)", "LLAMA_3_8B", "META", 8, 4.9, 6.0, 8_192, "q4f32_1", True),
    ("Llama-2 7B Chat", "LLAMA_2_7B", "META", 7, 3.8, 5.1, 4_096, "q4f16_1", False),
    ("Code Llama 13B Instruct", "CODE_LLAMA_2_13B", "META", 13, 7.4, 9.6, 16_384, "q4f16_1", False),
    ("Mistral 7B Instruct", "MISTRAL_7B", "HUGGING_FACE", 7.2, 4.1, 5.5, 32_768, "q4f16_1", False),
    ("Phi-3 Mini 4K", "PHI_3_MINI", "MICROSOFT", 3.8, 2.2, 3.1, 4_096, "q4f16_1", False),
    ("Phi-2", "PHI_2", "MICROSOFT", 2.7, 1.6, 2.4, 2_048, "q4f16_1", True),
    ("Gemma 1.1 7B", "GEMMA_1.1_7B", "GOOGLE", 8.5, 5.0, 6.6, 8_192, "q4f16_1", False),
    ("Gemma 2 9B", "GEMMA_2_9B", "GOOGLE", 9.2, 5.4, 7.3, 8_192, "q4f16_1", False),
    ("Granite 8B Code Instruct", "GRANITE_8B", "IBM", 8.1, 4.6, 6.0, 4_096, "q4f16_1", False),
    ("Granite 3B Code Instruct", "GRANITE_3B", "IBM", 3.5, 2.0, 2.9, 2_048, "q4f16_1", True),
    ("StarCoder 15.5B", "STARCODER_15.5B", "BIGCODE", 15.5, 8.9, 11.2, 8_192, "q4f16_1", False),
    (
        "Qwen2.5 Coder 7B",
        "QWEN_CODER_LATEST",
        "HUGGING_FACE",
        7.6,
        4.4,
        5.9,
        32_768,
        "q4f16_1",
        False,
    ),
]
# name, foundation, provider, usage, file MiB, ram MiB, description
_SMALL_MODELS: list[tuple[str, str, str, str, int, int, str]] = [
    ("Pieces OCR", "T5", "PIECES", "OCR", 96, 210, "Reads code and text out of screenshots."),
    ("Pieces Video OCR", "T5", "PIECES", "VIDEO_OCR", 120, 260, "Reads code out of video frames."),
    (
        "Code Classifier",
        "FAST_TEXT",
        "PIECES",
        "CODE_CLASSIFICATION",
        34,
        80,
        "Tells which programming language a snippet is written in.",
    ),
    ("Text vs Code", "FAST_TEXT", "PIECES", "TEXT_VS_CODE", 12, 40, "Tells prose from code."),
    (
        "Text vs Code Segmentation",
        "DISTILROBERTA",
        "HUGGING_FACE",
        "TEXT_VS_CODE_SEGMENTATION",
        310,
        520,
        "Splits mixed text into prose and code segments.",
    ),
    (
        "Jina Embeddings v2 Code",
        "UNIXCODER",
        "JINA",
        "TEXT_EMBEDDING",
        320,
        640,
        "Embeds code and text for semantic search.",
    ),
    (
        "Potion Embeddings",
        "POTION",
        "MINISHLABS",
        "TEXT_EMBEDDING",
        30,
        64,
        "A tiny static embedding model for fast local search.",
    ),
    ("Tagify Code", "FAST_TEXT", "PIECES", "TAGIFY_CODE", 48, 96, "Suggests tags for a snippet."),
]


def _bytes(value: int) -> dict[str, Any]:
    readable = f"{value / _GIB:.1f} GB" if value >= _GIB else f"{value / _MIB:.0f} MB"
    return {"value": value, "readable": readable}


def _timestamp(day: int) -> dict[str, Any]:
    month, day_of_month = 1 + (day // 28) % 12, 1 + day % 28
    value = f"2025-{month:02d}-{day_of_month:02d}T{9 + day % 9:02d}:{(day * 7) % 60:02d}:00.000Z"
    return {"value": value, "readable": f"{day_of_month} {_MONTHS[month - 1]} 2025"}


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _id(name: str) -> str:
    # Stable ids, so that examples and tests can name a model across runs.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"aiopieces-emulator/{name}"))


def _unique(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _capabilities(images: bool = False) -> dict[str, Any]:
    return {
        "assets": True,
        "codebases": True,
        "documents": True,
        "images": images,
        "temporal": True,
        "videos": False,
        "websites": True,
    }


def default_catalog() -> list[dict[str, Any]]:
    """A fresh copy of the built-in catalog, as the JSON objects PiecesOS sends."""
    models: list[dict[str, Any]] = []
    for n, (name, foundation, provider, context, output) in enumerate(_CLOUD_LLMS):
        models.append(
            {
                "id": _id(name),
                "name": name,
                "description": f"{name}, hosted by {provider.replace('_', ' ').title()}.",
                "version": "2025-01",
                "created": _timestamp(n),
                "cloud": True,
                "type": "BALANCED",
                "usage": "CODE_CONVERSATION",
                "foundation": foundation,
                "provider": provider,
                "unique": _unique(name),
                "maxTokens": {"total": context + output, "input": context, "output": output},
                "capabilities": _capabilities(images=foundation.startswith(("GPT", "CLAUDE"))),
                "custom": False,
                "downloaded": False,
                "downloading": False,
                "loaded": False,
                "schema": _SCHEMA,
            }
        )
    for n, row in enumerate(_LOCAL_LLMS):
        name, foundation, provider, params, file_gib, ram_gib, context, quant, cpu = row
        models.append(
            {
                "id": _id(name),
                "name": name,
                "description": f"{name}, running on this machine.",
                "version": "1.0.0",
                "created": _timestamp(40 + n),
                "cloud": False,
                "type": "SPEED" if params < 5 else "BALANCED",
                "usage": "CODE_CONVERSATION",
                "foundation": foundation,
                "provider": provider,
                "unique": _unique(name),
                "parameters": params,
                "quantization": quant,
                "cpu": cpu,
                "bytes": _bytes(int(file_gib * _GIB)),
                "ram": _bytes(int(ram_gib * _GIB)),
                "maxTokens": {"total": context, "input": context, "output": context // 2},
                "capabilities": _capabilities(),
                "custom": False,
                "downloaded": n < 2,
                "downloading": False,
                "loaded": False,
                "schema": _SCHEMA,
            }
        )
    for n, (name, foundation, provider, usage, file_mib, ram_mib, desc) in enumerate(_SMALL_MODELS):
        models.append(
            {
                "id": _id(name),
                "name": name,
                "description": desc,
                "version": "0.3.1",
                "created": _timestamp(80 + n),
                "cloud": False,
                "type": "SPEED",
                "usage": usage,
                "foundation": foundation,
                "provider": provider,
                "unique": _unique(name),
                "bytes": _bytes(file_mib * _MIB),
                "ram": _bytes(ram_mib * _MIB),
                "cpu": True,
                "custom": False,
                "downloaded": True,
                "downloading": False,
                "loaded": usage in {"OCR", "TEXT_VS_CODE"},
                "schema": _SCHEMA,
            }
        )
    return models


def is_llm(model: dict[str, Any]) -> bool:
    """Whether a model is an LLM, the only kind whose cache PiecesOS deletes."""
    return model.get("usage") in LLM_USAGES
