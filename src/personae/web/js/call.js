// Call mode (docs/web.md, "Voice"): a panel over the chat that talks with the
// character on the WebSocket /api/v1/chats/{id}/call. The microphone goes out as
// 16 kHz PCM16 frames (an AudioWorklet, or a ScriptProcessor where there is none);
// the character's speech comes back as an `audio` frame followed by one binary PCM16
// frame, played in order. The server hears when you stop talking, and when you talk
// over the character (`interrupted`) its voice stops at once.
import { ApiError } from "./api.js";
import { h, replace } from "./dom.js";
import { errorBox } from "./errors.js";
import { microphoneError } from "./mic.js";
import { CALL_SAMPLE_RATE, Downsampler } from "./pcm.js";
import { AudioQueue, audioContext, pcm16Buffer } from "./voice.js";

const STATES = {
  connecting: "Connecting…",
  listening: "Listening: talk whenever you like",
  hearing: "Hearing you…",
  thinking: "Thinking…",
  queued: "Waiting for a free voice…",
  speaking: "Speaking: talk to interrupt",
  ended: "The call has ended",
};

export class CallPanel {
  // view: the chat (ChatView); onClose: called once the panel is gone.
  constructor(view, onClose) {
    this.view = view;
    this.onClose = onClose;
    this.state = "connecting";
    this.player = new AudioQueue(() => this.drawState());
    this.lines = new Map(); // reply id -> its line in the transcript
    const name = view.chat.character_name;
    this.stateEl = h("p.call-state", { role: "status" });
    this.transcriptEl = h("ol.call-transcript", { "aria-label": "What was said", "aria-live": "polite" });
    this.errorEl = h("div.call-error", {});
    this.interruptButton = h("button.btn.call-interrupt", { type: "button", onclick: () => this.interrupt() }, "Interrupt");
    this.hangUpButton = h("button.btn.btn-danger.call-hang-up", { type: "button", onclick: () => this.hangUp() }, "Hang up");
    this.el = h("section.call-panel", { role: "dialog", "aria-modal": "true", "aria-labelledby": "call-heading", onkeydown: (event) => { if (event.key === "Escape") this.hangUp(); } },
      h("h2#call-heading", {}, `Call with ${name}`),
      this.stateEl, this.transcriptEl, this.errorEl,
      h("div.call-buttons", {}, this.interruptButton, this.hangUpButton));
  }

  async open() {
    document.body.append(this.el);
    this.drawState();
    this.hangUpButton.focus();
    audioContext(); // the click on Call lets the page play sound
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
    } catch (error) {
      this.fail(microphoneError(error));
      return;
    }
    if (this.closed) { this.release(); return; }
    await this.capture();
    this.connect();
  }

  // The microphone through a worklet (or a ScriptProcessor) into 16 kHz frames.
  async capture() {
    const ctx = audioContext();
    this.source = ctx.createMediaStreamSource(this.stream);
    const send = (frame) => this.sendAudio(frame);
    if (ctx.audioWorklet) {
      try {
        await ctx.audioWorklet.addModule("/js/call-capture.js");
        this.node = new AudioWorkletNode(ctx, "call-capture", { numberOfInputs: 1, numberOfOutputs: 0 });
        this.node.port.onmessage = (event) => send(event.data);
        this.source.connect(this.node);
        return;
      } catch { /* an older browser: the fallback below */ }
    }
    const downsampler = new Downsampler(ctx.sampleRate, send);
    this.node = ctx.createScriptProcessor(4096, 1, 1);
    this.node.onaudioprocess = (event) => downsampler.push(event.inputBuffer.getChannelData(0));
    // A ScriptProcessor runs only when connected to the output: through silence.
    this.mute = ctx.createGain();
    this.mute.gain.value = 0;
    this.source.connect(this.node);
    this.node.connect(this.mute);
    this.mute.connect(ctx.destination);
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.socket = new WebSocket(`${scheme}://${location.host}/api/v1/chats/${encodeURIComponent(this.view.chatId)}/call`);
    this.socket.binaryType = "arraybuffer";
    this.socket.onopen = () => this.socket.send(JSON.stringify({ type: "start", sample_rate: CALL_SAMPLE_RATE }));
    this.socket.onmessage = (event) => (typeof event.data === "string" ? this.onFrame(JSON.parse(event.data)) : this.onAudio(event.data));
    this.socket.onclose = (event) => this.onClosed(event);
  }

  sendAudio(frame) {
    if (this.ready && this.socket?.readyState === WebSocket.OPEN) this.socket.send(frame);
  }

  onFrame(frame) {
    const type = frame.type;
    if (type === "ready") { this.ready = true; this.setState("listening"); }
    else if (type === "listening") this.setState("listening");
    else if (type === "speech_started") this.setState("hearing");
    else if (type === "transcript") { this.say("you", "You", frame.text); this.setState("thinking"); }
    else if (type === "reply") this.replyId = frame.message_id;
    else if (type === "queue") { this.place = frame.position; this.setState("queued"); }
    else if (type === "audio") { this.expected = frame; this.setState("speaking"); }
    else if (type === "reply_done") this.setState("listening");
    else if (type === "interrupted") { this.player.stop(); this.expected = null; this.setState("listening"); }
    else if (type === "refused" || type === "error") {
      const problem = frame.problem || frame;
      this.showError(new ApiError(problem.status || 0, problem));
      if (type === "refused") this.setState("listening");
    }
  }

  // The PCM of the `audio` frame just before it.
  onAudio(bytes) {
    const header = this.expected;
    this.expected = null;
    if (!header) return;
    this.player.play(pcm16Buffer(bytes, header.sample_rate));
    if (header.text) this.say(`reply-${this.replyId}`, this.view.chat.character_name, header.text, true);
  }

  // A line of the transcript; a reply's sentences are added to its one line.
  say(key, who, text, append = false) {
    let line = append ? this.lines.get(key) : null;
    if (!line) {
      line = h(`li.call-line.call-${key === "you" ? "you" : "reply"}`, {}, h("strong", {}, `${who}: `), h("span", {}));
      if (append) this.lines.set(key, line);
      this.transcriptEl.append(line);
    }
    const words = line.querySelector("span");
    words.textContent = append && words.textContent ? `${words.textContent} ${text}` : text;
    line.scrollIntoView({ block: "nearest" });
  }

  setState(state) {
    this.state = state;
    this.drawState();
  }

  // What the panel says: "speaking" while the character's voice plays, else the state.
  drawState() {
    const state = this.player.playing && !this.closed ? "speaking" : this.state;
    this.el.dataset.state = state;
    this.stateEl.textContent = state === "queued" && this.place ? `${STATES.queued} place ${this.place}` : STATES[state];
    this.interruptButton.hidden = state !== "speaking";
    this.hangUpButton.textContent = state === "ended" ? "Close" : "Hang up";
  }

  interrupt() {
    this.player.stop();
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: "interrupt" }));
  }

  showError(error) {
    replace(this.errorEl, errorBox(error));
  }

  fail(error) {
    this.showError(error);
    this.release();
    this.setState("ended");
  }

  onClosed(event) {
    if (this.closed) return;
    this.release();
    this.setState("ended");
    // A close the server chose (4400 and up) came after an `error` frame, already shown.
    if (event.code !== 1000 && event.code < 4000 && !this.errorEl.childElementCount) {
      this.showError(new ApiError(0, { code: "network", detail: event.reason }));
    }
  }

  // Lets go of the microphone, the sound and the connection.
  release() {
    this.ready = false;
    this.player.stop();
    if (this.node) { this.node.disconnect(); this.node.port?.close?.(); this.node = null; }
    if (this.source) { this.source.disconnect(); this.source = null; }
    if (this.mute) { this.mute.disconnect(); this.mute = null; }
    if (this.stream) { this.stream.getTracks().forEach((track) => track.stop()); this.stream = null; }
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) {
      if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: "end" }));
      this.socket.close(1000);
    }
  }

  hangUp() {
    if (this.closed) return;
    this.closed = true;
    this.release();
    this.el.remove();
    this.onClose();
  }
}
