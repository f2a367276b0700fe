// The chat's memory panel (pinned facts, the rolling summary) and the view of
// what went into a reply's prompt.
import { ApiError, del, get, patch, post } from "./api.js";
import { field, h, plural, replace } from "./dom.js";
import { errorBox } from "./errors.js";

const asProblem = (error) => (error instanceof ApiError ? error : new ApiError(0, { detail: String(error) }));

export class MemoryPanel {
  constructor(chatId) {
    this.chatId = chatId;
    this.countEl = h("span", {}, "");
    this.statusEl = h("div", { "aria-live": "polite" });
    this.body = h("div", {}, h("p.loading", {}, "Loading…"));
    this.el = h("details.memory-panel", {
      ontoggle: () => { if (this.el.open && !this.loaded) this.refresh(); },
    }, h("summary", {}, "Memory", this.countEl), this.statusEl, this.body);
  }

  async act(action) {
    try {
      await action();
      replace(this.statusEl);
    } catch (error) {
      replace(this.statusEl, errorBox(asProblem(error), { retry: () => this.act(action) }));
    }
  }

  async refresh() {
    await this.act(async () => {
      const { items } = await get(`/api/v1/chats/${encodeURIComponent(this.chatId)}/memories`);
      this.loaded = true;
      this.draw(items.filter((m) => m.kind === "pinned"), items.filter((m) => m.kind === "summary"));
    });
  }

  // Pin a message of the chat: its text is kept in every prompt from now on.
  async pinMessage(messageId) {
    await this.act(async () => {
      await post(`/api/v1/messages/${messageId}/pin`);
      this.el.open = true;
      await this.refresh();
      replace(this.statusEl, h("p", { role: "status" }, "Pinned: the character will keep this in mind."));
    });
  }

  draw(pinned, summaries) {
    this.countEl.textContent = ` (${pinned.length} pinned${summaries.length ? ", summary" : ""})`;
    const input = field("Add a fact to remember", { name: "content", kind: "textarea", rows: 2, maxlength: 32000, required: true });
    const form = h("form.inline-form", {
      onsubmit: (event) => {
        event.preventDefault();
        const content = input.querySelector("textarea").value.trim();
        if (!content) return;
        this.act(async () => {
          await post(`/api/v1/chats/${encodeURIComponent(this.chatId)}/memories`, { content });
          await this.refresh();
        });
      },
    }, input, h("button.btn", { type: "submit" }, "Pin fact"));
    replace(this.body,
      h("p.hint", {}, "Pinned facts go into every reply's prompt. The summary stands for older messages that no longer fit."),
      h("h3", {}, "Pinned facts"),
      pinned.length
        ? h("ul.plain-list.memory-list", { "aria-label": "Pinned facts" }, pinned.map((memory) => h("li", { dataset: { id: memory.id } },
          h("span.memory-text", {}, memory.content),
          h("button.btn.btn-small.btn-danger", {
            type: "button", "aria-label": `Unpin: ${memory.content.slice(0, 40)}`,
            onclick: () => this.act(async () => { await del(`/api/v1/memories/${memory.id}`); await this.refresh(); }),
          }, "Unpin"))))
        : h("p.empty", {}, "Nothing pinned yet. Pin a message, or add a fact here."),
      form,
      h("h3", {}, "Summary"),
      this.drawSummary(summaries[summaries.length - 1], summaries.length));
  }

  drawSummary(summary, versions) {
    if (!summary) return h("p.empty", {}, "No summary yet: one is written when the chat grows long.");
    const box = field("Summary of earlier messages", { name: "summary", kind: "textarea", rows: 4, value: summary.content });
    return h("div", {},
      box,
      h("div.row", {},
        h("button.btn.btn-small", {
          type: "button",
          onclick: () => this.act(async () => {
            await patch(`/api/v1/memories/${summary.id}`, { content: box.querySelector("textarea").value });
            await this.refresh();
          }),
        }, "Save summary"),
        h("button.btn.btn-small.btn-quiet", {
          type: "button",
          onclick: () => this.act(async () => { await del(`/api/v1/memories/${summary.id}`); await this.refresh(); }),
        }, versions > 1 ? "Undo: use the one before" : "Delete summary")));
  }
}

const LEFT_OUT = {
  history_loaded: (n) => `${plural(n, "older message")} did not fit`,
  history_before_position: () => "Messages before this point are left to the summary and recall",
  recalled: (ids) => `${plural(ids.length, "recalled message")} did not fit`,
  lore: () => "Lorebook entries did not fit",
  summary: () => "The summary did not fit",
};

// A dialog with the prompt a reply was written from (only the chat's owner may see it).
export async function showPrompt(messageId, onError) {
  let prompt;
  try {
    prompt = await get(`/api/v1/messages/${messageId}/prompt`);
  } catch (error) {
    onError(asProblem(error));
    return;
  }
  const { tokens, budget } = prompt.included;
  const leftOut = Object.entries(prompt.left_out || {})
    .filter(([, value]) => value && (!Array.isArray(value) || value.length))
    .map(([key, value]) => (LEFT_OUT[key] ? LEFT_OUT[key](value) : `${key}: ${JSON.stringify(value)}`));
  const close = h("button.btn", { type: "button", onclick: () => dialog.close() }, "Close");
  const dialog = h("dialog.prompt-dialog", { "aria-labelledby": "prompt-heading" },
    h("h2#prompt-heading", {}, "What went into this reply"),
    tokens != null ? h("p.hint", {}, `${plural(tokens, "token")}${budget != null ? ` of the ${budget} the model can read` : ""}.`) : null,
    h("ol.plain-list", { "aria-label": "Parts of the prompt" }, prompt.parts.map((part) => h("li.prompt-part", {},
      h("span.prompt-source", {}, `${part.role} · ${part.source}`),
      h("pre", {}, part.content)))),
    h("h3", {}, "Left out"),
    leftOut.length ? h("ul", {}, leftOut.map((text) => h("li", {}, text))) : h("p.empty", {}, "Nothing: everything fitted."),
    h("div.row", {}, close));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
}
