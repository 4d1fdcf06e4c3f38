// The door: checks tickets online and offline (docs/api-guide.md, "The door").
//
// It keeps the event's door kit (keys, attendees, revoked tickets) in localStorage and
// checks each ticket against it first: the Ed25519 signature (WebCrypto), the event, the
// expiry, the revocation and the scans already made on this device. Online, a scan goes to
// the server at once, with a nonce; offline (or when a request fails) it is queued with its
// nonce, this device's id and the time of the scan, and the queue uploads by itself when the
// network comes back. The server takes each nonce once, so sending a scan twice is safe.
(function () {
  "use strict";

  var root = document.getElementById("door");
  if (!root) return;
  var texts = JSON.parse(document.getElementById("door-texts").textContent);
  var eventId = root.dataset.event;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var store = window.localStorage;
  var KIT = "door:kit:" + eventId, QUEUE = "door:queue:" + eventId, SEEN = "door:seen:" + eventId;
  var online = navigator.onLine;
  var uploading = false;

  function el(id) { return document.getElementById(id); }
  function load(key, fallback) {
    try { var value = JSON.parse(store.getItem(key)); return value === null ? fallback : value; }
    catch (e) { return fallback; }
  }
  function save(key, value) { store.setItem(key, JSON.stringify(value)); }
  function text(key, values) {
    return (texts[key] || key).replace(/%\((\w+)\)s/g, function (_, name) { return values[name]; });
  }

  var deviceId = store.getItem("door:device");
  if (!deviceId) {
    deviceId = "browser-" + crypto.randomUUID().slice(0, 8);
    store.setItem("door:device", deviceId);
  }

  // --- what the page shows ------------------------------------------------------------

  function showNetwork() {
    var queued = load(QUEUE, []).length;
    var status = el("door-status");
    status.classList.toggle("offline", !online);
    el("door-network").textContent = online
      ? (queued ? text("online_uploading", { count: queued }) : texts.online)
      : text("offline", { count: queued });
  }

  function showCounts(counts) {
    var queued = load(QUEUE, []).length;
    el("door-checked-in").textContent = counts.checked_in + (online ? 0 : queued);
    el("door-expected").textContent = counts.expected;
  }

  function answer(colour, verdict, who, detail) {
    var box = el("door-answer");
    box.className = "door-answer " + colour;
    box.replaceChildren();
    [["verdict", verdict], ["person", who], ["detail", detail]].forEach(function (part) {
      if (!part[1]) return;
      var line = document.createElement("div");
      line.className = part[0];
      line.textContent = part[1];
      box.appendChild(line);
    });
  }

  function personLine(person) {
    if (!person) return "";
    return person.display_name + (person.vehicle ? " · " + person.vehicle : "");
  }

  // --- the kit ------------------------------------------------------------------------

  function kit() { return load(KIT, null); }

  function showKit() {
    var k = kit();
    el("door-kit-state").textContent = k
      ? text("kit_ready", { count: k.attendees.length, at: new Date(k.generated_at).toLocaleTimeString() })
      : texts.kit_missing;
  }

  function refreshKit() {
    return fetch(root.dataset.kit, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) throw new Error("signed_out");
        if (!response.ok) throw new Error("kit " + response.status);
        return response.json();
      })
      .then(function (fresh) {
        save(KIT, fresh);
        wentOnline();
        showKit();
        showCounts(fresh.counts);
      })
      .catch(function (error) { if (error.message === "signed_out") signedOut(); else wentOffline(); });
  }

  // --- checking a ticket against the kit ----------------------------------------------

  function b64urlBytes(textValue) {
    var b64 = textValue.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    return Uint8Array.from(atob(b64), function (c) { return c.charCodeAt(0); });
  }

  function attendee(k, ticketId, userId) {
    return k.attendees.find(function (a) {
      return (ticketId && a.registration_id === ticketId) || (userId && a.user_id === userId);
    }) || null;
  }

  // Resolves to {ok, reason, claims, person}; reason "unknown_key" means only the server
  // can tell (a key newer than the kit).
  function checkTicket(token) {
    var k = kit();
    var parts = token.split(".");
    if (parts.length !== 3 || parts[0] !== "T1") return Promise.resolve({ ok: false, reason: "legacy" });
    var claims;
    try { claims = JSON.parse(new TextDecoder().decode(b64urlBytes(parts[1]))); }
    catch (e) { return Promise.resolve({ ok: false, reason: "invalid" }); }
    if (!k) return Promise.resolve({ ok: false, reason: "no_kit", claims: claims });
    var key = k.keys.find(function (candidate) { return candidate.kid === claims.k; });
    if (!key) return Promise.resolve({ ok: false, reason: "unknown_key", claims: claims });
    var raw = Uint8Array.from(atob(key.public_key), function (c) { return c.charCodeAt(0); });
    return crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"])
      .then(function (publicKey) {
        return crypto.subtle.verify({ name: "Ed25519" }, publicKey, b64urlBytes(parts[2]),
          new TextEncoder().encode(parts[0] + "." + parts[1]));
      })
      .then(function (genuine) {
        var person = attendee(k, claims.t, claims.u);
        if (!genuine) return { ok: false, reason: "invalid", claims: claims };
        if (claims.e !== eventId) return { ok: false, reason: "other_event", claims: claims };
        if (claims.x * 1000 < Date.now()) return { ok: false, reason: "expired", claims: claims };
        if (k.revoked.indexOf(claims.t) >= 0) return { ok: false, reason: "revoked", claims: claims };
        return { ok: true, claims: claims, person: person };
      })
      .catch(function () { return { ok: false, reason: "no_crypto", claims: claims }; });
  }

  // --- scanning -----------------------------------------------------------------------

  function seenBefore(key) { return load(SEEN, {})[key] || null; }
  function markSeen(key, when) { var seen = load(SEEN, {}); seen[key] = when; save(SEEN, seen); }

  function scan(input) {
    // input: {token} or {user_id, person}
    var scannedAt = new Date().toISOString();
    var body = { nonce: crypto.randomUUID(), device_id: deviceId, scanned_at: scannedAt };
    var check = input.token
      ? checkTicket(input.token)
      : Promise.resolve({ ok: true, claims: { u: input.user_id }, person: input.person });
    return check.then(function (local) {
      var person = local.person || null;
      var key = local.claims ? (local.claims.t || local.claims.u) : null;
      if (!local.ok && !(online && ["unknown_key", "legacy", "no_kit", "no_crypto"].indexOf(local.reason) >= 0)) {
        answer("red", texts.refused, personLine(person), texts["reason_" + local.reason] || texts.reason_invalid);
        return;
      }
      var earlier = key && seenBefore(key);
      if (earlier || (person && person.status === "attended")) {
        answer("orange", texts.already, personLine(person),
          earlier ? text("already_here", { at: new Date(earlier).toLocaleTimeString() }) : texts.already_before);
        return;
      }
      if (input.token) body.token = input.token; else body.user_id = input.user_id;
      if (!online) return queue(body, key, person);
      return send(body).then(function (result) {
        if (result === null) return queue(body, key, person);  // the network failed
        var shown = person || (result.registration && attendee(kit() || { attendees: [] }, result.registration.id));
        if (result.outcome === "attended") {
          if (key) markSeen(key, scannedAt);
          answer("green", texts.welcome, personLine(shown), "");
        } else if (result.outcome === "already") {
          if (key) markSeen(key, scannedAt);
          answer("orange", texts.already, personLine(shown), texts.already_before);
        } else {
          answer("red", texts.refused, personLine(shown), result.message || texts.reason_invalid);
        }
        refreshCounts();
      });
    });
  }

  function queue(body, key, person) {
    body.offline = true;
    var pending = load(QUEUE, []);
    pending.push(body);
    save(QUEUE, pending);
    if (key) markSeen(key, body.scanned_at);
    answer("green", texts.welcome, personLine(person), text("queued", { count: pending.length }));
    showNetwork();
    var k = kit();
    if (k) showCounts(k.counts);
  }

  // Resolves to the server's answer, or null when the network failed.
  function send(body) {
    return fetch(root.dataset.scans, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body)
    }).then(function (response) {
      if (response.status === 401) { signedOut(); return null; }
      wentOnline();
      return response.json().then(function (json) { json.status = response.status; return json; });
    }, function () { wentOffline(); return null; });
  }

  // Upload queued scans one by one, oldest first; stop at the first network failure.
  function upload() {
    if (uploading || !online) return;
    var pending = load(QUEUE, []);
    if (!pending.length) return;
    uploading = true;
    send(pending[0]).then(function (result) {
      uploading = false;
      if (result === null) return;
      var rest = load(QUEUE, []).filter(function (item) { return item.nonce !== pending[0].nonce; });
      save(QUEUE, rest);
      showNetwork();
      if (rest.length) upload(); else { refreshCounts(); refreshKit(); }
    });
  }

  function refreshCounts() {
    return fetch(root.dataset.counts, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { if (!response.ok) throw new Error(); return response.json(); })
      .then(function (counts) { wentOnline(); showCounts(counts); })
      .catch(function () { wentOffline(); });
  }

  function wentOnline() {
    var was = online;
    online = true;
    showNetwork();
    if (!was) upload();
  }
  function wentOffline() { online = false; showNetwork(); }
  function signedOut() { el("door-network").textContent = texts.signed_out; }

  // --- search -------------------------------------------------------------------------

  function search(query) {
    var list = el("door-results");
    list.replaceChildren();
    var k = kit();
    query = query.trim().toLowerCase();
    if (!k || !query) return;
    k.attendees.filter(function (a) {
      return a.display_name.toLowerCase().indexOf(query) >= 0 ||
        (/^\d+$/.test(query) && a.phone_tail && a.phone_tail.endsWith(query));
    }).slice(0, 20).forEach(function (a) {
      var item = document.createElement("li");
      var name = document.createElement("span");
      name.textContent = personLine(a) + (a.phone_tail ? " · …" + a.phone_tail : "");
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = texts.check_in;
      button.addEventListener("click", function () {
        scan({ user_id: a.user_id, person: a });
        el("door-search").value = "";
        list.replaceChildren();
      });
      item.append(name, button);
      list.appendChild(item);
    });
  }

  // --- the camera (jsQR: Chromium on Linux has no BarcodeDetector) --------------------

  var lastCode = null, lastAt = 0, streaming = null;
  function startCamera() {
    var video = el("door-video"), canvas = el("door-canvas");
    if (streaming) { stopCamera(); return; }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
      streaming = stream;
      video.srcObject = stream;
      video.classList.remove("hidden");
      video.play();
      el("door-camera").textContent = texts.camera_stop;
      var context = canvas.getContext("2d", { willReadFrequently: true });
      (function frame() {
        if (!streaming) return;
        if (video.readyState === video.HAVE_ENOUGH_DATA) {
          canvas.width = video.videoWidth;
          canvas.height = video.videoHeight;
          context.drawImage(video, 0, 0, canvas.width, canvas.height);
          var image = context.getImageData(0, 0, canvas.width, canvas.height);
          var code = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
          var now = Date.now();
          if (code && code.data && (code.data !== lastCode || now - lastAt > 4000)) {
            lastCode = code.data;
            lastAt = now;
            scan({ token: code.data });
          }
        }
        requestAnimationFrame(frame);
      })();
    }).catch(function () { answer("red", texts.camera_refused, "", ""); });
  }
  function stopCamera() {
    streaming.getTracks().forEach(function (track) { track.stop(); });
    streaming = null;
    el("door-video").classList.add("hidden");
    el("door-camera").textContent = texts.camera_start;
  }

  // --- wiring -------------------------------------------------------------------------

  el("door-ticket").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = el("door-ticket-input");
    var token = input.value.trim();
    input.value = "";
    if (token) scan({ token: token });
    input.focus();
  });
  el("door-search").addEventListener("input", function (event) { search(event.target.value); });
  el("door-camera").addEventListener("click", startCamera);
  window.addEventListener("online", function () { wentOnline(); refreshKit(); });
  window.addEventListener("offline", wentOffline);
  if ("serviceWorker" in navigator) {
    // Installed, it keeps this page for next time with no network (sw.js).
    navigator.serviceWorker.register(root.dataset.worker, { scope: "/console/" })
      .then(function () { return navigator.serviceWorker.ready; })
      .then(function () { return caches.open("console-door-v1"); })
      .then(function (cache) { return cache.add(location.pathname); })
      .catch(function () {});
  }
  showKit();
  showNetwork();
  if (kit()) showCounts(kit().counts);
  refreshKit().then(upload);
  setInterval(function () { if (online) { refreshCounts(); upload(); } else { refreshKit(); } }, 10000);
  setInterval(function () { if (online) refreshKit(); }, 60000);
})();
