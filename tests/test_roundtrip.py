"""The round trip: a page's credentialed calls to an API without CORS fail through an `observe` rule
and pass through an `inject` rule; then the configuration the report generates is applied, unchanged,
to a real server of each framework, and the same calls pass in Chromium without the proxy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .browser import Browser, require_chromium
from .nginx import start_nginx
from .proxy import ROOT, free_port
from .support import wait_for_port
from .upstream import Upstream

pytestmark = pytest.mark.browser

NODE_MODULES = ROOT / ".cache" / "roundtrip" / "node_modules"  # express 5 and cors 2.8, installed by make test

CALLS = [
    ("GET", "/items", {}),
    ("PUT", "/items/1", {"method": "PUT", "headers": {"Content-Type": "application/json", "X-Custom": "1"},
                         "body": '{"name": "one"}'}),
    ("DELETE", "/items/1", {"method": "DELETE"}),
]  # fmt: skip


def calls(browser: Browser, page: str, base: str) -> list[dict]:
    return [browser.fetch(page, base + path, credentials="include", **init) for _, path, init in CALLS]


# The same API in each framework: GET /items, PUT /items/<id>, DELETE /items/<id>, all JSON.
# `{config}` is where the generated snippet goes, unchanged.
SERVERS = {
    "starlette": """
        import sys
        import uvicorn
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def items(request):
            return JSONResponse({"items": [], "method": request.method})

        async def item(request):
            return JSONResponse({"id": request.path_params["id"], "method": request.method})

        app = Starlette(routes=[Route("/items", items), Route("/items/{id}", item, methods=["PUT", "DELETE"])])
        {config}
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """,
    "flask": """
        import sys
        from flask import Flask, jsonify, request

        app = Flask(__name__)

        @app.get("/items")
        def items():
            return jsonify(items=[], method=request.method)

        @app.route("/items/<id>", methods=["PUT", "DELETE"])
        def item(id):
            return jsonify(id=id, method=request.method)

        {config}
        app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
    """,
    "django": """
        import sys
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        import django
        from django.conf import settings
        from django.http import JsonResponse
        from django.urls import path

        def items(request):
            return JsonResponse({"items": [], "method": request.method})

        def item(request, id):
            return JsonResponse({"id": id, "method": request.method})

        urlpatterns = [path("items", items), path("items/<id>", item)]

        # settings.py, with the generated lines at its end:
        INSTALLED_APPS = ["django.contrib.contenttypes"]
        MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
        {config}
        settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="test", **{
            name: value for name, value in dict(globals()).items() if name.isupper() and name != "ROOT_URLCONF"})
        django.setup()

        from django.core.wsgi import get_wsgi_application

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        make_server("127.0.0.1", int(sys.argv[1]), get_wsgi_application(), handler_class=Quiet).serve_forever()
    """,
    "express": """
        const express = require("express");
        const app = express();
        {config}
        app.get("/items", (req, res) => res.json({ items: [], method: req.method }));
        app.put("/items/:id", (req, res) => res.json({ id: req.params.id, method: req.method }));
        app.delete("/items/:id", (req, res) => res.json({ id: req.params.id, method: req.method }));
        app.listen(Number(process.argv[2]), "127.0.0.1");
    """,
}


def start_server(name: str, config: str, tmp_path: Path, port: int, api_port: int) -> subprocess.Popen:
    if name == "nginx":
        return start_backend_nginx(config, tmp_path, port, api_port)
    source = textwrap.dedent(SERVERS[name]).replace("{config}", config)  # unchanged, at the top level
    script = tmp_path / (f"{name}.js" if name == "express" else f"{name}_server.py")
    script.write_text(source)
    env = dict(os.environ)
    if name == "express":
        command = ["node", str(script), str(port)]
        env["NODE_PATH"] = str(NODE_MODULES)
    else:
        command = [sys.executable, str(script), str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    wait_for_port(port, process)
    return process


def start_backend_nginx(config: str, tmp_path: Path, port: int, api_port: int) -> subprocess.Popen:
    server = f"listen 127.0.0.1:{port};\nlocation / {{\n{textwrap.indent(config, '    ')}    proxy_pass http://127.0.0.1:{api_port};\n}}\n"
    process = start_nginx(tmp_path / "nginx", server)
    wait_for_port(port, process)
    return process


@pytest.fixture(scope="module")
def playwright():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def test_the_generated_configuration_makes_the_api_work_without_the_proxy(playwright, start_proxy, tmp_path):
    missing = [tool for tool in ("node", "nginx") if not shutil.which(tool)]
    if not NODE_MODULES.joinpath("express").is_dir():
        missing.append(f"express and cors in {NODE_MODULES} (make test installs them with npm)")
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing: {', '.join(missing)}", pytrace=False)
        pytest.skip(f"missing: {', '.join(missing)}")

    report_path = tmp_path / "report.json"
    with Upstream("127.0.0.1") as page_server, Upstream("127.0.0.1") as api:
        # Same site (localhost), another origin: the page's cookie goes along with credentials: "include".
        page = f"http://localhost:{page_server.port}/page"
        origin = f"http://localhost:{page_server.port}"
        base = f"http://localhost:{api.port}"
        rule = f'[[rules]]\nname = "api"\nhosts = ["localhost:{api.port}"]\n'
        proxy = start_proxy(rule + 'action = "observe"\n', "--set", f"cors_report={report_path}")
        browser = Browser(playwright, proxy.port)
        try:
            observed = calls(browser, page, base)
            assert [r["ok"] for r in observed] == [False, False, False], observed  # as in production
            mark = proxy.mark()
            proxy.rules.write_text(rule + "allow_credentials = true\n")
            proxy.wait_for_log(r"cors: loaded .*rules\.toml", after=mark)
            injected = calls(browser, page, base)
            assert [(r["ok"], r.get("status")) for r in injected] == [(True, 200)] * 3, injected
        finally:
            browser.close()
        proxy.stop()  # the report is written when the proxy stops

        report = json.loads(report_path.read_text())
        entry = report["apis"][f"http://localhost:{api.port}"]
        assert entry["policy"] == {
            "origins": [origin],
            "methods": ["DELETE", "PUT"],
            "headers": ["content-type", "x-custom"],
            "credentials": True,
            "private_network": False,
            "max_age": 5,
            "expose_headers": [],
        }
        assert "no Access-Control-Allow-Origin" in {v["reason"] for v in entry["verdicts"]}

        for name, config in entry["config"].items():
            port = free_port()
            server = start_server(name, config, tmp_path, port, api.port)
            browser = Browser(playwright)  # no proxy at all
            try:
                seen = calls(browser, page, f"http://localhost:{port}")
                assert [(r["ok"], r.get("status")) for r in seen] == [(True, 200)] * 3, (name, config, seen)
            finally:
                browser.close()
                server.terminate()
                server.wait(10)
