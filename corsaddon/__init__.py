"""cors-addon: a mitmproxy addon that injects or strips CORS headers for chosen hosts.

The pure core (no mitmproxy import): `schema` (the rule keys), `patterns`
(host, path and origin patterns), `rules` (parsing and the compiled RuleSet),
`policy` (the CORS decisions), `setcookie`, `findbrowser` and `memo`. The mitmproxy glue: `addon`
(options, commands, flow hooks), `rulesfile` (the file and its watcher), `upstreams`
(unreachable APIs), `upstreamtls` (upstream_tls_verify), `cookies` (rule key
`cookies`), `browser` (make browser, cors.browser) and `responses` (what the
addon answers itself).
`cors_addon.py` at the project root is the file to pass to `mitmdump -s`.
"""
