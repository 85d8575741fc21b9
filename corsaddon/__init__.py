"""cors-addon: a mitmproxy addon that injects or strips CORS headers for chosen hosts.

`cors_addon.py` at the project root is the file to pass to `mitmdump -s`. CONTRIBUTING.md maps the
modules: the pure core (no mitmproxy import) and the mitmproxy glue, one module per concern.
"""
