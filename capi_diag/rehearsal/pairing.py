"""Pairs a run's Pixel hits with the shop's server events and says what is wrong, in three kinds.

* Pairs by (``event_name``, ``event_id``); the hits and server events left over are matched within the
  run by ``event_name``, nearest in time: such a pair is a ``dedup`` warning "event_id differs".
* A pair is judged as soon as both sides are seen. A missing side is a warning only once the run is
  ``final`` (its grace period ended, or the rehearsal timed out); an expected event with no hit at all
  is judged once the journey ran.
* Kinds: ``dedup`` (an expected hit absent; its server event absent after the grace period;
  ``event_id``, ``fbp``, ``value`` or ``currency`` differs; ``event_time`` further than the skew from the
  hit's ``ts``; Meta refused the server event for another reason than its token), ``missing_field``
  (a required value absent on either side, or the request's ``test_event_code`` missing or another),
  ``token`` (Meta refused the request for its token or a permission). Other findings (a loopback or
  private client IP) are notes: they never reset the window.

Only events a journey step expects are judged; the others are listed. Everything here is pure: the
runner calls :func:`pair_run` again whenever something new is seen.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from capi_diag.io.pixel_hits import Hit
from capi_diag.meta.errors import lookup
from capi_diag.rehearsal.tail import ServerEvent

KINDS = ("dedup", "missing_field", "token")
PURCHASE = "Purchase"
SERVER_REQUIRED = ("event_name", "event_time", "event_id", "action_source")
WEBSITE_REQUIRED = ("event_source_url", "client_user_agent", "client_ip_address", "fbp")
_USER_DATA_FIELDS = ("client_user_agent", "client_ip_address", "fbp")


@dataclass(frozen=True)
class RunWarning:
    kind: str
    event_name: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "event_name": self.event_name, "detail": self.detail}


@dataclass
class Pair:
    event_name: str
    event_id: str | None
    hit: Hit | None = None
    server: ServerEvent | None = None
    expected: bool = True
    judged: bool = False
    warnings: list[RunWarning] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [f"{w.kind}: {w.detail}" for w in self.warnings] + [f"note: {n}" for n in self.notes]

    def to_dict(self) -> dict[str, Any]:
        return {"event_name": self.event_name, "event_id": self.event_id, "browser": self.hit is not None,
                "server": self.server is not None, "problems": self.problems, "expected": self.expected,
                "judged": self.judged}


def _decimal(v: Any) -> Decimal | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return Decimal(str(v).strip())
    except InvalidOperation:
        return None


def _is_token_error(err: dict[str, Any]) -> bool:
    code = err.get("code")
    code = code if isinstance(code, int) else None
    entry = lookup(code, err.get("error_subcode") if isinstance(err.get("error_subcode"), int) else None)
    return code in (102, 104, 190) or entry.kind == "permission" or (code is not None and 200 <= code <= 299)


def server_checks(s: ServerEvent, name: str, test_event_code: str | None) -> tuple[list[RunWarning], list[str]]:
    """The server side's warnings and notes (missing fields, test code, Meta's refusal)."""
    ev = s.event
    warns: list[RunWarning] = []
    notes: list[str] = []
    ud = ev.get("user_data") if isinstance(ev.get("user_data"), dict) else {}
    cd = ev.get("custom_data") if isinstance(ev.get("custom_data"), dict) else {}
    missing = [k for k in SERVER_REQUIRED if ev.get(k) in (None, "", [])]
    if ev.get("action_source") == "website":
        missing += [k for k in WEBSITE_REQUIRED
                    if (ud.get(k) if k in _USER_DATA_FIELDS else ev.get(k)) in (None, "", [])]
    if name == PURCHASE:
        missing += [f"custom_data.{k}" for k in ("value", "currency") if cd.get(k) in (None, "")]
    for k in missing:
        warns.append(RunWarning("missing_field", name, f"the server event has no {k}"))
    if s.test_event_code is None:
        warns.append(RunWarning("missing_field", name, "the server request has no test_event_code"))
    elif test_event_code is not None and s.test_event_code != test_event_code:
        warns.append(RunWarning("missing_field", name, f"the server request's test_event_code is "
                                                    f"{s.test_event_code!r}, not {test_event_code!r}"))
    err = s.error
    if err is not None:
        msg = str(err.get("message") or "refused")
        code = err.get("code")
        what = f"Meta refused the server request ({f'code {code}: ' if code is not None else ''}{msg})"
        warns.append(RunWarning("token" if _is_token_error(err) else "dedup", name, what))
    ip = ud.get("client_ip_address")
    if isinstance(ip, str) and ip:
        try:
            addr = ipaddress.ip_address(ip)
            if addr.is_loopback or addr.is_private:
                notes.append(f"client_ip_address {ip} is a {'loopback' if addr.is_loopback else 'private'} "
                             "address: Meta cannot match on it")
        except ValueError:
            notes.append(f"client_ip_address {ip!r} is not an IP address")
    return warns, notes


def hit_checks(h: Hit, name: str) -> list[RunWarning]:
    missing = [k for k, v in (("eid", h.event_id), ("fbp", h.fbp)) if not v]
    if name == PURCHASE:
        missing += [f"cd[{k}]" for k in ("value", "currency") if not h.custom_data.get(k)]
    return [RunWarning("missing_field", name, f"the Pixel hit has no {k}") for k in missing]


def compare(h: Hit, s: ServerEvent, name: str, skew_s: float) -> list[RunWarning]:
    """The dedup warnings of a pair with both sides."""
    out: list[RunWarning] = []
    ev = s.event
    ud = ev.get("user_data") if isinstance(ev.get("user_data"), dict) else {}
    cd = ev.get("custom_data") if isinstance(ev.get("custom_data"), dict) else {}
    if h.event_id != s.event_id:
        out.append(RunWarning("dedup", name, f"event_id differs: the Pixel sent {h.event_id!r}, the server "
                                          f"{s.event_id!r}; Meta counts the event twice"))
    if h.fbp and ud.get("fbp") and h.fbp != ud.get("fbp"):
        out.append(RunWarning("dedup", name, f"fbp differs: the Pixel sent {h.fbp!r}, the server {ud.get('fbp')!r}"))
    hv, sv = _decimal(h.custom_data.get("value")), _decimal(cd.get("value"))
    if hv is not None and sv is not None and hv != sv:
        out.append(RunWarning("dedup", name, f"value differs: the Pixel sent {h.custom_data.get('value')}, "
                                          f"the server {cd.get('value')}"))
    hc, sc = h.custom_data.get("currency"), cd.get("currency")
    if hc and sc and str(hc).upper() != str(sc).upper():
        out.append(RunWarning("dedup", name, f"currency differs: the Pixel sent {hc}, the server {sc}"))
    et = _seconds(ev.get("event_time"))
    if h.ts_ms is not None and et is not None:
        skew = abs(et - h.ts_ms / 1000)
        if skew > skew_s:
            out.append(RunWarning("dedup", name, f"event_time is {skew:.0f}s from the Pixel's ts "
                                              f"(more than {skew_s:g}s)"))
    return out


def _seconds(v: Any) -> float | None:
    """``event_time`` as seconds: a number, or a text of digits (Meta accepts both)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.strip().isdigit():
        return float(v.strip())
    return None


def _server_time(s: ServerEvent) -> float:
    et = _seconds(s.event.get("event_time"))
    return et if et is not None else s.at


def _hit_time(h: Hit) -> float:
    return h.ts_ms / 1000 if h.ts_ms is not None else h.at


def pair_run(hits: Sequence[Hit], server: Sequence[ServerEvent], *, expected: Sequence[str],
             test_event_code: str | None, skew_s: float, journey_done: bool, final: bool) -> list[Pair]:
    """Pair one run's hits with its server events and judge what can be judged now."""
    want = Counter(expected)
    left_s = list(server)
    pairs: list[Pair] = []
    unmatched: list[Hit] = []
    for h in hits:
        match = next((s for s in left_s if s.event_name == h.event_name and s.event_id == h.event_id
                      and h.event_id is not None), None)
        if match is None:
            unmatched.append(h)
            continue
        left_s.remove(match)
        pairs.append(Pair(h.event_name, h.event_id, h, match))
    still: list[Hit] = []
    for h in unmatched:
        same = [s for s in left_s if s.event_name == h.event_name]
        if not same:
            still.append(h)
            continue
        s = min(same, key=lambda s: abs(_server_time(s) - _hit_time(h)))
        left_s.remove(s)
        pairs.append(Pair(h.event_name, h.event_id, h, s))
    pairs += [Pair(h.event_name, h.event_id, h, None) for h in still]
    pairs += [Pair(s.event_name or "(no event_name)", s.event_id, None, s) for s in left_s]
    seen = Counter(p.event_name for p in pairs if p.hit is not None)
    for p in pairs:
        p.expected = p.event_name in want
        if not p.expected:
            continue
        if p.hit is not None and p.server is not None:
            p.judged = True
            p.warnings += compare(p.hit, p.server, p.event_name, skew_s)
        elif final:
            p.judged = True
            if p.server is None:
                p.warnings.append(RunWarning("dedup", p.event_name,
                                          f"no server event for the Pixel's event_id {p.event_id!r} "
                                          "within the grace period"))
        if p.judged or final:
            if p.hit is not None:
                p.warnings += hit_checks(p.hit, p.event_name)
            if p.server is not None:
                w, n = server_checks(p.server, p.event_name, test_event_code)
                p.warnings += w
                p.notes += n
    if journey_done:
        for name, n in want.items():
            for _ in range(n - seen.get(name, 0)):
                absent = Pair(name, None, None, None, expected=True, judged=True)
                absent.warnings.append(RunWarning("dedup", name, f"no Pixel {name} hit was seen; the journey "
                                                              "expects one"))
                pairs.append(absent)
    return pairs


def run_judged(pairs: Sequence[Pair], *, journey_done: bool) -> bool:
    """Whether every expected event of the run is judged (the run can enter the window)."""
    return journey_done and all(p.judged for p in pairs if p.expected and p.hit is not None)


def warnings_of(pairs: Sequence[Pair]) -> list[RunWarning]:
    return [w for p in pairs for w in p.warnings]
