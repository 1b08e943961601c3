"""Shared machinery of HTTP-based model families: retry, rate limits, response cache, secrets, pricing."""
