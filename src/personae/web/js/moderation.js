// What moderation shows: crisis resources beside the chat (a notice, never a block),
// and the "Ask for a review" button of a refusal (POST /api/v1/appeals).
import { ApiError, post } from "./api.js";
import { h, replace } from "./dom.js";

export function crisisNotice(resources, dismiss) {
  return h("aside.notice.notice-info.crisis-notice", { role: "note", "aria-label": "Support is available" },
    h("p", {}, h("strong", {}, "You are not alone. "), "If you are thinking about hurting yourself, people are ready to listen, any time:"),
    h("ul.crisis-list", {}, resources.map((r) => h("li", {},
      h("a", { href: r.url, target: "_blank", rel: "noopener" }, r.name), ` — ${r.contact}`))),
    h("button.btn.btn-small.btn-quiet", { type: "button", onclick: dismiss }, "Hide"));
}

export function appealButton(path, { category, content = null, message_id = null, chat_id = null }) {
  const place = h("span.appeal", {});
  const button = h("button.btn.btn-small.appeal-button", {
    type: "button",
    onclick: async () => {
      button.disabled = true;
      try {
        await post(path || "/api/v1/appeals", { category, content, message_id, chat_id, note: null });
        replace(place, h("span.appeal-sent", { role: "status" }, "Review asked. A moderator will look at it."));
      } catch (error) {
        button.disabled = false;
        const words = error instanceof ApiError ? error.detail || error.code : String(error);
        replace(place, button, h("span.appeal-failed", { role: "status" }, ` The review could not be asked: ${words}`));
      }
    },
  }, "Ask for a review");
  replace(place, button);
  return place;
}
