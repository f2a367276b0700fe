// The moderators' page: open reports and appeals with their context and actions,
// then the audit log of what moderators did.
import { get, post, query } from "./api.js";
import { field, h, plural, replace, timeAgo } from "./dom.js";
import { errorBox } from "./errors.js";
import { loginPath, navigate, session } from "./app.js";

const PAGE = 25;
// Whom a warning or a suspension reaches, by what was reported.
const WHO = { user: "user", character: "creator", message: "author" };
const STATUSES = [["open", "Open"], ["actioned", "Actioned"], ["dismissed", "Dismissed"]];

function contextOf(item) {
  const c = item.context || {};
  if (item.kind === "appeal" && item.content !== null) {
    return h("blockquote.case-text", {}, item.content);
  }
  if (c.found === false) return h("p.hint", {}, "The target no longer exists.");
  if (item.target_kind === "character") {
    return h("p.case-context", {},
      h("a", { href: `/c/${item.target_id}` }, c.name), ` by ${c.owner_username} · rating ${c.rating} · ${c.visibility}`,
      c.hidden_at ? " · hidden" : "", c.deleted ? " · deleted" : "");
  }
  if (item.target_kind === "user") {
    return h("p.case-context", {}, `@${c.username} (${c.display_name}) · role ${c.role} · ${plural(c.warnings, "warning")}`,
      c.suspended_until && new Date(c.suspended_until) > new Date() ? ` · suspended until ${new Date(c.suspended_until).toLocaleString()}` : "");
  }
  if (c.message) {
    const line = (m, reported) => h(`li.case-message${reported ? ".case-reported" : ""}`, {},
      h("span.msg-who", {}, m.role === "user" ? c.chat_owner : c.character_name), " ",
      h("span.case-line", {}, m.content), m.removed_at ? h("span.label", {}, "removed") : null);
    const around = [...c.around, c.message].sort((a, b) => a.position - b.position);
    return h("div.case-context", {},
      h("p.hint", {}, `In ${c.chat_owner}'s chat with ${c.character_name}:`),
      h("ol.plain-list.case-thread", {}, around.map((m) => line(m, m.id === c.message.id))));
  }
  return null;
}

function caseItem(item, onDecided) {
  const status = h("div", { "aria-live": "polite" });
  const note = field("Note for the audit log", { name: "note", maxlength: 2000 });
  const hours = field("Hours", { name: "suspend_hours", kind: "number", value: "24", min: 1, max: 8784 });
  const own = session.user && session.user.id === item.by_id;
  const act = async (action) => {
    const body = { action, note: note.querySelector("input").value };
    if (action === "suspend") body.suspend_hours = Number(hours.querySelector("input").value);
    const path = `/api/v1/moderation/${item.kind}s/${item.id}/actions`;
    try {
      await post(path, body);
      onDecided(item, action);
    } catch (error) {
      replace(status, errorBox(error));
    }
  };
  const button = (action, text, danger = false) => h(`button.btn.btn-small${danger ? ".btn-danger" : ""}`, {
    type: "button", dataset: { action }, onclick: () => act(action) }, text);
  const open = item.status === "open";
  const actions = !open ? h("p.report-outcome", {}, `${item.status}: ${item.action} · ${timeAgo(item.resolved_at)}`)
    : own ? h("p.hint", {}, "You filed this; another moderator decides it.")
      : item.kind === "appeal"
        ? h("div.row", {}, button("overturn", "Overturn the refusal"), button("uphold", "Uphold"))
        : h("div", {}, note,
          h("div.row", {},
            button("dismiss", "Dismiss"),
            item.target_kind === "character" ? button("hide_character", "Hide character", true) : null,
            item.target_kind === "message" ? button("remove_message", "Remove message", true) : null,
            button("warn", `Warn ${WHO[item.target_kind] || "user"}`),
            hours, button("suspend", `Suspend ${WHO[item.target_kind] || "user"}`, true)));
  return h("li.card.case", { dataset: { id: item.id, kind: item.kind } },
    h("p", {}, h("strong", {}, item.kind === "report" ? `Report of a ${item.target_kind}: ${item.reason}` : `Appeal: ${item.reason}`),
      h("span.char-meta", {}, ` · by ${item.by_username} · ${timeAgo(item.created_at)}`)),
    item.note ? h("p.case-note", {}, `“${item.note}”`) : null,
    contextOf(item),
    item.kind === "appeal" && open ? note : null,
    actions,
    status);
}

function auditSection() {
  const list = h("ul.plain-list.audit-list", { "aria-label": "Audit log" });
  const more = h("div", {});
  const status = h("div", { "aria-live": "polite" });
  const load = async (before) => {
    try {
      const page = await get(`/api/v1/moderation/audit${query({ before, limit: 50 })}`);
      if (!before) replace(list);
      list.append(...page.items.map((e) => h("li", { dataset: { id: e.id } },
        h("strong", {}, e.action), ` on ${e.target_kind} ${e.target_id} by ${e.actor_username || e.actor_id}`,
        h("span.char-meta", {}, ` · ${timeAgo(e.created_at)}`), e.note ? h("p.hint", {}, e.note) : null)));
      if (!before && !page.items.length) list.append(h("li.empty", {}, "No action yet."));
      const last = page.items[page.items.length - 1];
      replace(more, page.has_more && last ? h("button.btn", { type: "button", onclick: () => load(last.id) }, "Older") : null);
      replace(status);
    } catch (error) {
      replace(status, errorBox(error, { retry: () => load(before) }));
    }
  };
  load();
  const section = h("section#audit", { "aria-labelledby": "audit-heading" },
    h("h2#audit-heading", {}, "Audit log"), status, list, more);
  return { section, reload: () => load() };
}

export async function moderationPage(target) {
  if (!session.user) { navigate(loginPath(), { replace: true }); return; }
  if (!["admin", "moderator"].includes(session.user.role)) {
    replace(target, h("h1", {}, "Moderation"), h("p", {}, "This page is for moderators and admins."));
    return;
  }
  const params = new URLSearchParams(location.search);
  const shown = STATUSES.some(([v]) => v === params.get("status")) ? params.get("status") : "open";
  const list = h("ul.plain-list.queue", { "aria-label": "Reports and appeals" });
  const more = h("div", {});
  const status = h("div", { "aria-live": "polite" });
  const audit = auditSection();
  const decided = (item, action) => {
    const el = list.querySelector(`[data-id="${item.id}"]`);
    if (el) el.remove();
    replace(status, h("p", { role: "status" }, `Done: ${action}.`));
    if (!list.children.length) list.append(h("li.empty", {}, "Nothing waits."));
    audit.reload();
  };
  const load = async (after) => {
    try {
      const page = await get(`/api/v1/moderation/queue${query({ status: shown, after, limit: PAGE })}`);
      if (!after) replace(list);
      list.append(...page.items.map((item) => caseItem(item, decided)));
      if (!after && !page.items.length) list.append(h("li.empty", {}, "Nothing waits."));
      const last = page.items[page.items.length - 1];
      replace(more, page.has_more && last ? h("button.btn", { type: "button", onclick: () => load(last.id) }, "More") : null);
    } catch (error) {
      replace(status, errorBox(error, { retry: () => load(after) }));
    }
  };
  await load();
  replace(target,
    h("h1", {}, "Moderation"),
    h("nav.row", { "aria-label": "Which cases" }, STATUSES.map(([v, text]) =>
      h("a.btn.btn-small", { href: `/moderation${v === "open" ? "" : query({ status: v })}`, "aria-current": v === shown ? "page" : null }, text))),
    status, list, more, audit.section);
}
