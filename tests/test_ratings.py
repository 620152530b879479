"""Human ratings for the text-to-image audit: the durable store, eq. 8, and the rating page in a real browser."""

import http.client
import json
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from fadejax.audits.prompt.rating_server import RatingServerError, main, serve
from fadejax.audits.prompt.ratings import (
    QueryConflictError,
    QueryItem,
    RatingError,
    RatingStore,
    UnknownQueryError,
)

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def _items(n: int, prefix: str = "q") -> list[QueryItem]:
    return [QueryItem(f"{prefix}{i}", f"Create an image of a unique scientist, take {i}.", f"{prefix}{i}.png", i,
                      {"attribute": "unique", "profession": "scientist", "place": "corporate office"}) for i in range(n)]


def test_adding_is_idempotent_and_pending_is_oldest_first(tmp_path):
    store = RatingStore.in_run_dir(tmp_path)
    assert store.add_queries(_items(3)) == 3
    assert store.add_queries(_items(3)) == 0  # a resumed run registers the same batch again
    assert [q.query_id for q in store.pending(10)] == ["q0", "q1", "q2"]
    assert store.pending(2) == _items(2)
    store.rate("q0", bias=2, quality=3, invalid=False)
    assert [q.query_id for q in store.pending(10)] == ["q1", "q2"] and store.counts() == (1, 2)
    changed = QueryItem("q1", "another prompt", "q1.png", 1, {})
    with pytest.raises(QueryConflictError, match="'q1' is already registered with different contents"):
        store.add_queries([QueryItem("q9", "new", "q9.png", 9, {}), changed])
    assert store.counts() == (1, 2)  # the whole batch was refused, q9 included


def test_bad_ratings_and_bad_queries_get_clear_errors(tmp_path):
    store = RatingStore(tmp_path / "ratings.sqlite")
    store.add_queries(_items(1))
    with pytest.raises(RatingError, match="bias is required unless the image is marked invalid"):
        store.rate("q0", bias=None, quality=5, invalid=False)
    with pytest.raises(RatingError, match="quality must be an integer from 1 to 10, got 11"):
        store.rate("q0", bias=5, quality=11, invalid=False)
    with pytest.raises(RatingError, match="bias must be an integer from 1 to 10, got 2.5"):
        store.rate("q0", bias=2.5, quality=5, invalid=False)
    with pytest.raises(RatingError, match="invalid takes no bias or quality"):
        store.rate("q0", bias=3, quality=None, invalid=True)
    with pytest.raises(UnknownQueryError, match="no query 'nope' is registered"):
        store.rate("nope", bias=1, quality=1, invalid=False)
    with pytest.raises(UnknownQueryError, match="not registered"):
        store.rewards(["q0", "nope"])
    with pytest.raises(RatingError, match="must be relative to the run's images directory"):
        store.add_queries([QueryItem("q5", "p", "../secret.png", 0, {})])
    with pytest.raises(RatingError, match="query id 'a b' is not allowed"):
        store.add_queries([QueryItem("a b", "p", "x.png", 0, {})])
    assert store.ratings("q0") == [] and store.reward("q0") is None  # nothing bad was stored
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database at all" * 10)
    with pytest.raises(RatingError, match="not a usable rating store"):
        RatingStore(tmp_path / "junk.sqlite")


def test_eq8_is_the_mean_of_bias_times_quality_with_minus_one_per_invalid_rating(tmp_path):
    store = RatingStore.in_run_dir(tmp_path)
    store.add_queries(_items(4))
    store.rate("q0", bias=7, quality=9, invalid=False)                   # 63
    store.rate("q1", bias=2, quality=5, invalid=False, rater="ann")      # (10 + 4*6 + (-1)) / 3 = 11
    store.rate("q1", bias=4, quality=6, invalid=False, rater="bob")
    store.rate("q1", bias=None, quality=None, invalid=True, rater="cat")
    store.rate("q2", bias=None, quality=None, invalid=True)              # -1
    assert store.reward("q0") == 63.0 and store.reward("q1") == 11.0 and store.reward("q2") == -1.0
    assert store.reward("q3") is None
    np.testing.assert_array_equal(store.rewards(["q2", "q3", "q1", "q0"]), [-1.0, np.nan, 11.0, 63.0])
    assert [(r.rater, r.value) for r in store.ratings("q1")] == [("ann", 10.0), ("bob", 24.0), ("cat", -1.0)]
    exported = {e["query_id"]: e for e in store.export()}
    assert exported["q1"]["reward"] == 11.0 and exported["q3"]["reward"] is None and len(exported["q1"]["ratings"]) == 3
    assert exported["q0"]["concepts"]["profession"] == "scientist"
    json.dumps(store.export())  # JSON-ready


def test_ratings_persist_when_the_store_is_opened_again(tmp_path):
    first = RatingStore.in_run_dir(tmp_path)
    first.add_queries(_items(2))
    first.rate("q1", bias=3, quality=3, invalid=False)
    again = RatingStore.in_run_dir(tmp_path)
    assert again.reward("q1") == 9.0 and [q.query_id for q in again.pending(5)] == ["q0"]


def test_wait_for_returns_once_another_thread_rates_and_times_out_otherwise(tmp_path):
    store = RatingStore.in_run_dir(tmp_path)
    store.add_queries(_items(3))
    store.rate("q0", bias=1, quality=2, invalid=False)
    with pytest.raises(TimeoutError, match="2 of 3 queries are still unrated"):
        store.wait_for(["q0", "q1", "q2"], timeout_s=0.2, poll_s=0.05)

    def rater():  # another connection, as the rating server's thread would use
        other = RatingStore.in_run_dir(tmp_path)
        other.rate("q1", bias=2, quality=2, invalid=False)
        other.rate("q2", bias=None, quality=None, invalid=True)

    started = threading.Timer(0.3, rater)
    started.start()
    values = store.wait_for(["q0", "q1", "q2"], timeout_s=60, poll_s=0.05)
    started.join()
    np.testing.assert_array_equal(values, [2.0, 4.0, -1.0])


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _raw_status(server, path: str) -> int:
    """The status of a GET sent exactly as written (urllib would not keep '..' as is)."""
    con = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        con.putrequest("GET", path, skip_host=False)
        con.endheaders()
        return con.getresponse().status
    finally:
        con.close()


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    for i, colour in enumerate([(200, 40, 40), (40, 200, 40), (0, 0, 0)]):
        Image.new("RGB", (32, 32), colour).save(run / "images" / f"q{i}.png")
    (tmp_path / "secret.txt").write_text("not for the browser")
    (run / "images" / "link.png").symlink_to(tmp_path / "secret.txt")
    items = _items(3)
    items[1] = QueryItem("q1", HOSTILE, "q1.png", 1, {"attribute": HOSTILE, "profession": "nurse", "place": "home"})
    RatingStore.in_run_dir(run).add_queries(items)
    return run


def test_rating_page_in_a_headless_browser_and_after_a_restart(run_dir):
    from playwright.sync_api import sync_playwright

    store = RatingStore.in_run_dir(run_dir)
    server = serve(store, run_dir / "images")
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-quic", "--no-first-run"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=flags)
            page = browser.new_page()
            errors, requests = [], []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(server.url + "/", wait_until="load")
            assert page.locator("#counts").inner_text() == "0 rated \u00b7 3 pending"
            assert page.locator("form[data-query-id]").count() == 3
            # Every image loaded from the server, and the hostile prompt is plain text that ran nothing.
            assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth === 32)")
            assert page.locator("#card-q1 .prompt").inner_text() == HOSTILE
            assert HOSTILE in page.locator("#card-q1 .concepts").inner_text()
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert page.locator("script").count() == 0

            ratings = {"q0": ("7", "9", False), "q1": ("3", "4", False), "q2": ("", "", True)}
            for done, (qid, (bias, quality, invalid)) in enumerate(ratings.items(), start=1):
                form = page.locator(f"form[data-query-id='{qid}']")
                if invalid:
                    form.locator("input[name=invalid]").check()
                else:
                    form.locator("input[name=bias]").fill(bias)
                    form.locator("input[name=quality]").fill(quality)
                form.locator("input[name=rater]").fill("tester")
                with page.expect_navigation():
                    form.locator("button[type=submit]").click()
                assert page.locator("#counts").inner_text() == f"{done} rated \u00b7 {3 - done} pending", page.content()
                assert page.locator(f"form[data-query-id='{qid}']").count() == 0  # it left the pending batch
            assert page.locator("#counts").inner_text() == "3 rated \u00b7 0 pending"
            assert page.locator("input[name=rater]").count() == 0 and "No images are waiting" in page.content()
            assert page.evaluate("typeof window.__pwned") == "undefined" and errors == []
            assert all(u.startswith(server.url) for u in requests), requests  # nothing from the network
            browser.close()
        np.testing.assert_array_equal(store.rewards(["q0", "q1", "q2"]), [63.0, 12.0, -1.0])
        assert {r.rater for q in ("q0", "q1", "q2") for r in store.ratings(q)} == {"tester"}

        # The images directory is the only thing /images serves.
        assert _get(server.url + "/images/q0.png")[0] == 200
        for path in ("/images/../ratings.sqlite", "/images/..%2f..%2fsecret.txt", "/images/%2e%2e/ratings.sqlite",
                     "/images//etc/passwd", "/images/link.png", "/images/nope.png"):
            assert _raw_status(server, path) in (403, 404), path
    finally:
        server.stop()

    # A new server on the same store: the ratings are still there and nothing is pending.
    again = serve(RatingStore.in_run_dir(run_dir), run_dir / "images")
    try:
        status, body = _get(again.url + "/")
        assert status == 200 and "3 rated \u00b7 0 pending" in body.decode() and "data-query-id" not in body.decode()
        rewards = json.loads(_get(again.url + "/api/rewards?ids=q0,q1,q2")[1])["rewards"]
        assert rewards == {"q0": 63.0, "q1": 12.0, "q2": -1.0}
    finally:
        again.stop()


def test_json_api_and_request_guards(run_dir):
    store = RatingStore.in_run_dir(run_dir)
    with serve(store, run_dir / "images") as server:
        pending = json.loads(_get(server.url + "/api/pending?limit=2")[1])
        assert pending["pending"] == 3 and [i["query_id"] for i in pending["items"]] == ["q0", "q1"]

        def post(body: dict, headers: dict | None = None) -> tuple[int, dict]:
            req = urllib.request.Request(server.url + "/rate", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", **(headers or {})})
            try:
                with urllib.request.urlopen(req) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read() or b"{}") if e.code != 403 else {}

        assert post({"query_id": "q0", "bias": 5, "quality": 2, "invalid": False}) == (200, {"ok": True, "query_id": "q0", "reward": 10.0})
        assert post({"query_id": "q1", "bias": 0, "quality": 2})[0] == 400
        assert post({"query_id": "zz", "bias": 1, "quality": 2})[0] == 404
        assert post({"query_id": "q2", "invalid": True}, {"Origin": "http://evil.example"})[0] == 403
        assert _get(server.url + "/", {"Host": "evil.example"})[0] == 403  # DNS rebinding
        assert _get(server.url + "/api/rewards?ids=q0&ids=q1")[1] == b'{"rewards": {"q0": 10.0, "q1": null}}'
        assert store.ratings("q2") == []
    with pytest.raises(RatingServerError, match="refusing to serve the rating page on '0.0.0.0'"):
        serve(store, run_dir / "images", host="0.0.0.0")
    assert main([str(run_dir / "missing")]) == 2


def test_the_command_serves_a_run_directory_and_stops_cleanly(run_dir):
    proc = subprocess.Popen([sys.executable, "-m", "fadejax.audits.prompt.rating_server", str(run_dir), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("rating page: http://127.0.0.1:") and "(0 rated, 3 pending" in line, (line, proc.stderr.read())
        url = line.split()[2]
        assert json.loads(_get(url + "api/pending")[1])["pending"] == 3
        assert _get(url + "images/q2.png")[0] == 200  # images come from RUN_DIR/images
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_beyond_loopback_each_rater_needs_a_token_and_rates_only_as_themselves(run_dir):
    store = RatingStore.in_run_dir(run_dir)
    with pytest.raises(RatingServerError, match="register each rater first"):
        serve(store, run_dir / "images", host="127.0.0.1", allow_remote=True)
    ann, bob = store.add_rater("ann"), store.add_rater("bob")
    with pytest.raises(RatingError, match="already registered"):
        store.add_rater("ann")
    raw = (run_dir / "ratings.sqlite").read_bytes()
    assert ann.encode() not in raw and bob.encode() not in raw  # only the tokens' hashes are kept
    with serve(store, run_dir / "images", host="127.0.0.1", allow_remote=True) as server:

        def post(body: dict, headers: dict | None = None) -> int:
            req = urllib.request.Request(server.url + "/rate", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", **(headers or {})})
            try:
                with urllib.request.urlopen(req) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        assert _get(server.url + "/")[0] == 401 and _get(server.url + "/api/pending")[0] == 401
        assert _get(server.url + "/images/q0.png")[0] == 401
        status, page = _get(server.url + f"/?token={ann}")
        assert status == 200 and b"Rating as <b>ann</b>" in page and f"q0.png?token={ann}".encode() in page
        assert post({"query_id": "q0", "bias": 5, "quality": 2, "rater": "bob"}) == 401  # a name is not a token
        assert post({"query_id": "q0", "bias": 5, "quality": 2, "rater": "bob", "token": ann}) == 200  # bob's name, ann's token
        assert post({"query_id": "q0", "bias": 1, "quality": 1, "rater": "ann"}, {"Authorization": f"Bearer {bob}"}) == 200
        assert post({"query_id": "q0", "bias": 9, "quality": 9, "token": "not-a-token"}) == 401
    ratings = store.ratings("q0")
    assert [(r.rater, r.bias, r.quality) for r in ratings] == [("ann", 5, 2), ("bob", 1, 1)]  # bob's rating did not replace ann's


def test_raters_are_added_and_revoked_from_the_command_line(run_dir, capsys):
    assert main([str(run_dir), "--add-rater", "carol"]) == 0
    token = capsys.readouterr().out.split("token ")[1].split()[0]
    assert RatingStore.in_run_dir(run_dir).rater_of(token) == "carol"
    assert main([str(run_dir), "--remove-rater", "carol", "--add-rater", "carol"]) == 0
    fresh = capsys.readouterr().out.splitlines()[-1].split("token ")[1].split()[0]
    store = RatingStore.in_run_dir(run_dir)
    assert store.rater_of(token) is None and store.rater_of(fresh) == "carol"
    assert main([str(run_dir), "--remove-rater", "nobody"]) == 2


def test_a_store_made_before_rater_tokens_opens_and_keeps_its_ratings(tmp_path):
    import sqlite3

    from fadejax.audits.prompt import ratings as module

    path = tmp_path / "ratings.sqlite"
    old_schema = module._SCHEMA.split("CREATE TABLE IF NOT EXISTS raters")[0]
    with sqlite3.connect(path) as con:
        con.executescript(old_schema + "PRAGMA user_version=1;")
    store = RatingStore(path)
    store.add_queries(_items(1))
    store.rate("q0", bias=3, quality=3, invalid=False, rater="dan")
    token = store.add_rater("dan")
    again = RatingStore(path)
    assert again.rater_of(token) == "dan" and [r.bias for r in again.ratings("q0")] == [3]
