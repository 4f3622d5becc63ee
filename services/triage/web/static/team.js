// A recording team's page, made for a phone on a poor connection.
//
// - The feed is live: /api/teams/<slug>/stream announces new assignments; the cards
//   themselves are server-rendered (/team/<slug>/cards) and merged in without
//   touching a card someone is filling in or uploading from.
// - Take / give back / mark filmed call the JSON API.
// - Answers upload in chunks (File.slice + PATCH with Upload-Offset). After a failure
//   the page asks the server how much arrived (GET /api/uploads/<id>) and goes on
//   from there; the upload id is kept in localStorage, so even a reloaded page (or a
//   phone that dropped the tab) resumes instead of starting again.
// - No consent, no answer: the page refuses to send without the consent box ticked
//   and who gave it, and the server refuses too.
(function () {
  "use strict";

  const TA = window.TA;
  const cards = document.getElementById("cards");
  if (!TA || !cards) return;

  const slug = cards.dataset.team;
  const CHUNK = Number(cards.dataset.chunk) || 1024 * 1024;
  const MAX_BYTES = Number(cards.dataset.maxBytes) || 0;
  const MAX_RETRIES = 8;
  const RESYNC_MS = 60000;
  const TYPES = { mp4: "video/mp4", m4v: "video/mp4", webm: "video/webm", mov: "video/quicktime" };

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

  // --- uploading an answer -----------------------------------------------------------------

  async function sha256(file) {
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function typeOf(file) {
    if (file.type) return file.type;
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    return TYPES[ext] || "application/octet-stream";
  }

  function remembered(key) {
    try {
      return localStorage.getItem(key);
    } catch (_) {
      return null;
    }
  }

  function remember(key, value) {
    try {
      if (value) localStorage.setItem(key, value);
      else localStorage.removeItem(key);
    } catch (_) {
      // private mode: resuming works within this page only
    }
  }

  // The upload to continue: the one this browser started for the same file, if the
  // server still has it; else a new one.
  async function openUpload(question, file, hash) {
    const key = "ta-upload:" + question + ":" + hash;
    const known = remembered(key);
    if (known) {
      try {
        return { key, state: await TA.api("GET", "/api/uploads/" + encodeURIComponent(known)) };
      } catch (error) {
        if (!(error instanceof TA.ApiError && error.status === 404)) throw error;
        remember(key, null); // expired or finished elsewhere: start again
      }
    }
    const state = await TA.api("POST", "/api/questions/" + question + "/uploads", {
      filename: file.name.slice(-256) || "answer",
      size: file.size,
      mime: typeOf(file),
      sha256: hash,
    });
    remember(key, state.upload_id);
    return { key, state };
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

  // Send the bytes from where the server stands; retry failures with a growing pause.
  async function send(file, state, progress, say) {
    const id = encodeURIComponent(state.upload_id);
    const size = state.size;
    let offset = state.offset;
    let failures = 0;
    while (offset < size) {
      progress.value = offset / size;
      say("Uploading… " + Math.floor((100 * offset) / size) + "%");
      const end = Math.min(size, offset + CHUNK);
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
          body: file.slice(offset, end),
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
      if (failures > MAX_RETRIES) {
        throw new Error(
          "The connection keeps failing. " + Math.floor((100 * offset) / size) +
            "% is saved: press Upload again with the same file to go on.",
        );
      }
      const pause = Math.min(15000, 500 * 2 ** (failures - 1));
      say("Connection lost; trying again in " + Math.ceil(pause / 1000) + " s…");
      await sleep(pause);
      try {
        offset = (await TA.api("GET", "/api/uploads/" + id)).offset;
      } catch (error) {
        if (error instanceof TA.ApiError && error.status === 404) throw error;
        // still offline: the next PATCH finds out where we stand
      }
    }
    progress.value = 1;
  }

  async function upload(form) {
    const card = form.closest(".card");
    const question = card.dataset.question;
    const fields = form.elements;
    const status = form.querySelector(".upload-status");
    const progress = form.querySelector(".upload-progress");
    const button = form.querySelector("button[type='submit']");
    const say = (text, kind) => {
      status.textContent = text;
      status.className = "upload-status" + (kind ? " " + kind : "");
    };
    const file = fields.video.files[0];
    if (!file) return say("Choose the video file first.", "bad");
    if (!fields.consent.checked) {
      return say("No consent, no answer: tick the consent box once the person filmed has agreed.", "bad");
    }
    if (!fields.consent_given_by.value.trim()) return say("Write who gave consent.", "bad");
    if (!fields.consent_scope.value) return say("Choose what the video may be used for.", "bad");
    if (fields.language.value.trim().length < 2) return say("Write the answer's language (en, fr, ar…).", "bad");
    if (MAX_BYTES && file.size > MAX_BYTES) return say("This video is too large to send.", "bad");
    if (!window.crypto || !crypto.subtle) return say("Uploads need a secure (https) connection.", "bad");
    if (uploading.has(question)) return;

    uploading.add(question);
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    try {
      say("Checking the file…");
      const hash = await sha256(file);
      const { key, state } = await openUpload(question, file, hash);
      await send(file, state, progress, say);
      say("Saving the answer…");
      await TA.api("POST", "/api/uploads/" + encodeURIComponent(state.upload_id) + "/answer", {
        language: fields.language.value.trim(),
        consent_given_by: fields.consent_given_by.value.trim(),
        consent_scope: fields.consent_scope.value,
        caption: fields.caption.value,
        transcript: fields.transcript.value,
      });
      remember(key, null);
      say("Answer sent: the moderators will review it.", "ok");
      form.dataset.dirty = "";
      forced.add(card.id);
      scheduleMerge(1500);
    } catch (error) {
      say(error.message || "The upload failed; press Upload to try again.", "bad");
    } finally {
      uploading.delete(question);
      button.disabled = false;
    }
  }

  cards.addEventListener("submit", (event) => {
    const form = event.target.closest("form.upload-form");
    if (!form) return;
    event.preventDefault();
    upload(form);
  });

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
})();
