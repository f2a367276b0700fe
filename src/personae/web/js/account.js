// Account settings (sessions, API tokens, data export) and the admin page
// (incidents, maintenance, users, capacity).
import { del, get, patch, post } from "./api.js";
import { field, formValues, h, replace, timeAgo } from "./dom.js";
import { errorBox } from "./errors.js";
import { loginPath, logout, navigate, session } from "./app.js";
import { usersSection } from "./users.js";
import { capacitySection } from "./capacity.js";

function requireUser() {
  if (!session.user) { navigate(loginPath(), { replace: true }); return false; }
  return true;
}

async function guarded(status, action, retry) {
  try {
    await action();
    replace(status);
  } catch (error) {
    replace(status, errorBox(error, { retry }));
  }
}

// Age and mature content: the one-time age declaration, then the discovery setting.
function ageSection(user, status, reload) {
  const setUser = async (changed) => { session.user = changed; await reload(); };
  const ageForm = h("form.inline-form", {
    onsubmit: (event) => {
      event.preventDefault();
      const birthDate = formValues(ageForm).birth_date;
      if (!confirm("Your birth date can be declared only once. Is it right?")) return;
      guarded(status, async () => setUser(await post("/api/v1/me/age", { birth_date: birthDate })));
    },
  }, field("Your birth date", { name: "birth_date", kind: "date", required: true, max: new Date().toISOString().slice(0, 10), hint: "Declared once. Only whether you are 18 or older is kept, not the date." }),
  h("button.btn", { type: "submit" }, "Confirm my age"));
  const toggle = field("Show mature characters in discovery and search", {
    name: "show_mature", kind: "checkbox", checked: Boolean(user.show_mature), disabled: !user.adult,
    hint: user.adult ? "Off: mature characters stay out of lists; links to them still open." : "Only for accounts confirmed as 18 or older.",
  });
  toggle.querySelector("input").addEventListener("change", (event) => {
    const wanted = event.target.checked;
    guarded(status, async () => setUser(await patch("/api/v1/me", { show_mature: wanted })), () => setUser(session.user));
  });
  let state;
  if (!user.age_declared_at) state = "Your age is not confirmed: mature characters are hidden and you cannot chat with them.";
  else if (user.adult) state = "Confirmed: 18 or older.";
  else state = "Your account is not confirmed as 18 or older, so mature characters stay hidden. If your declared age is wrong, ask an admin to clear it.";
  return [
    h("h2#age", {}, "Age and mature content"),
    h("section.card", {}, h("p.age-state", {}, state), user.age_declared_at ? null : ageForm, toggle)];
}

export async function accountPage(target) {
  if (!requireUser()) return;
  const [sessions, tokens, personas] = await Promise.all([
    get("/api/v1/me/sessions"), get("/api/v1/tokens"), get("/api/v1/personas").catch(() => null)]);
  const status = h("div", { "aria-live": "polite" });
  const user = session.user;
  const reload = () => accountPage(target);
  const tokenShown = h("div", { "aria-live": "polite" });
  const tokenForm = h("form.inline-form", {
    onsubmit: (event) => {
      event.preventDefault();
      guarded(status, async () => {
        const created = await post("/api/v1/tokens", { name: formValues(tokenForm).name });
        await reload();
        const shown = target.querySelector("#token-shown");
        replace(shown, h("div.card.token-once", {},
          h("p", {}, h("strong", {}, "Your new token: copy it now, it is shown only once.")),
          h("code.token", {}, created.token)));
      });
    },
  }, field("Token name", { name: "name", required: true, maxlength: 64, placeholder: "e.g. my script" }),
  h("button.btn", { type: "submit" }, "Create token"));
  tokenShown.id = "token-shown";
  const personaForm = h("form.inline-form", {
    onsubmit: (event) => {
      event.preventDefault();
      const v = formValues(personaForm);
      guarded(status, async () => {
        await post("/api/v1/personas", { name: v.name, description: v.description, is_default: !personas.length });
        await reload();
      });
    },
  }, field("Persona name", { name: "name", required: true, maxlength: 64 }),
  field("About this persona", { name: "description", maxlength: 4000 }),
  h("button.btn", { type: "submit" }, "Add persona"));
  const personaSection = personas === null ? null : [
    h("h2", {}, "Personas"),
    h("p.hint", {}, "Who you are in a chat: the character sees this name and description."),
    personas.length ? h("ul.plain-list", {}, personas.map((p) => h("li.row.spread", {},
      h("span", {}, h("strong", {}, p.name), p.is_default ? h("span.char-meta", {}, " · default") : null,
        p.description ? h("span.char-meta", {}, ` · ${p.description.slice(0, 80)}`) : null),
      h("span.row", {},
        p.is_default ? null : h("button.btn.btn-small", { type: "button", onclick: () => guarded(status, async () => { await patch(`/api/v1/personas/${p.id}`, { is_default: true }); await reload(); }) }, "Make default"),
        h("button.btn.btn-small.btn-danger", { type: "button", "aria-label": `Delete persona ${p.name}`, onclick: () => guarded(status, async () => { await del(`/api/v1/personas/${p.id}`); await reload(); }) }, "Delete")))))
      : h("p.empty", {}, "No personas yet: chats use your display name."),
    personaForm];
  replace(target,
    h("h1", {}, "Account"),
    h("section.card", {},
      h("p", {}, h("strong", {}, user.display_name || user.username), ` (@${user.username}) · role: ${user.role}`),
      h("div.row", {}, h("button.btn", { type: "button", onclick: logout }, "Log out"), h("a.btn", { href: "/status" }, "Service status"),
        h("a.btn", { href: "/reports" }, "Your reports"))),
    (user.warnings || []).length ? h("section.card.warnings", { "aria-labelledby": "warnings-heading" },
      h("h2#warnings-heading", {}, "Warnings from the moderators"),
      h("ul.plain-list", {}, user.warnings.map((w) => h("li", {},
        h("strong", {}, w.reason || "warning"), h("span.char-meta", {}, ` · ${timeAgo(w.created_at)}`),
        w.note ? h("p", {}, w.note) : null)))) : null,
    status,
    ageSection(user, status, reload),
    personaSection,
    h("h2", {}, "Devices logged in"),
    h("ul.plain-list", {}, sessions.map((s) => h("li.row.spread", {},
      h("span", {}, h("span.device", {}, s.user_agent ? s.user_agent.slice(0, 60) : "Unknown device"),
        h("span.char-meta", {}, ` · ${s.ip || "?"} · last used ${timeAgo(s.last_seen_at)}`), s.current ? h("strong", {}, " · this device") : null),
      s.current ? null : h("button.btn.btn-small", { type: "button", "aria-label": `Log out ${s.user_agent || "device"}`, onclick: () => guarded(status, async () => { await del(`/api/v1/me/sessions/${s.id}`); await reload(); }) }, "Log out")))),
    h("h2", {}, "API tokens"),
    h("p.hint", {}, "For scripts and apps: send Authorization: Bearer <token>."),
    tokenShown,
    tokens.length ? h("ul.plain-list", {}, tokens.map((t) => h("li.row.spread", {},
      h("span", {}, h("strong", {}, t.name), h("span.char-meta", {}, ` · ${t.prefix}… · created ${timeAgo(t.created_at)}${t.last_used_at ? ` · used ${timeAgo(t.last_used_at)}` : ""}`)),
      h("button.btn.btn-small.btn-danger", { type: "button", "aria-label": `Revoke ${t.name}`, onclick: () => guarded(status, async () => { await del(`/api/v1/tokens/${t.id}`); await reload(); }) }, "Revoke"))))
      : h("p.empty", {}, "No tokens."),
    tokenForm,
    h("h2", {}, "Your data"),
    h("p.hint", {}, "One JSON file with your account, personas, characters (as cards), and every chat with all its replies and memories."),
    h("p", {}, h("a.btn", { href: "/api/v1/me/export", download: "" }, "Download my data")));
}

export async function adminPage(target) {
  if (!requireUser()) return;
  if (!["admin", "moderator"].includes(session.user.role)) {
    replace(target, h("h1", {}, "Admin"), h("p", {}, "This page is for moderators and admins."));
    return;
  }
  const [incidents, maintenances] = await Promise.all([
    get("/api/v2/incidents/unresolved.json"),
    get("/api/v2/scheduled-maintenances.json"),
  ]);
  const status = h("div", { "aria-live": "polite" });
  const reload = () => adminPage(target);
  const incidentForm = h("form.card", {
    onsubmit: (event) => {
      event.preventDefault();
      const v = formValues(incidentForm);
      guarded(status, async () => { await post("/api/v1/admin/incidents", { title: v.title, body: v.body, impact: v.impact }); await reload(); });
    },
  }, h("h3", {}, "Open an incident"),
  field("Title", { name: "title", required: true }),
  field("What users should know", { name: "body", kind: "textarea", rows: 2, required: true }),
  field("Impact", { name: "impact", kind: "select", value: "minor", options: [["none", "None"], ["minor", "Minor"], ["major", "Major"], ["critical", "Critical"]] }),
  h("button.btn.btn-primary", { type: "submit" }, "Open incident"));
  const now = new Date();
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const maintenanceForm = h("form.card", {
    onsubmit: (event) => {
      event.preventDefault();
      const v = formValues(maintenanceForm);
      guarded(status, async () => {
        await post("/api/v1/admin/maintenances", {
          title: v.title, body: v.body,
          scheduled_for: new Date(v.scheduled_for).toISOString(),
          scheduled_until: new Date(v.scheduled_until).toISOString(),
        });
        await reload();
      });
    },
  }, h("h3", {}, "Schedule maintenance"),
  field("Title", { name: "title", required: true }),
  field("Details", { name: "body", kind: "textarea", rows: 2 }),
  field("Starts", { name: "scheduled_for", kind: "datetime-local", value: local(new Date(now.getTime() + 3600_000)), required: true }),
  field("Ends", { name: "scheduled_until", kind: "datetime-local", value: local(new Date(now.getTime() + 7200_000)), required: true }),
  h("button.btn.btn-primary", { type: "submit" }, "Schedule"));
  const incidentItem = (incident) => {
    const form = h("form.inline-form", {
      onsubmit: (event) => {
        event.preventDefault();
        const v = formValues(form);
        guarded(status, async () => { await post(`/api/v1/admin/incidents/${incident.id}/updates`, { status: v.status, body: v.body }); await reload(); });
      },
    }, field("New state", { name: "status", kind: "select", value: "monitoring", options: ["investigating", "identified", "monitoring", "resolved"].map((s) => [s, s]) }),
    field("Update for users", { name: "body", required: true }),
    h("button.btn.btn-small", { type: "submit" }, "Post update"));
    return h("li.card", {}, h("strong", {}, incident.name), h("span.char-meta", {}, ` · ${incident.status} · ${incident.impact}`), form);
  };
  const maintenanceItem = (m) => h("li.card", {},
    h("strong", {}, m.name), h("span.char-meta", {}, ` · ${m.status} · ${new Date(m.scheduled_for).toLocaleString()} – ${new Date(m.scheduled_until).toLocaleString()}`),
    h("div.row", {}, ["in_progress", "verifying", "completed"].map((next) => h("button.btn.btn-small", {
      type: "button",
      onclick: () => guarded(status, async () => { await patch(`/api/v1/admin/maintenances/${m.id}`, { status: next }); await reload(); }),
    }, next.replace("_", " ")))));
  const openMaintenances = maintenances.scheduled_maintenances.filter((m) => m.status !== "completed");
  replace(target,
    h("h1", {}, "Admin"),
    h("p", {}, "What you post here shows on the ", h("a", { href: "/status" }, "status page"), " and in every user's banner."),
    status,
    h("h2", {}, "Open incidents"),
    incidents.incidents.length ? h("ul.plain-list", {}, incidents.incidents.map(incidentItem)) : h("p.empty", {}, "None."),
    incidentForm,
    h("h2", {}, "Maintenance"),
    openMaintenances.length ? h("ul.plain-list", {}, openMaintenances.map(maintenanceItem)) : h("p.empty", {}, "None scheduled."),
    maintenanceForm,
    session.user.role === "admin" ? usersSection() : null,
    session.user.role === "admin" ? capacitySection() : null);
}
