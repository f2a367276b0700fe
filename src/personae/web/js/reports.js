// Reporting a character, a message or a user, and the reporter's list of their
// reports and appeals with what became of them.
import { get, post } from "./api.js";
import { field, formValues, h, replace, timeAgo } from "./dom.js";
import { errorBox } from "./errors.js";
import { loginPath, navigate, session } from "./app.js";

export const REASONS = [
  ["harassment", "Harassment or bullying"],
  ["hate", "Hate"],
  ["violence", "Violence or threats"],
  ["sexual", "Sexual content"],
  ["sexual_minors", "Sexual content involving minors"],
  ["self_harm", "Self-harm"],
  ["illegal", "Illegal activity"],
  ["spam", "Spam"],
  ["impersonation", "Impersonation"],
  ["other", "Something else"],
];

const OUTCOMES = {
  open: "Waiting for a moderator",
  dismissed: "Looked at: no action taken",
  actioned: "Looked at: action taken",
};
const ACTIONS = {
  dismiss: "dismissed",
  hide_character: "the character was hidden",
  remove_message: "the message was removed",
  warn: "the account was warned",
  suspend: "the account was suspended",
  uphold: "the refusal stands",
  overturn: "the refusal was overturned",
};

// A "Report" button that opens a small form under itself: a reason, a note, send.
export function reportButton(target, targetId, label = "Report") {
  const holder = h("div.report-holder", {});
  const open = () => openReport(holder, target, targetId);
  const button = h("button.btn.btn-small.btn-quiet.report-button", { type: "button", "aria-label": `${label}: report this ${target}`, onclick: open }, label);
  return [button, holder];
}

// The report form in `holder` (which it toggles): a reason, a note, send.
export function openReport(holder, target, targetId) {
  if (!session.user) { navigate(loginPath()); return; }
  if (holder.firstChild) { replace(holder); return; }
  const status = h("div", { "aria-live": "polite" });
  const form = h("form.card.report-form", {
    "aria-label": `Report this ${target}`,
    onsubmit: async (event) => {
      event.preventDefault();
      const values = formValues(form);
      const send = form.querySelector("button[type=submit]");
      send.disabled = true;
      try {
        await post("/api/v1/reports", { target, target_id: targetId, reason: values.reason, note: values.note });
        replace(holder, h("p.report-sent", { role: "status" },
          "Thank you: a moderator will look at it. ", h("a", { href: "/reports" }, "See your reports")));
      } catch (error) {
        replace(status, errorBox(error));
        send.disabled = false;
      }
    },
  },
  field("Why?", { name: "reason", kind: "select", value: "harassment", options: REASONS }),
  field("Anything a moderator should know (optional)", { name: "note", kind: "textarea", rows: 2, maxlength: 2000 }),
  status,
  h("div.row", {},
    h("button.btn.btn-small.btn-primary", { type: "submit" }, "Send report"),
    h("button.btn.btn-small", { type: "button", onclick: () => replace(holder) }, "Cancel")));
  replace(holder, form);
  form.querySelector("select").focus();
}

function outcome(item) {
  const words = OUTCOMES[item.status] || item.status;
  const action = item.action && item.status !== "open" ? ` (${ACTIONS[item.action] || item.action})` : "";
  const when = item.resolved_at ? ` · ${timeAgo(item.resolved_at)}` : "";
  return `${words}${action}${when}`;
}

export async function myReportsPage(target) {
  if (!session.user) { navigate(loginPath(), { replace: true }); return; }
  const mine = await get("/api/v1/reports/mine");
  const reason = (value) => (REASONS.find(([v]) => v === value) || [value, value])[1];
  replace(target,
    h("h1", {}, "Your reports"),
    h("p.hint", {}, "What you reported or appealed, and what the moderators decided."),
    h("h2", {}, "Reports"),
    mine.reports.length ? h("ul.plain-list.my-reports", {}, mine.reports.map((r) => h("li", { dataset: { id: r.id, status: r.status } },
      h("strong", {}, `A ${r.target}: ${reason(r.reason)}`),
      h("span.char-meta", {}, ` · sent ${timeAgo(r.created_at)}`),
      r.note ? h("p.hint", {}, r.note) : null,
      h("p.report-outcome", {}, outcome(r)))))
      : h("p.empty", {}, "You have reported nothing."),
    h("h2", {}, "Appeals"),
    mine.appeals.length ? h("ul.plain-list.my-appeals", {}, mine.appeals.map((a) => h("li", { dataset: { id: a.id, status: a.status } },
      h("strong", {}, `A refusal (${a.category})`),
      h("span.char-meta", {}, ` · sent ${timeAgo(a.created_at)}`),
      h("p.report-outcome", {}, outcome(a)))))
      : h("p.empty", {}, "You have appealed nothing."));
}
