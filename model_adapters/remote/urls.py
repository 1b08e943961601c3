"""Endpoint URLs: validation, loopback detection, and the form fit for reports."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def check_http_url(value: str) -> str:
    """``value`` when it is an http(s) URL with a host; a ValueError otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expects an http(s) URL such as http://127.0.0.1:8000/v1")
    return value


def is_loopback(url: str | None) -> bool:
    """True for 127.x.x.x, localhost and ::1 (a server on this machine)."""
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def public_url(url: str | None) -> str | None:
    """The URL without user:password@ or a query string, for reports."""
    if not url:
        return url
    p = urlsplit(url)
    netloc = p.hostname or ""
    if p.port:
        netloc += f":{p.port}"
    return urlunsplit((p.scheme, netloc, p.path, "", ""))


def environment_proxy(url: str) -> str | None:
    """The proxy the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY ...) sets for ``url``, if any."""
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    proxy = getproxies().get(parts.scheme)
    if not proxy or (parts.hostname and proxy_bypass(parts.hostname)):
        return None
    return proxy
