"""A CORS policy rendered as configuration for the backend's own framework, ready to paste.

Pure: imports nothing from mitmproxy. Each snippet follows its library's own semantics and never
allows more than the policy: Express 5 with `cors` 2.8 (CommonJS, given `app`), Starlette 1.x's
CORSMiddleware (the same import works in FastAPI; given `app`), Flask-CORS 6 (given `app`),
django-cors-headers 4 (lines for the end of settings.py), and nginx (lines for the `location`
that serves the API).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BackendPolicy:
    origins: list[str]  # exact origins
    methods: list[str]  # requested methods, as sent
    headers: list[str]  # requested header names, lowercase
    credentials: bool
    private_network: bool
    max_age: int
    expose_headers: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def _js(value) -> str:
    return json.dumps(value)


def _py(value) -> str:
    return "True" if value is True else "False" if value is False else json.dumps(value)


def express(p: BackendPolicy) -> str:
    # The cors package reflects the requested headers and allows six methods unless told otherwise:
    # both are always set here, so nothing beyond what was seen is allowed.
    lines = ['const cors = require("cors");', ""]
    if p.private_network:
        lines += [
            "// cors 2.8 does not answer Chrome's private network preflights: this does, before it.",
            "app.use((req, res, next) => {",
            '  if (req.get("Access-Control-Request-Private-Network") === "true") {',
            '    res.set("Access-Control-Allow-Private-Network", "true");',
            "  }",
            "  next();",
            "});",
        ]
    lines += [
        "app.use(",
        "  cors({",
        f"    origin: {_js(p.origins)},",
        f"    methods: {_js(p.methods)},",
        f"    allowedHeaders: {_js(p.headers)},",
        f"    exposedHeaders: {_js(p.expose_headers)},",
        f"    credentials: {_js(p.credentials)},",
        f"    maxAge: {p.max_age},",
        "  })",
        ");",
    ]
    return "\n".join(lines) + "\n"


def starlette(p: BackendPolicy) -> str:
    return (
        "from starlette.middleware.cors import CORSMiddleware\n\n"
        "app.add_middleware(\n"
        "    CORSMiddleware,\n"
        f"    allow_origins={_py(p.origins)},\n"
        f"    allow_methods={_py(p.methods)},\n"
        f"    allow_headers={_py(p.headers)},\n"
        f"    allow_credentials={_py(p.credentials)},\n"
        f"    allow_private_network={_py(p.private_network)},\n"
        f"    expose_headers={_py(p.expose_headers)},\n"
        f"    max_age={p.max_age},\n"
        ")\n"
    )


def flask(p: BackendPolicy) -> str:
    return (
        "from flask_cors import CORS\n\n"
        "CORS(\n"
        "    app,\n"
        f"    origins={_py(p.origins)},\n"
        f"    methods={_py(p.methods)},\n"
        f"    allow_headers={_py(p.headers)},\n"
        f"    expose_headers={_py(p.expose_headers)},\n"
        f"    supports_credentials={_py(p.credentials)},\n"
        f"    allow_private_network={_py(p.private_network)},\n"
        f"    max_age={p.max_age},\n"
        ")\n"
    )


def django(p: BackendPolicy) -> str:
    return (
        "# At the end of settings.py (django-cors-headers):\n"
        'INSTALLED_APPS = [*INSTALLED_APPS, "corsheaders"]\n'
        'MIDDLEWARE = ["corsheaders.middleware.CorsMiddleware", *MIDDLEWARE]\n'
        f"CORS_ALLOWED_ORIGINS = {_py(p.origins)}\n"
        f"CORS_ALLOW_METHODS = {_py(p.methods)}\n"
        f"CORS_ALLOW_HEADERS = {_py(p.headers)}\n"
        f"CORS_EXPOSE_HEADERS = {_py(p.expose_headers)}\n"
        f"CORS_ALLOW_CREDENTIALS = {_py(p.credentials)}\n"
        f"CORS_ALLOW_PRIVATE_NETWORK = {_py(p.private_network)}\n"
        f"CORS_PREFLIGHT_MAX_AGE = {p.max_age}\n"
    )


def nginx(p: BackendPolicy) -> str:
    """For the `location` block that serves the API (before its proxy_pass). An `add_header`
    whose value is empty is not sent, so other origins get no Access-Control-* headers."""
    lines = ["# In the location block that serves the API, before proxy_pass:", 'set $cors_origin "";']
    for origin in p.origins:
        lines.append(f'if ($http_origin = "{origin}") {{ set $cors_origin $http_origin; }}')
    common = ["add_header Access-Control-Allow-Origin $cors_origin always;"]
    if p.credentials:
        common.append('add_header Access-Control-Allow-Credentials "true" always;')
    common.append("add_header Vary Origin always;")
    preflight = list(common)
    if p.methods:
        preflight.append(f'add_header Access-Control-Allow-Methods "{", ".join(p.methods)}" always;')
    if p.headers:
        preflight.append(f'add_header Access-Control-Allow-Headers "{", ".join(p.headers)}" always;')
    if p.private_network:
        preflight.append('add_header Access-Control-Allow-Private-Network "true" always;')
    preflight.append(f'add_header Access-Control-Max-Age "{p.max_age}" always;')
    # Preflights from those origins are answered here; the API gets every other request. An
    # add_header inside `if` replaces the ones outside, so the block repeats them.
    lines.append('set $cors_preflight "$request_method:$http_access_control_request_method:$cors_origin";')
    lines.append('if ($cors_preflight ~ "^OPTIONS:.+:.+$") {')
    lines += [f"    {line}" for line in preflight]
    lines += ["    return 204;", "}"]
    lines += common
    if p.expose_headers:
        lines.append(f'add_header Access-Control-Expose-Headers "{", ".join(p.expose_headers)}" always;')
    return "\n".join(lines) + "\n"


FRAMEWORKS: dict[str, Callable[[BackendPolicy], str]] = {
    "express": express,
    "starlette": starlette,
    "flask": flask,
    "django": django,
    "nginx": nginx,
}
