// The admin page's Users section: list and search accounts, change a role.
import { del, get, patch, query } from "./api.js";
import { field, formValues, h, replace, timeAgo } from "./dom.js";
import { errorBox } from "./errors.js";
import { session } from "./app.js";

const ROLES = [["user", "User"], ["plus", "Plus"], ["moderator", "Moderator"], ["admin", "Admin"]];
const PAGE = 50;

export function usersSection() {
  const status = h("div", { "aria-live": "polite" });
  const list = h("ul.plain-list.user-list", { "aria-label": "Users" });
  const more = h("div", {});
  let q = "";

  const row = (user) => {
    const choice = field(`Role of ${user.username}`, { name: "role", kind: "select", value: user.role, options: ROLES });
    const save = async () => {
      const role = choice.querySelector("select").value;
      try {
        const changed = await patch(`/api/v1/admin/users/${user.id}`, { role });
        item.replaceWith(row(changed));
        replace(status, h("p", { role: "status" }, `${changed.username} is now ${changed.role}.`));
      } catch (error) {
        replace(status, errorBox(error, { retry: save }));
      }
    };
    const clearAge = async () => {
      if (!confirm(`Clear the age ${user.username} declared? They will declare it again.`)) return;
      try {
        const changed = await del(`/api/v1/admin/users/${user.id}/age`);
        item.replaceWith(row(changed));
        replace(status, h("p", { role: "status" }, `${changed.username} can declare their age again.`));
      } catch (error) {
        replace(status, errorBox(error, { retry: clearAge }));
      }
    };
    const you = session.user && session.user.id === user.id;
    const item = h("li.user-row", { dataset: { id: user.id } },
      h("span.user-who", {}, h("strong", {}, user.username), you ? " (you)" : null,
        h("span.char-meta", {}, ` · ${user.display_name} · ${user.role} · joined ${timeAgo(user.created_at)}${user.age_declared_at ? (user.adult ? " · adult" : " · under 18") : ""}`)),
      h("span.row", {}, choice,
        h("button.btn.btn-small", { type: "button", "aria-label": `Change role of ${user.username}`, onclick: save }, "Change role"),
        user.age_declared_at ? h("button.btn.btn-small.btn-quiet", { type: "button", "aria-label": `Clear the declared age of ${user.username}`, onclick: clearAge }, "Clear age") : null));
    return item;
  };

  const load = async (before) => {
    try {
      const page = await get(`/api/v1/admin/users${query({ q, before, limit: PAGE })}`);
      if (!before) replace(list);
      list.append(...page.items.map(row));
      if (!before && !page.items.length) list.append(h("li.empty", {}, "No user matches."));
      const last = page.items[page.items.length - 1];
      replace(more, page.has_more && last
        ? h("button.btn", { type: "button", onclick: () => load(last.id) }, "More users") : null);
      replace(status);
    } catch (error) {
      replace(status, errorBox(error, { retry: () => load(before) }));
    }
  };

  const search = h("form.search", {
    role: "search",
    onsubmit: (event) => { event.preventDefault(); q = formValues(search).q.trim(); load(); },
  }, field("Search users", { name: "q", kind: "search", placeholder: "Username or name", maxlength: 64 }),
  h("button.btn", { type: "submit" }, "Search"));
  load();
  return h("section#users", { "aria-labelledby": "users-heading" },
    h("h2#users-heading", {}, "Users"),
    h("p.hint", {}, "Roles: plus replies first, moderators take down characters and post incidents, admins also manage users."),
    search, status, list, more);
}
