"""Entry point for `mitmdump -s cors_addon.py` (also mitmproxy and mitmweb).

The code lives in the `corsaddon` package beside this file; mitmproxy loads
scripts outside sys.modules, so nothing but this import belongs here.
"""

from corsaddon.addon import CorsAddon

addons = [CorsAddon()]
