// The service worker: keeps the app shell for offline starts, shows the offline
// page when the network is gone, and never touches the API or the server's pages.
const VERSION = "personae-shell-v11";
const SHELL = [
  "/", "/offline.html", "/app.css", "/manifest.webmanifest",
  "/js/app.js", "/js/api.js", "/js/dom.js", "/js/errors.js", "/js/pending.js",
  "/js/characters.js", "/js/chat.js", "/js/account.js", "/js/users.js", "/js/memory.js",
  "/js/capacity.js", "/js/offline.js", "/js/moderation.js", "/js/reports.js",
  "/js/moderators.js", "/js/markdown.js", "/js/menu.js", "/js/message.js",
  "/js/settings.js", "/js/chatlist.js", "/js/room.js", "/js/rooms.js",
  "/js/voice.js", "/js/readaloud.js", "/js/mic.js", "/js/call.js", "/js/call-capture.js",
  "/js/pcm.js", "/js/voicepicker.js",
  "/icons/icon-192.png", "/icons/icon-512.png",
];
const SERVER_PATHS = /^\/(api|status|healthz|readyz|metrics|docs|openapi\.json)(\/|$)/;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(VERSION).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((key) => key !== VERSION).map((key) => caches.delete(key))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin || SERVER_PATHS.test(url.pathname)) {
    return; // the network answers: API responses are never cached
  }
  if (request.mode === "navigate") {
    // Pages: the network first (always fresh), the offline page when it is gone.
    event.respondWith(fetch(request).catch(() => caches.match("/offline.html")));
    return;
  }
  // Shell files: the network first, so an update shows at once; the cached copy offline.
  event.respondWith(fetch(request).then((response) => {
    if (response.ok) {
      const copy = response.clone();
      caches.open(VERSION).then((cache) => cache.put(request, copy));
    }
    return response;
  }).catch(() => caches.match(request).then((cached) => cached || Response.error())));
});
