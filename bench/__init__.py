"""Benchmarks of aiopieces against its floors (raw aiohttp, untyped msgspec) and the SDK."""
