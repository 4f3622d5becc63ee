// The team page's service worker: the page, its scripts and styles and the team's feed
// keep working without a connection. Network first (a team sees fresh work when it can),
// the copy kept in the "ta-shell" cache when the network fails. The API is never cached:
// answers made offline wait in the page's IndexedDB outbox, not here.
(function () {
  "use strict";
  const CACHE = "ta-shell";

  self.addEventListener("install", (event) => {
    event.waitUntil(self.skipWaiting());
  });

  self.addEventListener("activate", (event) => {
    event.waitUntil(self.clients.claim());
  });

  function kept(url) {
    return url.pathname.startsWith("/static/") || url.pathname.startsWith("/team/");
  }

  self.addEventListener("fetch", (event) => {
    const request = event.request;
    const url = new URL(request.url);
    if (request.method !== "GET" || url.origin !== self.location.origin || !kept(url)) return;
    event.respondWith(
      (async () => {
        const cache = await caches.open(CACHE);
        try {
          const response = await fetch(request);
          if (response.ok && !response.redirected) await cache.put(request, response.clone());
          return response;
        } catch (error) {
          const copy = (await cache.match(request)) || (await cache.match(request, { ignoreSearch: true }));
          if (copy) return copy;
          throw error;
        }
      })(),
    );
  });
})();
