// The settings page: profile, password, personas (and each chat's), age, devices,
// API tokens, the data export and deleting the account. One column on a phone.
import { api, del, get, patch, post } from "./api.js";
import { field, formValues, h, replace, timeAgo } from "./dom.js";
import { errorBox } from "./errors.js";
import { loginPath, logout, navigate, renderNav, session } from "./app.js";
import { ageSection } from "./account.js";

const SECTIONS = [
  ["profile", "Profile"], ["password", "Password"], ["personas", "Personas"],
  ["age", "Age"], ["devices", "Devices"], ["tokens", "API tokens"], ["data", "Your data"],
  ["delete-account", "Delete account"],
];

// Run `action`, then say `done` (or what failed) in `status`, next to the form.
async function guarded(status, action, done) {
  replace(status);
  try {
    await action();
    if (done) replace(status, h("p.ok-note", { role: "status" }, done));
  } catch (error) {
    replace(status, errorBox(error));
  }
}

const statusBox = () => h("div.settings-status", { "aria-live": "polite" });

function section(id, title, ...children) {
  return h(`section#${id}.card.settings-section`, { "aria-labelledby": `${id}-heading` },
    h(`h2#${id}-heading`, {}, title), ...children);
}

function profileSection(user) {
  const status = statusBox();
  const form = h("form.inline-form", {
    onsubmit: (event) => {
      event.preventDefault();
      const name = formValues(form).display_name;
      guarded(status, async () => {
        session.user = { ...session.user, ...(await patch("/api/v1/me", { display_name: name })) };
        form.querySelector("[name=display_name]").value = session.user.display_name;
        renderNav();
      }, "Saved.");
    },
  }, field("Display name", { name: "display_name", value: user.display_name, required: true, maxlength: 64, hint: "Shown in the menu, and your name in new chats unless you pick a persona." }),
  h("button.btn", { type: "submit" }, "Save name"));
  return section("profile", "Profile",
    h("p", {}, "Username ", h("strong", {}, `@${user.username}`), ` · role: ${user.role}`),
    form, status,
    h("div.row", {}, h("button.btn", { type: "button", onclick: logout }, "Log out")));
}

function passwordSection() {
  const status = statusBox();
  const form = h("form.settings-form", {
    onsubmit: (event) => {
      event.preventDefault();
      const v = formValues(form);
      if (v.new_password !== v.repeat_password) {
        replace(status, h("p.error-what", { role: "alert" }, "The two new passwords differ; type the same one twice."));
        return;
      }
      guarded(status, async () => {
        const result = await post("/api/v1/me/password", { current_password: v.current_password, new_password: v.new_password });
        form.reset();
        const n = result.sessions_ended;
        replace(status, h("p.ok-note", { role: "status" }, `Password changed. ${n === 1 ? "1 other device was" : `${n} other devices were`} logged out; this one stays logged in.`));
      });
    },
  }, field("Current password", { name: "current_password", kind: "password", autocomplete: "current-password", required: true }),
  field("New password", { name: "new_password", kind: "password", autocomplete: "new-password", required: true, minlength: 10, hint: "At least 10 characters; not a common password, not your username." }),
  field("New password again", { name: "repeat_password", kind: "password", autocomplete: "new-password", required: true }),
  h("button.btn", { type: "submit" }, "Change password"));
  return section("password", "Password",
    h("p.hint", {}, "Changing it logs out every other device."), form, status);
}

function personaEditor(persona, status, reload) {
  const form = h("form.settings-form.persona-edit", {
    onsubmit: (event) => {
      event.preventDefault();
      const v = formValues(form);
      guarded(status, async () => { await patch(`/api/v1/personas/${persona.id}`, { name: v.name, description: v.description }); await reload(); });
    },
  }, field("Name", { name: "name", value: persona.name, required: true, maxlength: 64 }),
  field("About this persona", { name: "description", kind: "textarea", rows: 3, value: persona.description, maxlength: 4000 }),
  h("button.btn.btn-small", { type: "submit" }, "Save persona"));
  return h("details.persona-details", {}, h("summary", {}, `Edit ${persona.name}`), form);
}

function personaItem(persona, status, reload) {
  const act = (method, path, body) => guarded(status, async () => { await api(method, path, body); await reload(); });
  return h("li.persona-item", {},
    h("div.row.spread", {},
      h("span", {}, h("strong", {}, persona.name), persona.is_default ? h("span.char-meta", {}, " · default") : null,
        persona.description ? h("span.char-meta", {}, ` · ${persona.description.slice(0, 80)}`) : null),
      h("span.row", {},
        persona.is_default ? null : h("button.btn.btn-small", { type: "button", onclick: () => act("PATCH", `/api/v1/personas/${persona.id}`, { is_default: true }) }, "Make default"),
        h("button.btn.btn-small.btn-danger", {
          type: "button", "aria-label": `Delete persona ${persona.name}`,
          onclick: () => { if (confirm(`Delete the persona ${persona.name}? Chats that use it keep its name.`)) act("DELETE", `/api/v1/personas/${persona.id}`); },
        }, "Delete"))),
    personaEditor(persona, status, reload));
}

// Each recent chat with the persona it uses, and a choice of another one.
function chatPersonas(chats, personas, status) {
  if (!chats.length || !personas.length) return null;
  return [h("h3", {}, "Persona of each chat"),
    h("div.chat-persona-list", {}, chats.map((chat) => {
      const choice = field(`Persona in ${chat.title}`, {
        name: "persona_id", kind: "select", value: chat.persona_id || "",
        options: [["", `${chat.persona_name} (as started)`], ...personas.map((p) => [p.id, p.name])],
      });
      choice.querySelector("select").addEventListener("change", (event) => {
        const personaId = event.target.value;
        if (!personaId) return;
        guarded(status, () => patch(`/api/v1/chats/${chat.id}`, { persona_id: personaId }), `${chat.title}: persona changed; the next reply uses it.`);
      });
      return choice;
    }))];
}

function personasSection(personas, chats, reload) {
  const status = statusBox();
  const form = h("form.inline-form", {
    onsubmit: (event) => {
      event.preventDefault();
      const v = formValues(form);
      guarded(status, async () => {
        await post("/api/v1/personas", { name: v.name, description: v.description, is_default: !personas.length });
        await reload();
      });
    },
  }, field("Persona name", { name: "name", required: true, maxlength: 64 }),
  field("About this persona", { name: "description", maxlength: 4000 }),
  h("button.btn", { type: "submit" }, "Add persona"));
  return section("personas", "Personas",
    h("p.hint", {}, "Who you are in a chat: the character sees this name and description."),
    status,
    personas.length ? h("ul.plain-list", {}, personas.map((p) => personaItem(p, status, reload)))
      : h("p.empty", {}, "No personas yet: chats use your display name."),
    form,
    chatPersonas(chats, personas, status));
}

function devicesSection(sessions, reload) {
  const status = statusBox();
  const others = sessions.filter((s) => !s.current).length;
  const everywhere = async (includingThis) => {
    const ended = await del("/api/v1/me/sessions");
    if (includingThis) {
      await post("/api/v1/auth/logout").catch(() => null);
      session.user = null;
      navigate("/login", { replace: true });
      return;
    }
    await reload();
    replace(document.getElementById("devices-status"), h("p.ok-note", { role: "status" }, `${ended.sessions_ended} other ${ended.sessions_ended === 1 ? "device was" : "devices were"} logged out.`));
  };
  status.id = "devices-status";
  return section("devices", "Devices logged in",
    h("ul.plain-list", {}, sessions.map((s) => h("li.row.spread", {},
      h("span", {}, h("span.device", {}, s.device || "Unknown device"),
        h("span.char-meta", {}, ` · ${s.ip || "?"} · last used ${timeAgo(s.last_seen_at)}`), s.current ? h("strong", {}, " · this device") : null),
      s.current ? null : h("button.btn.btn-small", { type: "button", "aria-label": `Log out ${s.device || "device"}`, onclick: () => guarded(status, async () => { await del(`/api/v1/me/sessions/${s.id}`); await reload(); }) }, "Log out")))),
    h("div.row", {},
      h("button.btn", { type: "button", disabled: others === 0, onclick: () => guarded(status, () => everywhere(false)) }, "Log out all other devices"),
      h("button.btn.btn-danger", { type: "button", onclick: () => { if (confirm("Log out every device, this one too?")) guarded(status, () => everywhere(true)); } }, "Log out everywhere")),
    status);
}

function tokensSection(tokens, reload) {
  const status = statusBox();
  const shown = h("div#token-shown", { "aria-live": "polite" });
  const form = h("form.inline-form", {
    onsubmit: (event) => {
      event.preventDefault();
      guarded(status, async () => {
        const created = await post("/api/v1/tokens", { name: formValues(form).name });
        await reload();
        replace(document.getElementById("token-shown"), h("div.card.token-once", {},
          h("p", {}, h("strong", {}, "Your new token: copy it now, it is shown only once.")),
          h("code.token", {}, created.token)));
      });
    },
  }, field("Token name", { name: "name", required: true, maxlength: 64, placeholder: "e.g. my script" }),
  h("button.btn", { type: "submit" }, "Create token"));
  return section("tokens", "API tokens",
    h("p.hint", {}, "For scripts and apps: send Authorization: Bearer <token>."),
    shown,
    tokens.length ? h("ul.plain-list", {}, tokens.map((t) => h("li.row.spread", {},
      h("span", {}, h("strong", {}, t.name), h("span.char-meta", {}, ` · ${t.prefix}… · created ${timeAgo(t.created_at)}${t.last_used_at ? ` · used ${timeAgo(t.last_used_at)}` : ""}`)),
      h("button.btn.btn-small.btn-danger", { type: "button", "aria-label": `Revoke ${t.name}`, onclick: () => guarded(status, async () => { await del(`/api/v1/tokens/${t.id}`); await reload(); }) }, "Revoke"))))
      : h("p.empty", {}, "No tokens."),
    form, status);
}

const dataSection = () => section("data", "Your data",
  h("p.hint", {}, "One JSON file with your account, personas, characters (as cards), and every chat with all its replies and memories."),
  h("p", {}, h("a.btn", { href: "/api/v1/me/export", download: "" }, "Download my data")));

// Deleting: the export first, then the password (or the username typed) to confirm.
function deleteSection(user, target) {
  const status = statusBox();
  const form = h("form.settings-form", {
    onsubmit: (event) => {
      event.preventDefault();
      const v = formValues(form);
      if (!confirm("Delete your account and everything in it for good? This cannot be undone.")) return;
      guarded(status, async () => {
        const done = await api("DELETE", "/api/v1/me", { password: v.password || undefined, confirm: v.confirm || undefined });
        session.user = null;
        renderNav();
        const kept = done.characters_anonymised;
        replace(target, h("h1", {}, "Your account was deleted"),
          h("p", {}, `Your chats, personas and devices are gone. ${kept ? `${kept === 1 ? "1 public character stays" : `${kept} public characters stay`} without your name, for the people who chat with it.` : ""}`),
          h("p", {}, h("a.btn", { href: "/" }, "Back to Discover")));
      });
    },
  }, field("Your password", { name: "password", kind: "password", autocomplete: "current-password", hint: "Needed to confirm." }),
  field(`Type your username (${user.username}) if your account has no password`, { name: "confirm", autocomplete: "off" }),
  h("button.btn.btn-danger", { type: "submit" }, "Delete my account"));
  return section("delete-account", "Delete your account",
    h("p", {}, "First, ", h("a", { href: "/api/v1/me/export", download: "" }, "download your data"), ": once deleted, nothing can be brought back."),
    h("ul.deletion-effects", {},
      h("li", {}, "Deleted: your chats and every message, your personas, devices and API tokens, your private characters."),
      h("li", {}, "Your public characters that other people chat with stay, without your name, so their chats go on. The others are deleted."),
      h("li", {}, "Reports you filed stay with the moderators, without your name."),
      h("li", {}, "Your username becomes free for anyone to take.")),
    form, status);
}

export async function settingsPage(target) {
  if (!session.user) { navigate(loginPath(), { replace: true }); return; }
  const [sessions, tokens, personas, chats] = await Promise.all([
    get("/api/v1/me/sessions"), get("/api/v1/tokens"), get("/api/v1/personas"),
    get("/api/v1/chats?limit=20").then((page) => page.items).catch(() => [])]);
  const user = session.user;
  const reload = () => settingsPage(target);
  const ageStatus = statusBox();
  const warnings = user.warnings || [];
  replace(target,
    h("h1", {}, "Settings"),
    h("nav.settings-nav", { "aria-label": "Settings sections" },
      SECTIONS.map(([id, label]) => h("a", { href: `#${id}`, onclick: (event) => { event.preventDefault(); document.getElementById(id)?.scrollIntoView({ block: "start" }); } }, label))),
    warnings.length ? h("section.card.warnings", { "aria-labelledby": "warnings-heading" },
      h("h2#warnings-heading", {}, "Warnings from the moderators"),
      h("ul.plain-list", {}, warnings.map((w) => h("li", {},
        h("strong", {}, w.reason || "warning"), h("span.char-meta", {}, ` · ${timeAgo(w.created_at)}`),
        w.note ? h("p", {}, w.note) : null)))) : null,
    profileSection(user),
    passwordSection(),
    personasSection(personas, chats, reload),
    ageSection(user, ageStatus, reload), ageStatus,
    devicesSection(sessions, reload),
    tokensSection(tokens, reload),
    dataSection(),
    h("div.row", {}, h("a.btn", { href: "/reports" }, "Your reports"), h("a.btn", { href: "/status" }, "Service status")),
    deleteSection(user, target));
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView({ block: "start" });
}
