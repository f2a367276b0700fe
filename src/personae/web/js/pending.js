// Drafts and unsent messages, kept on this device until the server has them.
//
// A send gets its client_id before it leaves, and is written here first. It is
// removed only once the server answered 202 (or said it already has a message
// with this id). After a reload, or after logging in again, pending sends go
// out again with the SAME client_id: the server stores a message once per id,
// so nothing is lost and nothing is sent twice.
import { ApiError, put } from "./api.js";

const PENDING_KEY = "personae.pending";
const draftKey = (chatId) => `personae.draft.${chatId}`;

function read(key, fallback) {
  try {
    const text = localStorage.getItem(key);
    return text ? JSON.parse(text) : fallback;
  } catch {
    return fallback;
  }
}

export function loadDraft(chatId) {
  return read(draftKey(chatId), "");
}

export function saveDraft(chatId, text) {
  if (text) localStorage.setItem(draftKey(chatId), JSON.stringify(text));
  else localStorage.removeItem(draftKey(chatId));
}

export function pendingSends(chatId) {
  const all = read(PENDING_KEY, []);
  return chatId ? all.filter((send) => send.chat_id === chatId) : all;
}

export function addPending(send) {
  const all = read(PENDING_KEY, []).filter((other) => other.client_id !== send.client_id);
  all.push(send);
  localStorage.setItem(PENDING_KEY, JSON.stringify(all));
}

export function removePending(clientId) {
  const all = read(PENDING_KEY, []).filter((send) => send.client_id !== clientId);
  localStorage.setItem(PENDING_KEY, JSON.stringify(all));
}

export function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Send one pending message; resolves to the 202 body, or throws ApiError (kept pending).
export async function deliver(send) {
  try {
    const accepted = await put(
      `/api/v1/chats/${encodeURIComponent(send.chat_id)}/messages/${encodeURIComponent(send.client_id)}`,
      // In a room, the character picked to answer goes with it.
      send.respond_with ? { content: send.content, respond_with: send.respond_with } : { content: send.content });
    removePending(send.client_id);
    // The typed text was this send: it has arrived, so the box can be emptied.
    if (loadDraft(send.chat_id) === send.content) saveDraft(send.chat_id, "");
    return accepted;
  } catch (error) {
    // Already stored with other text, or the chat is gone, or the content rules refused
    // it (the text stays in the draft to edit): keeping it would retry forever.
    // In a room: no one picked to answer in manual mode, a viewer's or a muted member's send.
    const final = ["client_id_reused", "validation_error", "content_refused", "respond_with_required", "room_role_forbidden", "member_muted"];
    if (error instanceof ApiError && (final.includes(error.code) || error.status === 404)) {
      removePending(send.client_id);
    }
    throw error;
  }
}

// After logging in again: every chat's pending sends, oldest first.
export async function flushAllPending() {
  for (const send of pendingSends()) {
    try {
      await deliver(send);
    } catch {
      // Kept; its chat page shows it with a retry button.
    }
  }
}
