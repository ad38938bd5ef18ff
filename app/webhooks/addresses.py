"""Where an endpoint may point: http(s) URLs whose host resolves only to public addresses (unless allowed)."""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from app.errors import ValidationFailed


class AddressRefused(Exception):
    """The URL is malformed, does not resolve, or resolves to an address deliveries may not reach."""


def check_url(url: str, allow_private: bool) -> list[str]:
    """The addresses the URL's host resolves to now, every one allowed; AddressRefused says why not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("use an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)}
    except (OSError, ValueError) as error:
        raise AddressRefused(f"the host does not resolve ({error})") from None
    if not allow_private:
        for address in sorted(found):
            if not ipaddress.ip_address(address.split("%")[0]).is_global:
                raise AddressRefused(f"the host resolves to {address}, a private, loopback or link-local address")
    return sorted(found)


def pinned_url(url: str, addresses: list[str]) -> tuple[str, dict[str, str]]:
    """For plain http, the URL aimed at the address just checked, with the Host header it had: the request then
    cannot be sent elsewhere by a second DNS answer. https keeps its name (the certificate is checked for it)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not addresses:
        return url, {}
    address = addresses[0]
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl(), {"host": parts.netloc.rsplit("@", 1)[-1]}


def validated_url(url, allow_private: bool) -> str:
    """The URL of an endpoint being saved; ValidationFailed names the field when it is refused."""
    if not isinstance(url, str) or len(url) > 2000:
        raise ValidationFailed("url must be a string of at most 2000 characters.", details={"url": "invalid"})
    try:
        check_url(url.strip(), allow_private)
    except AddressRefused as refused:
        raise ValidationFailed(f"The webhook URL is refused: {refused}.", details={"url": str(refused)}) from None
    return url.strip()
