"""The rating page: a person rates generated images for eq. 8, on a local web page.

``make_app`` builds a bottle app over a :class:`~fadejax.audits.prompt.ratings.RatingStore`;
``serve`` runs it on loopback in a background thread; ``python -m
fadejax.audits.prompt.rating_server RUN_DIR [--port N]`` serves a run directory (its store
``RUN_DIR/ratings.sqlite``, its images under ``RUN_DIR/images``) until Ctrl-C.

Routes:

* ``GET /`` — the next batch of unrated images (``?n=`` how many, default 12), each with
  its prompt, concept values, the two 1..10 inputs, an "invalid" box and a Submit button,
  and how many queries are rated / pending. With nothing pending it reloads itself every
  5 s, so a new batch from discovery shows up on its own.
* ``GET /images/<path>`` — a file under the image root; anything else (``..``, absolute
  paths, symlinks leading out) is 404.
* ``POST /rate`` — one rating, as a form (``query_id``, ``bias``, ``quality``, ``invalid``
  = any value when ticked, ``rater``; answered with a 303 back to ``/``, or the page with
  the error and status 400) or as JSON (``{"query_id", "bias", "quality", "invalid",
  "rater"}``; answered ``{"ok": true, "reward": ...}`` or ``{"error": ...}`` with 400/404).
* ``GET /api/pending?limit=N`` — ``{"rated", "pending", "items": [QueryItem fields]}``.
* ``GET /api/rewards?ids=a,b`` (or ``ids=a&ids=b``) — ``{"rewards": {id: reward or null}}``.

Raters beyond loopback: ``serve(..., allow_remote=True)`` (``--allow-remote``) requires a
registered rater's token on every request (``RatingStore.add_rater``; ``--add-rater NAME``
prints it once) and attributes each rating to that rater; see ``SECURITY.md`` for running
it behind a TLS reverse proxy.

Safety: every prompt, concept value and name is HTML-escaped; each response carries a
Content-Security-Policy that allows no script at all, images from this server only and
inline CSS, so the page needs nothing from the network. POSTs whose ``Origin`` is another
site are refused (403), and requests whose ``Host`` is not a loopback name are refused
unless the server was started for remote use (against DNS rebinding).
"""

from __future__ import annotations

import argparse
import html
import ipaddress
import signal
import socket
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Collection
from urllib.parse import quote, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import bottle

from fadejax.audits.prompt.ratings import (
    BIAS_QUESTION,
    INVALID_QUESTION,
    QUALITY_QUESTION,
    SCALE_MAX,
    SCALE_MIN,
    STORE_NAME,
    RatingError,
    RatingStore,
    UnknownQueryError,
)

IMAGES_DIR = "images"
"""Where a run directory keeps the generated images that ``QueryItem.image_path`` is relative to."""

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
DEFAULT_BATCH = 12
MAX_BATCH = 100

_SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_CSS = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
.counts { color: #555; margin: 0 0 1em; }
.howto { background: #fff; border: 1px solid #ddd; padding: .6em 1em; max-width: 60em; }
.howto dt { font-weight: 600; margin-top: .4em; }
.howto dd { margin: 0 0 0 1em; }
.error { background: #fde8e8; border: 1px solid #e0a0a0; padding: .6em 1em; max-width: 60em; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; margin-top: 1em; }
.card { background: #fff; border: 1px solid #ddd; padding: .8em; width: 300px; }
.card img { width: 100%; height: auto; image-rendering: auto; background: #eee; display: block; }
.prompt { font-weight: 600; margin: .5em 0; overflow-wrap: anywhere; }
.concepts { font-size: .85em; color: #555; margin: 0 0 .5em; overflow-wrap: anywhere; }
.card label { display: block; margin: .3em 0; }
.card input[type=number] { width: 4em; }
.card input[type=text] { width: 10em; }
.empty { margin-top: 1em; font-style: italic; }
"""


class RatingServerError(ValueError):
    """Bad server settings (e.g. a non-loopback host without ``allow_remote``)."""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _page(store: RatingStore, batch: int, rater: str, error: str | None = None, token: str | None = None) -> str:
    rated, pending = store.counts()
    items = store.pending(batch)
    howto = (f"<dl class='howto'><dt>Bias ({SCALE_MIN}\u2013{SCALE_MAX})</dt><dd>{_esc(BIAS_QUESTION)}</dd>"
             f"<dt>Quality ({SCALE_MIN}\u2013{SCALE_MAX}, higher = worse)</dt><dd>{_esc(QUALITY_QUESTION)}</dd>"
             f"<dt>Invalid</dt><dd>{_esc(INVALID_QUESTION)}</dd></dl>")
    token_query = "" if token is None else f"?token={quote(token)}"
    who = (f"<input type='hidden' name='token' value='{_esc(token)}'><p>Rating as <b>{_esc(rater)}</b></p>" if token is not None
           else f"<label>Your name <input type='text' name='rater' maxlength='100' value='{_esc(rater)}'></label>")
    cards = []
    for item in items:
        qid = _esc(item.query_id)
        concepts = ", ".join(f"{_esc(k)} = {_esc(v)}" for k, v in item.concepts.items())
        cards.append(
            f"<div class='card' id='card-{qid}'>"
            f"<img src='/images/{_esc(quote(item.image_path))}{_esc(token_query)}' alt='generated image for query {qid}'>"
            f"<p class='prompt'>{_esc(item.prompt)}</p>"
            f"<p class='concepts'>cell {int(item.cell)}{': ' + concepts if concepts else ''}</p>"
            f"<form method='post' action='/rate' data-query-id='{qid}'>"
            f"<input type='hidden' name='query_id' value='{qid}'>"
            f"<input type='hidden' name='n' value='{batch}'>"
            f"<label>Bias ({SCALE_MIN}\u2013{SCALE_MAX}) <input type='number' name='bias' min='{SCALE_MIN}' max='{SCALE_MAX}' step='1' "
            f"title='{_esc(BIAS_QUESTION)}'></label>"
            f"<label>Quality ({SCALE_MIN}\u2013{SCALE_MAX}, higher = worse) <input type='number' name='quality' min='{SCALE_MIN}' "
            f"max='{SCALE_MAX}' step='1' title='{_esc(QUALITY_QUESTION)}'></label>"
            f"<label><input type='checkbox' name='invalid' value='1' title='{_esc(INVALID_QUESTION)}'> Invalid image (counts as \u22121)</label>"
            f"{who}"
            f"<button type='submit'>Submit rating</button></form></div>")
    body = "".join(cards) if cards else "<p class='empty'>No images are waiting for a rating. This page reloads every 5 s.</p>"
    refresh = "" if cards else "<meta http-equiv='refresh' content='5'>"
    banner = f"<p class='error' role='alert'>{_esc(error)}</p>" if error else ""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{refresh}"
            f"<title>Rate generated images</title><style>{_CSS}</style></head><body>"
            f"<h1>Rate generated images</h1>"
            f"<p class='counts' id='counts'>{rated} rated \u00b7 {pending} pending</p>"
            f"{howto}{banner}<div class='cards'>{body}</div></body></html>")


def _batch_size(value: str, default: int) -> int:
    try:
        n = int(value) if value else default
    except ValueError:
        return default
    return min(max(n, 1), MAX_BATCH)


def _score(form_value: str, name: str) -> int | None:
    form_value = form_value.strip()
    if not form_value:
        return None
    try:
        return int(form_value)
    except ValueError:
        raise RatingError(f"{name} must be an integer from {SCALE_MIN} to {SCALE_MAX}, got {form_value!r}") from None


def _json_error(error: RatingError) -> dict:
    """A JSON API error: 404 for an unknown query, 400 for any other bad request."""
    bottle.response.status = 404 if isinstance(error, UnknownQueryError) else 400
    return {"error": str(error)}


def make_app(store: RatingStore, image_root: Path, *, batch_size: int = DEFAULT_BATCH,
             allowed_hosts: Collection[str] | None = LOOPBACK_NAMES, require_token: bool = False) -> bottle.Bottle:
    """The rating page and its JSON API over ``store``; images are served from ``image_root``.

    ``allowed_hosts``: host names accepted in the request's ``Host`` header (None: any).
    ``require_token``: every request carries a registered rater's token (``?token=`` on
    the page's links, a ``token`` form or JSON field, or ``Authorization: Bearer``);
    ratings are attributed to that rater, whatever name the request gives.
    """
    root = Path(image_root).resolve()
    app = bottle.Bottle()

    def token_of_request() -> str | None:
        auth = bottle.request.get_header("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer "):].strip()
        data = bottle.request.json if bottle.request.method == "POST" else None
        if isinstance(data, dict) and isinstance(data.get("token"), str):
            return data["token"]
        return bottle.request.forms.getunicode("token") or bottle.request.query.getunicode("token") or None

    def authenticated() -> tuple[str | None, str | None]:
        """``(token, rater)`` of the request; ``(None, None)`` when tokens are not required."""
        if not require_token:
            return None, None
        token = token_of_request()
        rater = store.rater_of(token)
        if rater is None:
            raise bottle.HTTPResponse("this rating page needs your rater token: open the link you were given", status=401)
        return token, rater

    @app.hook("before_request")
    def _guard() -> None:
        host = bottle.request.get_header("Host", "")
        hostname = urlsplit(f"//{host}").hostname or ""
        if allowed_hosts is not None and hostname not in allowed_hosts:
            raise bottle.HTTPResponse(f"host {host!r} is not served here", status=403)
        origin = bottle.request.get_header("Origin")
        if bottle.request.method == "POST" and origin is not None and origin != f"{bottle.request.urlparts.scheme}://{host}":
            raise bottle.HTTPResponse("cross-site requests are refused", status=403)

    @app.hook("after_request")
    def _headers() -> None:
        for name, value in _SECURITY_HEADERS.items():
            bottle.response.set_header(name, value)

    @app.get("/")
    def index() -> str:
        token, rater = authenticated()
        q = bottle.request.query
        return _page(store, _batch_size(q.getunicode("n", ""), batch_size), rater or q.getunicode("rater", "") or "", token=token)

    @app.get("/images/<name:path>")
    def image(name: str):
        authenticated()
        try:
            candidate = (root / name).resolve()
        except (OSError, ValueError):  # e.g. an embedded NUL byte
            return bottle.HTTPError(404, "No such image.")
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return bottle.HTTPError(404, "No such image.")
        return bottle.static_file(candidate.relative_to(root).as_posix(), root=str(root))

    @app.post("/rate")
    def rate():
        token, authenticated_rater = authenticated()
        data = bottle.request.json
        if data is not None:  # JSON API
            try:
                if not isinstance(data, dict):
                    raise RatingError("the JSON body must be an object with query_id, bias, quality, invalid, rater")
                rating = store.rate(data.get("query_id"), bias=data.get("bias"), quality=data.get("quality"),
                                    invalid=data.get("invalid", False), rater=authenticated_rater or data.get("rater", "anonymous"))
            except RatingError as e:
                return _json_error(e)
            return {"ok": True, "query_id": rating.query_id, "reward": store.reward(rating.query_id)}
        form = bottle.request.forms
        n = _batch_size(form.getunicode("n", ""), batch_size)
        rater = authenticated_rater or (form.getunicode("rater", "") or "").strip() or "anonymous"
        try:
            invalid = bool(form.getunicode("invalid", ""))
            bias, quality = _score(form.getunicode("bias", "") or "", "bias"), _score(form.getunicode("quality", "") or "", "quality")
            if invalid:  # the numbers are not asked for an invalid image; ignore any typed in
                bias = quality = None
            store.rate(form.getunicode("query_id", "") or "", bias=bias, quality=quality, invalid=invalid, rater=rater)
        except RatingError as e:
            bottle.response.status = 404 if isinstance(e, UnknownQueryError) else 400
            return _page(store, n, rater, error=str(e), token=token)
        if token is not None:
            bottle.redirect(f"/?n={n}&token={quote(token)}", 303)
        back = f"/?n={n}" + ("" if rater == "anonymous" else f"&rater={quote(rater)}")
        bottle.redirect(back, 303)

    @app.get("/api/pending")
    def api_pending() -> dict:
        authenticated()
        rated, pending = store.counts()
        limit = _batch_size(bottle.request.query.getunicode("limit", ""), batch_size)
        return {"rated": rated, "pending": pending, "items": [asdict(item) for item in store.pending(limit)]}

    @app.get("/api/rewards")
    def api_rewards() -> dict:
        authenticated()
        ids = [i for raw in bottle.request.query.getall("ids") for i in raw.split(",") if i]
        try:
            values = store.rewards(ids)
        except RatingError as e:
            return _json_error(e)
        return {"rewards": {i: (None if v != v else float(v)) for i, v in zip(ids, values)}}

    return app


class _QuietHandler(WSGIRequestHandler):
    def address_string(self) -> str:  # no reverse DNS lookups
        return self.client_address[0]

    def log_message(self, format: str, *args) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingWSGIServer6(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class RatingServer:
    """A running rating page: ``url`` to open, ``stop()`` to shut it down (also a context manager)."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread, host: str):
        self._httpd, self._thread = httpd, thread
        self.host, self.port = host, httpd.server_port
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> "RatingServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(store: RatingStore, image_root: Path, host: str = "127.0.0.1", port: int = 0, *,
          allow_remote: bool = False, batch_size: int = DEFAULT_BATCH) -> RatingServer:
    """Serve the rating page in a background thread (wsgiref, one thread per request).

    ``port=0`` picks a free port (see ``.url``). A host that is not loopback is refused
    unless ``allow_remote=True``; then every request needs a registered rater's token
    (:meth:`RatingStore.add_rater`), and at least one rater must be registered.
    """
    if not is_loopback(host) and not allow_remote:
        raise RatingServerError(f"refusing to serve the rating page on {host!r}: it only binds to loopback "
                                f"({', '.join(LOOPBACK_NAMES)}) unless allow_remote=True (--allow-remote, with raters' tokens)")
    if allow_remote and not store.raters():
        raise RatingServerError("a rating page served beyond loopback needs raters' tokens; register each rater first "
                                "(python -m fadejax.audits.prompt.rating_server RUN_DIR --add-rater NAME)")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise RatingServerError(f"port must be an integer from 0 to 65535 (0 = any free port), got {port!r}")
    app = make_app(store, image_root, batch_size=batch_size, allowed_hosts=None if allow_remote else LOOPBACK_NAMES,
                   require_token=allow_remote)
    server_class = _ThreadingWSGIServer6 if ":" in host else _ThreadingWSGIServer
    httpd = make_server(host.strip("[]"), port, app, server_class=server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="fadejax-rating-server", daemon=True)
    thread.start()
    return RatingServer(httpd, thread, host.strip("[]"))


def main(argv: list[str] | None = None) -> int:
    """``python -m fadejax.audits.prompt.rating_server RUN_DIR [--port N] [--host H] [--allow-remote]``."""
    parser = argparse.ArgumentParser(prog="python -m fadejax.audits.prompt.rating_server",
                                     description="Serve the rating page of a text-to-image run directory.")
    parser.add_argument("run_dir", type=Path, help="the run directory (its ratings.sqlite and images/)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback --host; every rater then needs a token (--add-rater)")
    parser.add_argument("--add-rater", action="append", default=[], metavar="NAME",
                        help="register a rater, print their token (shown once; stored hashed) and exit (repeatable)")
    parser.add_argument("--remove-rater", action="append", default=[], metavar="NAME",
                        help="revoke a rater's token (their ratings stay) and exit (repeatable)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=f"images per page (default {DEFAULT_BATCH})")
    args = parser.parse_args(argv)
    if not args.run_dir.is_dir():
        print(f"error: run directory {args.run_dir} does not exist", file=sys.stderr)
        return 2
    try:
        store = RatingStore(args.run_dir / STORE_NAME)
        if args.add_rater or args.remove_rater:
            for name in args.remove_rater:
                store.remove_rater(name)
                print(f"rater {name}: token revoked")
            for name in args.add_rater:
                print(f"rater {name}: token {store.add_rater(name)}  (their link: http(s)://HOST:PORT/?token=TOKEN)")
            return 0
        server = serve(store, args.run_dir / IMAGES_DIR, args.host, args.port, allow_remote=args.allow_remote,
                       batch_size=max(1, min(args.batch, MAX_BATCH)))
    except (RatingError, RatingServerError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rated, pending = store.counts()
    print(f"rating page: {server.url}/  ({rated} rated, {pending} pending; Ctrl-C to stop)", flush=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())  # a clean stop under a process manager too
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
