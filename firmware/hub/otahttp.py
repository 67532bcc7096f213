# A release's chunks over HTTPS (docs/ota.md, "HTTPS delivery"): when an offer
# names a URL and the hub has a bearer that opens TCP streams, the hub fetches
# the image itself with HTTP Range requests instead of asking for chunks over
# MQTT. The URL serves the release file as `samband release` wrote it (header,
# manifest, signature, image): the hub asks only for image bytes, after the
# header it already has from the offer. Each answer is checked for the exact range asked for (206, Content-Range,
# Content-Length) before a byte goes to flash, and each chunk goes into the same
# stage as an MQTT chunk (hub/otaslot.py Stage: one file per chunk), so a power
# cut or a bearer change costs at most the range in flight, and the signed SHA-512
# of the whole image still decides at apply. TLS is verified against the CA the
# caller gives (the broker's, hub.mqtt.tls_context): a server it did not sign is
# refused by the TLS handshake. Loaded only for an offer that names a URL.

from hub.otaslot import OtaError

MAX_URL = 200
MAX_HEAD = 2048  # bytes of status line and headers accepted before the body
_HOST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-"


def parse_url(url):
    """(host, port, path) of an https:// URL; OtaError("format") for anything else."""
    if not isinstance(url, str) or not url.startswith("https://") or len(url) > MAX_URL:
        raise OtaError("format", "an update URL must be https://host[:port]/path of at most %d characters" % MAX_URL)
    rest = url[8:]
    slash = rest.find("/")
    hostport, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    host, port = hostport, 443
    if ":" in hostport:
        host, p = hostport.rsplit(":", 1)
        if not p or not all("0" <= c <= "9" for c in p) or not 0 < int(p) < 65536:
            raise OtaError("format", "update URL port %r is not a number 1..65535" % p)
        port = int(p)
    if not host or not all(c in _HOST for c in host):
        raise OtaError("format", "update URL host %r is not a host name or address" % host)
    if not all(" " < c < "\x7f" for c in path):
        raise OtaError("format", "update URL path has spaces or control characters")
    return host, port, path


def request(host, port, path, first, last):
    """The GET for image bytes first..last (inclusive), one connection each."""
    h = host if port == 443 else "%s:%d" % (host, port)
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nRange: bytes=%d-%d\r\nConnection: close\r\n"
            "User-Agent: samband-hub\r\n\r\n" % (path, h, first, last)).encode()


def check_head(lines, first, last, size):
    """The answer's status line and headers (text lines, without CRLF) must give exactly
    bytes first..last of an image of size bytes; OtaError("http") otherwise."""
    parts = lines[0].split(" ", 2) if lines else []
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise OtaError("http", "not an HTTP answer: %r" % (lines[0][:40] if lines else ""))
    if parts[1] != "206":
        raise OtaError("http", "the server answered %s, not 206 (the range asked for)" % parts[1])
    h = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if sep:
            h[k.strip().lower()] = v.strip()
    want = "bytes %d-%d/%d" % (first, last, size)
    if h.get("content-range") != want:
        raise OtaError("http", "Content-Range %r, not %r" % (h.get("content-range"), want))
    if "transfer-encoding" in h or h.get("content-length") != str(last - first + 1):
        raise OtaError("http", "the range's body is not %d bytes (Content-Length %r)"
                       % (last - first + 1, h.get("content-length")))


async def fetch(stage, url, opener, ssl, first, count, put):
    """Fetch chunks first..first+count-1 of the staged release with one Range request
    over opener(host, port, ssl, server_hostname) (a bearer's open: a stream, or
    (reader, writer)); put(i, data) stores each as it completes."""
    host, port, path = parse_url(url)
    base = len(stage.head)  # the image starts after the release's header
    lo = base + first * stage.cs
    hi = base + min(stage.size, (first + count) * stage.cs) - 1
    s = await opener(host, port, ssl, host)
    r, w = s if isinstance(s, tuple) else (s, s)
    try:
        w.write(request(host, port, path, lo, hi))
        await w.drain()
        lines = []
        n = 0
        while True:
            line = await r.readline()
            n += len(line)
            if not line or n > MAX_HEAD:
                raise OtaError("http", "the answer's headers end early or run over %d bytes" % MAX_HEAD)
            line = line.decode().rstrip("\r\n")
            if not line:
                break
            lines.append(line)
        check_head(lines, lo, hi, base + stage.size)
        for i in range(first, first + count):
            k = stage.chunk_len(i)
            data = await r.readexactly(k)
            if len(data) != k:
                raise OtaError("http", "the body ended inside chunk %d" % i)
            put(i, data)
    finally:
        w.close()
        if hasattr(w, "wait_closed"):
            try:
                await w.wait_closed()
            except OSError:
                pass


async def step(o, opener, ssl):
    """For hub.ota's Ota o: one Range request for the next run of missing chunks (at most
    its window, within the cellular budget); a failure (TLS, the server, the bearer, a
    stall past http_timeout_s) is counted and said, and the next step tries again."""
    import asyncio
    want = o.stage.missing(o.window_now())
    if not want:
        return
    n = 1
    while n < len(want) and want[n] == want[0] + n:
        n += 1
    try:  # a server or bearer that stalls costs one window's time, not the update
        await asyncio.wait_for(fetch(o.stage, o.url, opener, ssl, want[0], n, o.store_chunk), o.http_timeout)
        if o.refused == "http":
            o.refused = None
    except (ValueError, OSError, EOFError, asyncio.TimeoutError) as e:  # OtaError, TLS, sockets, a short body
        o.counters["http_errors"] += 1
        o.refused = "http"
        o._due_status = True
        o.log("ota: fetching %s: %r" % (o.url, e))


def opener_of(up):
    """(open, TLS context) to fetch over: the uplink's routine bearer (any kind that reaches
    any host: the cellular bearer runs TLS on the hub; not a fixed path to the broker, the
    virtual hub's hostnet) or, with no bearers provisioned, a direct connection as the
    uplink's own; None while no bearer is up, and always without a CA (never unverified)."""
    m = up.manager
    opener = _direct
    if m is not None:
        r = m.routine_link()
        if r is None or getattr(r.b, "fixed_path", False):
            return None
        if up.ota is not None:
            up.ota.cellular = r.b.kind == "cellular"  # the budget counts as for MQTT chunks
        opener = r.b.open
    ctx = up.tls_context()
    return None if ctx is None else (opener, ctx)


async def _direct(host, port, ssl, name):
    import asyncio
    return await asyncio.open_connection(host, port, ssl=ssl, server_hostname=name)


async def pump(o, up, alarms):
    """Fetch window after window while o wants it and alarms() is 0: an alarm that appears
    waits behind one window at most. A failed step ends the pump until the next tick."""
    h = None
    while o.http_due(alarms()):
        h = h or opener_of(up)
        if h is None:
            return
        have = o.stage.count
        await step(o, h[0], h[1])
        if o.stage.count == have:
            return
