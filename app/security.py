"""The web app's defences: the client address behind proxies, security headers, rate limits and CORS."""
from __future__ import annotations

import ipaddress
import math
import time

from flask import Flask, current_app, request
from flask_cors import CORS
from flask_limiter import ApplicationLimit, Limit, Limiter, RateLimitExceeded
from flask_talisman import Talisman
from werkzeug.middleware.proxy_fix import ProxyFix

from app.error_handlers import error_response
from app.errors import ValidationFailed
from app.finite_json import FiniteJSONProvider

# Pico CSS draws its form icons as data: SVG images; everything else comes from the Studio itself.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
PERMISSIONS_POLICY = {feature: "()" for feature in
                      ("browsing-topics", "camera", "geolocation", "microphone", "payment", "usb")}
STATE_CHANGING_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
# Views with a budget of their own, outside the global one.
OWN_BUDGETS = ("polling", "probe")
CORS_OPTIONS = {
    "methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    "allow_headers": ["Authorization", "Content-Type", "X-Request-ID"],
    "expose_headers": ["Location", "Retry-After", "X-Request-ID"],
    # The API authenticates with bearer tokens only, so no cookie ever needs to cross origins.
    "supports_credentials": False,
    "always_send": False,
    "max_age": 600,
    # Flask-CORS adds a second Vary header, which werkzeug drops when the session adds Vary: Cookie.
    "vary_header": False,
}
# A rate-limit check must never hang a request for long when Redis is slow.
LIMITER_REDIS_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 2}


def expensive(view):
    """Mark a view as expensive: RATE_LIMIT_EXPENSIVE per client on its state-changing requests."""
    view.rate_budget = "expensive"
    return view


def polling(view):
    """Mark a view the pages poll: RATE_LIMIT_POLLING per client instead of the global limit."""
    view.rate_budget = "polling"
    return view


def probe(view):
    """Mark a view that monitors call (health, metrics): RATE_LIMIT_PROBES per client, never redirected to HTTPS."""
    view.rate_budget = "probe"
    view.talisman_view_options = {"force_https": False}
    return view


def init_app(app: Flask) -> None:
    """Refuse non-finite JSON numbers, trust the configured proxies, add security headers, rate limits and CORS."""
    settings = app.extensions["settings"]
    app.json = FiniteJSONProvider(app)
    app.wsgi_app = trust_proxies(app.wsgi_app, settings.trusted_proxies)
    Talisman(app, force_https=settings.force_https, force_https_permanent=True,
             strict_transport_security=settings.force_https, session_cookie_secure=settings.force_https,
             frame_options="DENY", content_security_policy=CONTENT_SECURITY_POLICY,
             referrer_policy="same-origin", permissions_policy=PERMISSIONS_POLICY)
    limiter = make_limiter(settings)
    limiter.init_app(app)
    app.extensions["rate_limiter"] = limiter
    app.before_request(answer_preflight)
    app.before_request(refuse_nul_characters)
    CORS(app, resources={r"/api/*": {"origins": settings.origin_list}}, **CORS_OPTIONS)
    if settings.origin_list:
        app.after_request(vary_on_origin)
    app.register_error_handler(RateLimitExceeded, too_many_requests)


def trust_proxies(wsgi_app, hops: int):
    """Take the client address from the last `hops` proxies; with none, drop every forwarded header."""
    if hops:
        # nginx overwrites X-Forwarded-Proto (one value) and appends the client to X-Forwarded-For.
        return ProxyFix(wsgi_app, x_for=hops, x_proto=1)

    def without_forwarded_headers(environ, start_response):
        for key in [key for key in environ if key.startswith("HTTP_X_FORWARDED_")]:
            del environ[key]
        return wsgi_app(environ, start_response)

    return without_forwarded_headers


def make_limiter(settings) -> Limiter:
    """Limits counted in Redis, so every gunicorn worker and every host shares one budget per client."""
    limiter = Limiter(
        key_func=client_key,
        application_limits=[ApplicationLimit(settings.rate_limit_global,
                                             exempt_when=lambda: budget() in OWN_BUDGETS)],
        default_limits=[
            Limit(settings.rate_limit_expensive, methods=STATE_CHANGING_METHODS,
                  exempt_when=lambda: budget() != "expensive"),
            Limit(settings.rate_limit_polling, exempt_when=lambda: budget() != "polling"),
            # One budget for every probe of a client: a monitor polling health and metrics shares it.
            Limit(settings.rate_limit_probes, exempt_when=lambda: budget() != "probe", scope="probes",
                  shared=True),
        ],
        storage_uri=settings.redis_url, storage_options=LIMITER_REDIS_OPTIONS,
        # A moving window admits exactly the limit in any minute, with no burst at a window's edge.
        strategy="moving-window", key_prefix="studio-limits",
        # Unknown URLs count too, or scanning for them would be free.
        request_identifier=lambda: request.endpoint or "unrouted",
        # With Redis down each process keeps counting on its own rather than failing every request.
        in_memory_fallback_enabled=True, swallow_errors=True,
        enabled=settings.rate_limits_enabled,
    )
    return limiter


def budget() -> str | None:
    """The rate budget the requested view was marked with (expensive, polling, probe), if any."""
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "rate_budget", None)


def client_key() -> str:
    """Who a limit counts: the client address, an IPv6 client by its /64 (one subscriber holds all of it)."""
    address = request.remote_addr or "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ip.ipv4_mapped or ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


def answer_preflight():
    """Answer CORS preflights before authentication: browsers never send credentials with them."""
    if request.method == "OPTIONS" and request.path.startswith("/api/") and request.routing_exception is None:
        return current_app.make_default_options_response()
    return None


def refuse_nul_characters():
    """Refuse NUL in the URL's values or a plain form: no honest client sends one, and PostgreSQL cannot store it."""
    values = [(name, value) for name, value in (request.view_args or {}).items() if isinstance(value, str)]
    values += request.args.items(multi=True)
    # Only plain forms: reading a multipart body here would spoil the uploads that stream it.
    if request.mimetype == "application/x-www-form-urlencoded":
        values += request.form.items(multi=True)
    for name, value in values:
        if "\x00" in name + value:
            raise ValidationFailed("Text may not contain NUL characters.", details={"field": name})


def vary_on_origin(response):
    """API answers depend on the Origin header (CORS), so caches must keep them apart."""
    if request.path.startswith("/api/"):
        response.vary.add("Origin")
    return response


def too_many_requests(error: RateLimitExceeded):
    """429 in the API's or the pages' error format, saying when to retry."""
    breached = current_app.extensions["rate_limiter"].current_limit
    retry_after = max(1, math.ceil(breached.reset_at - time.time())) if breached else 60
    message = f"Too many requests (limit: {error.description}); retry in {retry_after} s."
    details = {"limit": error.description, "retry_after": retry_after}
    body, status = error_response(429, "rate_limited", message, details)
    return body, status, {"Retry-After": str(retry_after)}
