"""Screenshots of learning curves for docs/: TensorBoard on a directory of runs, and a
``fadejax compare`` page, in headless Chromium (Debian's).

    .venv/bin/python scripts/screenshot_learning.py RUNS_DIR COMPARE_HTML docs/

Starts ``tensorboard --logdir RUNS_DIR`` on a free local port (no network beyond
localhost), opens its time-series view and the compare page, and writes
``tensorboard.png`` and ``compare.png`` into the output directory.
"""

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

#: the scalars the screenshot shows (a regular expression over TensorBoard tags)
TAGS = "failures_total|searcher/(epsilon|loss|mean_axis_std)|queries_per_s"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float = 60.0) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f} s")


def main(runs: str, compare_html: str, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen([str(tensorboard), "--logdir", runs, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for(url)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "?darkMode=false#timeseries")
            page.wait_for_selector("canvas, svg.line-chart, .line-chart", timeout=60_000)
            page.get_by_role("button", name="Settings").first.click(timeout=10_000)  # fold the settings pane away
            page.fill("input[placeholder='Filter tags (regex)']", TAGS)
            page.keyboard.press("Escape")  # close the tag suggestions
            page.mouse.click(700, 140)
            page.wait_for_timeout(5000)  # the charts draw after their data arrive
            page.screenshot(path=str(out / "tensorboard.png"))
            page.goto("file://" + str(Path(compare_html).resolve()))
            page.wait_for_selector(".plot-container", timeout=30_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(out / "compare.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {out / 'tensorboard.png'} and {out / 'compare.png'}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
