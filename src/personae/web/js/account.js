// The age section of the settings page (settings.js has the rest) and the admin page
// (incidents, maintenance, users, capacity).
import { get, patch, post } from "./api.js";
import { field, formValues, h, replace } from "./dom.js";
import { errorBox } from "./errors.js";
import { loginPath, navigate, session } from "./app.js";
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
export function ageSection(user, status, reload) {
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
