// One message of a chat as it is drawn: an avatar beside a bubble with who wrote it,
// its text (minimal Markdown, built as DOM nodes: markdown.js), its state, the swipe
// arrows and stars of a reply, and every other action behind one "⋯" menu.
import { patch, post, put } from "./api.js";
import { h, plural } from "./dom.js";
import { explainCode } from "./errors.js";
import { renderMarkdown } from "./markdown.js";
import { showPrompt } from "./memory.js";
import { actionMenu } from "./menu.js";
import { openReport } from "./reports.js";

export const FINAL = new Set(["complete", "stopped", "failed", "filtered"]);

// The moderation categories in plain words (docs/moderation.md).
const CATEGORY_WORDS = {
  sexual_minors: "sexual content involving minors",
  self_harm: "self-harm",
  violence: "violence",
  hate: "hate",
  harassment: "harassment",
  sexual: "sexual content",
  illegal: "illegal acts",
};
export const categoryWords = (code) => CATEGORY_WORDS[code] || code;

// The actions of a message's "⋯" menu, in this order. `when` says whether the message
// offers it now; `run` does it. Adding an action is adding an entry here.
// The context: {view, message, el, isReply, latest, running}. In a room, someone who may
// not write there (a viewer, a muted member) gets only the actions marked `reader`.
export const MESSAGE_ACTIONS = [
  {
    label: "Regenerate",
    when: ({ isReply, latest, running }) => isReply && latest && !running,
    run: ({ view, message }) => view.regenerate(message),
  },
  {
    label: "Continue",
    when: continues,
    run: ({ view, message }) => view.continueReply(message),
  },
  {
    label: "Read aloud",
    reader: true,
    when: ({ view, message, isReply }) => isReply && view.readAloud && message.content.trim() && !view.readAloud.stateOf(message.id),
    run: ({ view, message }) => view.readAloud.speak(message),
  },
  {
    label: "Stop reading aloud",
    reader: true,
    when: ({ view, message }) => view.readAloud && view.readAloud.stateOf(message.id),
    run: ({ view }) => view.readAloud.stop(),
  },
  {
    label: "Copy text",
    reader: true,
    when: ({ message }) => message.content.trim() && navigator.clipboard,
    run: ({ view, message }) => view.act(() => navigator.clipboard.writeText(message.content)),
  },
  {
    label: "Pin to memory",
    when: ({ message, running }) => !running && message.content.trim(),
    run: ({ view, message }) => view.memory.pinMessage(message.id),
  },
  {
    label: "What went into this reply",
    // In a room the prompt is the owner's to see (docs/rooms.md).
    when: ({ view, message, isReply, running }) => isReply && message.parent_id && !running && message.status !== "queued" && (!view.room || view.room.isOwner),
    run: ({ view, message }) => showPrompt(message.id, (error) => view.showError(error)),
  },
  {
    label: "Edit",
    when: ({ running }) => !running,
    run: ({ view, message, el }) => view.edit(message, el),
  },
  {
    label: "Report",
    reader: true,
    when: ({ message, isReply }) => isReply && FINAL.has(message.status),
    run: ({ message, el }) => openReport(el.querySelector(".report-holder"), "message", message.id),
  },
  {
    label: "Delete",
    danger: true,
    when: () => true,
    run: ({ view, message }) => view.remove(message),
  },
];

// The <li> of one message. `view` is the chat (ChatView): its state and its actions.
export function drawMessage(view, message) {
  const isReply = message.role === "assistant";
  const latest = message.position === view.latestPosition();
  const running = !FINAL.has(message.status) && message.status !== "waiting";
  const who = view.speaker(message);
  // In a room, other people's messages stand on the left, apart from mine.
  const other = !isReply && view.room && who !== "You" ? ".msg-other" : "";
  const el = h(`li.msg.msg-${isReply ? "reply" : "user"}${other}.status-${message.status}`, {
    dataset: { id: message.id, position: String(message.position) },
  });
  const context = { view, message, el, isReply, latest, running };
  const reader = Boolean(view.room && !view.room.canSend);
  const actions = MESSAGE_ACTIONS.filter((action) => (!reader || action.reader) && action.when(context))
    .map((action) => ({ label: action.label, danger: action.danger, run: () => action.run(context) }));
  const body = h("div.msg-body", {},
    h("div.msg-who", {}, who,
      message.fallback ? h("span.label.label-fallback", { title: "Written by a smaller fallback model because the main ones were busy or down" }, "fallback model") : null,
      message.quality && message.quality !== "ok" ? h("span.label.label-quality", { title: "The quality check flagged this reply" }, message.quality) : null,
      message.cut_short ? h("span.label.label-cut", { title: "The reply reached its length limit and was trimmed to its last whole sentence" }, "cut short") : null,
      actionMenu(`More actions for this message from ${who}`, actions, el)),
    h("div.msg-text", {}, renderMarkdown(message.content)),
    drawState(view, message),
    isReply && view.readAloud ? view.readAloud.stateLine(message) : null,
    reader ? null : h("div.msg-actions", {},
      isReply && view.readAloud ? view.readAloud.button(message) : null,
      isReply ? drawSwipes(view, message, latest, running) : null,
      // A cut reply's Continue is in sight; any other last reply has it in the menu.
      message.cut_short && continues(context)
        ? h("button.btn.btn-small.continue", { type: "button", "aria-label": "Continue this reply from where it ends", onclick: () => view.continueReply(message) }, "Continue") : null,
      isReply && showsStars(message, latest) ? drawStars(view, message) : null,
      running && isReply ? h("button.btn.btn-small", { type: "button", onclick: () => view.act(() => post(`/api/v1/messages/${message.id}/stop`)) }, "Stop") : null),
    h("div.report-holder", {}));
  el.append(view.avatarFor(message), body);
  return el;
}

// Continue goes on from the end of the chat's last finished reply (docs/chat.md).
function continues({ message, isReply, latest }) {
  return isReply && latest && FINAL.has(message.status) && message.status !== "filtered";
}

// The stars: on the latest finished reply, and on any reply already rated.
function showsStars(message, latest) {
  if (!FINAL.has(message.status) || ["failed", "filtered"].includes(message.status)) return false;
  return latest || message.rating != null;
}

function drawState(view, message) {
  if (message.status === "queued") {
    const place = view.queue.get(message.id);
    let text = "Waiting in line…";
    if (place && place.reason === "backend_unavailable") {
      text = "The model is not answering; your reply will start when it is back. Your message is saved.";
    } else if (place) {
      text = `Waiting in line: position ${place.position}` + (place.estimated_start_s != null ? `, starts in about ${Math.max(1, Math.round(place.estimated_start_s))} s` : "");
    }
    return h("p.msg-state.queue-state", { role: "status" }, text);
  }
  if (message.status === "generating") return h("p.msg-state.typing", { "aria-hidden": "true" }, "writing…");
  if (message.status === "waiting") return h("p.msg-state", {}, "Stored; waiting for room in line. It will be answered when you retry.");
  if (message.status === "stopped") return h("p.msg-state", {}, "Stopped; the text written so far is kept.");
  if (message.status === "filtered" && !message.filtered_category) {
    return h("p.msg-state.filtered-state", { role: "note" },
      "The model's own content filter ended this reply. The text before that is kept. Regenerate for another reply.");
  }
  if (message.status === "filtered") {
    return h("p.msg-state.filtered-state", { role: "note" },
      `This reply was stopped because it went into ${categoryWords(message.filtered_category)} (category: ${message.filtered_category}), which the content rules do not allow in this chat. `,
      "The text before that is kept; the rest was not. Regenerate for another reply.");
  }
  if (message.status === "failed") {
    const words = explainCode(message.error_code, message.retryable);
    return h("div.error-box.msg-error", {},
      h("p.error-what", {}, words.what), h("p", {}, `${words.lost} ${words.todo}`));
  }
  return null;
}

// ‹ n/m ›: on a reply with other swipes, and on the latest one (› writes another).
function drawSwipes(view, message, latest, running) {
  const count = message.swipe_count || 1;
  const index = message.swipe_index;
  if (count < 2 && !latest) return null;
  const select = (n) => view.act(() => patch(`/api/v1/messages/${message.id}`, { swipe: n }));
  const canGoBack = index > 0;
  const canGoOn = index < count - 1 || (latest && !running);
  const forward = () => (index < count - 1 ? select(index + 1) : view.regenerate(message));
  return h("span.swipes", {},
    h("button.btn.btn-small.swipe-prev", { type: "button", "aria-label": "Previous reply", disabled: !canGoBack || running, onclick: () => select(index - 1) }, "‹"),
    h("span.swipe-count", { "aria-label": `Reply ${index + 1} of ${count}` }, `${index + 1}/${count}`),
    h("button.btn.btn-small.swipe-next", { type: "button", "aria-label": index < count - 1 ? "Next reply" : "Write another reply", disabled: !canGoOn || running, onclick: forward }, "›"));
}

function drawStars(view, message) {
  return h("span.stars", { role: "group", "aria-label": "Rate this reply" },
    [1, 2, 3, 4].map((stars) => h("button.star", {
      type: "button",
      "aria-label": plural(stars, "star"),
      "aria-pressed": message.rating != null && stars <= message.rating ? "true" : "false",
      onclick: () => view.act(async () => {
        const rated = await put(`/api/v1/messages/${message.id}/rating`, { stars });
        view.applyMessage(rated);
      }),
    }, message.rating != null && stars <= message.rating ? "★" : "☆")));
}
