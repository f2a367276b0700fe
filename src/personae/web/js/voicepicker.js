// The character editor's voice: which engine's voice, its speed, a blend with other
// voices where the engine mixes them, and "Hear it" (POST /api/v1/voices/sample).
// Saved as the character's `voice` (null: the server's default voice).
import { ApiError } from "./api.js";
import { field, h, replace } from "./dom.js";
import { errorBox } from "./errors.js";
import { AudioQueue, decodeAudio, postForAudio } from "./voice.js";

const MAX_BLEND = 3;
const SAMPLE_MAX_CHARS = 300;
let pickerCounter = 0;

// info: GET /voices; current: the character's voice or null; nameOf(): the name typed.
export function voicePicker(info, current, nameOf) {
  const id = `voice-${++pickerCounter}`;
  const voices = info.voices;
  const engines = new Map(info.engines.map((engine) => [engine.name, engine]));
  const indexOf = (choice) => (choice ? voices.findIndex((v) => v.engine === choice.engine && v.id === choice.voice) : -1);
  const select = h(`select#${id}`, { name: "voice_pick" },
    h("option", { value: "" }, `The server's default voice${info.default ? ` (${info.default.voice})` : ""}`),
    info.engines.map((engine) => h("optgroup", { label: engine.ready ? engine.name : `${engine.name} (not downloaded on this server)` },
      voices.map((voice, i) => [voice, i]).filter(([voice]) => voice.engine === engine.name)
        .map(([voice, i]) => h("option", { value: String(i) }, `${voice.name} (${voice.language})${voice.description ? `: ${voice.description}` : ""}`)))));
  select.value = String(indexOf(current) >= 0 ? indexOf(current) : "");
  const speed = field("Speed", { name: "voice_speed", kind: "range", min: 0.5, max: 2, step: 0.05, value: String(current?.speed ?? 1) });
  const speedInput = speed.querySelector("input");
  const speedShown = h("output.voice-speed-value", { for: speedInput.id }, "");
  speed.querySelector("label").append(" ", speedShown);
  const blendRows = h("div.voice-blend-rows", {});
  const addBlend = h("button.btn.btn-small", { type: "button", onclick: () => { addRow(); drawBlend(); } }, "Mix in another voice");
  const blend = h("div.voice-blend", {},
    h("p.hint", {}, "This engine can mix voices: each one mixed in takes its share, and the chosen voice keeps the rest."),
    blendRows, addBlend);
  const status = h("div.voice-status", { "aria-live": "polite" });
  const player = new AudioQueue((playing) => {
    hear.textContent = playing ? "Playing…" : "Hear it";
    hear.dataset.state = playing ? "playing" : "idle";
  });
  const hear = h("button.btn.voice-hear", { type: "button", onclick: () => sample() }, "Hear it");
  const el = h("fieldset.voice-field", {},
    h("legend", {}, "Voice"),
    h("div.field", {}, h("label", { for: id }, "Voice"), select,
      h("p.hint", {}, "How the character sounds when a reply is read aloud and in calls.")),
    speed, blend, h("div.row", {}, hear), status);

  const chosen = () => (select.value === "" ? null : voices[Number(select.value)]);

  function addRow(part = null) {
    const voice = chosen();
    const others = voices.filter((v) => v.engine === voice.engine && v.id !== voice.id);
    const pick = field("Mix in", { name: "blend_voice", kind: "select", value: part?.voice ?? others[0]?.id, options: others.map((v) => [v.id, v.name]) });
    const weight = field("Share", { name: "blend_weight", kind: "range", min: 0.05, max: 0.95, step: 0.05, value: String(part?.weight ?? 0.3) });
    const shown = h("output", {}, "");
    const weightInput = weight.querySelector("input");
    const show = () => { shown.textContent = `${Math.round(Number(weightInput.value) * 100)}%`; };
    weightInput.addEventListener("input", show);
    weight.querySelector("label").append(" ", shown);
    show();
    const row = h("div.voice-blend-row", {}, pick, weight,
      h("button.btn.btn-small.btn-quiet", { type: "button", "aria-label": "Remove this voice from the mix", onclick: () => { row.remove(); drawBlend(); } }, "Remove"));
    blendRows.append(row);
  }

  function drawBlend() {
    const voice = chosen();
    const blendable = Boolean(voice && (voice.blendable || engines.get(voice.engine)?.blendable));
    blend.hidden = !blendable;
    if (!blendable) replace(blendRows);
    addBlend.hidden = blendRows.children.length >= MAX_BLEND;
    speed.hidden = !voice;
    speedShown.textContent = `${Number(speedInput.value).toFixed(2)}×`;
  }

  select.addEventListener("change", () => { replace(blendRows); drawBlend(); });
  speedInput.addEventListener("input", drawBlend);
  if (current && current.blend && indexOf(current) >= 0) for (const part of current.blend.slice(0, MAX_BLEND)) addRow(part);
  drawBlend();

  // The choice as the API takes it (null: the server's default), or an Error to show.
  function choice() {
    const voice = chosen();
    if (!voice) return null;
    const parts = [...blendRows.children].map((row) => ({
      voice: row.querySelector("[name=blend_voice]").value,
      weight: Number(row.querySelector("[name=blend_weight]").value),
    }));
    const total = parts.reduce((sum, part) => sum + part.weight, 0);
    if (total >= 1) return new Error("The voices mixed in must add up to less than 100%, so the chosen voice keeps a share.");
    return { engine: voice.engine, voice: voice.id, speed: Number(speedInput.value), blend: parts };
  }

  async function sample() {
    const picked = choice();
    if (picked instanceof Error) { replace(status, h("p.error-box", { role: "alert" }, picked.message)); return; }
    const name = nameOf().trim();
    const text = (name ? `Hello, I'm ${name}. This is how I sound.` : "Hello! This is how I sound.").slice(0, SAMPLE_MAX_CHARS);
    hear.disabled = true;
    try {
      const bytes = await postForAudio("/api/v1/voices/sample", { voice: picked || info.default, text });
      player.stop();
      player.play(await decodeAudio(bytes));
      replace(status);
    } catch (error) {
      replace(status, errorBox(error instanceof ApiError ? error : new ApiError(0, { code: "audio_unplayable", detail: String(error) })));
    } finally {
      hear.disabled = false;
    }
  }

  return { el, choice, stop: () => player.stop() };
}
