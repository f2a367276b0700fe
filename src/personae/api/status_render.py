"""The status page (plain HTML, no script) and its Atom feed. Every text is escaped."""

from __future__ import annotations

from html import escape
from xml.etree import ElementTree

from personae.api.schemas.statuspage import iso
from personae.services.incidents import IncidentView
from personae.services.status import Overview, UptimeDay

_ATOM = "http://www.w3.org/2005/Atom"
_STATE_WORDS = {
    "operational": "Operational",
    "busy": "Busy",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
}
STYLE = """
body{font-family:system-ui,sans-serif;max-width:860px;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}.banner{padding:1rem;border-radius:6px;font-weight:600;margin:1rem 0}
.none,.operational{background:#e6f4ea}.busy{background:#e3f0fb}.minor,.degraded_performance{background:#fff4d6}
.major,.partial_outage{background:#ffe2cc}.critical,.major_outage{background:#fddede}
.maintenance,.under_maintenance{background:#dde8fb}
.component{border-bottom:1px solid #ddd;padding:.6rem 0}.state{float:right;font-size:.9rem}
.bars{display:flex;gap:1px;margin-top:.4rem;height:28px}.bars span{flex:1;border-radius:1px}
.up{background:#3ba55c}.part{background:#f0b232}.down{background:#d83c3e}.nodata{background:#ccc}
.incident{margin:1rem 0;padding:.6rem 1rem;border-left:4px solid #999}
.update{margin:.4rem 0}.muted{color:#666;font-size:.85rem}
.app-link a{display:inline-block;padding:.5rem 0;color:#4b2e83;font-weight:600;text-decoration:none}
"""


def _bar(day: UptimeDay) -> str:
    ratio = day.ratio
    if ratio is None:
        kind, label = "nodata", "no data"
    else:
        kind = "up" if ratio >= 0.999 else "part" if ratio >= 0.9 else "down"
        label = f"{ratio * 100:.2f}% of {day.checks} checks passed"
    return f'<span class="{kind}" title="{escape(day.day.isoformat())}: {escape(label)}"></span>'


def _uptime_share(days: list[UptimeDay]) -> str:
    checks = sum(d.checks for d in days)
    if not checks:
        return "no data yet"
    return f"{sum(d.passed for d in days) / checks * 100:.2f}% uptime"


def _incident_html(view: IncidentView) -> str:
    found = view.incident
    updates = "".join(
        f'<div class="update"><strong>{escape(u.status.title())}</strong> — {escape(u.body)}'
        f' <span class="muted">{escape(iso(u.created_at) or "")}</span></div>'
        for u in view.updates
    )
    return (
        f'<div class="incident {escape(found.impact)}" id="incident-{escape(found.id)}">'
        f"<h3>{escape(found.title)}</h3>{updates}</div>"
    )


def render_page(overview: Overview, uptime: dict[str, list[UptimeDay]]) -> str:
    """The whole status page."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{escape(overview.name)} status</title>",
        "<link rel='alternate' type='application/atom+xml' href='/status/feed.atom'>",
        f"<style>{STYLE}</style></head><body>",
        # The page is often reached from the app's banner: a way back to it.
        f'<nav class="app-link"><a href="/">← Back to {escape(overview.name)}</a></nav>',
        f"<h1>{escape(overview.name)} status</h1>",
        f'<div class="banner {escape(overview.indicator)}">{escape(overview.description)}</div>',
    ]
    busy = next((c.busy_text for c in overview.components if c.busy_text), None)
    if busy:
        parts.append(f'<p class="busy-note">{escape(busy)}. Replies are answered in turn.</p>')
    if overview.unresolved:
        parts.append("<h2>Open incidents</h2>")
        parts.extend(_incident_html(view) for view in overview.unresolved)
    active = [m for m in overview.maintenances if m.status in ("in_progress", "verifying")]
    upcoming = [m for m in overview.maintenances if m.status == "scheduled"]
    for heading, items in (("Maintenance under way", active), ("Upcoming maintenance", upcoming)):
        if items:
            parts.append(f"<h2>{heading}</h2>")
        for item in items:
            window = f"{iso(item.scheduled_for)} → {iso(item.scheduled_until)}"
            parts.append(
                f'<div class="incident maintenance" id="maintenance-{escape(item.id)}">'
                f"<h3>{escape(item.title)}</h3><div>{escape(item.body)}</div>"
                f'<div class="muted">{escape(window)}</div></div>'
            )
    parts.append("<h2>Components</h2>")
    for state in overview.components:
        days = uptime.get(state.id, [])
        parts.append(
            f'<div class="component" id="component-{escape(state.id)}">'
            f"<strong>{escape(state.name)}</strong>"
            f'<span class="state {escape(state.status)}">'
            f"{escape(state.busy_text or _STATE_WORDS.get(state.status, state.status))}</span>"
            f'<div class="bars">{"".join(_bar(d) for d in days)}</div>'
            f'<div class="muted">90 days ago · {escape(_uptime_share(days))} · today</div></div>'
        )
    recent = [v for v in overview.incidents if v not in overview.unresolved][:10]
    if recent:
        parts.append("<h2>Past incidents</h2>")
        parts.extend(_incident_html(view) for view in recent)
    parts.append(
        f'<p class="muted">Updated {escape(iso(overview.updated_at) or "")}. '
        "Also as <a href='/api/v2/summary.json'>JSON</a> and "
        "<a href='/status/feed.atom'>Atom</a>. <a href='/'>Open the app</a>.</p></body></html>"
    )
    return "".join(parts)


def _text(parent: ElementTree.Element, tag: str, text: str, **attrs: str) -> None:
    child = ElementTree.SubElement(parent, tag, attrs)
    child.text = text


def render_feed(overview: Overview) -> bytes:
    """An Atom feed of incidents and maintenance, newest change first."""
    feed = ElementTree.Element("feed", {"xmlns": _ATOM})
    _text(feed, "id", f"urn:personae:status:{overview.page_id}")
    _text(feed, "title", f"{overview.name} status")
    _text(feed, "updated", iso(overview.updated_at) or "")
    ElementTree.SubElement(feed, "link", {"href": overview.url, "rel": "alternate"})
    author = ElementTree.SubElement(feed, "author")
    _text(author, "name", overview.name)
    entries: list[tuple[str, str, str, str, str]] = []
    for view in overview.incidents:
        found = view.incident
        body = "\n\n".join(f"{u.status.title()}: {u.body}" for u in view.updates)
        entries.append(
            (iso(found.updated_at) or "", f"incident-{found.id}", found.title, body,
             iso(found.created_at) or "")
        )  # fmt: skip
    for item in overview.maintenances:
        body = f"{item.status.replace('_', ' ').title()}: {item.body or item.title}"
        body += f"\n\nWindow: {iso(item.scheduled_for)} to {iso(item.scheduled_until)}"
        entries.append(
            (iso(item.updated_at) or "", f"maintenance-{item.id}", item.title, body,
             iso(item.created_at) or "")
        )  # fmt: skip
    for updated, anchor, title, body, published in sorted(entries, reverse=True):
        entry = ElementTree.SubElement(feed, "entry")
        _text(entry, "id", f"urn:personae:status:{anchor}")
        _text(entry, "title", title)
        _text(entry, "updated", updated)
        _text(entry, "published", published)
        link = {"href": f"{overview.url}#{anchor}", "rel": "alternate"}
        ElementTree.SubElement(entry, "link", link)
        _text(entry, "content", body, type="text")
    document: bytes = ElementTree.tostring(feed, encoding="utf-8")
    return document
