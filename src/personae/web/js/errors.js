// Every error in plain words: what happened, whether anything was lost, what to do,
// and the reference id to quote. Built from the problem+json `code`, never from `title`.
import { h, plural } from "./dom.js";

const wait = (error, fallback) => {
  const seconds = error.retryAfter ?? fallback;
  return seconds ? `in about ${plural(Math.max(1, Math.round(seconds)), "second")}` : "in a moment";
};

const WORDS = {
  network: (e) => ["We could not reach the server.", "Nothing was lost: your text is kept on this device.", "Check your connection; try again when it is back."],
  rate_limited: (e) => ["You are going faster than the server allows.", "Nothing was lost.", `Try again ${wait(e, 10)}.`],
  queue_full: (e) => ["The waiting room is full right now.", "Your message is saved.", `Try again ${wait(e, 30)}; it will be answered in its turn.`],
  backend_unavailable: (e) => ["No model can answer right now.", "Nothing was lost: your message and any text written so far are kept.", `Try again ${wait(e, 30)}, or see the status page.`],
  maintenance: (e) => ["Personae is under planned maintenance.", "Nothing was lost: reading works, and messages you send are answered when it ends.", `Try this again ${wait(e, 300)}.`],
  service_unavailable: (e) => ["The server is not ready yet.", "Nothing was lost.", `Try again ${wait(e, 30)}.`],
  session_expired: () => ["Your session has ended.", "Nothing was lost: what you typed is kept on this device.", "Log in again and it will be sent."],
  not_authenticated: () => ["You are not logged in.", "Nothing was lost: what you typed is kept on this device.", "Log in and it will be sent."],
  invalid_credentials: () => ["That username and password do not match.", "Nothing was changed.", "Check them and try again."],
  csrf_failed: () => ["The page's security token did not match.", "Nothing was changed.", "Reload the page and try again."],
  adult_confirmation_required: (e) => ["This is for accounts confirmed as 18 or older.", "Nothing was changed; anything you typed is kept.", e.detail || "Confirm your age on your account page."],
  age_already_declared: (e) => ["Your age was already declared.", "Nothing was changed.", e.detail || "If it is wrong, ask an admin to clear it."],
  forbidden: () => ["You may not change this.", "Nothing was changed.", "Only its owner can."],
  account_suspended: (e) => ["A moderator suspended your account.", "Nothing was lost: your chats and characters are kept.", e.problem && e.problem.until ? `You can log in again after ${new Date(e.problem.until).toLocaleString()}.` : "Try again later."],
  already_reported: () => ["You reported this already.", "Your first report is kept.", "A moderator will look at it; see Your reports."],
  case_closed: (e) => ["This was decided already.", "Nothing was changed.", e.detail || "Reload the queue."],
  own_case: (e) => ["You cannot decide this one yourself.", "Nothing was changed.", e.detail || "Another moderator will."],
  cannot_suspend: (e) => ["This account cannot be suspended by you.", "Nothing was changed.", e.detail || "Ask an admin."],
  action_not_applicable: (e) => ["This action does not fit this report.", "Nothing was changed.", e.detail || "Pick another action."],
  not_found: () => ["We could not find this.", "Nothing was changed.", "It may have been deleted, or the link is wrong."],
  username_taken: () => ["Someone already has this username.", "Nothing was created.", "Pick another one."],
  weak_password: (e) => ["This password is too weak.", "Nothing was changed.", e.detail || "Choose a longer, less common one."],
  wrong_password: () => ["Your current password is not right.", "Nothing was changed.", "Type it again; after several wrong tries you have to wait a while."],
  password_required: () => ["Your current password is needed for this.", "Nothing was changed.", "Type your current password and try again."],
  password_unchanged: () => ["The new password is the same as the current one.", "Nothing was changed.", "Choose a different new password."],
  confirmation_mismatch: (e) => ["The confirmation does not match.", "Nothing was deleted.", e.detail || "Type your username exactly."],
  last_admin: (e) => ["You are the only admin.", "Nothing was deleted.", e.detail || "Make another account admin first."],
  client_id_reused: () => ["This message was already sent with different text.", "The first version is kept.", "Send the new text as a new message."],
  not_a_reply: () => ["Only a character's reply can be continued.", "Nothing was changed.", "Send a message instead."],
  not_latest_reply: (e) => ["Only the chat's last reply can be continued.", "Nothing was changed.", e.detail || "Continue the last reply, or send a message."],
  reply_in_progress: () => ["This reply is still being written.", "Nothing was changed.", "Wait for it to end, or stop it first."],
  invalid_state: (e) => ["That is not possible right now.", "Nothing was changed.", e.detail || "Wait a moment and try again."],
  conflict: (e) => ["That is not possible right now.", "Nothing was changed.", e.detail || "Reload and try again."],
  payload_too_large: () => ["This is too large for the server.", "Nothing was changed.", "Make it smaller (a smaller picture, a shorter text) and try again."],
  validation_error: (e) => ["Some fields need another look.", "Nothing was changed.", e.errors.length ? e.errors.map((x) => `${x.field}: ${x.message}`).join("; ") : e.detail],
  context_too_long: () => ["This message does not fit in the model's memory.", "Your text is kept here.", "Shorten it and send it again."],
  content_refused: (e) => [e.problem?.reason || "This was refused by the content rules.", "Nothing was sent: your text is kept here.", e.detail || "Change it and send it again."],
  invalid_card: (e) => ["This card could not be read.", "Nothing was imported.", e.detail],
  card_missing: () => ["This file carries no character card.", "Nothing was imported.", "Pick a card PNG, JSON or CHARX file."],
  card_too_large: (e) => ["This card's files are larger than one card may store.", "Nothing was imported.", e.detail || "Import the card with fewer or smaller files."],
  quota_exceeded: (e) => ["You have reached a limit of your account.", "Nothing was created.", e.detail || "Delete a character to make room."],
  invalid_avatar: (e) => ["This picture cannot be an avatar.", "Nothing was changed.", e.detail || "Upload a picture, or give an https:// address of one."],
  image_unsupported: (e) => ["This file is not a picture we can use.", "Nothing was changed.", e.detail || "Use a PNG, JPEG, GIF or WebP picture."],
  image_unreadable: (e) => ["This picture is damaged or cut short.", "Nothing was changed.", e.detail || "Save it again in a picture editor, or use another one."],
  image_too_many_pixels: (e) => ["This picture is too large.", "Nothing was changed.", e.detail || "Make it smaller and try again."],
  unsupported_card_file: () => ["This kind of file is not a character card.", "Nothing was imported.", "Pick a card PNG, JSON or CHARX file."],
  invite_expired: () => ["This invite link has expired.", "Nothing was changed: you did not join the room.", "Ask the room's owner for a new link."],
  invite_revoked: () => ["The room's owner took this invite link back.", "Nothing was changed: you did not join the room.", "Ask the room's owner for a new link."],
  removed_from_room: () => ["The room's owner removed you from this room.", "Nothing was changed: you did not join the room.", "Only the room's owner can let you back in."],
  invite_used_up: () => ["This invite link was used as many times as it may be.", "Nothing was changed: you did not join the room.", "Ask the room's owner for a new link."],
  room_full: (e) => ["This room is full.", "Nothing was changed.", e.detail || "Someone has to leave first, or ask the owner to make room."],
  room_role_forbidden: (e) => ["Your role in this room does not allow this.", "Nothing was changed; anything you typed is kept.", e.detail || "Only the room's owner can do this (viewers only read)."],
  member_muted: (e) => ["The room's owner muted you for now.", "Nothing was sent: your text is kept here.", e.problem?.muted_until ? `You can write again after ${new Date(e.problem.muted_until).toLocaleString()}.` : "You can write again when the mute ends."],
  room_needs_a_character: () => ["A room needs at least one character.", "Nothing was changed.", "Add another character before removing this one."],
  character_not_in_room: () => ["That character is not in this room.", "Nothing was changed.", "Pick one of the room's characters, or add it first."],
  respond_with_required: () => ["In this room you pick who answers.", "Nothing was sent: your text is kept here.", "Choose a character under Who answers, then send again."],
  not_a_room: () => ["This is a one-to-one chat, not a room.", "Nothing was changed.", "Open a room for this."],
  voice_not_installed: () => ["Voice is not available on this server.", "Nothing was lost.", "Type instead; the server's operator can turn voice on."],
  voice_files_missing: (e) => ["This voice is not downloaded on the server yet.", "Nothing was lost.", e.detail || "Pick another voice, or ask the server's operator to pull its files."],
  unknown_voice: (e) => ["There is no such voice.", "Nothing was changed.", e.detail || "Pick one of the voices listed."],
  voice_busy: (e) => ["Every voice is busy right now.", "Nothing was lost.", `Try again ${wait(e, 10)}.`],
  speech_engine_failed: (e) => ["The voice could not speak this.", "Nothing was lost.", `Try again ${wait(e, 5)}.`],
  nothing_to_say: () => ["This reply has nothing to read aloud.", "Nothing was changed.", "Read another reply."],
  message_changed: () => ["The reply changed while it was read aloud.", "Nothing was lost.", "Press Read aloud again to hear it as it is now."],
  speech_not_ready: () => ["This part of the speech is not ready yet.", "Nothing was lost.", "Press Read aloud again."],
  audio_too_large: (e) => ["This recording is too large.", "Nothing was sent.", e.detail || "Record a shorter message."],
  audio_too_long: (e) => ["This recording is too long.", "Nothing was sent.", e.detail || "Record a shorter message, or send it in parts."],
  audio_unreadable: () => ["This recording could not be read as sound.", "Nothing was sent.", "Record it again."],
  audio_unplayable: () => ["This browser could not play the voice.", "Nothing was lost.", "Try again, or try another browser."],
  no_speech_heard: () => ["No words were heard in the recording.", "Nothing was sent.", "Hold the microphone button while you speak, close to the microphone, and try again."],
  microphone_denied: () => ["Personae may not use your microphone.", "Nothing was recorded or sent.", "Allow the microphone for this site (the icon by the address, or the browser's site settings), then try again."],
  microphone_missing: () => ["No microphone was found.", "Nothing was recorded or sent.", "Connect a microphone (or a headset) and try again, or type instead."],
  microphone_unavailable: () => ["This browser cannot record here.", "Nothing was recorded or sent.", "Recording needs a secure (https) page and a recent browser; type instead."],
  internal_error: () => ["Something went wrong on our side.", "Nothing you sent was lost.", "Try again; if it keeps happening, report it with the reference below."],
  empty_reply: () => ["The model wrote an empty reply.", "Nothing was lost.", "Write another reply with the arrow."],
  interrupted: () => ["The reply was interrupted.", "The text written so far is kept.", "Write another reply with the arrow."],
  reply_quarantined: () => ["Writing this reply was interrupted again and again, so it was set aside.", "The text written so far is kept.", "Write another reply with the arrow."],
};

export function explain(error) {
  const words = WORDS[error.code];
  if (words) {
    const [what, lost, todo] = words(error);
    return { what, lost, todo, requestId: error.requestId };
  }
  return {
    what: error.detail || "Something did not work.",
    lost: "Nothing you sent was lost.",
    todo: error.retryable ? "Try again in a moment." : "Reload the page and try again.",
    requestId: error.requestId,
  };
}

// A reply that failed carries only its code.
export function explainCode(code, retryable) {
  return explain({ code, retryable, errors: [], detail: "", requestId: null, retryAfter: null });
}

export function errorBox(error, { retry, login } = {}) {
  const words = explain(error);
  return h("div.error-box", { role: "alert" },
    h("p.error-what", {}, words.what),
    h("p", {}, words.lost),
    h("p", {}, words.todo),
    words.requestId ? h("p.error-ref", {}, `Reference: ${words.requestId}`) : null,
    h("div.row", {},
      retry ? h("button.btn", { type: "button", onclick: retry }, "Retry") : null,
      login ? h("a.btn.btn-primary", { href: login }, "Log in") : null,
      error.code === "adult_confirmation_required" ? h("a.btn.btn-primary.confirm-age", { href: "/settings#age" }, "Confirm your age") : null));
}
