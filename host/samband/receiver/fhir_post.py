"""POST transaction bundles to a FHIR server, with retries and one-line errors.

Why retries are safe here: every entry of a bundle from receiver/fhir.py is a
conditional create, so a bundle sent twice (the answer was lost, the server
restarted) creates nothing the second time. Retried: no connection, a timeout,
429 and 5xx answers, with a growing pause. Not retried: other 4xx answers (the
bundle is wrong for that server; retrying would not change it): a FhirError
that says what the server said (its OperationOutcome diagnostics).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from samband.receiver.fhir import FhirError, to_json

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def outcome_text(body: bytes | str) -> str:
    """The diagnostics of an OperationOutcome answer, else the start of the body, in one line."""
    try:
        oo = json.loads(body)
        issues = oo.get("issue") or []
        text = "; ".join(i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code", "")
                         for i in issues)
        if text:
            return text
    except (ValueError, AttributeError):
        pass
    return " ".join(str(body, "utf-8", "replace").split())[:300] if isinstance(body, bytes) else str(body)[:300]


def post_bundle(url: str, bundle: dict[str, Any], tries: int = 5, timeout: float = 30, pause: float = 1.0,
                sleep: Callable[[float], None] = time.sleep, authorization: str | None = None) -> dict[str, Any]:
    """POST one transaction bundle to a FHIR base URL; the transaction-response Bundle
    (a dict). FhirError after `tries` failed attempts or on a 4xx answer.
    authorization: the Authorization header's value ('Bearer ...', 'Basic ...'): the
    IG's PhdFHIRServer asks for OAuth or Basic security."""
    data = to_json(bundle).encode()
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if authorization:
        headers["Authorization"] = authorization
    last = None
    for attempt in range(tries):
        if attempt:
            sleep(pause * 2 ** (attempt - 1))
        req = urllib.request.Request(url, data=data, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read()
            try:
                return json.loads(body)
            except ValueError:
                raise FhirError("%s answered %d with no JSON bundle: %s" % (url, resp.status,
                                                                         outcome_text(body))) from None
        except urllib.error.HTTPError as e:
            body = e.read()
            last = "HTTP %d: %s" % (e.code, outcome_text(body))
            if e.code not in RETRY_STATUS:
                raise FhirError("the FHIR server at %s refused the bundle (%s)" % (url, last)) from None
        except (urllib.error.URLError, OSError) as e:
            last = str(getattr(e, "reason", None) or e)
    raise FhirError("could not POST to the FHIR server at %s after %d tries: %s" % (url, tries, last))


def created_counts(response: dict[str, Any]) -> tuple[int, int]:
    """(created, already there) from a transaction-response: 201 means the entry was
    made, 200 that a conditional create found the resource there already."""
    made = there = 0
    for e in (response or {}).get("entry") or []:
        status = str((e.get("response") or {}).get("status", ""))
        if status.startswith("201"):
            made += 1
        elif status.startswith("200"):
            there += 1
    return made, there
