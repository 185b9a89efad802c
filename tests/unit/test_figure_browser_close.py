"""A figure browser that will not close ends with a warning, never with an error for the run that drew.

A run printed ``error: : : check the path and its permissions`` after every notebook had succeeded: kaleido's
close timed out (``TimeoutError`` is an ``OSError``) and the run's figure server passed it on.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from runbook_lib import figure_export


class _StuckKaleido:
    async def close(self) -> None:
        raise TimeoutError


def test_a_browser_that_does_not_close_warns_and_stops_its_loop(capsys: pytest.CaptureFixture[str]) -> None:
    renderer = object.__new__(figure_export._Renderer)
    renderer.loop = asyncio.new_event_loop()
    thread = threading.Thread(target=renderer.loop.run_forever, daemon=True)
    thread.start()
    renderer.kaleido = _StuckKaleido()
    renderer.close()
    thread.join(5)
    assert not thread.is_alive()
    renderer.loop.close()
    assert "warning: the figure browser did not close (TimeoutError: no answer)" in capsys.readouterr().err
