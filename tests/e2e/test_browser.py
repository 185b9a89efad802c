"""The figures in a real browser (headless Chromium, network off): the executed notebooks' HTML
export, and JupyterLab with the plotly extension and a live picker.

"Network off": Chromium sends every non-loopback request to a closed local port (a dead proxy)
and resolves no host name but the loopback ones, so a figure that needed a CDN stays blank.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nbformat
import pytest

from tests import executed

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="Chromium or chromedriver missing: .ci/run installs the Debian packages "
                              "chromium and chromium-driver"),
]

# Each figure image: loaded, laid out, and with data drawn on it. Data marks are saturated colours;
# white, the grey-blue plot area, grid lines and text are not (share of pixels, read through a canvas).
IMAGES_JS = """
return Array.from(document.images).filter(i => i.src.startsWith('data:image/png')).map(i => {
  const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(i, 0, 0);
  const px = g.getImageData(0, 0, c.width, c.height).data; let marks = 0;
  for (let k = 0; k < px.length; k += 4) {
    if (Math.max(px[k], px[k+1], px[k+2]) - Math.min(px[k], px[k+1], px[k+2]) > 80) marks++;
  }
  return {complete: i.complete, width: i.naturalWidth, shown: i.getBoundingClientRect().width,
          marks: marks / (px.length / 4)};
});
"""


def offline_chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--proxy-server=http://127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # An explicit driver path: selenium-manager would otherwise try to download one.
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def remote(urls: list[str]) -> list[str]:
    local = ("file:", "data:", "blob:", "about:", "http://127.0.0.1", "ws://127.0.0.1", "http://localhost")
    return [u for u in urls if not u.startswith(local)]


def wait_for(predicate, timeout: float = 90, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory) -> dict[str, Path]:
    return executed.all_executed(tmp_path_factory.mktemp("executed"))


@pytest.fixture(scope="module")
def browser():
    driver = offline_chromium()
    yield driver
    driver.quit()


@pytest.mark.after_notebooks
def test_html_export_offline_shows_every_figure(notebooks, browser, tmp_path) -> None:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    for name, path in notebooks.items():
        nb = nbformat.read(str(path), as_version=4)
        figures = sum(PLOTLY_MIMETYPE in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))
        body, _ = exporter.from_notebook_node(nb)
        page = tmp_path / f"{name}.html"
        page.write_text(body)
        browser.get(page.as_uri())
        wait_for(lambda: browser.execute_script("return document.readyState") == "complete", what=f"{name} to load")
        images = browser.execute_script(IMAGES_JS)
        assert len(images) == figures, f"{name}: {len(images)} figure images for {figures} figures"
        for k, img in enumerate(images):
            assert img["complete"] and img["width"] > 0 and img["shown"] > 0, f"{name} figure {k + 1}: {img}"
            assert img["marks"] > 0.0001, f"{name} figure {k + 1} shows no data: {img}"
        tried = remote(requested_urls(browser))
        assert not [u for u in tried if "plot" in u], f"{name} asked the network for plotly: {tried}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SAVED = "06-failover-drill"  # opened with its saved outputs: the phases and the resync figure
PICKER_NOTEBOOK = [
    "import pandas as pd\nfrom runbook_lib import viz",
    "results = pd.DataFrame({'storage_class': ['local'] * 3 + ['replicated'] * 3, 'pattern': ['randwrite-lat'] * 6,\n"
    "                        'iteration': [1, 2, 3] * 2, 'iops': [900.0, 910, 905, 400, 410, 405],\n"
    "                        'lat_mean_us': [110.0, 109, 111, 250, 245, 248],\n"
    "                        'clat_p50_us': [100.0, 101, 99, 240, 238, 242], 'clat_p99_us': [180.0, 185, 182, 420, 410, 430],\n"
    "                        'clat_p999_us': [300.0, 310, 305, 800, 790, 810]})\n"
    "viz.show(viz.percentile_runs_figure(results, 'replicated', 'randwrite-lat', 'p99'),\n"
    "         viz.percentile_runs_table(results, 'replicated', 'randwrite-lat'))\n"
    "display(viz.bench_explorer(results, 'replicated', 'randwrite-lat', 'p99'))",
]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory, notebooks):
    root = tmp_path_factory.mktemp("lab-root")
    shutil.copy(notebooks[SAVED], root / f"{SAVED}.ipynb")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in PICKER_NOTEBOOK])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(root / "picker.ipynb"))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JUPYTER_CONFIG_DIR": str(root / ".config"),
           "JUPYTER_RUNTIME_DIR": str(root / ".runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces")}
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    served = {"base": f"http://127.0.0.1:{port}"}

    def up() -> bool:
        """Answering at the port it writes in its runtime file: when another process took the port asked for
        (free_port's port is free only when it is picked), the server takes the next one."""
        assert proc.poll() is None, (root / "server.log").read_text()[-2000:]
        try:
            served["base"] = "http://127.0.0.1:{port}".format(
                **json.loads((root / ".runtime" / f"jpserver-{proc.pid}.json").read_text()))
            return httpx.get(f"{served['base']}/api/status", params={"token": token}, timeout=2).status_code == 200
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            return False

    try:
        wait_for(up, timeout=120, what="JupyterLab to start")
        yield served["base"], token
    finally:
        try:
            httpx.post(f"{served['base']}/api/shutdown", headers={"Authorization": f"token {token}"}, timeout=10)
            proc.wait(timeout=30)
        except (httpx.HTTPError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        log.close()


# Every output JupyterLab's plotly extension renders. It shows the output's PNG until the pointer
# enters it, then draws the live figure with its bundled plotly.js (jupyterlab-plotly's renderer).
PLOTS_JS = """
return Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedPlotly')).map(p => ({
  live: !!p.querySelector('.plot-container .main-svg'),
  title: (p.querySelector('.gtitle') || {}).textContent || '',
  points: p.querySelectorAll('.point, .js-line').length,
  inWidget: !!p.closest('.jupyter-widgets'),
}));
"""


def draw_live(browser, index: int) -> dict:
    """Point at the ``index``-th plotly output, as a reader would, and wait for the live figure."""
    from selenium.webdriver.common.action_chains import ActionChains

    node = browser.execute_script(
        "const p = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedPlotly')[arguments[0]];"
        "p.scrollIntoView({block: 'center'}); return p;", index)
    ActionChains(browser).move_to_element(node).perform()
    return wait_for(lambda: (plot := browser.execute_script(PLOTS_JS)[index])["live"] and plot["points"] and plot,
                    timeout=60, what=f"plotly output {index + 1} to draw live")


@pytest.mark.after_notebooks
def test_jupyterlab_draws_the_figures_and_a_picker_redraws_offline(jupyterlab, notebooks, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, token = jupyterlab
    nb = nbformat.read(str(notebooks[SAVED]), as_version=4)
    titles = [out["data"][PLOTLY_MIMETYPE]["layout"]["title"]["text"] for cell in nb.cells
              for out in cell.get("outputs", []) if PLOTLY_MIMETYPE in out.get("data", {})]

    # An executed notebook: every saved figure drawn by JupyterLab's plotly extension, without a kernel.
    browser.get(f"{base}/lab/tree/{SAVED}.ipynb?reset&token={token}")
    wait_for(lambda: len(browser.execute_script(PLOTS_JS)) >= len(titles), timeout=120, what=f"{SAVED}'s figures")
    assert [draw_live(browser, i)["title"] for i in range(len(titles))] == titles

    # A live picker: run the notebook, then pick another percentile; the kernel redraws into the Output widget.
    browser.get(f"{base}/lab/tree/picker.ipynb?reset&token={token}")
    wait_for(lambda: browser.execute_script(
        "const a = window.jupyterapp; const w = a && a.shell.currentWidget;"
        "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle');"), timeout=120, what="the kernel to be idle")
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    wait_for(lambda: len(browser.execute_script(PLOTS_JS)) >= 2, timeout=120, what="the static copy and the picker")
    static, picked = draw_live(browser, 0), draw_live(browser, 1)
    first = "replicated / randwrite-lat: p99 completion latency per run"
    assert (static["inWidget"], picked["inWidget"]) == (False, True)
    assert static["title"] == picked["title"] == first, "the picker's first choice differs from the static copy"
    assert not browser.find_elements(By.CSS_SELECTOR, ".jupyter-widgets iframe")

    percentile = browser.find_elements(By.CSS_SELECTOR, ".jupyter-widgets select")[2]
    Select(percentile).select_by_visible_text("p50")
    wait_for(lambda: browser.execute_script(PLOTS_JS)[1]["title"].endswith("p50 completion latency per run"),
             timeout=60, what="the picker to redraw for p50")
    tried = remote(requested_urls(browser))
    assert not [u for u in tried if "plot" in u or "unpkg" in u or "jsdelivr" in u], tried
