// What a room adds to the chat screen: who is in it (people, here or not; characters),
// who is typing, who speaks next, auto-mode, and the owner's controls. The chat view
// (chat.js) draws the messages; it hands the room's events to RoomPanel.apply.
import { ApiError, del, get, patch, post } from "./api.js";
import { avatar, h, plural, replace } from "./dom.js";
import { errorBox } from "./errors.js";
import { navigate, session } from "./app.js";
import { TURN_MODES, characterSearch, openInvites } from "./rooms.js";

export const ROOM_EVENTS = ["member", "room", "turn", "auto", "typing", "presence", "access_revoked"];
const TYPING_SHOWN_MS = 6000; // a typing line fades when no new `typing` event comes
const TYPING_SEND_MS = 3000; // we say we are typing at most this often
const MUTE_MS = 60 * 60 * 1000;
const REVOKED_WORDS = {
  removed: "The owner removed you from this room.",
  left: "You left this room.",
  room_deleted: "This room was deleted.",
};
const REASON_WORDS = { mention: "was named", talkative: "talkative", list: "list order", random: "at random", manual: "picked", auto: "auto-mode" };

const asProblem = (error) => (error instanceof ApiError ? error : new ApiError(0, { detail: String(error) }));

export class RoomPanel {
  constructor(view, room) {
    this.view = view;
    this.room = room;
    this.base = `/api/v1/rooms/${encodeURIComponent(room.id)}`;
    this.typing = new Map(); // user_id -> {name, until}
    this.lastTypingSent = 0;
    this.statusEl = h("div", { "aria-live": "polite" });
    this.membersEl = h("div.room-members", {});
    // On a phone the panel is folded under its summary; on a desktop it stands beside the chat.
    this.el = h("details.room-panel", { open: matchMedia("(min-width: 900px)").matches },
      h("summary", {}, h("span.room-summary", {})), this.statusEl, this.membersEl);
    this.typingEl = h("p.typing-line", { "aria-live": "polite" });
    this.turnEl = h("p.turn-line", { "aria-live": "polite" });
    this.autoEl = h("div.room-auto", {});
    this.pickerEl = h("div.who-answers", {});
    this.noteEl = h("p.room-note", { role: "note" });
  }

  get me() { return session.user?.id; }
  get isOwner() { return this.room.my_role === "owner"; }
  get canSend() { return ["owner", "member"].includes(this.room.my_role) && !this.mutedNow(); }

  mine() { return this.room.members.find((m) => m.user_id === this.me) || null; }

  mutedNow() {
    const mine = this.mine();
    return mine && mine.muted_until && Date.parse(mine.muted_until) > Date.now() ? mine.muted_until : null;
  }

  character(id) { return this.room.characters.find((c) => c.character_id === id) || null; }

  // Who wrote a message: the character (by character_id) of a reply; the author of a
  // person's message ("You" for mine).
  speaker(message) {
    if (message.role === "assistant") {
      return this.character(message.character_id)?.name || message.character_name || this.view.chat.character_name;
    }
    if (!message.author_id || message.author_id === this.me) return "You";
    const member = this.room.members.find((m) => m.user_id === message.author_id);
    return message.author_name || member?.persona_name || member?.display_name || member?.username || "Someone";
  }

  avatarOf(message) {
    if (message.role === "assistant") {
      const character = this.character(message.character_id);
      return avatar(character || { name: message.character_name || this.view.chat.character_name }, "sm");
    }
    const name = this.speaker(message) === "You" ? session.user?.display_name || session.user?.username || "You" : this.speaker(message);
    return avatar({ name }, "sm");
  }

  async act(action) {
    try {
      await action();
      replace(this.statusEl);
    } catch (error) {
      replace(this.statusEl, errorBox(asProblem(error)));
      this.el.open = true;
    }
  }

  async reload() {
    this.room = await get(this.base);
    this.draw();
  }

  // --- the stream's room events ------------------------------------------------------

  apply(name, data) {
    if (name === "typing") this.showTyping(data);
    else if (name === "presence") {
      const here = new Set(data.here || []);
      for (const member of this.room.members) member.here = here.has(member.user_id);
      this.draw();
    } else if (name === "member") this.act(() => this.reload());
    else if (name === "room") {
      Object.assign(this.room, data, { my_role: this.room.my_role, members: data.members || this.room.members });
      this.view.onRoomChanged();
      this.draw();
    } else if (name === "auto") {
      this.room.auto_turns_left = data.turns_left;
      this.room.auto_running = data.running;
      this.drawAuto();
    } else if (name === "turn") {
      this.turnEl.textContent = `${data.name || this.character(data.character_id)?.name || "A character"} speaks next${REASON_WORDS[data.reason] ? ` (${REASON_WORDS[data.reason]})` : ""}.`;
    } else if (name === "access_revoked") this.view.revoke(REVOKED_WORDS[data.reason] || "You are no longer in this room.");
  }

  // A reply that ends clears the "speaks next" line and, being a message, the typing.
  replyEnded() { this.turnEl.textContent = ""; }

  showTyping({ user_id: id, name }) {
    if (id === this.me) return;
    this.typing.set(id, { name, until: Date.now() + TYPING_SHOWN_MS });
    this.drawTyping();
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.drawTyping(), TYPING_SHOWN_MS + 50);
  }

  // Someone's message arrived: they are not typing any more.
  notTyping(userId) {
    if (this.typing.delete(userId)) this.drawTyping();
  }

  drawTyping() {
    const now = Date.now();
    for (const [id, who] of this.typing) if (who.until <= now) this.typing.delete(id);
    const names = [...this.typing.values()].map((who) => who.name);
    this.typingEl.textContent = !names.length ? ""
      : names.length === 1 ? `${names[0]} is typing…`
        : names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : `${plural(names.length, "person", "people")} are typing…`;
  }

  // Called as the composer changes: at most one POST every few seconds.
  typed() {
    if (!this.canSend || Date.now() - this.lastTypingSent < TYPING_SEND_MS) return;
    this.lastTypingSent = Date.now();
    post(`${this.base}/typing`).catch(() => { /* only a courtesy */ });
  }

  // --- drawing -------------------------------------------------------------------

  draw() {
    const here = this.room.members.filter((m) => m.here).length;
    replace(this.el.querySelector(".room-summary"),
      `${plural(this.room.members.length, "person", "people")} (${here} here) · ${plural(this.room.characters.length, "character")}`);
    replace(this.membersEl,
      h("h2", {}, "Characters"),
      h("ul.room-list.room-characters", {}, this.room.characters.map((c) => this.characterRow(c))),
      this.isOwner && !this.adding ? h("button.btn.btn-small", { type: "button", onclick: () => { this.adding = true; this.draw(); } }, "Add a character") : null,
      this.isOwner && this.adding ? [characterSearch({
        label: "Add a character (yours or public)",
        exclude: () => new Set(this.room.characters.map((c) => c.character_id)),
        pick: (character) => this.act(async () => {
          await post(`${this.base}/characters`, { character_id: character.id });
          this.adding = false;
          await this.reload();
        }),
      }), h("button.btn.btn-small", { type: "button", onclick: () => { this.adding = false; this.draw(); } }, "Done")] : null,
      h("h2", {}, "People"),
      h("ul.room-list.room-people", {}, this.room.members.map((m) => this.memberRow(m))),
      h("div.row", {},
        this.isOwner ? h("button.btn.btn-small", { type: "button", onclick: () => openInvites(this.room.id) }, "Invite people") : null,
        this.isOwner ? h("label.room-mode", {}, "Turn order ", this.modeSelect()) : h("span.char-meta", {}, `Turn order: ${this.room.turn_mode}`),
        // The owner cannot leave: deleting the room is their way out (docs/rooms.md).
        this.isOwner
          ? h("button.btn.btn-small.btn-danger", { type: "button", onclick: () => this.deleteRoom() }, "Delete room")
          : h("button.btn.btn-small.btn-danger", { type: "button", onclick: () => this.leave() }, "Leave room")));
    this.drawAuto();
    this.drawPicker();
    this.drawNote();
  }

  characterRow(character) {
    const count = this.room.characters.length;
    return h("li", {},
      avatar(character, "sm"),
      h("span.room-name", {}, character.name, character.description_short ? h("span.room-sub", {}, character.description_short) : null),
      this.canSend ? h("button.btn.btn-small", {
        type: "button", "aria-label": `Ask ${character.name} to speak now`,
        onclick: () => this.act(() => post(`${this.base}/turns`, { character_id: character.character_id })),
      }, "Speak") : null,
      this.isOwner && count > 1 ? h("button.btn.btn-small.btn-quiet", {
        type: "button", "aria-label": `Remove ${character.name} from the room`,
        onclick: () => this.act(async () => { await del(`${this.base}/characters/${character.character_id}`); await this.reload(); }),
      }, "✕") : null);
  }

  memberRow(member) {
    const name = member.persona_name || member.display_name || member.username;
    const muted = member.muted_until && Date.parse(member.muted_until) > Date.now();
    const others = this.isOwner && member.user_id !== this.me && member.role !== "owner";
    return h(`li.member${member.here ? ".member-here" : ""}`, { dataset: { userId: member.user_id } },
      h("span.presence-dot", { title: member.here ? "Here now" : "Away", "aria-hidden": "true" }),
      avatar({ name }, "sm"),
      h("span.room-name", {}, name, member.user_id === this.me ? " (you)" : "",
        h("span.room-sub", {}, `${member.role}${member.here ? " · here" : ""}${muted ? ` · muted until ${new Date(member.muted_until).toLocaleTimeString()}` : ""}`)),
      member.user_id === this.me ? h("button.btn.btn-small.btn-quiet", {
        type: "button", "aria-label": "Change your name in this room", onclick: () => this.renameMe(),
      }, "Rename me") : null,
      others ? h("button.btn.btn-small.btn-quiet", {
        type: "button", "aria-label": `Make ${name} a ${member.role === "viewer" ? "member" : "viewer"}`,
        onclick: () => this.act(async () => {
          await patch(`${this.base}/members/${member.user_id}`, { role: member.role === "viewer" ? "member" : "viewer" });
          await this.reload();
        }),
      }, member.role === "viewer" ? "Let write" : "Read only") : null,
      others ? h("button.btn.btn-small.btn-quiet", {
        type: "button", "aria-label": `${muted ? "Unmute" : "Mute"} ${name}`,
        onclick: () => this.act(async () => {
          await patch(`${this.base}/members/${member.user_id}`, { muted_until: muted ? null : new Date(Date.now() + MUTE_MS).toISOString() });
          await this.reload();
        }),
      }, muted ? "Unmute" : "Mute 1 h") : null,
      others ? h("button.btn.btn-small.btn-danger", {
        type: "button", "aria-label": `Remove ${name} from the room`,
        onclick: () => {
          if (!confirm(`Remove ${name} from this room? They lose access at once.`)) return;
          this.act(async () => { await del(`${this.base}/members/${member.user_id}`); await this.reload(); });
        },
      }, "Remove") : null);
  }

  // Your persona in this room is yours alone (PATCH /rooms/{id}/members/me).
  renameMe() {
    const name = prompt("Your name in this room", this.mine()?.persona_name || "");
    if (!name || !name.trim()) return;
    this.act(async () => {
      this.room = { ...this.room, ...(await patch(`${this.base}/members/me`, { persona_name: name.trim() })) };
      this.draw();
      this.view.onRoomChanged();
    });
  }

  modeSelect() {
    const select = h("select", {
      "aria-label": "Turn order",
      onchange: () => this.act(async () => { this.room = { ...this.room, ...(await patch(this.base, { turn_mode: select.value })) }; this.draw(); }),
    }, TURN_MODES.map(([value, text]) => h("option", { value, selected: value === this.room.turn_mode }, text.split(":")[0])));
    return select;
  }

  // Auto-mode: the characters carry on among themselves for up to N replies.
  drawAuto() {
    const running = this.room.auto_running ?? this.room.auto_turns_left > 0;
    if (!this.canSend) { replace(this.autoEl); return; }
    if (running) {
      replace(this.autoEl, h("span.auto-state", { role: "status" }, `Auto-mode: ${plural(this.room.auto_turns_left, "turn")} left`),
        h("button.btn.btn-small", { type: "button", onclick: () => this.act(async () => this.apply("auto", await del(`${this.base}/auto`) || { turns_left: 0, running: false })) }, "Stop auto-mode"));
      return;
    }
    const turns = h("input#auto-turns", { type: "number", min: 1, max: 50, value: "4" });
    replace(this.autoEl, h("form.auto-form", {
      onsubmit: (event) => {
        event.preventDefault();
        this.act(async () => {
          await post(`${this.base}/auto`, { turns: Number(turns.value) });
          this.apply("auto", { turns_left: Number(turns.value), running: true });
        });
      },
    }, h("label", { for: "auto-turns" }, "Let them talk for"), turns, h("span", {}, "turns"),
    h("button.btn.btn-small", { type: "submit" }, "Start auto-mode")));
  }

  // Who answers the next message: the room's turn order, or one character (required in manual mode).
  drawPicker() {
    const manual = this.room.turn_mode === "manual";
    const previous = this.picker?.value;
    this.picker = h("select#who-answers", { "aria-label": "Who answers", required: manual },
      h("option", { value: "" }, manual ? "Pick who answers…" : `Turn order (${this.room.turn_mode})`),
      this.room.characters.map((c) => h("option", { value: c.character_id }, c.name)));
    if (previous && this.character(previous)) this.picker.value = previous;
    replace(this.pickerEl, h("label", { for: "who-answers" }, "Who answers"), this.picker);
  }

  // What the next message asks for: {respond_with} when a character is picked.
  respondWith() { return this.picker?.value || undefined; }

  drawNote() {
    const role = this.room.my_role;
    const muted = this.mutedNow();
    this.noteEl.textContent = role === "viewer" ? "You are a viewer in this room: you can read along, not write."
      : muted ? `The owner muted you until ${new Date(muted).toLocaleString()}.` : "";
    this.view.setCanSend(this.canSend);
  }

  async deleteRoom() {
    if (!confirm("Delete this room for everybody? Its messages go with it.")) return;
    await this.act(async () => {
      await del(`/api/v1/chats/${encodeURIComponent(this.room.id)}`);
      this.view.revoke(REVOKED_WORDS.room_deleted);
      navigate("/chats");
    });
  }

  async leave() {
    if (!confirm("Leave this room? You need a new invite to come back.")) return;
    await this.act(async () => {
      await post(`${this.base}/leave`);
      this.view.revoke(REVOKED_WORDS.left);
    });
  }
}
