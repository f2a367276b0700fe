// My chats: each chat with its character, each room with its characters and people.
import { get } from "./api.js";
import { avatar, h, plural, replace, shortTime } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

export async function chatsPage(target) {
  const chats = await get("/api/v1/chats?limit=100");
  replace(target,
    h("h1", {}, "My chats"),
    chats.items.length
      ? h("ul.chat-list", {}, chats.items.map((chat) => h("li", {}, chat.kind === "room" ? roomEntry(chat) : chatItem(chat))))
      : h("p.empty", {}, "No chats yet. ", h("a", { href: "/" }, "Find a character"), " and start one."),
    h("p", {}, h("a.btn.new-room", { href: "/rooms/new" }, "New room"), " with several characters, and people you invite."));
}

// One chat in the list: the character's avatar, the chat's title, the last message
// on one line, and when it was written.
function chatItem(chat) {
  const when = chat.last_message_at || chat.updated_at;
  const last = chat.last_message
    ? `${chat.last_message_role === "user" ? "You: " : ""}${chat.last_message}` : "No messages yet";
  return h("a.chat-item", { href: `/chats/${chat.id}` },
    avatar({ name: chat.character_name, avatar: chat.character_avatar, avatar_urls: chat.character_avatar_urls }, "sm"),
    h("span.chat-item-text", {},
      h("span.chat-item-head", {},
        h("span.chat-title", {}, chat.title || chat.character_name),
        h("time.chat-time", { datetime: when, title: new Date(when).toLocaleString() }, shortTime(when))),
      h("span.chat-character", {}, chat.character_name),
      h("span.chat-last", {}, renderMarkdown(last))));
}

// A room's line, drawn at once from the list, then again with its characters' faces
// and its people once GET /rooms/{id} answers (the list gives one character only).
function roomEntry(chat) {
  let item = roomItem(chat);
  get(`/api/v1/rooms/${encodeURIComponent(chat.id)}`).then((room) => {
    const fuller = roomItem({ ...chat, characters: room.characters, member_count: room.members.length, character_count: room.characters.length });
    item.replaceWith(fuller);
    item = fuller;
  }, () => { /* the line from the list stays */ });
  return item;
}

// A room in "My chats": its characters' avatars stacked, its title, how many people.
export function roomItem(chat) {
  const when = chat.last_message_at || chat.updated_at;
  const faces = (chat.characters || []).slice(0, 3);
  const who = chat.last_message_author || (chat.last_message_role === "user" ? "" : chat.character_name);
  const last = chat.last_message ? `${who ? `${who}: ` : ""}${chat.last_message}` : "No messages yet";
  const members = chat.member_count ?? chat.members?.length;
  return h("a.chat-item.room-item", { href: `/chats/${chat.id}` },
    h("span.room-faces", { "aria-hidden": "true" },
      faces.length ? faces.map((c) => avatar(c, "sm")) : avatar({ name: chat.character_name, avatar: chat.character_avatar, avatar_urls: chat.character_avatar_urls }, "sm"),
      h("span.room-badge", { title: "Group room" }, "👥")),
    h("span.chat-item-text", {},
      h("span.chat-item-head", {},
        h("span.chat-title", {}, chat.title),
        h("time.chat-time", { datetime: when, title: new Date(when).toLocaleString() }, shortTime(when))),
      h("span.chat-character", {}, "Room",
        members != null ? ` · ${plural(members, "person", "people")}` : "",
        chat.character_count != null ? ` · ${plural(chat.character_count, "character")}` : ""),
      h("span.chat-last", {}, renderMarkdown(last))));
}

