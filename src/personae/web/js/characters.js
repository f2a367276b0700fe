// Discover, a character's page, and the character editor.
import { ApiError, api, del, get, patch, post, put, query } from "./api.js";
import { avatar, field, formValues, h, plural, replace } from "./dom.js";
import { errorBox } from "./errors.js";
import { renderMarkdown } from "./markdown.js";
import { loginPath, navigate, session } from "./app.js";
import { reportButton } from "./reports.js";
import { voiceInfo } from "./voice.js";
import { voicePicker } from "./voicepicker.js";

const AVATAR_MAX_CHARS = 400_000; // the API takes 512,000; the body limit is 1 MiB
const GREETING_SEPARATOR = /\n-{3,}\n/;

const RATINGS = [["general", "General: for everyone"], ["teen", "Teen: 13 and up"], ["mature", "Mature: confirmed adults (18+) only"]];

// A badge for the ratings that are not "general".
export function ratingBadge(rating) {
  if (rating === "mature") return h("span.label.label-mature", { title: "Rated mature: for accounts confirmed as 18 or older" }, "Mature 18+");
  if (rating === "teen") return h("span.label.label-teen", { title: "Rated teen: 13 and up" }, "Teen");
  return null;
}

// The average stars of a character's rated replies, for people and for screen readers.
function stars(average, count) {
  return h("span", { title: `Average ${average.toFixed(1)} of 4 stars from ${plural(count, "rating")}` }, `★ ${average.toFixed(1)} (${plural(count, "rating")})`);
}

function characterCard(character) {
  return h("li.char-card", {},
    h("a.char-link", { href: `/c/${character.id}` },
      avatar(character, "md"),
      h("span.char-text", {},
        h("span.char-name", {}, character.name, character.featured ? h("span.label.label-featured", {}, "Featured") : null, ratingBadge(character.rating)),
        h("span.char-tagline", {}, character.tagline || "\u00a0"),
        character.rating_count ? h("span.char-rating", {}, stars(character.rating_average, character.rating_count)) : null,
        h("span.char-meta", {}, `by ${character.owner_username} · ${plural(character.chat_count, "chat")}`))));
}

function grid(characters, empty) {
  return characters.length
    ? h("ul.char-grid", {}, characters.map(characterCard))
    : h("p.empty", {}, empty);
}

export async function discoverPage(target) {
  const params = new URLSearchParams(location.search);
  const q = params.get("q") || "";
  const tag = params.get("tag") || "";
  const sort = params.get("sort") || "popular";
  const searching = Boolean(q || tag);
  const [results, featured, trending, mine] = await Promise.all([
    get(`/api/v1/characters${query({ q, tag, sort, limit: 48 })}`),
    searching ? null : get(`/api/v1/characters${query({ featured: "true", sort: "popular", limit: 6 })}`),
    searching ? null : get(`/api/v1/characters${query({ sort: "trending", limit: 6 })}`),
    session.user && !searching ? get(`/api/v1/characters${query({ owner: "me", limit: 12 })}`) : null,
  ]);
  const tags = new Map();
  for (const character of results.items) for (const t of character.tags) tags.set(t.toLowerCase(), t);
  const form = h("form.search", {
    role: "search",
    onsubmit: (event) => {
      event.preventDefault();
      const values = formValues(form);
      navigate(`/${query({ q: values.q, tag, sort: values.sort })}`);
    },
  },
    field("Search characters", { name: "q", kind: "search", value: q, placeholder: "Name, tagline or description" }),
    field("Sort", { name: "sort", kind: "select", value: sort, options: [["popular", "Popular"], ["trending", "Trending this week"], ["rated", "Best rated"], ["new", "Newest"]] }),
    h("button.btn.btn-primary", { type: "submit" }, "Search"));
  const tagLinks = [...tags.values()].slice(0, 16).map((t) => h("a.tag", {
    href: `/${query({ q, tag: t === tag ? "" : t, sort })}`,
    "aria-current": t.toLowerCase() === tag.toLowerCase() ? "true" : null,
  }, `#${t}`));
  replace(target,
    h("h1", {}, "Discover"),
    form,
    tagLinks.length || tag ? h("nav.tags", { "aria-label": "Tags" }, tag && !tags.size ? h("a.tag", { href: "/", "aria-current": "true" }, `#${tag} ✕`) : null, tagLinks) : null,
    featured && featured.items.length ? h("section.featured", { "aria-labelledby": "featured-heading" },
      h("h2#featured-heading", {}, "Featured"), grid(featured.items, "")) : null,
    // Trending is worth its own row only when there is more to see below it.
    trending && results.items.length > trending.items.length ? [h("h2", {}, "Trending"), grid(trending.items, "")] : null,
    mine && mine.items.length ? [h("h2", {}, "Your characters"), grid(mine.items, "")] : null,
    h("h2", {}, searching ? "Results" : sort === "new" ? "Newest" : "All characters"),
    grid(results.items, searching ? "No character matches. Try other words or another tag." : "No characters yet. Create the first one!"),
    session.user ? h("p", {}, h("a.btn", { href: "/create" }, "Create a character")) : null);
}

export async function characterPage(target, [id]) {
  const [character, personas] = await Promise.all([
    get(`/api/v1/characters/${encodeURIComponent(id)}`),
    session.user ? get("/api/v1/personas").catch(() => []) : [],
  ]);
  const mine = session.user && session.user.id === character.owner_id;
  // The creator's own figures (nobody else can read them).
  const figures = mine ? await get("/api/v1/me/characters/stats").then((stats) => stats.items.find((s) => s.character_id === character.id)).catch(() => null) : null;
  const defaultPersona = personas.find((p) => p.is_default);
  const personaChoice = personas.length ? field("Chat as", {
    name: "persona_id", kind: "select", value: defaultPersona ? defaultPersona.id : "",
    options: [["", "Myself"], ...personas.map((p) => [p.id, p.name])],
  }) : null;
  const status = h("div", { "aria-live": "polite" });
  const persona = h("details.persona", {},
    h("summary", {}, personas.length ? "Or chat as someone new" : "Chat as a persona (optional)"),
    field("Your name in this chat", { name: "persona_name", maxlength: 64 }),
    field("About you", { name: "persona_description", kind: "textarea", rows: 2, maxlength: 4000 }));
  const start = async () => {
    if (!session.user) { navigate(loginPath()); return; }
    const name = persona.querySelector("[name=persona_name]").value.trim();
    const description = persona.querySelector("[name=persona_description]").value;
    const personaId = personaChoice ? personaChoice.querySelector("select").value : "";
    try {
      const chat = await post("/api/v1/chats", {
        character_id: character.id,
        persona: name ? { name, description } : undefined,
        persona_id: !name && personaId ? personaId : undefined,
      });
      navigate(`/chats/${chat.id}`);
    } catch (error) {
      replace(status, errorBox(error, { retry: start }));
    }
  };
  const staff = session.user && ["admin", "moderator"].includes(session.user.role);
  const toggleFeatured = async () => {
    try {
      if (character.featured) await del(`/api/v1/characters/${character.id}/featured`);
      else await put(`/api/v1/characters/${character.id}/featured`);
      await characterPage(target, [id]);
    } catch (error) {
      replace(status, errorBox(error, { retry: toggleFeatured }));
    }
  };
  const remove = async () => {
    if (!confirm(`Delete ${character.name}? Chats with it keep working.`)) return;
    try { await del(`/api/v1/characters/${character.id}`); navigate("/"); } catch (error) { replace(status, errorBox(error)); }
  };
  replace(target,
    h("article.character", {},
      h("header.char-head", {},
        avatar(character, "lg"),
        h("div", {},
          h("h1", {}, character.name),
          character.featured || character.rating !== "general" ? h("p.char-labels", {}, character.featured ? h("span.label.label-featured", {}, "Featured") : null, ratingBadge(character.rating)) : null,
          character.hidden ? h("p", {}, h("span.label.label-hidden", { title: "A moderator hid this character: only you (and moderators) see it" }, "Hidden by a moderator")) : null,
          character.tagline ? h("p.tagline", {}, character.tagline) : null,
          h("p.char-meta", {}, `by ${character.owner_username} · ${plural(character.chat_count, "chat")} · ${character.visibility}`),
          character.rating_count ? h("p.char-rating", {}, stars(character.rating_average, character.rating_count)) : null,
          figures ? h("p.char-figures", {}, h("strong", {}, "Your figures: "), `${plural(figures.chat_count, "chat")} · ${plural(figures.message_count, "message")} · ${figures.rating_count ? `average ${figures.rating_average.toFixed(1)} ★ from ${plural(figures.rating_count, "rating")}` : "no ratings yet"}`) : null,
          h("p.tags", {}, character.tags.map((t) => h("a.tag", { href: `/${query({ tag: t })}` }, `#${t}`))))),
      h("div.row", {},
        h("button.btn.btn-primary", { type: "button", onclick: start }, session.user ? "Start a chat" : "Log in to chat"),
        session.user ? h("a.btn", { href: `/rooms/new?character=${encodeURIComponent(character.id)}` }, "New room with this character") : null,
        mine ? h("a.btn", { href: `/c/${character.id}/edit` }, "Edit") : null,
        h("a.btn", { href: `/api/v1/characters/${character.id}/card.png`, download: `${character.name}.png` }, "Export card"),
        staff && (character.featured || character.visibility === "public")
          ? h("button.btn", { type: "button", "aria-pressed": character.featured ? "true" : "false", onclick: toggleFeatured }, character.featured ? "Unfeature" : "Feature")
          : null,
        mine || staff ? h("button.btn.btn-danger", { type: "button", onclick: remove }, "Delete") : null,
        mine ? null : reportButton("character", character.id, "Report character"),
        mine ? null : reportButton("user", character.owner_id, "Report creator")),
      session.user ? personaChoice : null,
      session.user ? persona : null,
      status,
      character.first_message ? [h("h2", {}, "Greeting"), h("blockquote.greeting", {}, renderMarkdown(character.first_message))] : null,
      character.description ? [h("h2", {}, "About"), h("p.prose", {}, character.description)] : null,
      character.scenario ? [h("h2", {}, "Scenario"), h("p.prose", {}, character.scenario)] : null,
      character.creator_notes ? [h("h2", {}, "Creator's notes"), h("p.prose", {}, character.creator_notes)] : null));
}

// --- the editor -------------------------------------------------------------------

function readAvatar(file) {
  // Drawn onto a canvas and re-encoded small, so the data: URL stays well under the body limit.
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => {
      URL.revokeObjectURL(url);
      // The server makes the 64, 256 and 512 px sizes from what it gets.
      for (const [size, quality] of [[512, 0.85], [384, 0.8], [256, 0.75], [128, 0.7]]) {
        const scale = Math.min(1, size / Math.max(img.width, img.height));
        const canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(img.width * scale));
        canvas.height = Math.max(1, Math.round(img.height * scale));
        canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
        const data = canvas.toDataURL("image/webp", quality);
        const dataUrl = data.startsWith("data:image/webp") ? data : canvas.toDataURL("image/jpeg", quality);
        if (dataUrl.length <= AVATAR_MAX_CHARS) { resolve(dataUrl); return; }
      }
      reject(new Error("This picture is too large even when shrunk."));
    };
    img.onerror = () => { URL.revokeObjectURL(url); reject(new Error("This file is not a picture the browser can read.")); };
    img.src = url;
  });
}

const TEXT_FIELDS = [
  ["tagline", "Tagline", "text", "One line shown in lists."],
  ["description", "Description / persona", "textarea", "Who the character is; the model reads this."],
  ["personality", "Personality", "textarea"],
  ["scenario", "Scenario", "textarea"],
  ["first_message", "Greeting", "textarea", "The first message of every chat."],
  ["alternate_greetings", "Alternate greetings", "textarea", "Separate greetings with a line of three dashes (---)."],
  ["example_dialogues", "Example dialogues", "textarea"],
  ["system_prompt", "System prompt", "textarea"],
  ["post_history_instructions", "Post-history instructions", "textarea"],
  ["creator_notes", "Creator's notes", "textarea", "Shown to people, not to the model."],
  ["group_only_greetings", "Group-only greetings", "textarea", "Separated by --- lines."],
];
// Fields most creators never touch: folded away under "More".
const ADVANCED = new Set(["system_prompt", "post_history_instructions", "group_only_greetings"]);
const SHORT_FIELDS = [["nickname", "Nickname"], ["creator", "Creator (card author)"], ["character_version", "Version"]];

export async function editorPage(target, [id]) {
  if (!session.user) { navigate(loginPath(), { replace: true }); return; }
  const [character, voices] = await Promise.all([id ? get(`/api/v1/characters/${encodeURIComponent(id)}`) : null, voiceInfo()]);
  // Without voice on the server there is no voice to pick (and none is sent: a saved one stays).
  const voice = voices.installed ? voicePicker(voices, character ? character.voice ?? null : null, () => formName()) : null;
  const value = (name) => (character ? character[name] : "");
  const listValue = (name) => (character ? character[name].join("\n---\n") : "");
  let avatarValue = character ? character.avatar : null;
  const status = h("div", { "aria-live": "polite" });
  const preview = h("div.avatar-preview", {});
  const showAvatar = () => replace(preview, avatar({ name: formName(), avatar: avatarValue }, "lg"),
    avatarValue ? h("button.btn.btn-small", { type: "button", onclick: () => { avatarValue = null; showAvatar(); } }, "Remove picture") : null);
  const avatarInput = field("Avatar picture", { name: "avatar_file", kind: "file", accept: "image/*", hint: "Shrunk to 512 pixels in your browser." });
  avatarInput.querySelector("input").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      avatarValue = await readAvatar(file);
      showAvatar();
      replace(status);
    } catch (error) {
      replace(status, h("p.error-box", { role: "alert" }, error.message));
    }
  });
  const form = h("form.editor", { onsubmit: (event) => { event.preventDefault(); save(); } },
    h("h1", {}, character ? `Edit ${character.name}` : "Create a character"),
    field("Name", { name: "name", value: value("name"), required: true, maxlength: 128 }),
    h("div.avatar-field", {}, preview, avatarInput),
    TEXT_FIELDS.filter(([name]) => !ADVANCED.has(name)).map(textField),
    field("Tags", { name: "tags", value: character ? character.tags.join(", ") : "", hint: "Separated by commas, up to 20." }),
    field("Visibility", { name: "visibility", kind: "select", value: value("visibility") || "public", options: [["public", "Public: listed for everyone"], ["unlisted", "Unlisted: anyone with the link"], ["private", "Private: only me"]] }),
    field("Content rating", { name: "rating", kind: "select", value: value("rating") || "general", options: RATINGS, hint: "Mature characters are hidden from discovery except for adults who turned them on, and only accounts confirmed as 18 or older can chat with them." }),
    field("Show the definition to others", { name: "definition_visible", kind: "checkbox", checked: Boolean(character && character.definition_visible), hint: "When on, people who chat with this character see its system prompt, description and lorebook when they look at a reply's prompt. Off: hidden." }),
    voice ? voice.el : null,
    h("details", {},
      h("summary", {}, "More: system prompt, card details, lorebook"),
      TEXT_FIELDS.filter(([name]) => ADVANCED.has(name)).map(textField),
      SHORT_FIELDS.map(([name, label]) => field(label, { name, value: value(name) })),
      field("Extensions (JSON)", { name: "extensions", kind: "textarea", rows: 3, value: JSON.stringify(character ? character.extensions : {}, null, 2) }),
      field("Lorebook (character_book JSON, empty for none)", { name: "character_book", kind: "textarea", rows: 3, value: character && character.character_book ? JSON.stringify(character.character_book, null, 2) : "" })),
    status,
    h("div.row.sticky-actions", {},
      h("button.btn.btn-primary", { type: "submit" }, character ? "Save" : "Create"),
      h("a.btn", { href: character ? `/c/${character.id}` : "/" }, "Cancel")));
  function textField([name, label, kind, hint]) {
    return field(label, {
      name, kind, hint, rows: kind === "textarea" ? 3 : undefined,
      value: name.endsWith("greetings") ? listValue(name) : value(name),
    });
  }
  function formName() { return form ? form.querySelector("[name=name]").value : value("name"); }

  async function save() {
    const values = formValues(form);
    const body = { name: values.name, visibility: values.visibility, rating: values.rating, avatar: avatarValue };
    for (const [name] of TEXT_FIELDS) {
      body[name] = name.endsWith("greetings")
        ? values[name].split(GREETING_SEPARATOR).map((s) => s.trim()).filter(Boolean)
        : values[name];
    }
    for (const [name] of SHORT_FIELDS) body[name] = values[name];
    body.definition_visible = form.querySelector("[name=definition_visible]").checked;
    body.tags = values.tags.split(",").map((t) => t.trim()).filter(Boolean);
    if (voice) {
      body.voice = voice.choice();
      if (body.voice instanceof Error) { replace(status, h("p.error-box", { role: "alert" }, `${body.voice.message} Nothing was saved.`)); return; }
      voice.stop();
    }
    try {
      body.extensions = values.extensions.trim() ? JSON.parse(values.extensions) : {};
      body.character_book = values.character_book.trim() ? JSON.parse(values.character_book) : null;
    } catch (error) {
      replace(status, h("p.error-box", { role: "alert" }, `Extensions and lorebook must be JSON: ${error.message}. Nothing was saved.`));
      return;
    }
    try {
      const saved = character
        ? await patch(`/api/v1/characters/${character.id}`, body)
        : await post("/api/v1/characters", body);
      navigate(`/c/${saved.id}`);
    } catch (error) {
      replace(status, errorBox(error, { retry: save }));
    }
  }

  const importer = character ? null : h("form.card.import", {
    onsubmit: async (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      try {
        const imported = await api("POST", "/api/v1/characters/import", undefined, { form: data });
        navigate(`/c/${imported.id}`);
      } catch (error) {
        replace(status, errorBox(error instanceof ApiError ? error : new ApiError(0, {})));
      }
    },
  },
    h("h2", {}, "Or import a card"),
    field("Character card (PNG, JSON or CHARX)", { name: "file", kind: "file", accept: ".png,.json,.charx", required: true }),
    h("button.btn", { type: "submit" }, "Import"));
  replace(target, form, importer);
  showAvatar();
}
