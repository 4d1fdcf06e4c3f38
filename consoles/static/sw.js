// The console's service worker: it keeps the door page and the files it needs, so that a
// door opened once before the event opens again with no network (its kit and queued scans
// live in the page's localStorage). Door pages are fetched from the network first and
// kept; the console's static files are served from the cache first. Every other request
// goes to the network untouched.
"use strict";

var CACHE = "console-door-v1";
var FILES = [
  "/console/static/console.css",
  "/console/static/console.js",
  "/console/static/door.js",
  "/console/static/vendor/htmx.min.js",
  "/console/static/vendor/jsQR.js"
];
var DOOR_PAGE = /^\/console\/events\/[0-9a-f]{24}\/door$/;

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) { return cache.addAll(FILES); }));
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) { return name !== CACHE; })
        .map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); })
  );
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (DOOR_PAGE.test(url.pathname)) {
    event.respondWith(
      fetch(request).then(function (response) {
        if (response.ok) {
          var copy = response.clone();
          caches.open(CACHE).then(function (cache) { cache.put(url.pathname, copy); });
        }
        return response;
      }).catch(function () {
        return caches.match(url.pathname).then(function (kept) {
          return kept || Response.error();
        });
      })
    );
  } else if (url.pathname.indexOf("/console/static/") === 0) {
    event.respondWith(
      caches.match(request).then(function (kept) { return kept || fetch(request); })
    );
  }
});
