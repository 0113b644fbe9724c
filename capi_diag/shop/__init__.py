"""The demo shop: a small local web shop (home, product, cart, checkout, thank-you) whose pages load a
stand-in Pixel script firing ``/tr`` hits and whose server side sends each event, with the same
``event_id``, to a Graph API (the local stand-in in tests) and appends the send log. Fault switches
break one thing each, so that ``capi-diag rehearse`` can be shown to catch it (docs/rehearsal.md).

May import: core, meta (the Graph client), testevents (the send log's record format).
"""
