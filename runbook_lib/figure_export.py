"""Static PNG copies of plotly figures, drawn by the system's Chromium through kaleido.

kaleido (v1) drives an installed Chrome or Chromium; it finds the Debian package's
``/usr/bin/chromium`` on ``PATH`` (or the browser ``$BROWSER_PATH`` names) and never
downloads one. One browser is started per kernel, on the first figure, and stopped
when the kernel exits. Its page loads plotly.js from the plotly package and no
MathJax, so drawing a figure makes no network request. :func:`prepare` starts the browser on a thread of
its own, so a notebook's first figure need not wait for it. The browser gets the kernel's
environment without the runbook's variables and anything named like a credential.

A kernel of ``runbook run`` finds ``$RUNBOOK_FIGURE_SOCKET`` in its environment: the run's one browser
(:mod:`runbook_lib.figure_server`) draws its figures, and the kernel starts none (a browser's start costs
several seconds of CPU, more than all the figures of a notebook). Should that socket not answer, the
kernel draws with a browser of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import re
import sys
import threading

FIGURE_SOCKET_ENV = "RUNBOOK_FIGURE_SOCKET"  # set by runbook run: the Unix socket of the run's figure server
PNG_SCALE = 2  # pixels per CSS pixel: sharp on high-density screens, still small for bar charts
DEFAULT_SIZE = (900, 450)

# Environment variables the browser must not inherit: the runbook's own (its secrets arrive
# in $RUNBOOK_SECRETS) and anything named like a credential.
_PRIVATE_ENV = re.compile(r"^RUNBOOK_|SECRET|TOKEN|PASSW|CREDENTIAL|_KEY$|KUBECONFIG|TALOSCONFIG", re.IGNORECASE)


class StaticExportUnavailable(RuntimeError):
    """No static image can be drawn on this machine (kaleido or a Chromium browser is missing)."""


# What the browser answers when kaleido runs a figure outside its page's JavaScript context
_WRONG_CONTEXT = ("kaleido_scopes is not defined", "Cannot find context with specified id")

START_TIMEOUT_S = 120  # the first start of a browser on a busy 2-core machine takes a few seconds
DRAW_TIMEOUT_S = 120
UNAVAILABLE_STATUS = 503  # the figure server's answer when no browser can be started (its text says why)

_state: dict = {"renderer": None, "failure": None, "starting": None, "server_gone": False}
_start_lock = threading.Lock()  # one browser per process, whichever thread asks first


def png(figure: dict, width: int | None = None, height: int | None = None) -> bytes:
    """The PNG of ``figure`` (a plotly figure as a dict), at its layout size or ``DEFAULT_SIZE``."""
    layout = figure.get("layout", {})
    opts = {"format": "png", "scale": PNG_SCALE,
            "width": width or layout.get("width") or DEFAULT_SIZE[0],
            "height": height or layout.get("height") or DEFAULT_SIZE[1]}
    socket_path = _figure_socket()
    if socket_path:
        try:
            return _drawn_by_server(socket_path, figure, opts)
        except ConnectionError:
            _state["server_gone"] = True  # the run's server is gone: this kernel draws with a browser of its own
    return draw_locally(figure, opts)


def draw_locally(figure: dict, opts: dict) -> bytes:
    """The PNG of ``figure`` with ``opts`` as :func:`png` makes them, drawn by this process's browser."""
    return _renderer().draw(figure, opts)


def _figure_socket() -> str | None:
    return None if _state["server_gone"] else os.environ.get(FIGURE_SOCKET_ENV) or None


def _drawn_by_server(socket_path: str, figure: dict, opts: dict) -> bytes:
    """The figure server's PNG (see :mod:`runbook_lib.figure_server`). ``ConnectionError`` when nothing answers
    at ``socket_path``; its refusal to draw is raised as the local browser's would be."""
    import httpx

    from . import local_http

    try:
        with local_http.client(uds=socket_path, timeout=START_TIMEOUT_S + DRAW_TIMEOUT_S) as client:
            answer = client.post("http://figures/png", content=json.dumps({"figure": figure, "opts": opts}),
                                 headers={"Content-Type": "application/json"})
    except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
        raise ConnectionError(str(exc)) from exc
    if answer.status_code == 200:
        return answer.content
    if answer.status_code == UNAVAILABLE_STATUS:
        raise StaticExportUnavailable(answer.text)
    raise RuntimeError(f"the run's figure server could not draw the figure: {answer.text}")


def prepare() -> None:
    """Start the browser now, in the background: it starts in processes of its own, beside the kernel's work
    (reading the cluster) before its first figure. A browser that cannot start is reported by that figure.
    Nothing to do in a kernel whose figures the run's figure server draws."""
    if not _figure_socket():
        start_browser()


def start_browser() -> None:
    """Start this process's browser in the background (once)."""
    if _state["renderer"] is not None or _state["failure"] or _state["starting"] is not None:
        return
    _state["starting"] = threading.Thread(target=_start_quietly, name="figure-export-start", daemon=True)
    _state["starting"].start()


def _start_quietly() -> None:
    with contextlib.suppress(StaticExportUnavailable):  # remembered: the first figure says why
        _renderer()


def stop() -> None:
    """Stop the browser, if one runs (the next figure starts another)."""
    starting, _state["starting"] = _state["starting"], None
    if starting is not None:
        starting.join(START_TIMEOUT_S)
    renderer, _state["renderer"] = _state["renderer"], None
    if renderer is not None:
        renderer.close()


def browser_path() -> str | None:
    """The Chrome or Chromium kaleido would start, or None."""
    try:
        from choreographer.browsers.chromium import Chromium
    except ImportError:
        return None
    return Chromium.find_browser(skip_local=False)


class _Renderer:
    """One kaleido browser on an event loop of its own thread, so every call can time out and fail.

    (kaleido's own sync server waits forever when its browser dies.)
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="figure-export", daemon=True).start()

        async def start():
            browser = _kaleido_keeping_its_page()(mathjax=False, browser_cls=_chromium_without_private_env())
            await browser.open()
            await _check_page_scripts(browser)
            return browser

        try:
            self.kaleido = self._call(start(), START_TIMEOUT_S)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise
        atexit.register(self.close)

    def draw(self, figure: dict, opts: dict) -> bytes:
        try:
            return self._call(self.kaleido.calc_fig(figure, opts=opts), DRAW_TIMEOUT_S)
        except Exception as exc:
            if not any(text in str(exc) for text in _WRONG_CONTEXT):
                with contextlib.suppress(Exception):  # the figure's error is the one to report
                    self._call(_reload_idle_tabs(self.kaleido), START_TIMEOUT_S)  # the next figure: a fresh page
                raise
            self._call(_check_page_scripts(self.kaleido), START_TIMEOUT_S)
            return self._call(self.kaleido.calc_fig(figure, opts=opts), DRAW_TIMEOUT_S)

    def close(self) -> None:
        """Stop the browser and the loop's thread (once; also called at exit)."""
        atexit.unregister(self.close)
        if self.loop.is_closed() or not self.loop.is_running():
            return
        try:
            self._call(self.kaleido.close(), 30)
        except Exception as exc:  # noqa: BLE001 - a browser that will not close must not fail the run that drew
            print(f"warning: the figure browser did not close ({type(exc).__name__}: {str(exc) or 'no answer'}); "
                  "its process may be left running", file=sys.stderr)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)

    def _call(self, coro, timeout: float):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


async def _check_page_scripts(browser) -> None:
    """Make sure each idle kaleido tab runs its figures where its page script is.

    kaleido (1.4, 1.5) subscribes to the tab's new JavaScript context and then navigates, but the first such event
    it receives can be an earlier one still waiting in the browser's pipe (the blank page's): on a busy machine its
    figures then fail with "kaleido_scopes is not defined", after a reload too. Each idle tab is asked, in the
    context kaleido keeps, whether the script is there, and reloaded until it is. A kaleido without these internals
    is left as it is.
    """
    for tab in _idle_tabs(browser):
        for attempt in range(1, 6):
            answer = await tab.tab.send_command("Runtime.evaluate", params={
                "expression": "typeof kaleido_scopes", "contextId": getattr(tab, "_current_js_id", None),
                "returnByValue": True})
            if ((answer or {}).get("result") or {}).get("result", {}).get("value") == "object":
                break
            await asyncio.sleep(0.1 * attempt)  # lets the browser's pending events be read first
            await tab.reload()


async def _reload_idle_tabs(browser) -> None:
    """Reload each tab waiting in kaleido's queue, then make sure its script is there."""
    for tab in _idle_tabs(browser):
        await tab.reload()
    await _check_page_scripts(browser)


def _idle_tabs(browser) -> list:
    """The tabs waiting in kaleido's queue (none for a kaleido without that internal)."""
    return list(getattr(getattr(browser, "tabs_ready", None), "_queue", ()))


def _renderer() -> _Renderer:
    """The browser that draws figures, started on first use, once per process."""
    with _start_lock:
        return _started()


def _started() -> _Renderer:
    if _state["renderer"] is not None:
        return _state["renderer"]
    if _state["failure"]:
        raise StaticExportUnavailable(_state["failure"])
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return _fail("kaleido is not installed (pip install 'kaleido>=1')")
    if not browser_path():
        return _fail("no Chromium or Chrome found: install the Debian package chromium "
                     "(apt-get install chromium) or set BROWSER_PATH to a Chrome executable")
    try:
        _state["renderer"] = _Renderer()
    except Exception as exc:
        return _fail(f"the browser could not be started ({type(exc).__name__}: {exc})")
    return _state["renderer"]


def _fail(reason: str):
    """Remember why (so later figures do not retry a missing browser) and raise."""
    _state["failure"] = reason
    raise StaticExportUnavailable(reason)


def private_env_removed(env: dict) -> dict:
    """``env`` without the variables a browser must not see."""
    return {k: v for k, v in env.items() if not _PRIVATE_ENV.search(k)}


def _kaleido_keeping_its_page():
    """kaleido's Kaleido, drawing every figure in the page its tab loaded once.

    kaleido (1.5) reloads a tab after each figure, plotly.js included: about 0.4 s of the browser's CPU per
    figure, three times what drawing it costs. Its page script draws each figure with ``Plotly.toImage`` on a
    plot of its own that plotly.js removes afterwards (``kaleido_scopes.js``), the way kaleido 0.x drew all
    figures in one page, so a figure leaves nothing behind for the next one. After a figure that failed, the
    tab is reloaded (:meth:`_Renderer.draw`).
    """
    import kaleido

    class KaleidoKeepingItsPage(kaleido.Kaleido):
        async def _return_kaleido_tab(self, tab) -> None:
            await self.tabs_ready.put(tab)

    return KaleidoKeepingItsPage


def _chromium_without_private_env():
    """choreographer's Chromium, started with ``private_env_removed(os.environ)`` (its ``get_env`` hook)."""
    from choreographer.browsers.chromium import Chromium

    class ChromiumWithoutPrivateEnv(Chromium):
        def get_env(self):
            return private_env_removed(super().get_env())

    return ChromiumWithoutPrivateEnv
