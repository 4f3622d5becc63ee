// A recording team's page, made for a phone on a poor connection.
//
// - The feed is live: /api/teams/<slug>/stream announces new assignments; the cards
//   themselves are server-rendered (/team/<slug>/cards) and merged in without
//   touching a card someone is filling in or uploading from.
// - Take / give back / mark filmed call the JSON API.
// - An answer is recorded in the page or chosen from the phone, and shrunk on the phone
//   when it is larger than the server's target (team-media.js).
// - Every answer goes into an outbox kept in IndexedDB with its consent and fields, and
//   is sent from there: in chunks (File.slice + PATCH with Upload-Offset), resuming
//   where the server stands after a failure, and, made offline, by itself once the
//   connection returns. The outbox panel shows what is waiting, sending and done.
// - A service worker (/team-sw.js) keeps the page, its scripts and the feed, so the
//   page opens without a connection.
// - No consent, no answer: the page refuses to queue without the consent box ticked
//   and who gave it, and the server refuses too.
(function () {
  "use strict";

  const TA = window.TA;
  const cards = document.getElementById("cards");
  const M = TA && TA.teamMedia; // shrinking and recording (team-media.js)
  if (!TA || !cards || !M) return;

  const slug = cards.dataset.team;
  const CHUNK = Number(cards.dataset.chunk) || 1024 * 1024;
  const MAX_BYTES = Number(cards.dataset.maxBytes) || 0;
  const MAX_RETRIES = 8;
  const RESYNC_MS = 60000;
  const TYPES = {
    mp4: "video/mp4",
    m4v: "video/mp4",
    webm: "video/webm",
    mov: "video/quicktime",
    "3gp": "video/3gpp",
  };

  let after = Number(cards.dataset.after || "0");
  const uploading = new Set(); // question ids with an upload running

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // --- merging fresh cards -------------------------------------------------------------

  function busy(card) {
    if (uploading.has(card.dataset.question)) return true;
    const form = card.querySelector("form.upload-form");
    return Boolean(form && form.dataset.dirty) || card.contains(document.activeElement);
  }

  function signature(card) {
    const note = card.querySelector(".note");
    return [card.className, card.dataset.state, note ? note.textContent : ""].join("|");
  }

  let mergeTimer = null;
  let merging = false;
  let mergeAgain = false;
  const forced = new Set(); // cards to replace even if busy (this page just changed them)

  function scheduleMerge(delay) {
    clearTimeout(mergeTimer);
    mergeTimer = setTimeout(merge, delay === undefined ? 300 : delay);
  }

  async function merge() {
    if (merging) {
      mergeAgain = true;
      return;
    }
    merging = true;
    try {
      const fresh = TA.fragment(await TA.getHtml("/team/" + encodeURIComponent(slug) + "/cards"));
      const incoming = Array.from(fresh.querySelectorAll(".card"));
      const ids = new Set(incoming.map((c) => c.id));
      for (const old of cards.querySelectorAll(".card")) {
        if (!ids.has(old.id) && !busy(old)) old.remove();
      }
      let previous = null;
      for (const card of incoming) {
        after = Math.max(after, Number(card.dataset.assignment) || 0);
        const old = document.getElementById(card.id);
        if (old) {
          const keep = (busy(old) && !forced.has(old.id)) || signature(old) === signature(card);
          if (!keep) old.replaceWith(card);
          previous = keep ? old : card;
          continue;
        }
        if (previous) previous.after(card);
        else cards.prepend(card);
        previous = card;
      }
      forced.clear();
      applyFilter();
      const empty = cards.querySelector(".empty");
      if (cards.querySelector(".card")) {
        if (empty) empty.remove();
      } else if (!empty) {
        const placeholder = fresh.querySelector(".empty");
        if (placeholder) cards.append(placeholder);
      }
    } catch (_) {
      // offline: the next event or the periodic resync tries again
    } finally {
      merging = false;
      if (mergeAgain) {
        mergeAgain = false;
        scheduleMerge();
      }
    }
  }

  // --- search and "mine" ---------------------------------------------------------------

  const search = document.getElementById("team-search");
  const mine = document.getElementById("team-mine");

  function applyFilter() {
    const words = search ? search.value.trim().toLowerCase() : "";
    const onlyMine = Boolean(mine && mine.checked);
    let shown = 0;
    const all = cards.querySelectorAll(".card");
    for (const card of all) {
      const text = (card.querySelector(".text") || card).textContent + " " + (card.querySelector(".meta") || card).textContent;
      const hit = (!words || text.toLowerCase().includes(words)) && (!onlyMine || card.classList.contains("mine"));
      card.hidden = !hit;
      if (hit) shown += 1;
    }
    const note = document.getElementById("team-shown");
    if (note) note.textContent = words || onlyMine ? shown + " of " + all.length + " shown" : "";
  }

  if (search) search.addEventListener("input", applyFilter);
  if (mine) mine.addEventListener("change", applyFilter);

  // After an upload the card starts clean: the form emptied, the preview gone.
  function resetCard(question) {
    const card = cardFor(question);
    if (!card) return;
    const form = card.querySelector("form.upload-form");
    if (form) {
      form.reset();
      form.dataset.dirty = "";
      const preview = form.querySelector("video.preview");
      if (preview) {
        preview.hidden = true;
        preview.removeAttribute("src");
      }
    }
    if (card.contains(document.activeElement)) document.activeElement.blur();
    forced.add(card.id);
  }

  // --- take, give back, filmed ------------------------------------------------------------

  const DONE = {
    take: "You took the question.",
    "give-back": "Given back to the team.",
    filmed: "Marked as filmed: upload the video when you can.",
  };

  cards.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const card = button.closest(".card");
    button.disabled = true;
    try {
      await TA.api("POST", "/api/questions/" + card.dataset.question + "/" + button.dataset.act);
      TA.toast(DONE[button.dataset.act] || "Done.");
      if (!uploading.has(card.dataset.question)) forced.add(card.id);
      scheduleMerge(0);
    } catch (error) {
      TA.toast(error.message || "Not saved: the connection failed. Try again.", "bad");
    } finally {
      button.disabled = false;
    }
  });

  cards.addEventListener("input", (event) => {
    const form = event.target.closest("form.upload-form");
    if (form) form.dataset.dirty = "1";
  });

  // --- the outbox: answers kept on the phone until the server has them -----------------

  const DB_NAME = "ta-outbox";
  const STORE = "answers";
  const RETRY_MS = 15000;

  function openDb() {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "id" });
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }

  async function inStore(mode, work) {
    const db = await openDb();
    try {
      return await new Promise((resolve, reject) => {
        const tx = db.transaction(STORE, mode);
        const result = work(tx.objectStore(STORE));
        tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
      });
    } finally {
      db.close();
    }
  }

  const saveItem = (item) => inStore("readwrite", (store) => store.put(item));
  const dropItem = (id) => inStore("readwrite", (store) => store.delete(id));
  const allItems = () => inStore("readonly", (store) => store.getAll());

  const STATES = {
    waiting: "Waiting for a connection",
    shrinking: "Making it smaller on the phone…",
    sending: "Sending…",
    done: "Sent: the moderators will review it",
    failed: "Refused",
  };
  const done = []; // items sent during this visit (their bytes are gone from the phone)

  async function showOutbox() {
    const panel = document.getElementById("outbox");
    if (!panel) return;
    let items = [];
    try {
      items = await allItems();
    } catch (_) {
      items = [];
    }
    const list = panel.querySelector(".outbox-items");
    list.replaceChildren();
    for (const item of [...items, ...done]) {
      const row = document.createElement("li");
      row.className = "outbox-item state-" + item.state;
      row.dataset.id = item.id;
      row.dataset.state = item.state;
      const what = document.createElement("span");
      what.className = "what";
      what.textContent = (item.text || "Answer").slice(0, 60) + " · " + Math.ceil(item.size / 1024) + " KB";
      const state = document.createElement("span");
      state.className = "state";
      state.textContent = STATES[item.state] + (item.note ? ": " + item.note : "");
      row.append(what, state);
      if (item.state === "sending" && item.size) {
        const bar = document.createElement("progress");
        bar.max = 1;
        bar.value = (item.offset || 0) / item.size;
        row.append(bar);
      }
      if (item.state === "failed") {
        const remove = document.createElement("button");
        remove.type = "button";
        remove.dataset.outbox = "remove";
        remove.textContent = "Remove";
        row.append(remove);
      }
      list.append(row);
    }
    panel.hidden = list.children.length === 0;
    const waiting = items.filter((i) => i.state === "waiting").length;
    panel.querySelector(".outbox-note").textContent = navigator.onLine
      ? ""
      : "No connection: " + waiting + " waiting. They go by themselves when the connection is back.";
  }

  document.addEventListener("click", async (event) => {
    const remove = event.target.closest("button[data-outbox='remove']");
    if (!remove) return;
    await dropItem(remove.closest(".outbox-item").dataset.id);
    showOutbox();
  });

  // --- uploading an answer -----------------------------------------------------------------

  async function sha256(file) {
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function typeOf(file) {
    if (file.type) return file.type.split(";")[0];
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    return TYPES[ext] || "application/octet-stream";
  }

  // The upload to continue: the one started for this outbox item, if the server still
  // has it; else a new one.
  async function openUpload(item) {
    if (item.uploadId) {
      try {
        return await TA.api("GET", "/api/uploads/" + encodeURIComponent(item.uploadId));
      } catch (error) {
        if (!(error instanceof TA.ApiError && error.status === 404)) throw error;
      }
    }
    const state = await TA.api("POST", "/api/questions/" + item.question + "/uploads", {
      filename: item.name.slice(-256) || "answer",
      size: item.size,
      mime: item.type,
      sha256: item.sha256,
    });
    item.uploadId = state.upload_id;
    await saveItem(item);
    return state;
  }

  async function errorOf(response) {
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    const error = (data && data.error) || {};
    return new TA.ApiError(response.status, error.code || "http_" + response.status, error.message || response.statusText, error.details);
  }

  class Offline extends Error {}

  // Send the bytes from where the server stands; a failing connection pauses the item.
  async function send(item, state, report) {
    const id = encodeURIComponent(state.upload_id);
    let offset = state.offset;
    let failures = 0;
    while (offset < item.size) {
      item.offset = offset;
      report("Sending… " + Math.floor((100 * offset) / item.size) + "%");
      const end = Math.min(item.size, offset + CHUNK);
      let response = null;
      try {
        response = await fetch("/api/uploads/" + id, {
          method: "PATCH",
          credentials: "same-origin",
          headers: {
            "Upload-Offset": String(offset),
            "Content-Type": "application/offset+octet-stream",
            "X-CSRF-Token": TA.csrf,
          },
          body: item.blob.slice(offset, end),
        });
      } catch (_) {
        response = null; // the network failed: resume below
      }
      if (response && response.ok) {
        offset = (await response.json()).offset;
        failures = 0;
        continue;
      }
      if (response && response.status === 409) {
        const error = await errorOf(response);
        const expected = error.details && error.details.expected_offset;
        if (Number.isInteger(expected)) {
          offset = expected; // the server has more (or less) than we thought
          continue;
        }
        throw error;
      }
      if (response && response.status < 500 && ![408, 429].includes(response.status)) {
        throw await errorOf(response);
      }
      failures += 1;
      if (failures > MAX_RETRIES || !navigator.onLine) throw new Offline("connection lost");
      const pause = Math.min(15000, 500 * 2 ** (failures - 1));
      report("Connection lost; trying again in " + Math.ceil(pause / 1000) + " s…");
      await sleep(pause);
      try {
        offset = (await TA.api("GET", "/api/uploads/" + id)).offset;
      } catch (error) {
        if (error instanceof TA.ApiError && error.status === 404) throw error;
        // still offline: the next PATCH finds out where we stand
      }
    }
    item.offset = item.size;
  }

  function cardFor(question) {
    return cards.querySelector('.card[data-question="' + question + '"]');
  }

  function sayOnCard(question, text, kind) {
    const card = cardFor(question);
    const status = card && card.querySelector(".upload-status");
    if (!status) return;
    status.textContent = text;
    status.className = "upload-status" + (kind ? " " + kind : "");
  }

  // One outbox item, start to end: its bytes, the answer with the consent, its subtitles.
  async function deliver(item) {
    const question = item.question;
    uploading.add(question);
    item.state = "sending";
    item.note = "";
    await saveItem(item);
    showOutbox();
    const report = (text) => {
      sayOnCard(question, text);
      showOutbox();
    };
    try {
      const state = await openUpload(item);
      await send(item, state, report);
      report("Saving the answer…");
      const answer = await TA.api("POST", "/api/uploads/" + encodeURIComponent(state.upload_id) + "/answer", item.fields);
      if (item.subtitles) {
        const english = item.subtitlesEnglish ? "?english=true" : "";
        await fetch("/api/answers/" + encodeURIComponent(answer.id) + "/subtitles" + english, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "text/vtt", "X-CSRF-Token": TA.csrf },
          body: item.subtitles,
        });
      }
      await dropItem(item.id);
      done.push({ id: item.id, state: "done", text: item.text, size: item.size, note: "" });
      resetCard(question);
      sayOnCard(question, "Answer sent: the moderators will review it.", "ok");
      scheduleMerge(1500);
    } catch (error) {
      // A server or gateway that could not answer now (5xx, 408, 429) is not a refusal:
      // the upload waits on the server, and finishing it again is safe (a retried finish
      // records nothing new), so the item waits too.
      const transient = error && (error.status >= 500 || error.status === 408 || error.status === 429);
      if (error instanceof Offline || error instanceof TypeError || transient) {
        item.state = "waiting";
        item.note = "";
        sayOnCard(question, "Kept on the phone: it goes by itself when the connection is back.");
      } else {
        item.state = "failed";
        item.note = error.message || "refused";
        sayOnCard(question, item.note, "bad");
      }
      await saveItem(item);
    } finally {
      uploading.delete(question);
      showOutbox();
    }
  }

  let pumping = false;

  // Send whatever waits, one at a time (a camp link carries one upload at a time well).
  async function pump() {
    if (pumping || !navigator.onLine) {
      showOutbox();
      return;
    }
    pumping = true;
    try {
      for (const item of await allItems()) {
        if (!navigator.onLine) break;
        if (item.state === "waiting" || item.state === "sending") await deliver(item);
      }
    } catch (_) {
      // IndexedDB unavailable: nothing is queued
    } finally {
      pumping = false;
      showOutbox();
    }
  }

  window.addEventListener("online", () => {
    TA.toast("Connection back: sending what waits.");
    pump();
  });
  window.addEventListener("offline", showOutbox);
  setInterval(pump, RETRY_MS);

  // --- sending an answer ---------------------------------------------------------------------

  async function submit(form) {
    const card = form.closest(".card");
    const question = card.dataset.question;
    const fields = form.elements;
    const say = (text, kind) => sayOnCard(question, text, kind);
    const chosen = fields.video.files[0];
    const recorded = M.recordings.get(question);
    const source = chosen || recorded;
    if (!source) return say("Record the answer or choose the video first.", "bad");
    if (!fields.consent.checked) {
      return say("No consent, no answer: tick the consent box once the person filmed has agreed.", "bad");
    }
    if (!fields.consent_given_by.value.trim()) return say("Write who gave consent.", "bad");
    if (!fields.consent_scope.value) return say("Choose what the video may be used for.", "bad");
    if (fields.language.value.trim().length < 2) return say("Write the answer's language (en, so, ar…).", "bad");
    if (!window.crypto || !crypto.subtle) return say("Uploads need a secure (https) connection.", "bad");
    if (uploading.has(question)) return;
    const button = form.querySelector("button[type='submit']");
    button.disabled = true;
    uploading.add(question);
    try {
      let blob = source;
      try {
        blob = await M.shrink(source, (text) => say(text));
      } catch (_) {
        blob = source; // the phone could not re-encode it: the original goes up
      }
      if (MAX_BYTES && blob.size > MAX_BYTES) return say("This video is too large to send.", "bad");
      say("Checking the file…");
      const type = blob === source && chosen ? typeOf(chosen) : (blob.type || "video/webm").split(";")[0];
      const extension = { "video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov", "video/3gpp": "3gp" }[type] || "mp4";
      const subtitles = fields.subtitles && fields.subtitles.files[0] ? await fields.subtitles.files[0].text() : null;
      const item = {
        id: crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random(),
        question,
        text: card.querySelector(".text") ? card.querySelector(".text").textContent : "",
        name: chosen ? chosen.name : "recording." + extension,
        type,
        size: blob.size,
        sha256: await sha256(blob),
        blob,
        fields: {
          language: fields.language.value.trim(),
          consent_given_by: fields.consent_given_by.value.trim(),
          consent_scope: fields.consent_scope.value,
          caption: fields.caption.value,
          transcript: fields.transcript.value,
        },
        subtitles,
        subtitlesEnglish: false,
        state: "waiting",
        note: "",
        offset: 0,
        created: Date.now(),
      };
      await saveItem(item);
      M.recordings.delete(question);
      form.dataset.dirty = "";
      say(navigator.onLine ? "Sending…" : "Kept on the phone: it goes by itself when the connection is back.");
    } catch (error) {
      say(error.message || "The answer could not be kept on this phone.", "bad");
    } finally {
      uploading.delete(question);
      button.disabled = false;
      showOutbox();
    }
    pump();
  }

  cards.addEventListener("submit", (event) => {
    const form = event.target.closest("form.upload-form");
    if (!form) return;
    event.preventDefault();
    submit(form);
  });

  // --- the page without a connection: a service worker keeps the shell and the feed ------

  async function keepTheShell() {
    if (!("serviceWorker" in navigator) || !window.caches) return;
    try {
      await navigator.serviceWorker.register("/team-sw.js");
      const urls = [location.pathname, "/team/" + encodeURIComponent(slug) + "/cards"];
      document.querySelectorAll("script[src], link[rel='stylesheet']").forEach((el) => urls.push(el.src || el.href));
      if (typeof VideoEncoder !== "undefined") urls.push(M.asset("vendor/mediabunny.min.mjs"));
      const cache = await caches.open("ta-shell");
      await Promise.all(
        urls.map((url) =>
          fetch(url, { credentials: "same-origin" })
            .then((response) => (response.ok ? cache.put(url, response) : null))
            .catch(() => null),
        ),
      );
    } catch (_) {
      // no service worker here: the page needs a connection to open
    }
  }

  // --- live feed ---------------------------------------------------------------------------

  function connect() {
    const source = new EventSource("/api/teams/" + encodeURIComponent(slug) + "/stream?after=" + after);
    source.addEventListener("open", () => TA.setLive(true));
    source.addEventListener("assignment", (event) => {
      let entry = null;
      try {
        entry = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      after = Math.max(after, entry.assignment_id || 0);
      if (!document.getElementById("a-" + entry.assignment_id)) {
        TA.toast("New question assigned");
        scheduleMerge(0);
      }
    });
    source.onerror = () => {
      TA.setLive(false);
      source.close();
      setTimeout(() => {
        connect();
        scheduleMerge(0);
      }, 3000);
    };
  }

  setInterval(() => scheduleMerge(0), RESYNC_MS); // taken by a team-mate, sent back, …
  connect();
  keepTheShell();
  pump();
})();
