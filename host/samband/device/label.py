"""`samband label`: a printable label for a provisioned hub, for the technician's records.

Why: a hub in a patient's home is identified by its id, and trusted by its
public key (the depot holds it; the receiver opens only what that key
sealed). The label puts both on the box: the id and board in words, the
key's fingerprint short enough to read out over the phone, and a QR code
holding the whole key, so that a records system (or a technician's phone)
can check that the box in hand is the hub the depot knows. PNG for screens
and label printers, PDF (same picture, page = label size) for office printers.

QR codes come from segno (pure Python), the picture from Pillow.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from samband.errors import SambandError

if TYPE_CHECKING:
    from samband.device.depot import Depot

WIDTH_MM, HEIGHT_MM = 62, 29  # a common continuous-tape label width (62 mm), one hub per label
DPI = 300
SCHEME = "samband"


class LabelError(SambandError):
    pass


# -- pure -------------------------------------------------------------------------------

def fingerprint(public: bytes) -> str:
    """The public key's short form for people: the first 80 bits of its SHA-256, in groups of four."""
    h = hashlib.sha256(bytes(public)).hexdigest()[:20]
    return " ".join(h[i:i + 4] for i in range(0, 20, 4))


def payload(hub_id: str, board: str, public: bytes) -> str:
    """The QR code's text: a URI with the hub id, its board and the whole public key in hex."""
    return f"{SCHEME}:hub?" + urlencode({"id": hub_id, "board": board, "key": bytes(public).hex()})


def parse_payload(text: str) -> dict[str, Any]:
    """A label's QR text back to {"id", "board", "key" (bytes)}; LabelError if it is not one."""
    u = urlsplit(text)
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    if u.scheme != SCHEME or u.path != "hub" or set(q) != {"id", "board", "key"}:
        raise LabelError(f"not a Samband hub label: {text[:60]!r}")
    try:
        q["key"] = bytes.fromhex(q["key"])
    except ValueError:
        raise LabelError("a Samband label whose key is not hex") from None
    return q


def hub_record(depot: Depot, hub_id: str) -> tuple[bytes, str]:
    """(public key, board or "") of a hub from the depot; refuses unknown and revoked hubs."""
    rec = depot.hubs().get(hub_id)
    if rec is None:
        known = ", ".join(sorted(depot.hubs())[:5]) or "none"
        raise LabelError(f"hub {hub_id} is not in the depot {depot.path} (hubs there: {known}): "
                         f"provision it first, or give --depot")
    if rec.get("revoked"):
        raise LabelError(f"hub {hub_id} is revoked in the depot: it gets no label")
    return bytes.fromhex(rec["public"]), rec.get("board") or ""


# -- the picture ---------------------------------------------------------------------------

def _px(mm: float) -> int:
    return round(mm / 25.4 * DPI)


def render(hub_id: str, board: str, public: bytes) -> Any:
    """The label as a Pillow image (1-bit, DPI dots per inch)."""
    import segno
    from PIL import Image, ImageDraw, ImageFont
    w, h = _px(WIDTH_MM), _px(HEIGHT_MM)
    img = Image.new("1", (w, h), 1)
    qr = segno.make(payload(hub_id, board, public), error="m", micro=False)
    side = h - 2 * _px(1.5)
    scale = max(1, side // (qr.symbol_size(scale=1, border=4)[0]))
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=scale, border=4)
    code = Image.open(buf).convert("1")
    img.paste(code, (_px(1.5), (h - code.size[1]) // 2))
    draw = ImageDraw.Draw(img)
    x = _px(1.5) + code.size[0] + _px(1)
    big, small = ImageFont.load_default(size=_px(3.6)), ImageFont.load_default(size=_px(2.6))
    lines = [("Samband hub", big), (hub_id, big), (f"board {board}", small), ("key", small),
             (fingerprint(public), small)]
    y = _px(2)
    for text, font in lines:
        draw.text((x, y), text, font=font, fill=0)
        y += font.size + _px(1.2)
    return img


def write(out_dir: str | Path, hub_id: str, board: str, public: bytes) -> tuple[Path, Path]:
    """label-<hub>.png and label-<hub>.pdf in out_dir; returns their paths."""
    from pathlib import Path
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabelError(f"cannot make {out}: {e.strerror}") from None
    img = render(hub_id, board, public)
    png, pdf = out / f"label-{hub_id}.png", out / f"label-{hub_id}.pdf"
    try:
        img.save(png, dpi=(DPI, DPI))
        img.save(pdf, resolution=DPI)
    except OSError as e:
        raise LabelError(f"cannot write the label into {out}: {e.strerror or e}") from None
    return png, pdf
