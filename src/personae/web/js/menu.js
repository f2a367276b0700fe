// A small menu of actions behind one "⋯" button: opened by a click, by the keyboard,
// or by a long press on the element it belongs to (a phone has no hover and no
// right-click). One menu is open at a time. Escape, Tab, a click elsewhere or an
// action closes it; Escape and an action give the focus back to the button.
import { h } from "./dom.js";

const LONG_PRESS_MS = 500;
const PRESS_SLOP_PX = 10; // a finger that moves this far is scrolling, not pressing

let current = null; // {menu, button, onOutside}

export function closeMenu({ refocus = false } = {}) {
  if (!current) return;
  const { menu, button, onOutside } = current;
  current = null;
  document.removeEventListener("pointerdown", onOutside, true);
  menu.remove();
  button.setAttribute("aria-expanded", "false");
  if (refocus && button.isConnected) button.focus();
}

function moveFocus(menu, step) {
  const items = [...menu.querySelectorAll("[role=menuitem]")];
  const at = items.indexOf(document.activeElement);
  const next = items[(at + step + items.length) % items.length];
  if (next) next.focus();
}

function onMenuKey(event, menu) {
  const keys = {
    Escape: () => closeMenu({ refocus: true }),
    ArrowDown: () => moveFocus(menu, 1),
    ArrowUp: () => moveFocus(menu, -1),
    Home: () => menu.querySelector("[role=menuitem]").focus(),
    End: () => [...menu.querySelectorAll("[role=menuitem]")].pop().focus(),
  };
  if (event.key === "Tab") { closeMenu(); return; }
  if (!keys[event.key]) return;
  event.preventDefault();
  event.stopPropagation();
  keys[event.key]();
}

function openMenu(holder, button, actions) {
  closeMenu();
  const menu = h("div.action-menu", {
    role: "menu", "aria-label": button.getAttribute("aria-label"),
    onkeydown: (event) => onMenuKey(event, menu),
  }, actions.map((action) => h(`button.menu-item${action.danger ? ".menu-danger" : ""}`, {
    type: "button", role: "menuitem", tabindex: "-1",
    onclick: () => { closeMenu({ refocus: true }); action.run(); },
  }, action.label)));
  const onOutside = (event) => {
    if (!menu.contains(event.target) && event.target !== button) closeMenu();
  };
  holder.append(menu);
  current = { menu, button, onOutside };
  document.addEventListener("pointerdown", onOutside, true);
  button.setAttribute("aria-expanded", "true");
  // Opens upwards when there is no room below (the composer sits at the bottom).
  const foot = document.querySelector(".chat-foot");
  const bottom = window.innerHeight - (foot ? foot.getBoundingClientRect().height : 0);
  menu.classList.toggle("menu-up", menu.getBoundingClientRect().bottom > bottom);
  menu.querySelector("[role=menuitem]").focus();
}

// The "⋯" button and its menu. `actions`: [{label, run, danger?}], shown in order;
// `owner`, when given, opens the menu on a long press too.
export function actionMenu(label, actions, owner = null) {
  if (!actions.length) return null;
  const holder = h("span.menu-holder", {});
  const button = h("button.btn.btn-small.btn-quiet.menu-button", {
    type: "button", "aria-label": label, "aria-haspopup": "menu", "aria-expanded": "false", title: label,
    onclick: () => (current && current.button === button ? closeMenu() : openMenu(holder, button, actions)),
  }, "⋯");
  holder.append(button);
  if (owner) onLongPress(owner, () => openMenu(holder, button, actions));
  return holder;
}

// Calls `action` when a finger rests on `el` (touch or pen, not a mouse) without moving.
export function onLongPress(el, action) {
  let timer = null, start = null, fired = false;
  const cancel = () => { clearTimeout(timer); timer = null; };
  el.addEventListener("pointerdown", (event) => {
    fired = false;
    if (event.pointerType === "mouse" || event.target.closest("button, a, textarea, input, select, [role=menu]")) return;
    start = [event.clientX, event.clientY];
    cancel();
    timer = setTimeout(() => { timer = null; fired = true; action(); }, LONG_PRESS_MS);
  });
  el.addEventListener("pointermove", (event) => {
    if (timer && Math.hypot(event.clientX - start[0], event.clientY - start[1]) > PRESS_SLOP_PX) cancel();
  });
  for (const name of ["pointerup", "pointercancel", "pointerleave"]) el.addEventListener(name, cancel);
  // The press opened the menu: the browser's own menu and the click that follows are not wanted.
  el.addEventListener("contextmenu", (event) => { if (fired || timer) event.preventDefault(); });
  el.addEventListener("click", (event) => {
    if (fired) { fired = false; event.preventDefault(); event.stopPropagation(); }
  }, true);
}
