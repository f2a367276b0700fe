// The admin page's Capacity section: which model answers and what a bigger one from the
// catalogue would give (`personae models list`), then the backend slots the busiest hour
// needs now and month by month as traffic grows (the figures of `personae capacity`).
import { get, query } from "./api.js";
import { field, formValues, h, plural, replace } from "./dom.js";
import { errorBox } from "./errors.js";

const seconds = (s) => (s === null ? "unbounded" : `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`);
const percent = (share) => `${Math.round(share * 100)}%`;

function shortfall(plan) {
  if (plan.short_from_month === null) return `Today's ${plural(plan.slots, "slot")} ${plan.slots === 1 ? "stays" : "stay"} enough ${plan.monthly_growth > 0 ? "at this growth" : "while traffic does not grow"}.`;
  if (plan.short_from_month === 0) return `Today's ${plural(plan.slots, "slot")} ${plan.slots === 1 ? "is" : "are"} already not enough at the busiest hour.`;
  return `Today's ${plural(plan.slots, "slot")} ${plan.slots === 1 ? "stops" : "stop"} being enough in month ${plan.short_from_month}.`;
}

function planView(plan) {
  if (plan.busiest_hour === null) return h("p.empty", {}, `Nothing to size: ${plan.note}.`);
  const hour = String(plan.busiest_hour).padStart(2, "0");
  const row = (m) => h("tr", {},
    h("td", {}, m.month === 0 ? "now" : `+${m.month}`), h("td", {}, m.arrivals_per_hour.toFixed(1)),
    h("td", {}, String(m.slots_needed)), h("td", {}, seconds(m.p95_wait_s)), h("td", {}, percent(m.utilisation)));
  return h("div", {},
    h("p", {}, `Busiest hour ${hour}:00 UTC: ${plan.arrivals_per_hour.toFixed(1)} jobs an hour, ${seconds(plan.mean_service_s)} each; `
      + `utilisation ${percent(plan.utilisation)} on ${plural(plan.slots, "slot")} (${percent(plan.average_utilisation)} over the window).`),
    h("table.capacity-table", { "aria-label": "Slots needed by month" },
      h("thead", {}, h("tr", {}, ["Month", "Jobs/hour", "Slots needed", `p95 wait on ${plan.slots}`, "Utilisation"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, plan.months.map(row))),
    h("p", { role: "status" }, h("strong", {}, shortfall(plan))));
}

function answeringItem(a) {
  const kind = a.embedded ? `embedded${a.params ? `, ${a.params}` : ""}` : `backend ${a.backend}`;
  return h("li", {}, h("strong", {}, a.label), ` (${kind})`);
}

function modelsView(view) {
  return h("div", {},
    h("ul.plain-list", { "aria-label": "Models answering" }, view.answering.map(answeringItem)),
    view.suggestion
      ? h("p", { role: "note" }, `A bigger model: a ${view.suggestion.params} model (${view.suggestion.label}) needs ~${view.suggestion.ram_gb} GB RAM and ${view.suggestion.gives}. On the server: `,
        h("code", {}, view.suggestion.command), ", then restart with ", h("code", {}, `personae serve --model ${view.suggestion.name}`), ".")
      : null);
}

function modelsBlock() {
  const block = h("div#models", { "aria-live": "polite" });
  const load = async () => {
    try {
      replace(block, modelsView(await get("/api/v1/admin/models")));
    } catch (error) {
      replace(block, errorBox(error, { retry: load }));
    }
  };
  load();
  return h("div", {}, h("h3", {}, "Which model answers"), block);
}

export function capacitySection() {
  const result = h("div", { "aria-live": "polite" });
  const load = async (growth, wait) => {
    try {
      replace(result, planView(await get(`/api/v1/admin/capacity${query({ growth_percent: growth, target_wait_s: wait, months: 6 })}`)));
    } catch (error) {
      replace(result, errorBox(error, { retry: () => load(growth, wait) }));
    }
  };
  const form = h("form.inline-form", {
    onsubmit: (event) => { event.preventDefault(); const v = formValues(form); load(v.growth, v.wait); },
  }, field("Growth a month (%)", { name: "growth", kind: "number", value: "15", step: "any" }),
  field("p95 wait target (s)", { name: "wait", kind: "number", value: "10", min: "0", step: "any" }),
  h("button.btn.btn-small", { type: "submit" }, "Plan"));
  load(15, 10);
  return h("section#capacity", { "aria-labelledby": "capacity-heading" },
    h("h2#capacity-heading", {}, "Capacity"),
    modelsBlock(),
    h("h3", {}, "Slots"),
    h("p.hint", {}, "Backend slots that keep the p95 wait under the target at the busiest hour of the last 7 days, now and as traffic grows (an M/M/c queue)."),
    form, result);
}
