"""Open a written report in the headless browser and click a point of its landscape."""

import json


def open_at_first_failing_point(browser, files: dict) -> tuple[object, list[str]]:
    """The report page of ``files`` (``write_report``'s result) with the first point that has
    failures clicked, and the list the page's JavaScript errors are appended to."""
    data = json.loads(open(files["json"]).read())
    target = next(i for i, p in enumerate(data["points"]) if p["failures"] > 0)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("file://" + files["html"])
    page.wait_for_selector("#landscape .main-svg", timeout=30_000)
    page.evaluate(f"document.getElementById('landscape').emit('plotly_click', {{points: [{{customdata: {target}}}]}})")
    return page, errors
