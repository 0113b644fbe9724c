"""What each analysis measures, why it matters and the usual fix, in the analyst's words.

The analysis modules' docstrings are written for developers (report keys, rule names, engine
details); the dashboard shows these texts instead, in plain words, quoting the thresholds in force
(``config``) rather than the defaults. No streamlit here.
"""

from __future__ import annotations

from collections.abc import Callable

from capi_diag.core import fmt
from capi_diag.core.config import Config


def _dedup(config: Config | None) -> str:
    from capi_diag.diagnostics import dedup

    o = dedup.options(config)
    window, probable = fmt.duration(o["window_s"]), fmt.duration(o["probable_window_s"])
    return f"""
**What it measures.** Every *dedup key* (an event name with its event ID, per Pixel) found in the
browser (Pixel) log and in the server (CAPI) log, and whether Meta would merge the two copies:
*paired* when both logs have it at most {window} apart, *too far apart* when both have it but never
within {window}, *browser only* or *server only* otherwise. Every unpaired key gets one reason: the
event name differs only in case, the event ID was probably generated twice (same event name and
browser ID within {probable}), or no twin at all. Rows without an event ID, events sent twice by one
side and event IDs reused for different actions are counted too.

**Why it matters.** Meta keeps one copy only when the Pixel's eventID equals the server's event_id
*and* the event names match exactly, within {window}. Every unpaired twin is counted twice, which
inflates conversions and misleads optimisation; a reused ID makes Meta drop real events.

**Usual cause and fix.** The server makes its own event ID instead of receiving the Pixel's: pass the
browser's eventID to the server (dataLayer, hidden field, request header). Names typed differently
on each side (`purchase` vs `Purchase`): use Meta's exact standard name. One side never sends an
event: add it, or check consent and ad blocking. A tag firing twice: fire once per action.
"""


def _timing(config: Config | None) -> str:
    from capi_diag.diagnostics import timing

    o = timing.options(config)
    return f"""
**What it measures.** For every paired event, the *skew*: the server's event_time minus the
browser's, flagged beyond {fmt.duration(o["skew_threshold_s"])}, with skews of whole hours (a time-zone
bug) counted apart. For server rows: event_time sent in milliseconds or microseconds, events sent
more than {fmt.duration(o["stale_s"])} after they happened, event_time more than
{fmt.duration(o["future_s"])} after the send time (sent_at), and the delivery delay (sent_at minus
event_time).

**Why it matters.** event_time must be Unix *seconds*. One event older than 7 days makes Meta reject
the whole request; milliseconds read as seconds land thousands of years in the future; clocks or
time zones off by hours move events out of the attribution and dedup windows. Meta asks for events
within an hour.

**Usual cause and fix.** `Date.now()` (milliseconds) sent as event_time: divide by 1000. Local time
sent as UTC: send UTC epoch seconds. The server stamping the send time instead of the action's time:
pass the browser's time along. Batch jobs replaying old events: send in real time.
"""


def _match_keys(config: Config | None) -> str:
    return """
**What it measures.** For each customer-information field of the server rows (email, phone, names,
address, external ID, browser ID `fbp`, click ID `fbc`, IP address, user agent): how many rows carry
it, how many carry it *valid*, and each defect that makes a value useless: sent unhashed, hashed in
upper case, the hash of an empty value or a placeholder, not normalized before hashing, a browser key
hashed, a private IP, a user agent from an HTTP library, an ad click (fbclid in the URL) without
`fbc`. Also: how often browser and server disagree on the same event.

**Why it matters.** Meta matches a server event to a person only through these fields. Unhashed
personal data is rejected, a hashed browser key or a malformed `fbc` is useless, an empty hash matches
nobody, and a server IP or library user agent makes every event look like the same person.

**Usual cause and fix.** Raw form values forwarded: normalize with Meta's rules, then SHA-256. Hashing
empty variables: leave the field out instead. Hashing every field: send `fbp`, `fbc`, IP and user agent
raw. Reading the server request's IP and user agent: forward the visitor's (X-Forwarded-For, the
browser's User-Agent).
"""


def _emq(config: Config | None) -> str:
    from capi_diag.diagnostics import emq

    target = emq.options(config)["target"]
    return f"""
**What it measures.** An *estimate* of Meta's Event Match Quality (0 to 10) for the website server
events, overall and per event name, and the fields ranked by how much the estimate would gain if every
event carried them valid. Meta publishes no formula: the weights are capi-diag's, documented with
the project, so anyone can read and challenge them.

**Why it matters.** Events Meta cannot match to a person cannot be attributed to ads or used for
optimisation. Meta recommends a score of {fmt.number(target)} or more.

**Usual cause and fix.** The server sends only IP, user agent and browser ID: add the customer's
email and phone where the site knows them (login, checkout, lead forms), valid and hashed. Work down
the ranked fixes: the first gains the most.
"""


def _consent(config: Config | None) -> str:
    return """
**What it measures.** For every server row, the consent purposes its region's policy requires
(by default `ad_storage` and `ad_user_data` everywhere) and whether each was granted: rows
*forwarded without consent* (a required purpose denied) and rows whose *consent is unknown* (a
required purpose missing), per region and per purpose.

**Why it matters.** The server sends events to Meta outside the browser's consent banner. In the EEA
an event forwarded after the visitor refused is a compliance breach, and Meta does not filter it
for you.

**Usual cause and fix.** The server-side container fires unconditionally, reads a stale cookie, or
never receives the consent state. Pass the consent state with each event and drop events whose
required purposes are not granted. The policy per region is set in the config file (`[consent]`).
"""


def _contract(config: Config | None) -> str:
    return """
**What it measures.** Server rows whose fields break what the Conversions API expects: a Purchase
without value or currency, a value that is not a plain number (`129,95`, `€10`), a currency that is
not an ISO 4217 code, browser and server Purchase values that differ, action_source missing or
invalid, a website event without event_source_url, a standard event spelled differently
(`purchase`), a test event code left in, and too little customer information to match.

**Why it matters.** One invalid event makes Meta reject the whole request it is in; a Purchase
without a numeric value or a valid currency reports no revenue; a respelled standard event is a
custom event no standard optimisation sees; test events are not sandboxed and count as real.

**Usual cause and fix.** A tag mapping the wrong variable (a display-formatted price), a missing
action_source constant, the page URL not forwarded, a hand-typed event name, a test code left in the
server container: fix the mapping in the server-side tag or backend and check again.
"""


def _journey(config: Config | None) -> str:
    return """
**What it measures.** For each funnel step (by default PageView, ViewContent, AddToCart,
InitiateCheckout, Purchase; set yours in the config file), how many rows each log has under that
exact name, which steps a log lacks, and names that differ only in spelling (`add_to_cart`).

**Why it matters.** Pairing and Meta's event coverage are per event name: a step only one side sends
cannot pair, and a step absent from both is invisible to optimisation.

**Usual cause and fix.** The server implements only some events, or names them differently from the
Pixel. Send every step from both sides under Meta's exact name with a shared event ID.
"""


def _reconciliation(config: Config | None) -> str:
    from capi_diag.core import labels
    from capi_diag.diagnostics import reconciliation

    o = reconciliation.options(config)
    keys = ", ".join(labels.field(k) for k in o["strong_keys"])
    return f"""
**What it measures.** Every order of the shop's export, followed through the browser log, the server
log and Meta's answers, lands in one bucket, the first that applies: not sent by either log; refused by
Meta (no Pixel copy and every server send refused); counted twice (both copies reached Meta without
deduplicating: same event name and event ID within 48 h); unlikely to match (its only copy is a server
event without a valid {keys}); counted once. Revenue is the sum of the order totals per currency.
Purchase values are compared with the order totals as decimals, to the cent.

**Why it matters.** The shop counts orders, Meta counts the {o["purchase_event"]} events it received
and kept. Each bucket has its own fix, so the gap is explained order by order, not by comparing totals.

**Usual cause and fix.** Ad blockers and refused consent hide buyers from the Pixel: send every order
from the server (the order webhook). Fix what Meta refuses (below). Use the order number as event ID
on both sides so that the two copies deduplicate, and send hashed email, phone and external ID with
every server Purchase.
"""


def _delivery(config: Config | None) -> str:
    return """
**What it measures.** What Meta answered to each server request: the events accepted and refused, the
refusals by Meta's error code with what the code means and its fix, requests Meta counted short
(fewer events received than sent) and the warnings Meta returned inside accepted answers, with the
trace id to quote to Meta support.

**Why it matters.** Meta answers per request: one bad event refuses the whole batch, and an answer
that counts fewer events, or carries warnings, is a silent partial loss.

**Usual cause and fix.** Unhashed customer information, events older than 7 days, malformed click IDs,
an expired token, rate limits: fix what the code names and resend within 7 days.
"""


def _privacy(config: Config | None) -> str:
    return """
**What it measures.** Raw email addresses and phone numbers outside the hashed customer-information
fields: in page URLs (`event_source_url`, the Pixel's `dl`, also `%40` for `@`), in custom data (the
Pixel's `cd[...]` parameters such as `cd[user_data]`, or custom_data keys such as `billing_email`) and
in columns capi-diag does not map, per field and event name. A phone number is recognised after a key
that names one (`phone`, `tel`, `mobile`, `ph`), since order ids are digits too. The examples show
the values masked; capi-diag never stores them raw.

**Why it matters.** Meta's terms forbid personal data outside the hashed customer-information fields.
Pixel custom data and page URLs travel unhashed, so the customer's email arrives in the clear; Meta
flags such data as potentially violating and may restrict the dataset.

**Usual cause and fix.** A shop plugin or data layer that copies the billing data into the Pixel's
custom data, a thank-you page whose URL carries the email, a server that forwards the whole checkout
object as custom data. Send emails and phones only as hashed `em` / `ph`, and keep them out of custom
data and URLs.
"""


_GUIDES: dict[str, Callable[[Config | None], str]] = {
    "dedup": _dedup, "timing": _timing, "match_keys": _match_keys, "emq": _emq, "consent": _consent,
    "contract": _contract, "journey": _journey, "reconciliation": _reconciliation, "delivery": _delivery,
    "privacy": _privacy,
}
SECTIONS: tuple[str, ...] = tuple(_GUIDES)


def about(section: str, config: Config | None = None) -> str | None:
    """What ``section`` measures, why it matters and the usual fix (Markdown), or ``None``."""
    guide = _GUIDES.get(section)
    return None if guide is None else guide(config).strip()
