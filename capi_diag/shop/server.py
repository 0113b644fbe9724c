"""The demo shop's web server (stdlib ``http.server`` on 127.0.0.1) and its server-side sends.

Pages: ``/`` (PageView), ``/product/sku-481`` (ViewContent; ``button#add-to-cart`` posts to
``/api/add-to-cart``, which sends AddToCart and returns its ``event_id`` for the Pixel), ``/cart``,
``/checkout`` (InitiateCheckout; ``input#email`` and ``button#place-order`` post ``/order``), and
``/thank-you?order=ORD-n`` (Purchase, ``event_id`` = the order number, sent by ``sendBeacon``). The
server sets the ``_fbp`` cookie when the browser has none, so both sides carry the same ``fbp`` from
the first page on. Each server event goes through :class:`~capi_diag.meta.client.GraphClient` (token in
the Authorization header only) and is appended to the send log (:mod:`capi_diag.testevents.send_log`).

Fault switches (:data:`FAULTS`): each breaks one thing a rehearsal must catch.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
import secrets
import threading
import time
from collections.abc import Sequence
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from capi_diag.core.errors import ConfigError
from capi_diag.meta.client import GraphClient, GraphConfig
from capi_diag.meta.token import Secret
from capi_diag.shop.pixel_js import PIXEL_JS
from capi_diag.testevents import send_log

FAULTS: dict[str, str] = {
    "purchase_event_id_differs": "the server sends Purchase with another event_id than the Pixel's",
    "purchase_not_sent": "the server never sends Purchase",
    "fbp_not_forwarded": "the server sends no fbp",
    "value_differs": "the server's Purchase value differs from the Pixel's",
    "token_refused": "the server uses a token Meta refuses",
}
PRODUCT = {"sku": "sku-481", "name": "Canvas tote bag", "price": "29.90", "currency": "EUR"}
_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


def sha256(text: str) -> str:
    return hashlib.sha256(text.strip().lower().encode("utf-8")).hexdigest()


def journey_toml(base_url: str) -> str:
    """The demo shop's journey file for ``capi-diag rehearse``."""
    return f"""# the demo shop's journey (docs/rehearsal.md)
base_url = "{base_url.rstrip('/')}"

[[step]]
url = "/"
expect = "PageView"

[[step]]
url = "/product/{PRODUCT['sku']}"
expect = "ViewContent"

[[step]]
click = "button#add-to-cart"
wait_for = "#added"
expect = "AddToCart"

[[step]]
url = "/checkout"
expect = "InitiateCheckout"

[[step]]
fill = {{ "input#email" = "jane.doe@example.com" }}
click = "button#place-order"
wait_for = "#thanks"
expect = "Purchase"
"""


class DemoShop:
    """The shop. ``start()`` (a free port) / ``stop()``, or ``serve_forever(port=...)``."""

    def __init__(self, *, graph_url: str, token: str, pixel_id: str, test_event_code: str | None,
                 send_log: str, faults: Sequence[str] = (), api_version: str | None = None) -> None:
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ConfigError(f"demo shop: unknown fault {unknown[0]!r}; choose from {', '.join(FAULTS)}.")
        self.faults = frozenset(faults)
        self.pixel_id = str(pixel_id)
        self.test_event_code = test_event_code
        self.send_log = send_log
        self._secret = Secret(token, "demo shop")
        config = GraphConfig(graph_url=graph_url, max_retries=0,
                             **({"api_version": api_version} if api_version else {}))
        used = "refused-" + secrets.token_hex(8) if "token_refused" in self.faults else token
        self._client = GraphClient(used, config=config)
        self._lock = threading.Lock()
        self._orders = 1000
        self.sent: list[dict[str, Any]] = []
        self.pixel_hits = 0
        """How many ``/tr`` requests reached the shop (none with ``rehearse --block-pixel``)."""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def _bind(self, port: int) -> str:
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        except OSError as e:
            raise ConfigError(f"demo shop cannot listen on 127.0.0.1:{port} ({e.strerror}); choose another "
                              "--port.") from None
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self.url

    def start(self, port: int = 0) -> str:
        url = self._bind(port)
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="demo-shop",
                                        daemon=True)
        self._thread.start()
        return url

    def serve_forever(self, port: int = 8791) -> None:
        self._bind(port)
        assert self._server is not None
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self._client.close()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._client.close()

    def __enter__(self) -> DemoShop:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def journey(self) -> str:
        assert self.url is not None, "start the shop first"
        return journey_toml(self.url)

    # -- the server side ----------------------------------------------------------------------------
    def new_order(self) -> str:
        with self._lock:
            self._orders += 1
            return f"ORD-{self._orders}"

    def server_event(self, name: str, event_id: str, *, url: str, ip: str, user_agent: str, fbp: str | None,
                     email: str | None = None, custom: dict[str, Any] | None = None) -> None:
        """Send one event as the shop's server does (faults applied) and append the send log."""
        if name == "Purchase" and "purchase_not_sent" in self.faults:
            return
        user: dict[str, Any] = {"client_ip_address": ip, "client_user_agent": user_agent,
                                "external_id": [sha256(fbp or ip)]}
        if fbp and "fbp_not_forwarded" not in self.faults:
            user["fbp"] = fbp
        if email:
            user["em"] = [sha256(email)]
        event: dict[str, Any] = {"event_name": name, "event_time": int(time.time()), "event_id": event_id,
                                 "action_source": "website", "event_source_url": url, "user_data": user}
        if custom:
            event["custom_data"] = dict(custom)
        if name == "Purchase":
            if "purchase_event_id_differs" in self.faults:
                event["event_id"] = "srv-" + event_id
            if "value_differs" in self.faults:
                event["custom_data"]["value"] = float(PRODUCT["price"]) + 5
        with self._lock:
            sent_at = time.time()
            result = self._client.send(self.pixel_id, [event], test_event_code=self.test_event_code)
            rec = send_log.record(sent_at=sent_at, pixel_id=self.pixel_id, events=[event],
                                  test_event_code=self.test_event_code, result=result)
            send_log.append(self.send_log, rec, self._secret)
            self.sent.append(rec)


def _page(title: str, body: str, *, pixel: str, script: str = "") -> bytes:
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)} · demo shop</title>
<script src="/pixel.js"></script>
<script>window.fbqBeacon = ['Purchase'];
{pixel}</script></head>
<body><nav><a href="/">Home</a> · <a href="/product/{PRODUCT['sku']}">Tote bag</a> · <a href="/cart">Cart</a></nav>
<h1>{html.escape(title)}</h1>{body}<script>{script}</script></body></html>""".encode()


def _handler(shop: DemoShop) -> type[BaseHTTPRequestHandler]:
    price, cur, sku = PRODUCT["price"], PRODUCT["currency"], PRODUCT["sku"]

    class Handler(BaseHTTPRequestHandler):
        server_version = "capi-diag-demo-shop"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        # -- helpers
        def _fbp(self) -> tuple[str, bool]:
            jar = SimpleCookie(self.headers.get("Cookie", ""))
            if "_fbp" in jar and jar["_fbp"].value:
                return jar["_fbp"].value, False
            return f"fb.1.{int(time.time() * 1000)}.{random.randint(10**9, 10**10 - 1)}", True

        def _url(self) -> str:
            return f"{shop.url}{self.path}"

        def _send(self, status: int, ctype: str, data: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _html(self, data: bytes, fbp: str, new: bool) -> None:
            extra = {"Set-Cookie": f"_fbp={fbp}; Path=/; Max-Age=7776000; SameSite=Lax"} if new else {}
            self._send(200, "text/html; charset=utf-8", data, extra)

        def _track(self, name: str, eid: str, custom: dict[str, Any] | None = None) -> str:
            cd = json.dumps(custom or {})
            return f"fbq('track', {json.dumps(name)}, {cd}, {{eventID: {json.dumps(eid)}}});"

        def _server(self, name: str, eid: str, fbp: str, **kw: Any) -> None:
            shop.server_event(name, eid, url=self._url(), ip=self.client_address[0],
                              user_agent=self.headers.get("User-Agent", ""), fbp=fbp, **kw)

        # -- routes
        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            parts = urlsplit(self.path)
            path = parts.path
            if path in ("/tr", "/tr/") or path.startswith("/privacy_sandbox/"):
                shop.pixel_hits += path.startswith("/tr")
                self._send(200, "image/gif", _GIF)
                return
            if path == "/pixel.js":
                self._send(200, "application/javascript", PIXEL_JS.encode())
                return
            fbp, new = self._fbp()
            init = f"fbq('init', {json.dumps(shop.pixel_id)});"
            if path == "/":
                eid = secrets.token_hex(8)
                self._server("PageView", eid, fbp)
                body = f'<p>Welcome. <a id="to-product" href="/product/{sku}">See the tote bag</a></p>'
                self._html(_page("Home", body, pixel=init + self._track("PageView", eid)), fbp, new)
            elif path == f"/product/{sku}":
                eid = secrets.token_hex(8)
                custom = {"content_ids": [sku], "content_type": "product", "value": price, "currency": cur}
                self._server("ViewContent", eid, fbp, custom={**custom, "value": float(price)})
                body = (f"<p>{PRODUCT['name']}: {price} {cur}</p><button id=\"add-to-cart\">Add to cart</button>"
                        "<p id=\"status\"></p>")
                script = ("document.getElementById('add-to-cart').onclick = function () {"
                          "fetch('/api/add-to-cart', {method: 'POST'}).then(function (r) { return r.json(); })"
                          ".then(function (d) { fbq('track', 'AddToCart', d.custom_data, {eventID: d.event_id});"
                          "document.getElementById('status').innerHTML = "
                          "'<span id=\"added\">Added.</span> <a href=\"/cart\">Go to the cart</a>'; }); };")
                self._html(_page(PRODUCT["name"], body, pixel=init + self._track("ViewContent", eid, custom),
                                 script=script), fbp, new)
            elif path == "/cart":
                body = f'<p>1 × {PRODUCT["name"]}: {price} {cur}</p><a id="to-checkout" href="/checkout">Checkout</a>'
                self._html(_page("Cart", body, pixel=init), fbp, new)
            elif path == "/checkout":
                eid = secrets.token_hex(8)
                custom = {"value": price, "currency": cur, "num_items": 1}
                self._server("InitiateCheckout", eid, fbp, custom={**custom, "value": float(price)})
                body = ('<form method="post" action="/order"><label>Email <input id="email" name="email" '
                        'type="email"></label> <button id="place-order" type="submit">Place order</button></form>')
                self._html(_page("Checkout", body, pixel=init + self._track("InitiateCheckout", eid, custom)),
                           fbp, new)
            elif path == "/thank-you":
                order = (parse_qs(parts.query).get("order") or [""])[0]
                email = (parse_qs(parts.query).get("em") or [""])[0]
                if not order.startswith("ORD-") or not order[4:].isdigit():
                    self._send(404, "text/plain", b"no such order")
                    return
                custom = {"value": price, "currency": cur, "content_ids": [sku], "order_id": order}
                adv = json.dumps({"em": email}) if email else "{}"
                pixel = f"fbq('init', {json.dumps(shop.pixel_id)}, {adv});" + self._track("Purchase", order, custom)
                body = f'<p id="thanks">Thank you! Your order {html.escape(order)} is placed.</p>'
                self._html(_page("Thank you", body, pixel=pixel), fbp, new)
            else:
                self._send(404, "text/plain", b"not found")

        do_HEAD = do_GET  # noqa: N815

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            if path in ("/tr", "/tr/"):
                shop.pixel_hits += 1
                self._send(200, "image/gif", _GIF)
                return
            fbp, _ = self._fbp()
            if path == "/api/add-to-cart":
                eid = secrets.token_hex(8)
                custom = {"content_ids": [sku], "content_type": "product", "value": price, "currency": cur}
                self._server("AddToCart", eid, fbp, custom={**custom, "value": float(price)})
                self._send(200, "application/json", json.dumps({"event_id": eid, "custom_data": custom}).encode())
            elif path == "/order":
                email = (parse_qs(raw.decode("utf-8", "replace")).get("email") or [""])[0]
                order = shop.new_order()
                custom = {"value": float(price), "currency": cur, "content_ids": [sku], "order_id": order}
                self._server("Purchase", order, fbp, email=email or None, custom=custom)
                em = f"&em={sha256(email)}" if email else ""
                self._send(303, "text/plain", b"", {"Location": f"/thank-you?order={order}{em}"})
            else:
                self._send(404, "text/plain", b"not found")

    return Handler
