// Push-to-talk: the microphone button of the composer. Hold it to talk (it sends
// when let go), or tap it to start and tap again to stop (the keyboard's Enter and
// Space do the same). The recording goes to POST /api/v1/speech/transcriptions and
// the words land in the text box, to be fixed and sent as typed text.
import { ApiError, api } from "./api.js";
import { h } from "./dom.js";

const HOLD_MS = 350; // a press longer than this is "hold to talk"; shorter is a tap
const TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4", "audio/webm"];
const EXTENSIONS = { "audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "m4a" };

// Why the microphone cannot be used, as an error errors.js explains.
export function microphoneError(error) {
  const code = !navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined" ? "microphone_unavailable"
    : error?.name === "NotAllowedError" || error?.name === "SecurityError" ? "microphone_denied"
      : error?.name === "NotFoundError" || error?.name === "OverconstrainedError" ? "microphone_missing"
        : "microphone_unavailable";
  return new ApiError(0, { code, detail: error ? String(error.message || error) : "" });
}

export class PushToTalk {
  // onText(text): the words heard; onError(ApiError); maxSeconds: the server's limit.
  constructor({ onText, onError, maxSeconds = 60 }) {
    this.onText = onText;
    this.onError = onError;
    this.maxSeconds = maxSeconds;
    this.state = "idle"; // idle, starting, recording, sending
    this.button = h("button.btn.mic", {
      type: "button",
      onpointerdown: (event) => this.pressed(event),
      onpointerup: (event) => this.released(event),
      onpointercancel: (event) => this.released(event),
      // A press from the keyboard (no pointer) toggles.
      onclick: (event) => { if (event.detail === 0) this.toggle(); },
      oncontextmenu: (event) => event.preventDefault(),
    });
    this.draw();
  }

  draw(seconds = 0) {
    const { button, state } = this;
    button.dataset.state = state;
    button.dataset.seconds = String(seconds);
    button.classList.toggle("recording", state === "recording");
    button.disabled = state === "sending";
    const label = {
      idle: "Talk: hold to record, or tap to start and stop",
      starting: "Starting the microphone…",
      recording: `Recording, ${seconds} s: let go or tap to stop`,
      sending: "Turning your words into text…",
    }[state];
    button.setAttribute("aria-label", label);
    button.title = label;
    button.textContent = state === "recording" ? `● ${seconds} s` : state === "sending" ? "…" : "Talk";
  }

  pressed(event) {
    if (event.button !== 0) return;
    event.preventDefault(); // no text selection, no focus steal from the box on a phone
    if (this.state === "recording") { this.finish(); return; }
    if (this.state !== "idle") return;
    this.pressedAt = performance.now();
    this.button.setPointerCapture?.(event.pointerId);
    this.start();
  }

  released() {
    if (this.pressedAt == null) return;
    const held = performance.now() - this.pressedAt;
    this.pressedAt = null;
    // Held: stop now (or as soon as the microphone has started). A tap: go on until the next tap.
    if (held >= HOLD_MS && this.state === "starting") this.stopWhenStarted = true;
    else if (held >= HOLD_MS) this.finish();
  }

  toggle() {
    if (this.state === "recording") this.finish();
    else if (this.state === "idle") this.start();
  }

  async start() {
    this.state = "starting";
    this.draw();
    let stream;
    try {
      if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") throw null;
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    } catch (error) {
      this.reset();
      this.onError(microphoneError(error));
      return;
    }
    const type = TYPES.find((t) => MediaRecorder.isTypeSupported(t)) || "";
    const recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    const chunks = [];
    recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
    recorder.onstop = () => {
      stream.getTracks().forEach((track) => track.stop());
      this.send(new Blob(chunks, { type: (recorder.mimeType || type || "audio/webm").split(";")[0] }));
    };
    this.recorder = recorder;
    this.startedAt = performance.now();
    recorder.start(250);
    this.state = "recording";
    this.draw();
    this.ticker = setInterval(() => {
      const seconds = Math.floor((performance.now() - this.startedAt) / 1000);
      this.draw(seconds);
      if (seconds >= this.maxSeconds) this.finish();
    }, 250);
    // The finger was lifted while the microphone was starting.
    if (this.stopWhenStarted) this.finish();
  }

  finish() {
    if (this.state !== "recording") return;
    clearInterval(this.ticker);
    this.stopWhenStarted = false;
    this.state = "sending";
    this.draw();
    this.recorder.stop(); // onstop sends it
  }

  async send(blob) {
    const form = new FormData();
    form.append("file", blob, `speech.${EXTENSIONS[blob.type] || "webm"}`);
    try {
      const heard = await api("POST", "/api/v1/speech/transcriptions", undefined, { form });
      this.onText(heard.text);
    } catch (error) {
      this.onError(error instanceof ApiError ? error : new ApiError(0, { detail: String(error) }));
    } finally {
      this.reset();
    }
  }

  reset() {
    clearInterval(this.ticker);
    this.stopWhenStarted = false;
    this.recorder = null;
    this.state = "idle";
    this.draw();
  }

  // Leaving the page: the microphone is let go, nothing is sent.
  close() {
    if (this.recorder && this.recorder.state !== "inactive") {
      this.recorder.onstop = () => this.recorder?.stream.getTracks().forEach((track) => track.stop());
      this.recorder.stop();
    }
    this.reset();
  }
}
