// Read-aloud of a chat's replies (docs/web.md, "Voice"): the speaker button asks the
// server to speak a reply (POST /messages/{id}/speech); each sentence's clip is
// announced on the chat's stream (`speech`), fetched, and played in order with no
// gap; `speech_queue` gives the place in line for a voice, `speech_done` the number
// of clips, `speech_failed` why it stopped. "Read replies aloud" speaks each new
// reply of this chat as it is written (kept per chat on this device).
import { ApiError, post } from "./api.js";
import { h } from "./dom.js";
import { AudioQueue, audioContext, decodeAudio } from "./voice.js";

export const SPEECH_EVENTS = ["speech", "speech_queue", "speech_done", "speech_failed"];
const FINAL = new Set(["complete", "stopped", "failed", "filtered"]);
const autoKey = (chatId) => `personae.readAloud.${chatId}`;

export class ReadAloud {
  constructor(view) {
    this.view = view;
    this.current = null; // the reply being read: {id, voiceKey, next, ready, total, place}
    this.player = new AudioQueue((playing) => this.onPlayer(playing));
    this.auto = localStorage.getItem(autoKey(view.chatId)) === "1";
    this.known = null; // the replies shown before (remember()): "read replies aloud" leaves them be
    this.retryWhenDone = null; // a reply the server would not speak until it was written
    this.toggle = h("button.btn.btn-small.read-aloud-toggle", { type: "button", onclick: () => this.setAuto(!this.auto) });
    this.drawToggle();
  }

  // --- what the page shows --------------------------------------------------------

  // "preparing" (asked, no sound yet), "queued" (waiting for a voice), "playing", or null.
  stateOf(id) {
    const current = this.current;
    if (!current || current.id !== id) return null;
    if (this.player.playing || current.started) return "playing";
    return current.place ? "queued" : "preparing";
  }

  // The speaker button of a reply (a stop button while it is read).
  button(message) {
    if (!message.content.trim()) return null;
    const state = this.stateOf(message.id);
    return h("button.btn.btn-small.speak", {
      type: "button", "aria-pressed": state ? "true" : "false",
      "aria-label": state ? "Stop reading aloud" : "Read aloud",
      title: state ? "Stop reading aloud" : "Read aloud",
      onclick: () => (state ? this.stop() : this.speak(message)),
    }, state ? "■ Stop" : "▶\uFE0E Read aloud");
  }

  stateLine(message) {
    const state = this.stateOf(message.id);
    if (!state) return null;
    const words = {
      preparing: "Getting the voice ready…",
      queued: `Waiting for a voice… place ${this.current.place}`,
      playing: "Reading aloud…",
    }[state];
    return h(`p.msg-state.speech-state.speech-${state}`, { role: "status" }, words);
  }

  setAuto(on) {
    if (on) audioContext(); // the click that turns it on lets the page play sound
    this.auto = on;
    localStorage.setItem(autoKey(this.view.chatId), on ? "1" : "0");
    this.remember();
    this.drawToggle();
  }

  // The replies shown now: "read replies aloud" reads only those that come after.
  remember() {
    this.known = new Set([...this.view.messages.values()].map((m) => m.id));
  }

  drawToggle() {
    this.toggle.setAttribute("aria-pressed", this.auto ? "true" : "false");
    this.toggle.textContent = this.auto ? "✓ Reading replies aloud" : "Read replies aloud";
    this.toggle.title = this.auto ? "New replies are read aloud as they are written: press to stop" : "Read each new reply aloud as it is written";
  }

  // --- reading ---------------------------------------------------------------------

  async speak(message) {
    this.stop();
    audioContext();
    const id = message.id;
    this.current = { id, voiceKey: null, next: 0, ready: new Map(), asked: new Set(), total: null, place: null, started: false };
    this.changed(id);
    try {
      const started = await post(`/api/v1/messages/${encodeURIComponent(id)}/speech`);
      if (this.current?.id !== id) return;
      this.current.voiceKey ||= started.voice_key;
      for (const clip of started.clips) this.clip({ ...clip, message_id: id, voice_key: started.voice_key });
      if (started.complete) this.done({ message_id: id, voice_key: started.voice_key, clips: started.clips.length });
    } catch (error) {
      if (this.current?.id !== id) return;
      this.current = null;
      this.changed(id);
      // A reply still being written may have nothing to say yet: read it once it is done.
      if (!FINAL.has(message.status) && ["reply_in_progress", "nothing_to_say"].includes(error.code)) this.retryWhenDone = id;
      else this.view.showError(error);
    }
  }

  stop() {
    const id = this.current?.id;
    this.current = null;
    this.player.stop();
    if (id) this.changed(id);
  }

  // A chat stream event of read-aloud.
  apply(name, data) {
    if (name === "speech") this.clip(data);
    else if (name === "speech_done") this.done(data);
    else if (!this.isCurrent(data)) return;
    else if (name === "speech_queue") { this.current.place = data.position; this.changed(data.message_id); }
    else if (name === "speech_failed") {
      this.stop();
      this.view.showError(new ApiError(0, { code: data.code, detail: data.detail }));
    }
  }

  // A reply changed (a token, a new state): what "read replies aloud" does with it.
  noticed(message) {
    if (!message || message.role !== "assistant") return;
    if (this.retryWhenDone === message.id && FINAL.has(message.status)) {
      this.retryWhenDone = null;
      if (message.status === "complete" || message.status === "stopped") this.speak(message);
      return;
    }
    if (!this.auto || !this.known) return;
    if (this.known.has(message.id) || !message.content.trim() || message.status === "queued") return;
    this.known.add(message.id);
    this.speak(message);
  }

  isCurrent(data) {
    const current = this.current;
    return Boolean(current && current.id === data.message_id && (!current.voiceKey || !data.voice_key || current.voiceKey === data.voice_key));
  }

  async clip(data) {
    if (!this.isCurrent(data)) return;
    const current = this.current;
    current.voiceKey ||= data.voice_key;
    if (data.index < current.next || current.asked.has(data.index)) return;
    current.asked.add(data.index);
    if (current.place) { current.place = null; this.changed(current.id); }
    try {
      const response = await fetch(data.url, { credentials: "same-origin" });
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
      const buffer = await decodeAudio(await response.arrayBuffer());
      if (this.current !== current) return;
      current.ready.set(data.index, buffer);
      this.flush();
    } catch (error) {
      if (this.current !== current) return;
      this.stop();
      this.view.showError(error instanceof ApiError ? error : new ApiError(0, { code: "audio_unplayable", detail: String(error) }));
    }
  }

  // Plays the clips that are next in order.
  flush() {
    const current = this.current;
    while (current.ready.has(current.next)) {
      this.player.play(current.ready.get(current.next));
      current.ready.delete(current.next);
      current.next += 1;
    }
    this.finishIfDone();
  }

  done(data) {
    if (!this.isCurrent(data)) return;
    this.current.total = data.clips;
    this.finishIfDone();
  }

  finishIfDone() {
    const current = this.current;
    if (current && current.total !== null && current.next >= current.total && !this.player.playing) {
      this.current = null;
      this.changed(current.id);
    }
  }

  onPlayer(playing) {
    if (!this.current) return;
    if (playing && !this.current.started) { this.current.started = true; this.changed(this.current.id); }
    if (!playing) this.finishIfDone();
  }

  // Redraws a reply, keeping the focus on its speaker button when it had it.
  changed(id) {
    const old = this.view.elements.get(id);
    const focused = Boolean(old && old.contains(document.activeElement) && document.activeElement.classList.contains("speak"));
    this.view.redrawById(id);
    if (focused) this.view.elements.get(id)?.querySelector(".speak")?.focus();
  }
}
