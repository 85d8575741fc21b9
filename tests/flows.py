"""Driving the addon's hooks in-process, as mitmproxy would (for the tests and `make bench`).

`cycle` plays one HTTP flow through mitmproxy's own hook events, in the order mitmproxy's HTTP layer
triggers them, and hands each to mitmproxy's addon manager (`invoke_addon`, as `taddons.context.cycle`
does): the addon and every addon it nests get the event, and what a hook returns is awaited.
`run_hooks` is the same for synchronous callers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

from mitmproxy import ctx, flow, hooks, http, options
from mitmproxy.addonmanager import AddonManager
from mitmproxy.master import Master
from mitmproxy.proxy.layers.http import (
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from mitmproxy.test import tflow

LOCAL = "http://localhost:3000"  # the page's origin throughout: a dev server, allowed by the default rules
API = "http://api.example.com/v1/users"

Dispatch = Callable[[hooks.Hook], Awaitable[None]]


def make_flow(method: str = "GET", url: str = API, headers=(), host_header: str | None = None) -> http.HTTPFlow:
    """A live flow whose request has these headers (pairs of str or bytes) and no response yet."""
    f = tflow.tflow()
    f.request = http.Request.make(method, url, b"", [(_raw(k), _raw(v)) for k, v in headers])
    if host_header:
        f.request.host_header = host_header
    f.response = None
    return f


def _raw(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def upstream_response(status: int = 200, headers=(), body: bytes = b'{"ok": true}') -> http.Response:
    """What the API answers: these headers (pairs of str or bytes), Content-Length added. As mitmproxy
    hands it to `responseheaders`: its body has not arrived yet, so it has no `timestamp_end`."""
    response = http.Response.make(status, body, [(_raw(k), _raw(v)) for k, v in headers])
    response.timestamp_end = None
    return response


def hook_events(f: http.HTTPFlow, response: http.Response | None = None) -> Iterator[hooks.Hook]:
    """The hook events mitmproxy's HTTP layer (`proxy/layers/http`) triggers for a request that has
    arrived whole, each taken after the previous one has run: `requestheaders`, `request`; then, if a
    hook answered, `responseheaders` and `response` on that answer; else `response` plays the API's
    answer (none: the flow waits for the server, and no more events come). A killed flow gets no more."""
    yield HttpRequestHeadersHook(f)
    if killed(f):
        return
    yield HttpRequestHook(f)
    if killed(f):
        return
    if f.response is not None:  # set by a hook: mitmproxy emulates the responseheaders event
        f.response.timestamp_start = time.time()
    elif response is not None:
        f.response = response
    else:
        return
    yield HttpResponseHeadersHook(f)
    if killed(f) or f.response is None:
        return
    f.response.timestamp_end = time.time()  # the body is in: as mitmproxy's send_response sets it
    yield HttpResponseHook(f)


def killed(f: flow.Flow) -> bool:
    return f.error is not None and f.error.msg == flow.Error.KILLED_MESSAGE


def addon_manager() -> AddonManager:
    """The addon manager of the master the addons run under: taddons.context's (the latest made, as
    `mitmproxy.ctx` says), else one of our own."""
    global _own_master
    master = getattr(ctx, "master", None)
    if master is None:
        if _own_master is None:
            _own_master = Master(options.Options(), event_loop=_private_loop())
        master = _own_master
    return master.addons


_own_master: Master | None = None
_loop: asyncio.AbstractEventLoop | None = None


async def cycle(addon, f: http.HTTPFlow, response: http.Response | None = None, dispatch: Dispatch | None = None):
    """Play `f` through the hook events (`hook_events`). `dispatch` hands one event on; by default the
    addon manager's `invoke_addon` for `addon`: it and its nested addons, each hook awaited, and an
    exception in a hook raised here (mitmproxy would log it)."""
    if dispatch is None:
        manager = addon_manager()
        dispatch = lambda event: manager.invoke_addon(addon, event)  # noqa: E731
    for event in hook_events(f, response):
        await dispatch(event)
    return f


def run_hooks(addon, f: http.HTTPFlow, response: http.Response | None = None) -> http.HTTPFlow:
    """`cycle`, run to its end. `response` plays the API's answer, used only when the addon did not
    answer the request itself."""
    run(cycle(addon, f, response))
    return f


def run(coroutine: Coroutine[Any, Any, Any]):
    """Run `coroutine` to its end and return its value: on the event loop mitmproxy's master would
    run it on (the test context's, while it is open; else one of our own). Called from a running loop
    (an async test), it runs in place, and a hook that waits for the loop fails: await `cycle` there."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _idle_loop().run_until_complete(coroutine)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a hook waited for the event loop: from an async test, `await flows.cycle(...)`")


def _idle_loop() -> asyncio.AbstractEventLoop:
    loop = getattr(getattr(ctx, "master", None), "event_loop", None)
    if loop is not None and not loop.is_closed() and not loop.is_running():
        return loop
    return _private_loop()


def _private_loop() -> asyncio.AbstractEventLoop:
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop
