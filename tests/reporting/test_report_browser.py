"""The HTML report in a real headless Chromium: every image decodes, the console stays clean,
nothing is fetched from the network, and the sortable tables sort.

Chromium is driven over the DevTools protocol (a websocket), so no browser-automation package
or browser download is needed: ``.ci/run`` installs Debian's ``chromium`` where it is missing.
Set ``ACTBENCH_CHROMIUM`` to use another binary. Without one the test skips and says why.
"""

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from bench.execution.run import RunOptions, run_suite
from bench.reporting.report import render
from tests.helpers import make_suite

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--remote-debugging-port=0", "--remote-allow-origins=*"]

SUITE = """
seeds = [0, 1]
[task]
kind = "spiral"
points_per_class = 30
[model]
hidden = [6]
activation = "relu"
[train]
optimizer = "adam"
lr = 0.02
epochs = 20
log_every = 10
[sweep]
"model.activation" = ["relu", "sigmoid"]
"train.accumulation_steps" = [1, 2]
"""


def _chromium() -> str:
    for name in (os.environ.get("ACTBENCH_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium found (looked for $ACTBENCH_CHROMIUM, chromium, chromium-browser, "
                "google-chrome); `.ci/run` installs Debian's chromium package")


class DevTools:
    """A minimal DevTools-protocol client for one page: commands, and the events seen."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self.events.append(json.loads(self.ws.recv()))

    def drain(self, seconds: float) -> None:
        """Collect events for a while (late console errors, late requests)."""
        self.ws.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.events.append(json.loads(self.ws.recv()))
            except Exception:  # the recv timed out: nothing new
                pass
        self.ws.settimeout(30)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = _chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                pytest.fail(f"Chromium ({binary}) exited with {proc.returncode} before it listened")
            if "DevTools listening on ws://" in line:
                port = int(line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        assert port, "Chromium did not open its DevTools port within 60 s"
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _page(port: int) -> DevTools:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
        targets = json.load(response)
    page = next(t for t in targets if t["type"] == "page")
    return DevTools(page["webSocketDebuggerUrl"])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("browser-run")
    store = run_suite(make_suite(SUITE, name="browser"), RunOptions(out=tmp / "results", workers=1))
    html, _ = render(store.dir, tmp / "report")
    return html


def inspect(port: int, html: Path) -> tuple[list[dict], list, list[str]]:
    """Load ``html``: (its images' decode state, console errors and warnings, URLs fetched)."""
    page = _page(port)
    for domain in ("Runtime", "Log", "Page", "Network"):
        page.send(f"{domain}.enable")
    page.send("Page.navigate", url=html.resolve().as_uri())
    page.wait_for("Page.loadEventFired")
    page.drain(1.0)
    images = page.evaluate("Array.from(document.images).map(i => "
                           "({alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}))")
    errors = []
    for e in page.events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("text"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            errors.append(params.get("args"))
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            errors.append(params["entry"]["text"])
    fetched = [e["params"]["request"]["url"] for e in page.events
               if e.get("method") == "Network.requestWillBeSent"]
    return images, errors, fetched


def _undecoded(images: list[dict]) -> list[str]:
    return [i["alt"] for i in images if not (i["complete"] and i["w"] > 0 and i["h"] > 0)]


def test_html_report_loads_offline_with_every_image_decoded_and_no_console_errors(browser, report):
    images, errors, fetched = inspect(browser, report)
    assert len(images) == report.read_text().count("<img ") >= 7, images
    assert not _undecoded(images), f"images that did not decode: {_undecoded(images)}"
    assert not errors, errors
    assert fetched and all(u.startswith(("file:", "data:")) for u in fetched), fetched


def test_the_check_catches_a_broken_image_and_a_console_error(browser, report, tmp_path):
    """The negative control: the same checks on a spoiled copy must fail."""
    spoiled = tmp_path / "spoiled.html"
    spoiled.write_text(report.read_text().replace(
        "</body>", '<img alt="broken" src="data:image/png;base64,AAAA">'
                   '<script>console.error("planted")</script></body>'))
    images, errors, _ = inspect(browser, spoiled)
    assert _undecoded(images) == ["broken"]
    assert any("planted" in json.dumps(e) for e in errors)


def test_sortable_headline_table_sorts_by_value(browser, report):
    page = _page(browser)
    page.send("Runtime.enable")
    page.send("Page.enable")
    page.send("Page.navigate", url=report.resolve().as_uri())
    page.wait_for("Page.loadEventFired")
    column = page.evaluate("""(() => {
        const table = document.querySelectorAll('table.sortable')[0];
        const headers = Array.from(table.querySelectorAll('th')).map(h => h.textContent);
        return headers.indexOf('train loss');
    })()""")
    assert column >= 0
    values = page.evaluate(f"""(() => {{
        const table = document.querySelectorAll('table.sortable')[0];
        const th = table.querySelectorAll('th')[{column}];
        const read = () => Array.from(table.tBodies[0].rows)
            .map(r => parseFloat(r.cells[{column}].dataset.sort));
        th.click();
        const up = read();
        th.click();
        return [up, read(), th.getAttribute('aria-sort')];
    }})()""")
    up, down, state = values
    assert up == sorted(up) and down == sorted(down, reverse=True) and len(up) == 4
    assert state == "descending"


ARTIFACTS = Path(os.environ.get("ACTBENCH_ARTIFACTS") or Path(__file__).resolve().parents[2]
                 / "test-artifacts")
SCREEN = {"width": 1280, "height": 800}  # a laptop's first screen


def test_the_report_opens_with_its_answer_on_the_first_screen(browser, report):
    """As a person would see it: at 1280 x 800 the title says what was compared, and the
    findings and the ranking start on the first screen, before any table of settings; the
    provenance is the last section. The full page and the first screen are saved as PNGs in
    the test's artifacts (``$ACTBENCH_ARTIFACTS``, default ``test-artifacts/``)."""
    from PIL import Image

    page = _page(browser)
    page.send("Page.enable")
    page.send("Runtime.enable")
    page.send("Emulation.setDeviceMetricsOverride", deviceScaleFactor=1, mobile=False, **SCREEN)
    page.send("Page.navigate", url=report.resolve().as_uri())
    page.wait_for("Page.loadEventFired")
    layout = page.evaluate("""(() => {
        const top = e => e ? e.getBoundingClientRect().top + window.scrollY : null;
        return {
            title: document.querySelector('h1').textContent,
            findings: top(document.querySelector('ul.findings')),
            ranking: top(document.querySelector('ul.ranking')),
            firstTable: top(document.querySelector('table')),
            sections: Array.from(document.querySelectorAll('h2')).map(
                h => [h.id || h.textContent, top(h)]),
            height: document.documentElement.scrollHeight,
        };
    })()""")
    run_id = report.parent.name  # not the title: the title says what was compared
    assert layout["title"] == "2 activations × 2 accumulation steps on spiral, 2 seeds each"
    assert run_id not in layout["title"]
    assert layout["findings"] is not None and layout["findings"] < SCREEN["height"] / 2, layout
    assert layout["ranking"] is not None and layout["ranking"] < SCREEN["height"], layout
    assert layout["findings"] < layout["ranking"] < layout["firstTable"], layout
    names = [name for name, _ in layout["sections"]]
    assert names[-1] == "provenance" and names.index("run") < names.index("provenance"), names

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = {}
    for name, clip in (("report-first-screen", {"x": 0, "y": 0, **SCREEN, "scale": 1}),
                       ("report-full-page", {"x": 0, "y": 0, "width": SCREEN["width"],
                                             "height": layout["height"], "scale": 1})):
        shot = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip=clip)
        path = ARTIFACTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        with Image.open(path) as image:
            shots[name] = image.size
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 16, f"{path} is blank"
    assert shots["report-first-screen"] == (SCREEN["width"], SCREEN["height"])
    assert shots["report-full-page"] == (SCREEN["width"], layout["height"]) > shots["report-first-screen"]
