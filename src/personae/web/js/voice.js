// Voice in the app: whether the server has it (GET /api/v1/voices, read once), the one
// AudioContext everything plays through, and a queue that plays audio back to back.
// A server without voice answers installed=false: then no voice control is drawn.
import { ApiError, csrfToken, get } from "./api.js";

const NO_VOICE = { installed: false, transcription: false, engines: [], voices: [], default: null, limits: {} };

let info = null;

// What the server offers (docs/api.md, GET /voices). A failed read (no network, logged
// out) is not kept: the next page asks again. Never throws: no voice is the answer then.
export function voiceInfo() {
  info ||= get("/api/v1/voices").catch(() => { info = null; return NO_VOICE; });
  return info;
}

let context = null;

// The page's AudioContext, made (or woken) at the first use: call it from a click or
// a key press, as browsers start sound only after a gesture.
export function audioContext() {
  context ||= new AudioContext();
  if (context.state === "suspended") context.resume().catch(() => {});
  return context;
}

// An AudioBuffer of 16-bit little-endian mono PCM (what a call's `audio` frames carry).
export function pcm16Buffer(bytes, sampleRate) {
  const samples = new Int16Array(bytes, 0, Math.floor(bytes.byteLength / 2));
  const buffer = audioContext().createBuffer(1, Math.max(1, samples.length), sampleRate);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
  return buffer;
}

// A WAV (or any file the browser reads) as an AudioBuffer.
export const decodeAudio = (bytes) => audioContext().decodeAudioData(bytes);

// POSTs `body` as JSON and answers the audio it sends back (an ArrayBuffer);
// problem+json errors become ApiError, as api.js does for JSON answers.
export async function postForAudio(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { Accept: "audio/wav, application/problem+json", "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    });
  } catch (error) {
    throw new ApiError(0, { code: "network", detail: String(error) });
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    problem.request_id ||= response.headers.get("x-request-id");
    if (problem.retry_after == null && response.headers.get("retry-after")) problem.retry_after = Number(response.headers.get("retry-after"));
    throw new ApiError(response.status, problem);
  }
  return response.arrayBuffer();
}

// Plays AudioBuffers one after the other with no gap. `onchange(playing)` is called
// when it starts and when the last one has ended (or stop() cut it off).
export class AudioQueue {
  constructor(onchange = () => {}) {
    this.onchange = onchange;
    this.sources = new Set();
    this.endsAt = 0;
  }

  get playing() {
    return this.sources.size > 0;
  }

  play(buffer) {
    const ctx = audioContext();
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    const startAt = Math.max(ctx.currentTime + 0.02, this.endsAt);
    this.endsAt = startAt + buffer.duration;
    const wasPlaying = this.playing;
    this.sources.add(source);
    source.onended = () => {
      if (!this.sources.delete(source)) return;
      if (!this.playing) this.onchange(false);
    };
    source.start(startAt);
    if (!wasPlaying) this.onchange(true);
  }

  // Silence at once (a stop button, a barge-in).
  stop() {
    const was = this.playing;
    const sources = [...this.sources];
    this.sources.clear();
    this.endsAt = 0;
    for (const source of sources) {
      try { source.stop(); } catch { /* never started */ }
    }
    if (was) this.onchange(false);
  }
}
