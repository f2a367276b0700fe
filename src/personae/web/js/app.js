// The web app's entry: the shell, routing by address, the notice banner, login.
import { api, ApiError, get, post } from "./api.js";
import { h, replace, field, formValues } from "./dom.js";
import { errorBox } from "./errors.js";
import { discoverPage, characterPage, editorPage } from "./characters.js";
import { chatPage } from "./chat.js";
import { chatsPage } from "./chatlist.js";
import { joinPage, newRoomPage } from "./rooms.js";
import { adminPage } from "./account.js";
import { settingsPage } from "./settings.js";
import { flushAllPending } from "./pending.js";
import { moderationPage } from "./moderators.js";
import { myReportsPage } from "./reports.js";

export const session = { user: undefined, suspendedUntil: null };

const ROUTES = [
  [/^\/$/, discoverPage, "Discover"],
  [/^\/login$/, loginPage, "Log in"],
  [/^\/register$/, registerPage, "Create an account"],
  [/^\/create$/, editorPage, "Create a character"],
  [/^\/c\/([^/]+)$/, characterPage, "Character"],
  [/^\/c\/([^/]+)\/edit$/, editorPage, "Edit character"],
  [/^\/chats$/, chatsPage, "My chats"],
  [/^\/chats\/([^/]+)$/, chatPage, "Chat"],
  [/^\/rooms\/new$/, newRoomPage, "New room"],
  [/^\/join\/([^/]+)$/, joinPage, "Join a room"],
  [/^\/settings$/, settingsPage, "Settings"],
  [/^\/account$/, settingsPage, "Settings"],
  [/^\/admin$/, adminPage, "Admin"],
  [/^\/moderation$/, moderationPage, "Moderation"],
  [/^\/reports$/, myReportsPage, "Your reports"],
];
// Addresses served by the server itself, never by this app.
const SERVER_PATHS = /^\/(api|status|healthz|readyz|metrics|docs|openapi\.json)(\/|$)/;

let cleanup = null;
const main = () => document.getElementById("main");

export function navigate(path, { replace: replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

export function loginPath() {
  return `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
}

export async function loadUser() {
  try {
    session.user = await get("/api/v1/me");
    session.suspendedUntil = null;
  } catch (error) {
    // A suspended account browses as a visitor; the banner says until when.
    const suspended = error instanceof ApiError && error.code === "account_suspended";
    if (!(error instanceof ApiError) || (error.status !== 401 && !suspended)) throw error;
    session.user = null;
    session.suspendedUntil = suspended ? error.problem.until || null : null;
  }
  renderNav();
  return session.user;
}

export async function render() {
  if (cleanup) { try { cleanup(); } catch { /* the old page is gone anyway */ } }
  cleanup = null;
  const path = location.pathname;
  const target = main();
  for (const [pattern, page, title] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    document.title = `${title} · Personae`;
    replace(target, h("p.loading", { role: "status" }, "Loading…"));
    try {
      if (session.user === undefined) await loadUser();
      cleanup = (await page(target, match.slice(1), { path })) || null;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        navigate(loginPath(), { replace: true });
        return;
      }
      replace(target, h("h1", {}, title), error instanceof ApiError ? errorBox(error, { retry: render }) : h("p", {}, String(error)));
      console.error(error);
    }
    renderNav();
    focusMain();
    refreshNotice();
    return;
  }
  document.title = "Not found · Personae";
  replace(target, h("h1", {}, "Nothing here"), h("p", {}, "This page does not exist. ", h("a", { href: "/" }, "Discover characters")));
}

function focusMain() {
  const heading = main().querySelector("h1");
  if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
}

export function renderNav() {
  const nav = document.getElementById("nav-links");
  if (!nav) return;
  const user = session.user;
  const link = (href, text) => h("a", { href, "aria-current": location.pathname === href ? "page" : null }, text);
  replace(nav,
    link("/", "Discover"),
    user ? link("/chats", "Chats") : null,
    user ? link("/create", "Create") : null,
    h("a", { href: "/status" }, "Status"),
    user && (user.role === "admin" || user.role === "moderator") ? link("/moderation", "Moderation") : null,
    user && (user.role === "admin" || user.role === "moderator") ? link("/admin", "Admin") : null,
    user ? link("/settings", user.display_name || user.username) : link("/login", "Log in"),
    session.suspendedUntil
      ? h("span.suspended-note", { role: "status" }, `Your account is suspended until ${new Date(session.suspendedUntil).toLocaleString()}.`)
      : null);
}

// --- the notice banner -----------------------------------------------------

let noticeTimer = null;

export async function refreshNotice() {
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(refreshNotice, 60_000);
  const banner = document.getElementById("notice");
  let notice;
  try {
    notice = await get("/api/v1/notice");
  } catch {
    return; // the banner is a courtesy; the page's own errors say what failed
  }
  if (!notice || notice.kind === "none") {
    banner.hidden = true;
    replace(banner);
    return;
  }
  // A busy or slow waiting room's message says the wait itself, in the server's words.
  banner.hidden = false;
  banner.className = `notice notice-${notice.level} notice-${notice.kind}`;
  replace(banner,
    h("strong", {}, notice.title), " ",
    h("span", {}, notice.message), " ",
    h("a", { href: notice.status_url || "/status" }, "Status page"));
}

// --- login and registration -------------------------------------------------

function nextPath() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

async function afterLogin() {
  await loadUser();
  await flushAllPending();
  navigate(nextPath(), { replace: true });
}

function authForm(target, { title, submitText, fields, submit, footer }) {
  const status = h("div", { "aria-live": "polite" });
  const form = h("form.card.narrow", {
    onsubmit: async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      replace(status);
      try {
        await submit(formValues(form));
        await afterLogin();
      } catch (error) {
        replace(status, errorBox(error instanceof ApiError ? error : new ApiError(0, {})));
        button.disabled = false;
      }
    },
  }, h("h1", {}, title), fields, status, h("button.btn.btn-primary", { type: "submit" }, submitText), footer);
  replace(target, form);
}

async function loginPage(target) {
  const reason = new URLSearchParams(location.search).get("next")
    ? h("p.hint", {}, "Log in to continue. Anything you typed is kept on this device and sent once you are back.") : null;
  authForm(target, {
    title: "Log in",
    submitText: "Log in",
    fields: [reason,
      field("Username", { name: "username", autocomplete: "username", required: true }),
      field("Password", { name: "password", kind: "password", autocomplete: "current-password", required: true })],
    submit: (values) => post("/api/v1/auth/login", values),
    footer: h("p", {}, "New here? ", h("a", { href: `/register${location.search}` }, "Create an account")),
  });
}

async function registerPage(target) {
  authForm(target, {
    title: "Create an account",
    submitText: "Create account",
    fields: [
      field("Username", { name: "username", autocomplete: "username", required: true, minlength: 3, maxlength: 32, hint: "3 to 32 letters, digits, _ . -" }),
      field("Display name (optional)", { name: "display_name", maxlength: 64 }),
      field("Password", { name: "password", kind: "password", autocomplete: "new-password", required: true, hint: "At least 10 characters; not a common password." })],
    submit: (values) => post("/api/v1/auth/register", { ...values, display_name: values.display_name || undefined }),
    footer: h("p", {}, "Have an account? ", h("a", { href: `/login${location.search}` }, "Log in")),
  });
}

export async function logout() {
  try { await post("/api/v1/auth/logout"); } catch { /* already logged out */ }
  session.user = null;
  navigate("/");
}

// --- start --------------------------------------------------------------------

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || link.target || link.hasAttribute("download") || event.defaultPrevented) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || SERVER_PATHS.test(url.pathname)) return;
  event.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);
window.addEventListener("online", refreshNotice);

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch(() => { /* the app works without it */ });
}

render();
export { api };
