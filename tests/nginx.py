"""nginx on loopback for the tests: one server block, everything else in a folder of the test's own."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path


def start_nginx(directory: Path, server: str) -> subprocess.Popen:
    """nginx serving `server` (the inside of a `server { }` block), its files under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(
        textwrap.dedent(f"""
        {"user root;" if os.geteuid() == 0 else ""}
        daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log error;
        events {{}}
        http {{
            access_log off;
            client_body_temp_path {directory}/body; proxy_temp_path {directory}/proxy;
            fastcgi_temp_path {directory}/fcgi; uwsgi_temp_path {directory}/uwsgi; scgi_temp_path {directory}/scgi;
            server {{
        """)
        + textwrap.indent(textwrap.dedent(server), " " * 8)
        + "\n    }\n}\n"
    )
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", str(directory)])
