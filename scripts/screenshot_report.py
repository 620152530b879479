"""Screenshots of a report in headless Chromium (Debian's), for docs/.

    .venv/bin/python scripts/screenshot_report.py runs/digits/report/report.html docs/
"""

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


def main(report: str, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1250})
        page.goto("file://" + str(Path(report).resolve()))
        page.wait_for_selector("#landscape .gl-container canvas", timeout=30_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "report.png"))
        worst = page.evaluate("(() => { const P = JSON.parse(document.getElementById('fadejax-data').textContent).points;"
                              " let b = 0; P.forEach((p, i) => { if (p.failures > P[b].failures) b = i; }); return b; })()")
        page.evaluate(f"document.getElementById('landscape').emit('plotly_click', {{points: [{{customdata: {worst}}}]}})")
        page.locator("input.mode").nth(0).check()
        page.click("#export-button")
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / "report_failures.png"), full_page=True)
        browser.close()
    print(f"wrote {out / 'report.png'} and {out / 'report_failures.png'}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
