// Rooms outside the chat screen: "New room", accepting an invite (/join/{token}), the
// invite dialog, and the character search both forms use.
import { ApiError, del, get, post, query } from "./api.js";
import { avatar, field, h, replace } from "./dom.js";
import { errorBox } from "./errors.js";
import { loginPath, navigate, session } from "./app.js";

export const TURN_MODES = [
  ["natural", "Natural: those named answer first, then by talkativeness"],
  ["list", "List order: every character in turn"],
  ["random", "Random: one character at random"],
  ["manual", "Manual: you pick who answers"],
];
const EXPIRIES = [["3600", "1 hour"], ["86400", "1 day"], ["604800", "7 days"]];

const asProblem = (error) => (error instanceof ApiError ? error : new ApiError(0, { detail: String(error) }));

// A search over your own characters and the public ones; `pick(character)` is called
// with the one chosen. `exclude()` says which ids are already taken.
export function characterSearch({ label, pick, exclude = () => new Set() }) {
  const results = h("ul.room-search-results", { "aria-live": "polite" });
  const input = h("input", { type: "search", id: `room-search-${Math.random().toString(36).slice(2)}`, placeholder: "A name, a tagline…" });
  let timer = null;
  let asked = 0;
  const search = async () => {
    const q = input.value.trim();
    const ticket = ++asked;
    const [mine, everyone] = await Promise.all([
      get(`/api/v1/characters${query({ q, owner: "me", limit: 12 })}`).catch(() => ({ items: [] })),
      get(`/api/v1/characters${query({ q, limit: 12 })}`).catch(() => ({ items: [] })),
    ]);
    if (ticket !== asked) return; // a later search answered first
    const seen = new Map();
    for (const character of [...mine.items, ...everyone.items]) seen.set(character.id, character);
    const taken = exclude();
    const found = [...seen.values()].filter((c) => !taken.has(c.id));
    replace(results, found.length ? found.map((character) => h("li", {},
      avatar(character, "sm"),
      h("span.room-search-name", {}, character.name,
        character.owner_id === session.user?.id ? h("span.char-meta", {}, " (yours)") : null),
      h("button.btn.btn-small", {
        type: "button", "aria-label": `Add ${character.name}`,
        onclick: () => { pick(character); search(); },
      }, "Add"))) : h("li.empty", {}, q ? "No character matches." : "No characters to add."));
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 200); });
  search();
  return h("div.room-search", {}, h("div.field", {}, h("label", { for: input.id }, label), input), results);
}

// /rooms/new (and ?character=ID from a character's page): a title, the characters,
// the turn mode.
export async function newRoomPage(target) {
  if (!session.user) { navigate(loginPath(), { replace: true }); return; }
  const first = new URLSearchParams(location.search).get("character");
  const chosen = new Map();
  if (first) {
    const character = await get(`/api/v1/characters/${encodeURIComponent(first)}`).catch(() => null);
    if (character) chosen.set(character.id, character);
  }
  const status = h("div", { "aria-live": "polite" });
  const chosenEl = h("ul.room-chosen", { "aria-label": "Characters in the room" });
  const drawChosen = () => replace(chosenEl, chosen.size ? [...chosen.values()].map((character) => h("li", {},
    avatar(character, "sm"), h("span", {}, character.name),
    h("button.btn.btn-small.btn-quiet", {
      type: "button", "aria-label": `Remove ${character.name}`,
      onclick: () => { chosen.delete(character.id); drawChosen(); },
    }, "✕"))) : h("li.empty", {}, "No character yet: add at least one below."));
  drawChosen();
  const title = field("Room title", { name: "title", required: true, maxlength: 128, value: chosen.size ? `${[...chosen.values()][0].name} and friends` : "" });
  const mode = field("Who speaks next", { name: "turn_mode", kind: "select", value: "natural", options: TURN_MODES });
  const form = h("form.card.room-new", {
    onsubmit: async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      if (!chosen.size) { replace(status, h("p.error-box", { role: "alert" }, "Add at least one character.")); return; }
      button.disabled = true;
      try {
        const room = await post("/api/v1/rooms", {
          title: title.querySelector("input").value.trim(),
          character_ids: [...chosen.keys()],
          turn_mode: mode.querySelector("select").value,
        });
        navigate(`/chats/${room.id}`);
      } catch (error) {
        replace(status, errorBox(asProblem(error)));
        button.disabled = false;
      }
    },
  },
    h("h1", {}, "New room"),
    h("p.hint", {}, "A room is one conversation with several characters, and the people you invite."),
    title,
    h("h2", {}, "Characters"),
    chosenEl,
    characterSearch({
      label: "Find a character (yours or public)",
      pick: (character) => { chosen.set(character.id, character); drawChosen(); },
      exclude: () => new Set(chosen.keys()),
    }),
    mode,
    status,
    h("button.btn.btn-primary", { type: "submit" }, "Create room"));
  replace(target, form);
}

// /join/{token}: accept the invite (after logging in), then open the room.
export async function joinPage(target, [token]) {
  if (!session.user) { navigate(loginPath(), { replace: true }); return; }
  try {
    const room = await post(`/api/v1/invites/${encodeURIComponent(token)}/accept`);
    navigate(`/chats/${room.id}`, { replace: true });
  } catch (error) {
    replace(target,
      h("h1", {}, "This invite cannot be used"),
      errorBox(asProblem(error), { retry: () => joinPage(target, [token]) }),
      h("p", {}, h("a", { href: "/chats" }, "Back to my chats")));
  }
}

// The invite dialog of a room's owner: make a link (role, expiry, uses), copy it,
// and revoke the links made before.
export function openInvites(roomId) {
  const base = `/api/v1/rooms/${encodeURIComponent(roomId)}/invites`;
  const status = h("div", { "aria-live": "polite" });
  const made = h("div.invite-made", {});
  const list = h("ul.plain-list.invite-list", { "aria-label": "Invite links" });
  const role = field("They join as", { name: "role", kind: "select", value: "member", options: [["member", "Member: reads and writes"], ["viewer", "Viewer: reads only"]] });
  const expiry = field("The link expires in", { name: "expires_in_s", kind: "select", value: "86400", options: EXPIRIES });
  const uses = field("How many people may use it (empty: no limit)", { name: "max_uses", kind: "number", min: 1, max: 100 });
  const act = async (action) => {
    try { await action(); replace(status); } catch (error) { replace(status, errorBox(asProblem(error))); }
  };
  const refresh = () => act(async () => {
    const answer = await get(base);
    const items = Array.isArray(answer) ? answer : answer.items || [];
    const open = items.filter((invite) => !invite.revoked_at && Date.parse(invite.expires_at) > Date.now());
    replace(list, open.length ? open.map((invite) => h("li.invite-row", {},
      h("span", {}, `${invite.role === "viewer" ? "Viewer" : "Member"} link · expires ${new Date(invite.expires_at).toLocaleString()}`,
        invite.max_uses ? ` · used ${invite.uses ?? 0} of ${invite.max_uses}` : ""),
      h("button.btn.btn-small.btn-danger", {
        type: "button", onclick: () => act(async () => { await del(`${base}/${invite.id}`); await refresh(); }),
      }, "Revoke"))) : h("li.empty", {}, "No open invite links."));
  });
  const create = (event) => {
    event.preventDefault();
    act(async () => {
      const maxUses = uses.querySelector("input").value;
      const invite = await post(base, {
        role: role.querySelector("select").value,
        expires_in_s: Number(expiry.querySelector("select").value),
        max_uses: maxUses ? Number(maxUses) : undefined,
      });
      const link = h("input#invite-link", { readonly: true, "aria-label": "Invite link" });
      link.value = new URL(invite.url, location.origin).href;
      replace(made, h("p", {}, "Share this link. It is shown once; anyone with it can join until it expires."),
        h("div.row", {}, link, h("button.btn.btn-small", {
          type: "button",
          onclick: async (click) => {
            link.select();
            try { await navigator.clipboard.writeText(link.value); click.target.textContent = "Copied"; } catch { document.execCommand?.("copy"); }
          },
        }, "Copy link")));
      await refresh();
    });
  };
  const dialog = h("dialog.prompt-dialog.invite-dialog", { "aria-labelledby": "invite-heading" },
    h("h2#invite-heading", {}, "Invite people"),
    h("form", { onsubmit: create }, role, expiry, uses, h("button.btn.btn-primary", { type: "submit" }, "Create invite link")),
    made, status, h("h3", {}, "Links"), list,
    h("div.row", {}, h("button.btn", { type: "button", onclick: () => dialog.close() }, "Close")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  refresh();
  return dialog;
}
