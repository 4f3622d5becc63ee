// An answer's media, on the review pages and the team page: where the media worker
// stands (polled while it works), the moderator's cut (in and out points, marked from
// the player), the transcript and its English translation corrected by people, a
// subtitle file that replaces the generated one, and trying again what failed.
(function () {
  "use strict";

  const TA = window.TA;
  if (!TA) return;

  const POLL_MS = 3000;

  function cardOf(el) {
    return el.closest("[data-answer].answer, .card") || document;
  }

  // Swap a media panel for a fresh one; the approve button follows its readiness.
  async function refresh(panel) {
    const id = panel.dataset.answer;
    let fresh = null;
    try {
      fresh = TA.fragment(await TA.getHtml("/answers/" + encodeURIComponent(id) + "/media-panel"));
    } catch (_) {
      return; // offline: the next round tries again
    }
    const next = fresh.querySelector(".media-panel");
    if (!next || !panel.isConnected) return;
    panel.replaceWith(next);
    follow(next);
  }

  // The words, subtitles or cut changed since the page was loaded (the machine's
  // transcript came, or the team edited them): what the page shows is not what would
  // go out, so it says so and approving waits for a reload (the server refuses it too).
  function stale(card, panel) {
    if (!card.dataset) return false; // not in an answer's card
    const seen = card.dataset.revision;
    const changed = Boolean(seen && panel.dataset.revision && panel.dataset.revision !== seen);
    let note = card.querySelector(".answer-changed");
    if (changed && !note) {
      note = document.createElement("p");
      note.className = "answer-changed";
      note.setAttribute("role", "status");
      note.textContent = "The words, subtitles or cut changed since this page was loaded. ";
      const reload = document.createElement("button");
      reload.type = "button";
      reload.textContent = "Reload to review them";
      reload.addEventListener("click", () => location.reload());
      note.append(reload);
      panel.after(note);
    }
    if (note) note.hidden = !changed;
    return changed;
  }

  function follow(panel) {
    const card = cardOf(panel);
    const changed = stale(card, panel);
    const approve = card.querySelector && card.querySelector("button[data-review='approve']");
    if (approve) {
      const ready = panel.dataset.ready === "yes";
      approve.disabled =
        !ready || changed || approve.dataset.noConsent === "yes" || approve.dataset.own === "yes";
      const why = card.querySelector(".approve-why");
      if (why) why.hidden = ready;
    }
    const poster = card.querySelector && card.querySelector("video:not([poster])");
    if (poster && panel.dataset.busy === "no") {
      poster.setAttribute("poster", "/api/answers/" + encodeURIComponent(panel.dataset.answer) + "/poster");
    }
  }

  function poll() {
    document.querySelectorAll(".media-panel[data-busy='yes']").forEach(refresh);
  }

  document.querySelectorAll(".media-panel").forEach(follow);
  setInterval(poll, POLL_MS);

  // work() answers with the answer as saved: its revision is now what this page shows.
  async function act(button, work, done) {
    if (button) button.disabled = true;
    try {
      const saved = await work();
      if (done) TA.toast(done);
      const card = cardOf(button);
      if (saved && saved.revision && card.dataset && card.dataset.revision !== undefined) {
        card.dataset.revision = saved.revision;
      }
      const panel = card.querySelector(".media-panel");
      if (panel) refresh(panel);
    } catch (error) {
      TA.toast(error.message || "Not saved: the connection failed.", "bad");
    } finally {
      if (button) button.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const mark = event.target.closest("button[data-mark]");
    if (mark) {
      const video = cardOf(mark).querySelector("video");
      const input = mark.closest("form").elements[mark.dataset.mark];
      if (video && input) input.value = video.currentTime.toFixed(1);
      return;
    }
    const retry = event.target.closest("button[data-media='retry']");
    if (retry) {
      act(retry, () => TA.api("POST", "/api/answers/" + retry.dataset.answer + "/media/retry"), "Asked again.");
    }
  });

  document.addEventListener("submit", (event) => {
    const trim = event.target.closest("form.trim-form");
    if (trim) {
      event.preventDefault();
      const start = Number(trim.elements.start_s.value || 0);
      const end = trim.elements.end_s.value === "" ? null : Number(trim.elements.end_s.value);
      act(
        trim.querySelector("button[type='submit']"),
        () => TA.api("POST", "/api/answers/" + trim.dataset.answer + "/trim", { start_s: start, end_s: end }),
        "Cut: the platforms' versions are made again.",
      );
      return;
    }
    const words = event.target.closest("form.words-form");
    if (words) {
      event.preventDefault();
      const id = words.dataset.answer;
      const file = words.elements.subtitles.files[0];
      act(
        words.querySelector("button[type='submit']"),
        async () => {
          let saved = await TA.api("PUT", "/api/answers/" + id + "/transcript", {
            transcript: words.elements.transcript.value,
            translation: words.elements.translation.value,
          });
          if (file) {
            const english = words.elements.english.checked ? "?english=true" : "";
            const response = await fetch("/api/answers/" + id + "/subtitles" + english, {
              method: "POST",
              credentials: "same-origin",
              headers: { "Content-Type": "text/vtt", "X-CSRF-Token": TA.csrf },
              body: await file.text(),
            });
            if (!response.ok) {
              const body = await response.json().catch(() => ({}));
              throw new Error((body.error && body.error.message) || "the subtitle file was refused");
            }
            saved = await response.json();
          }
          return saved;
        },
        "Saved: on the question's timeline.",
      );
    }
  });
})();
