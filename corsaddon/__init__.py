"""cors-addon: a mitmproxy addon that injects or strips CORS headers for chosen hosts.

`rules`, `patterns` and `policy` are the pure core (no mitmproxy import);
`addon` is the mitmproxy glue. `cors_addon.py` at the project root is the file
to pass to `mitmdump -s`.
"""
