"""Where an endpoint may point: http(s) URLs whose host resolves only to public addresses (unless allowed)."""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from app.errors import ValidationFailed


class AddressRefused(Exception):
    """The URL is malformed, does not resolve, or resolves to an address deliveries may not reach."""


def check_url(url: str, allow_private: bool) -> None:
    """Refuse a URL a delivery must not go to: AddressRefused says why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("use an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)}
    except (OSError, ValueError) as error:
        raise AddressRefused(f"the host does not resolve ({error})") from None
    if allow_private:
        return
    for address in sorted(found):
        if not ipaddress.ip_address(address.split("%")[0]).is_global:
            raise AddressRefused(f"the host resolves to {address}, a private, loopback or link-local address")


def validated_url(url, allow_private: bool) -> str:
    """The URL of an endpoint being saved; ValidationFailed names the field when it is refused."""
    if not isinstance(url, str) or len(url) > 2000:
        raise ValidationFailed("url must be a string of at most 2000 characters.", details={"url": "invalid"})
    try:
        check_url(url.strip(), allow_private)
    except AddressRefused as refused:
        raise ValidationFailed(f"The webhook URL is refused: {refused}.", details={"url": str(refused)}) from None
    return url.strip()
