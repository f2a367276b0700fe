// A tiny helper for building DOM without a library: h("tag#id.class", {attrs}, ...children).

export function h(spec, attrs = {}, ...children) {
  const [tagAndId, ...classes] = spec.split(".");
  const [tag, id] = tagAndId.split("#");
  const el = document.createElement(tag || "div");
  if (id) el.id = id;
  if (classes.length) el.className = classes.join(" ");
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name in el && typeof value !== "string") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let fieldCounter = 0;

// A labelled form field. kind: input type, "textarea" or "select" (options: [[value, label]]).
export function field(label, { name, kind = "text", value = "", hint, options, ...rest } = {}) {
  const id = `f-${name || "field"}-${++fieldCounter}`;
  let control;
  if (kind === "textarea") {
    control = h("textarea", { id, name, rows: rest.rows || 4, ...rest });
    control.value = value ?? "";
  } else if (kind === "select") {
    control = h("select", { id, name, ...rest },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  } else {
    control = h("input", { id, name, type: kind, ...rest });
    if (kind !== "file") control.value = value ?? "";
  }
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h("div.field", {},
    h("label", { for: id }, label),
    control,
    hint ? h("p.hint", { id: hintId }, hint) : null);
}

export function formValues(form) {
  const values = {};
  for (const el of form.elements) {
    if (el.name && el.type !== "file" && el.type !== "submit") values[el.name] = el.value;
  }
  return values;
}

export function timeAgo(iso) {
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return new Date(iso).toLocaleDateString();
}

// "1 chat", "2 chats", "0 chats": the count and its noun, singular only for one.
export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

// When something happened, short, for lists: "just now", "5 min", "3 h", "yesterday",
// a weekday within the week, else the date.
export function shortTime(iso, now = new Date()) {
  const then = new Date(iso);
  const minutes = Math.floor((now - then) / 60_000);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min`;
  const days = Math.round((startOfDay(now) - startOfDay(then)) / 86_400_000);
  if (days === 0) return `${Math.floor(minutes / 60)} h`;
  if (days === 1) return "yesterday";
  if (days < 7) return then.toLocaleDateString(undefined, { weekday: "long" });
  const sameYear = then.getFullYear() === now.getFullYear();
  return then.toLocaleDateString(undefined, sameYear ? { day: "numeric", month: "short" } : { dateStyle: "medium" });
}

function startOfDay(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
}

export function initials(name) {
  return (name || "?").trim().slice(0, 1).toUpperCase();
}

// What an avatar may be (the server's rule, checked again here for values stored
// before it): a picture stored on the server (by its URL), an uploaded picture as a
// base64 data: URL, or an https URL.
const SAFE_AVATAR = /^(\/api\/v1\/images\/[0-9A-Z]{26}\?size=\d{1,4}|data:image\/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/]*={0,2}|https:\/\/[^\s\\\u0000-\u001f\u007f-\u009f]+)$/;

export function safeAvatar(url) {
  return typeof url === "string" && SAFE_AVATAR.test(url) ? url : null;
}

// The one place that says where a character's picture is: its stored picture in the
// size that is sharp at `size` on a 2x screen (`avatar_urls`), else its `avatar` field.
export function avatarSource(character, size = "md") {
  if (!character) return null;
  const sizes = character.avatar_urls;
  const stored = sizes ? sizes[size === "sm" ? "64" : "256"] : null;
  return safeAvatar(stored) || safeAvatar(character.avatar);
}

// The avatar of a character (or a person: {name}): its picture, or its initial on a
// colour taken from its name.
export function avatar(character, size = "md") {
  const source = avatarSource(character, size);
  if (source) return h(`img.avatar.avatar-${size}`, { src: source, alt: "" });
  const name = character ? character.name : "?";
  let hue = 0;
  for (const ch of name) hue = (hue * 31 + ch.codePointAt(0)) % 360;
  const letter = h(`span.avatar.avatar-${size}.avatar-letter`, { "aria-hidden": "true" }, initials(name));
  // Set through the style object: the Content-Security-Policy refuses style attributes.
  letter.style.backgroundColor = `hsl(${hue} 45% 35%)`;
  return letter;
}
