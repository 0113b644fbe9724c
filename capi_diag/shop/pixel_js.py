"""The stand-in Pixel script the demo shop serves at ``/pixel.js``: ``fbq('init', id, {em: hash})`` and
``fbq('track', name, custom_data, {eventID})``, serialized as Meta's fbevents.js does (``cd[k]``,
``ud[k]``, ``ts`` in ms, ``fbp`` from the ``_fbp`` cookie, keys and values percent-encoded). Hits go to
the page's own ``/tr/``: an image GET, or for the events named in ``window.fbqBeacon`` a
``navigator.sendBeacon`` multipart POST. A Purchase also fires a ``privacy_sandbox`` copy, which is not
an event."""

PIXEL_JS = r"""
(function () {
  var ENDPOINT = '/tr/';
  var pid = null, adv = {};
  function cookie(n) {
    var m = document.cookie.match('(?:^|; )' + n + '=([^;]*)');
    return m ? decodeURIComponent(m[1]) : null;
  }
  function params(ev, cd, opts) {
    var p = [['id', pid], ['ev', ev], ['dl', location.href], ['rl', document.referrer], ['if', 'false'],
             ['ts', String(Date.now())], ['v', '2.9.234'], ['r', 'stable']];
    cd = cd || {};
    for (var k in cd) {
      var v = cd[k];
      p.push(['cd[' + k + ']', typeof v === 'object' ? JSON.stringify(v) : String(v)]);
    }
    for (var u in adv) { p.push(['ud[' + u + ']', String(adv[u]).toLowerCase()]); }
    var fbp = cookie('_fbp');
    if (fbp) { p.push(['fbp', fbp]); }
    if (opts && opts.eventID) { p.push(['eid', opts.eventID]); }
    return p;
  }
  function query(p) {
    return p.map(function (kv) { return encodeURIComponent(kv[0]) + '=' + encodeURIComponent(kv[1]); }).join('&');
  }
  function send(ev, cd, opts) {
    var p = params(ev, cd, opts);
    var beacon = window.fbqBeacon && window.fbqBeacon.indexOf(ev) >= 0;
    if (beacon && navigator.sendBeacon) {
      p.push(['rqm', 'SB']);
      var f = new FormData();
      p.forEach(function (kv) { f.append(kv[0], kv[1]); });
      navigator.sendBeacon(ENDPOINT, f);
    } else {
      p.push(['rqm', 'GET']);
      new Image().src = ENDPOINT + '?' + query(p);
    }
    if (ev === 'Purchase') {
      new Image().src = '/privacy_sandbox/pixel/register/trigger/?' + query(p.concat([['rqm', 'FGET']]));
    }
    window.fbqSent = (window.fbqSent || 0) + 1;
  }
  window.fbq = function (cmd, a, b, c) {
    if (cmd === 'init') { pid = a; adv = b || {}; }
    else if (cmd === 'track') { send(a, b, c); }
  };
})();
"""
