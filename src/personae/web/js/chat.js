// The chat itself (a 1:1 chat or a room): a live stream first, then the history.
import { ApiError, del, get, patch, post } from "./api.js";
import { appealButton, crisisNotice } from "./moderation.js";
import { avatar, h, replace } from "./dom.js";
import { errorBox } from "./errors.js";
import { loginPath, session } from "./app.js";
import { ratingBadge } from "./characters.js";
import { renderMarkdown } from "./markdown.js";
import { MemoryPanel } from "./memory.js";
import { FINAL, categoryWords, drawMessage } from "./message.js";
import { addPending, deliver, loadDraft, newClientId, pendingSends, removePending, saveDraft } from "./pending.js";
import { ROOM_EVENTS, RoomPanel } from "./room.js";
import { CallPanel } from "./call.js";
import { PushToTalk } from "./mic.js";
import { ReadAloud, SPEECH_EVENTS } from "./readaloud.js";
import { voiceInfo } from "./voice.js";

const WELLBEING_CHECK_MS = 60_000;
const AI_NOTICE = "This is an AI character, not a real person. Treat everything it says as fiction.";

// Replies are written by code point (the server counts characters, not UTF-16 units).
const chars = (text) => Array.from(text);

// How far along a reply is: waiting or queued, being written, finished.
const stage = (status) => (FINAL.has(status) ? 2 : status === "generating" ? 1 : 0);

// An answer read before the stream's latest news (a slow send, a retry) must not undo it:
// a message last changed earlier is older; at the same moment (the stream announces
// "generating" with the stored reply's time), one further along, or one with more of
// its text streamed in, is the newer.
function isOlder(message, shown) {
  const when = Date.parse(message.updated_at), shownWhen = Date.parse(shown.updated_at);
  if (when !== shownWhen) return when < shownWhen;
  if (stage(message.status) !== stage(shown.status)) return stage(message.status) < stage(shown.status);
  return message.status === shown.status && chars(message.content).length < chars(shown.content).length;
}

export async function chatPage(target, [chatId]) {
  const view = new ChatView(target, chatId);
  await view.open();
  return () => view.close();
}

class ChatView {
  constructor(target, chatId) {
    this.target = target;
    this.chatId = chatId;
    this.messages = new Map(); // position -> the message shown there
    this.queue = new Map(); // reply id -> {position, estimated_start_s}
    this.elements = new Map(); // message id -> its element
    this.buffer = []; // events that came before the history
    this.historyLoaded = false;
    this.refreshTimer = null;
  }

  async open() {
    this.chat = await get(`/api/v1/chats/${encodeURIComponent(this.chatId)}`);
    // A room (kind "room") has members and characters; its panel draws them.
    if (this.chat.kind === "room") this.room = new RoomPanel(this, await get(`/api/v1/rooms/${encodeURIComponent(this.chatId)}`));
    else this.character = await get(`/api/v1/characters/${this.chat.character_id}`).catch(() => null);
    this.memory = new MemoryPanel(this.chatId);
    // Voice controls only where the server has voice (GET /voices says installed).
    this.voice = await voiceInfo();
    if (this.voice.installed) this.readAloud = new ReadAloud(this);
    this.buildShell();
    this.memory.refresh();
    // The stream opens BEFORE the history is read, so no event falls between the two.
    this.openStream();
    await this.loadHistory();
    this.readAloud?.remember();
    await this.resendPending();
    this.listEl.removeAttribute("aria-busy");
    this.checkWellbeing();
    // The server measures the session from what is sent, in every tab alike.
    this.wellbeingTimer = setInterval(() => this.checkWellbeing(), WELLBEING_CHECK_MS);
  }

  close() {
    this.closed = true;
    if (this.source) this.source.close();
    clearTimeout(this.refreshTimer);
    clearInterval(this.wellbeingTimer);
    this.readAloud?.stop();
    this.mic?.close();
    this.call?.hangUp();
  }

  // --- well-being ---------------------------------------------------------------------

  async checkWellbeing() {
    try {
      this.drawWellbeing(await get("/api/v1/me/wellbeing"));
    } catch { /* only a suggestion: the next check tries again */ }
  }

  drawWellbeing(status) {
    this.wellbeingEl.hidden = !status.notice_due;
    replace(this.wellbeingEl, status.notice_due ? [
      h("p", {}, status.notice),
      h("button.btn.btn-small", {
        type: "button",
        onclick: () => this.act(async () => this.drawWellbeing(await post("/api/v1/me/wellbeing/dismiss"))),
      }, "Dismiss")] : null);
  }

  // --- the stream ---------------------------------------------------------------

  openStream() {
    this.source = new EventSource(`/api/v1/chats/${encodeURIComponent(this.chatId)}/events`);
    const voice = this.readAloud ? SPEECH_EVENTS : [];
    for (const name of ["token", "reply_state", "queue", "message", "error", ...(this.room ? ROOM_EVENTS : []), ...voice]) {
      this.source.addEventListener(name, (event) => {
        // The source's own "error" (the connection failed) has no data: onerror sees it.
        if (typeof event.data !== "string") return;
        const data = JSON.parse(event.data);
        // Who is here, typing, the room's settings: they do not wait for the history.
        if (ROOM_EVENTS.includes(name)) this.room.apply(name, data);
        else if (voice.includes(name)) this.readAloud.apply(name, data);
        else if (this.historyLoaded) this.apply(name, data);
        else this.buffer.push([name, data]);
      });
    }
    this.source.onopen = () => this.setLive(true);
    this.source.onerror = () => {
      // EventSource reconnects by itself and resumes with Last-Event-ID.
      this.setLive(false);
      if (this.source.readyState === EventSource.CLOSED && !this.closed) {
        // Closed for good (e.g. the session ended, or we left the room): check why, then try again.
        (this.room ? this.room.reload().then(() => get("/api/v1/me")) : get("/api/v1/me")).then(() => setTimeout(() => !this.closed && this.openStream(), 2000), (error) => {
          if (error instanceof ApiError && error.status === 401) this.showError(error);
          else if (this.room && error instanceof ApiError && error.status === 404) this.revoke("You are no longer in this room.");
          else setTimeout(() => !this.closed && this.openStream(), 5000);
        });
      }
    };
  }

  setLive(live) {
    this.liveEl.textContent = live ? "" : "Reconnecting… replies keep being written meanwhile.";
  }

  apply(name, data) {
    if (name === "token") this.applyToken(data);
    else if (name === "reply_state" || name === "message") {
      this.applyMessage(data);
      if (this.room && data.role === "assistant" && FINAL.has(data.status)) this.room.replyEnded();
      if (this.room && data.role === "user") this.room.notTyping(data.author_id);
    }
    else if (name === "queue") {
      this.queue.set(data.message_id, data);
      this.redrawById(data.message_id);
    } else if (name === "error") {
      this.redrawById(data.message_id);
    }
    // "Read replies aloud" starts on a new reply's first words.
    if (this.readAloud && ["token", "reply_state", "message"].includes(name)) this.readAloud.noticed(this.findById(data.message_id || data.id));
  }

  findById(id) {
    for (const message of this.messages.values()) if (message.id === id) return message;
    return null;
  }

  applyToken({ message_id: id, offset, text }) {
    const message = this.findById(id);
    if (!message) { this.scheduleRefresh(); return; }
    const current = chars(message.content);
    if (offset > current.length) { this.scheduleRefresh(); return; } // missed a piece
    message.content = current.slice(0, offset).join("") + text;
    if (message.status === "queued") { message.status = "generating"; this.queue.delete(id); this.redraw(message); return; }
    const el = this.elements.get(id);
    const textEl = el && el.querySelector(".msg-text");
    if (textEl) { textEl.replaceChildren(...renderMarkdown(message.content)); this.stickToBottom(); } else this.redraw(message);
  }

  applyMessage(message) {
    const shown = this.messages.get(message.position);
    if (shown && shown.id === message.id && isOlder(message, shown)) return;
    if (message.selected) {
      if (FINAL.has(message.status) || message.status === "generating") this.queue.delete(message.id);
      if (shown && shown.id !== message.id) this.elements.get(shown.id)?.remove();
      const previousLatest = this.messages.get(this.latestPosition());
      this.messages.set(message.position, message);
      this.redraw(message);
      // Only the latest reply offers regenerate: the one before loses it.
      if (previousLatest && previousLatest.position < message.position) this.redraw(previousLatest);
    } else if (shown && shown.id === message.id) {
      // Deleted, or another swipe chosen elsewhere: read the history again.
      this.scheduleRefresh();
    }
  }

  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.loadHistory(), 150);
  }

  // --- history -------------------------------------------------------------------

  async loadHistory() {
    const page = await get(`/api/v1/chats/${encodeURIComponent(this.chatId)}/messages?limit=200`);
    // Events that came while the page was read are newer than it: they are kept.
    const shown = new Map([...this.messages.values()].map((message) => [message.id, message]));
    this.messages.clear();
    for (const read of page.items) {
      const known = shown.get(read.id);
      const message = known && known.position === read.position && isOlder(read, known) ? known : read;
      this.messages.set(message.position, message);
    }
    this.historyLoaded = true;
    const buffered = this.buffer;
    this.buffer = [];
    for (const [name, data] of buffered) this.apply(name, data);
    this.redrawAll();
  }

  latestPosition() {
    return Math.max(-1, ...this.messages.keys());
  }

  // --- drawing --------------------------------------------------------------------

  buildShell() {
    const name = this.room ? this.chat.title : this.chat.character_name;
    // Busy until the history is read and pending sends are out (see open()).
    this.listEl = h("ol.messages", { "aria-label": `Messages ${this.room ? "in" : "with"} ${name}`, "aria-busy": "true" });
    this.liveEl = h("p.live-status", { role: "status" });
    this.statusEl = h("div.send-status", { "aria-live": "polite" });
    this.noticeEl = h("div.chat-notices", {});
    this.input = h("textarea#composer", {
      rows: 2, placeholder: `Message ${name}`, "aria-label": `Message ${name}`,
      oninput: () => { saveDraft(this.chatId, this.input.value); if (this.room) this.room.typed(); },
      onkeydown: (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); this.send(); }
      },
    });
    this.input.value = loadDraft(this.chatId);
    this.sendButton = h("button.btn.btn-primary.send", { type: "submit" }, "Send");
    this.mic = this.voice.installed && this.voice.transcription ? new PushToTalk({
      onText: (text) => this.heard(text), onError: (error) => this.showError(error), maxSeconds: this.voice.limits.audio_max_seconds,
    }) : null;
    const form = h("form.composer", { onsubmit: (event) => { event.preventDefault(); this.send(); } }, this.input, this.mic?.button, this.sendButton);
    this.titleEl = h("div.chat-title-line", {});
    // Always on screen, whatever the character says about itself.
    this.aiNoticeEl = h("p.ai-notice", { role: "note" }, this.chat.ai_notice || AI_NOTICE);
    this.wellbeingEl = h("div.wellbeing", { role: "status", hidden: true });
    const room = this.room;
    const chat = h("div.chat", {},
      h("header.chat-head", {},
        h("a.back", { href: "/chats", "aria-label": "Back to my chats" }, "‹"),
        room ? h("h1.room-title", {}, name) : h("h1", {}, h("a", { href: `/c/${this.chat.character_id}` }, name)),
        ratingBadge(this.chat.character_rating),
        this.personaName() ? h("span.char-meta.persona-line", {}, `as ${this.personaName()}`) : null,
        this.voiceTools(name)),
      this.titleEl,
      this.memory.el,
      this.liveEl,
      this.listEl,
      this.noticeEl,
      this.statusEl,
      // Kept on screen with the composer (it sticks to the bottom while the chat scrolls).
      h("div.chat-foot", {}, this.wellbeingEl,
        room ? [room.turnEl, room.typingEl, room.noteEl, h("div.room-controls", {}, room.pickerEl, room.autoEl)] : null,
        this.aiNoticeEl, form));
    // A room's panel comes first (folded, on a phone); on a desktop it stands beside the chat.
    replace(this.target, room ? h("div.room-layout", {}, room.el, chat) : chat);
    if (room) room.draw();
    this.drawTitle();
  }

  drawTitle() {
    replace(this.titleEl,
      // A room's title is its heading already.
      this.room ? null : h("span.chat-title", {}, this.chat.title),
      !this.room || this.room.isOwner
        ? h("button.btn.btn-small.btn-quiet", { type: "button", "aria-label": `Rename this ${this.room ? "room" : "chat"}`, onclick: () => this.rename() }, "Rename") : null);
  }

  // The head's voice controls: "Read replies aloud" and, in a one-to-one chat, a call.
  voiceTools(name) {
    if (!this.readAloud) return null;
    this.callButton = this.room || !this.voice.transcription ? null
      : h("button.btn.btn-small.call-button", { type: "button", "aria-label": `Call ${name}`, title: `Call ${name}: talk instead of typing` }, "Call");
    this.callButton?.addEventListener("click", () => this.startCall());
    return h("div.voice-tools", {}, this.readAloud.toggle, this.callButton);
  }

  startCall() {
    if (this.call) return;
    this.readAloud.stop();
    this.call = new CallPanel(this, () => { this.call = null; this.callButton.focus(); });
    this.call.open();
  }

  // Words heard by push-to-talk: into the text box, to be read and fixed before sending.
  heard(text) {
    const typed = this.input.value.trim();
    this.input.value = typed ? `${typed} ${text.trim()}` : text.trim();
    saveDraft(this.chatId, this.input.value);
    replace(this.statusEl);
    this.input.focus();
  }

  rename() {
    const input = h("input", { id: "chat-title-input", maxlength: 128, required: true });
    input.value = this.chat.title;
    const form = h("form.inline-form", {
      onsubmit: (event) => {
        event.preventDefault();
        const title = input.value.trim();
        if (!title) return;
        this.act(async () => {
          if (this.room) {
            this.room.room = { ...this.room.room, ...(await patch(`/api/v1/rooms/${encodeURIComponent(this.chatId)}`, { title })) };
            this.onRoomChanged();
          } else this.chat = await patch(`/api/v1/chats/${encodeURIComponent(this.chatId)}`, { title });
          this.drawTitle();
        });
      },
    }, h("div.field", {}, h("label", { for: "chat-title-input" }, this.room ? "Room title" : "Chat title"), input),
    h("button.btn.btn-small.btn-primary", { type: "submit" }, "Save title"),
    h("button.btn.btn-small", { type: "button", onclick: () => this.drawTitle() }, "Cancel"));
    replace(this.titleEl, form);
    input.focus();
  }

  redrawAll() {
    const positions = [...this.messages.keys()].sort((a, b) => a - b);
    this.elements.clear();
    replace(this.listEl, positions.map((p) => this.draw(this.messages.get(p))));
    this.drawPending();
    this.stickToBottom(true);
  }

  redrawById(id) {
    const message = this.findById(id);
    if (message) this.redraw(message);
  }

  redraw(message) {
    const old = this.elements.get(message.id);
    const fresh = this.draw(message);
    if (old && old.isConnected) old.replaceWith(fresh);
    else {
      // Put it in order by position.
      const after = [...this.listEl.children].find((el) => Number(el.dataset.position) > message.position);
      this.listEl.insertBefore(fresh, after || this.listEl.querySelector(".pending") || null);
    }
    this.stickToBottom();
  }

  draw(message) {
    const el = drawMessage(this, message);
    this.elements.set(message.id, el);
    return el;
  }

  // The room's title or settings changed (a `room` event, a rename).
  onRoomChanged() {
    this.chat.title = this.room.room.title;
    const heading = this.target.querySelector(".room-title");
    if (heading) heading.textContent = this.chat.title;
    const persona = this.target.querySelector(".persona-line");
    if (persona && this.personaName()) persona.textContent = `as ${this.personaName()}`;
    this.drawTitle();
    this.avatars = null;
  }

  // A room we are no longer in: say so, stop the stream for good, keep what is shown.
  revoke(words) {
    this.closed = true;
    if (this.source) this.source.close();
    this.setCanSend(false);
    this.liveEl.textContent = "";
    replace(this.statusEl, h("div.error-box.room-revoked", { role: "alert" },
      h("p.error-what", {}, words), h("p", {}, "You are no longer in this room, so nothing new shows here."),
      h("p", {}, h("a", { href: "/chats" }, "Back to my chats"))));
    if (this.room) this.room.el.hidden = true;
  }

  setCanSend(can) {
    const changed = this.input.disabled === can;
    this.input.disabled = !can;
    this.sendButton.disabled = !can;
    if (this.mic) this.mic.button.hidden = !can;
    // A viewer's (or a muted member's) messages offer only what reading allows.
    if (changed && this.historyLoaded) this.redrawAll();
  }

  // Who I am here: the chat's persona, or in a room my own member's (not the owner's).
  personaName() {
    return this.room ? this.room.mine()?.persona_name : this.chat.persona_name;
  }

  // Who wrote a message, as its bubble says.
  speaker(message) {
    if (this.room) return this.room.speaker(message);
    return message.role === "assistant" ? this.chat.character_name : this.chat.persona_name || "You";
  }

  // The avatar beside a message: the character's for its replies, the persona's (or
  // the account's) initial for the user's. Built once, copied for each message.
  avatarFor(message) {
    const isReply = message.role === "assistant";
    if (this.room) {
      const key = isReply ? `c:${message.character_id}` : `u:${message.author_id || "me"}`;
      this.avatars ||= {};
      this.avatars[key] ||= this.room.avatarOf(message);
      return this.avatars[key].cloneNode(true);
    }
    if (!this.avatars) {
      const me = this.chat.persona_name || session.user?.display_name || session.user?.username || "You";
      this.avatars = {
        reply: avatar(this.character || { name: this.chat.character_name }, "sm"),
        user: avatar({ name: me }, "sm"),
      };
    }
    return this.avatars[isReply ? "reply" : "user"].cloneNode(true);
  }

  // Goes on from the end of a reply, in the same message (POST .../continue).
  continueReply(message) {
    return this.act(async () => {
      const reply = await post(`/api/v1/messages/${message.id}/continue`);
      if (reply.queue) this.queue.set(reply.id, reply.queue);
      this.applyMessage(reply);
    });
  }

  regenerate(message) {
    return this.act(async () => {
      const reply = await post(`/api/v1/messages/${message.id}/swipes`);
      if (reply.queue) this.queue.set(reply.id, reply.queue);
      this.applyMessage(reply);
    });
  }

  edit(message, el) {
    const box = h("textarea", { rows: 3, "aria-label": "Edit message" });
    box.value = message.content;
    const save = () => this.act(async () => this.applyMessage(await patch(`/api/v1/messages/${message.id}`, { content: box.value })));
    replace(el.querySelector(".msg-text"), box,
      h("div.row", {},
        h("button.btn.btn-small.btn-primary", { type: "button", onclick: save }, "Save"),
        h("button.btn.btn-small", { type: "button", onclick: () => this.redraw(message) }, "Cancel")));
    box.focus();
  }

  async remove(message) {
    if (!confirm("Delete this message? It is hidden from the chat.")) return;
    await this.act(async () => { await del(`/api/v1/messages/${message.id}`); await this.loadHistory(); });
  }

  async act(action) {
    try {
      await action();
      replace(this.statusEl);
    } catch (error) {
      this.showError(error instanceof ApiError ? error : new ApiError(0, { detail: String(error) }));
    }
  }

  showError(error, retry) {
    const login = error.status === 401 ? loginPath() : null;
    replace(this.statusEl, errorBox(error, { retry, login }));
    this.statusEl.scrollIntoView({ block: "nearest" });
  }

  stickToBottom(force = false) {
    const scroller = document.scrollingElement;
    const near = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 160;
    if (force || near) scroller.scrollTop = scroller.scrollHeight;
  }

  // --- sending ----------------------------------------------------------------------

  drawPending() {
    this.listEl.querySelectorAll(".pending").forEach((el) => el.remove());
    for (const send of pendingSends(this.chatId)) {
      this.listEl.append(h("li.msg.msg-user.pending", { dataset: { clientId: send.client_id } },
        this.avatarFor({ role: "user" }),
        h("div.msg-body", {},
          h("div.msg-who", {}, "You"),
          h("div.msg-text", {}, renderMarkdown(send.content)),
          h("p.msg-state", {}, "Not sent yet: kept on this device."),
          h("div.msg-actions", {},
            h("button.btn.btn-small", { type: "button", onclick: () => this.deliver(send) }, "Retry"),
            h("button.btn.btn-small.btn-quiet", { type: "button", onclick: () => { removePending(send.client_id); this.drawPending(); } }, "Discard")))));
    }
  }

  async send() {
    const content = this.input.value.trim();
    if (!content) return;
    // The same text as a send still waiting keeps that send's client_id: never twice.
    const waiting = pendingSends(this.chatId).find((send) => send.content === content);
    const send = waiting || { chat_id: this.chatId, client_id: newClientId(), content, created_at: new Date().toISOString() };
    // In a room: the character picked to answer (manual mode needs one).
    if (this.room && !waiting) {
      send.respond_with = this.room.respondWith();
      if (this.room.room.turn_mode === "manual" && !send.respond_with) {
        this.showError(new ApiError(422, { code: "respond_with_required" }));
        this.room.picker.focus();
        return;
      }
    }
    saveDraft(this.chatId, this.input.value);
    addPending(send);
    await this.deliver(send);
  }

  async deliver(send) {
    this.sendButton.disabled = true;
    try {
      const accepted = await deliver(send);
      if (this.input.value.trim() === send.content) { this.input.value = ""; saveDraft(this.chatId, ""); }
      replace(this.statusEl);
      this.showModeration(accepted);
      if (accepted.reply?.queue) this.queue.set(accepted.reply.id, accepted.reply.queue);
      this.applyMessage(accepted.message);
      // A room's reply may wait for its turn (no reply yet): the stream brings it.
      if (accepted.reply) this.applyMessage(accepted.reply);
      this.checkWellbeing();
    } catch (error) {
      const problem = error instanceof ApiError ? error : new ApiError(0, { detail: String(error) });
      // Put the text back in the box if it was emptied meanwhile: it is never lost.
      if (!this.input.value.trim()) { this.input.value = send.content; saveDraft(this.chatId, send.content); }
      if (problem.code === "content_refused") this.showRefusal(problem, send);
      else this.showError(problem, problem.status === 401 ? null : () => this.deliver(send));
      if (typeof problem.problem.message === "object" && problem.problem.message) this.applyMessage(problem.problem.message);
    } finally {
      this.sendButton.disabled = Boolean(this.room && !this.room.canSend);
      this.drawPending();
    }
  }

  // A refused message: why (reason and category), what to do, and a review to ask for.
  showRefusal(error, send) {
    const category = error.problem.category;
    replace(this.statusEl, h("div.error-box.refusal", { role: "alert" },
      h("p.error-what", {}, error.problem.reason || "The content rules refused this message."),
      h("p.refusal-category", {}, `Category: ${categoryWords(category)} (${category})`),
      h("p", {}, error.detail),
      error.requestId ? h("p.error-ref", {}, `Reference: ${error.requestId}`) : null,
      h("div.row", {}, appealButton(error.problem.appeal, { category, content: send.content, chat_id: this.chatId }))));
    this.statusEl.scrollIntoView({ block: "nearest" });
  }

  // What moderation said of a sent message: warnings, and crisis resources (a notice
  // that stays until hidden, while the chat goes on).
  showModeration(accepted) {
    const warnings = accepted.warnings || [];
    const resources = accepted.crisis_resources || [];
    const shown = this.noticeEl.querySelector(".crisis-notice");
    const hide = (event) => event.target.closest(".crisis-notice").remove();
    replace(this.noticeEl,
      resources.length ? crisisNotice(resources, hide) : shown,
      warnings.map((w) => h("p.notice.notice-warning.content-warning", { role: "note" }, w.reason)));
    if (resources.length || warnings.length) this.noticeEl.scrollIntoView({ block: "nearest" });
  }

  async resendPending() {
    for (const send of pendingSends(this.chatId)) await this.deliver(send);
  }
}
