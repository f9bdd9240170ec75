"""The self-contained HTML report of a verification sweep (``vidgen verify --html``).

One file: inline CSS, thumbnails as base64 ``data:`` images, no scripts and no
external resources. Everything that comes from the files verified (names, signer,
claim generator, codes, explanations, recovered manifest titles) is attacker-
controlled and is HTML-escaped; a Content-Security-Policy that forbids scripts is
a second line of defence should an escape ever be missed.
"""

from __future__ import annotations

import datetime
import html
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vidgen import __version__
from vidgen.errors import OutputError
from vidgen.provenance.sweep import VERDICTS, SweepOutcome, thumbnail_data_uri

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d1d1f}
h1{font-size:20px;margin:0 0 4px}
.meta{color:#666;margin-bottom:16px}
.summary{display:flex;gap:12px;margin:12px 0 20px}
.count{padding:8px 14px;border-radius:6px;background:#f2f2f4;min-width:90px}
.count b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e3e3e8;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#fafafa;position:sticky;top:0}
td.file{word-break:break-all;max-width:28em;font-family:ui-monospace,monospace;font-size:12px}
td.thumb img{max-width:160px;max-height:120px;display:block}
.v{font-weight:600;padding:2px 8px;border-radius:10px;white-space:nowrap}
.v-confirmed{background:#d9f5dd;color:#145c22}
.v-unconfirmed{background:#fff2c2;color:#6b5200}
.v-tampered{background:#ffd9d6;color:#8a1208}
.v-error{background:#e9e3f7;color:#3e1f7a}
.small{color:#555;font-size:12px}
code{font-size:12px}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _e(value: Any) -> str:
    """Escaped text (quotes too, so it is also safe inside attributes).

    A file name that is not UTF-8 (surrogate escapes) shows its bytes as ``\\udcff``.
    """
    text = "" if value is None else str(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return html.escape(text, quote=True)


def _c2pa_cell(c2pa: dict[str, Any] | None) -> str:
    if not c2pa:
        return "—"
    parts = [f"<b>{_e(c2pa.get('state'))}</b>"]
    if c2pa.get("claim_generator"):
        parts.append(f'<div class="small">generator {_e(c2pa["claim_generator"])}</div>')
    ai = c2pa.get("ai_generated")
    if ai is not None:
        parts.append(f'<div class="small">AI-generated: {"yes" if ai else "no"}</div>')
    if c2pa.get("explanation"):
        parts.append(f'<div class="small">{_e(c2pa["explanation"])}</div>')
    return "".join(parts)


def _signer_cell(c2pa: dict[str, Any] | None) -> str:
    if not c2pa or not c2pa.get("signer"):
        return "—"
    issuer = f'<div class="small">issued by {_e(c2pa["issuer"])}</div>' \
        if c2pa.get("issuer") else ""
    return _e(c2pa["signer"]) + issuer


def _watermark_cell(wm: dict[str, Any] | None, recovered: dict[str, Any] | None) -> str:
    if not wm:
        return "—"
    if wm.get("detected"):
        p = wm.get("p_value")
        p_text = f", p = {p:.3g}" if isinstance(p, int | float) else ""
        text = f"<b>detected</b> ({_e(wm.get('method'))}), id {_e(wm.get('payload'))}{p_text}"
        match = wm.get("matches_manifest")
        if match is not None:
            text += ", matches the manifest" if match else ", <b>does not match</b> the manifest"
    else:
        text = "not detected" if wm.get("checked") else "not checked"
    if recovered is not None:
        title = recovered.get("title") if isinstance(recovered, dict) else None
        text += f'<div class="small">manifest recovered from the store: {_e(title)}</div>'
    if wm.get("explanation"):
        text += f'<div class="small">{_e(wm["explanation"])}</div>'
    return text


def _codes_cell(record: dict[str, Any]) -> str:
    c2pa = record.get("c2pa") or {}
    codes = c2pa.get("codes") or []
    out = "<br>".join(f"<code>{_e(c)}</code>" for c in codes) if codes else ""
    if record.get("error"):
        out += f'<div class="small">{_e(record["error"])}</div>'
    return out or "—"


def _row(record: dict[str, Any], thumb: tuple[str, bytes] | None) -> str:
    verdict = str(record.get("verdict", "error"))
    css = verdict if verdict in VERDICTS else "error"
    image = f'<img alt="" src="{_e(thumbnail_data_uri(thumb))}">' if thumb else ""
    sha = record.get("sha256")
    sha_line = f'<div class="small">sha256 {_e(sha[:16])}…</div>' if isinstance(sha, str) else ""
    return (
        "<tr>"
        f'<td class="thumb">{image}</td>'
        f'<td class="file">{_e(record.get("file"))}{sha_line}</td>'
        f'<td><span class="v v-{css}">{_e(verdict)}</span></td>'
        f"<td>{_signer_cell(record.get('c2pa'))}</td>"
        f"<td>{_c2pa_cell(record.get('c2pa'))}</td>"
        f"<td>{_watermark_cell(record.get('watermark'), record.get('recovered_manifest'))}</td>"
        f"<td>{_codes_cell(record)}</td>"
        "</tr>"
    )


def render_html(records: Iterable[dict[str, Any]],
                thumbnails: dict[str, tuple[str, bytes]] | None = None,
                *, title: str = "vidgen verify report", caption: str = "") -> str:
    """The report as one HTML document (``records``: ``VerificationReport.to_dict()``)."""
    rows = list(records)
    thumbnails = thumbnails or {}
    counts = {v: 0 for v in VERDICTS}
    for r in rows:
        verdict = r.get("verdict")
        counts[verdict if verdict in counts else "error"] += 1
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    boxes = "".join(f'<div class="count v-{v}">{_e(v)}<b>{counts[v]}</b></div>'
                    for v in VERDICTS)
    body = "\n".join(_row(r, thumbnails.get(str(r.get("file")))) for r in rows)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<div class="meta">{len(rows)} files · generated {_e(now)} by vidgen {_e(__version__)}'
        f"{(' · ' + _e(caption)) if caption else ''}</div>"
        f'<div class="summary">{boxes}<div class="count">total<b>{len(rows)}</b></div></div>'
        "<table><thead><tr><th></th><th>file</th><th>verdict</th><th>signer</th>"
        "<th>C2PA</th><th>watermark</th><th>codes</th></tr></thead>"
        f"<tbody>\n{body}\n</tbody></table></body></html>\n"
    )


def write_html(path: Path, outcome: SweepOutcome) -> Path:
    """Write the sweep's report to ``path`` atomically (temp file + rename)."""
    caption = f"{outcome.verified} verified in {outcome.seconds:.1f} s"
    if outcome.reused:
        caption += f", {outcome.reused} reused from the JSONL report"
    text = render_html(outcome.records, outcome.thumbnails, caption=caption)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
