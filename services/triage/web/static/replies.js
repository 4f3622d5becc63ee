// Replies to our answers: unhide (u) or hide (h) the reply in focus, j/k to move, z to
// undo the last change; acknowledge alerts, pause and resume a person's publishing.
(function () {
  "use strict";

  const TA = window.TA;
  const list = document.getElementById("reply-list");
  if (!TA || !list) return;

  const undoable = [];

  function items() {
    return Array.from(list.querySelectorAll("article.reply"));
  }

  function current() {
    const focused = document.activeElement && document.activeElement.closest("article.reply");
    return focused || items()[0] || null;
  }

  function move(step) {
    const all = items();
    if (!all.length) return;
    const at = all.indexOf(current());
    const next = all[Math.max(0, Math.min(all.length - 1, at + step))];
    next.focus();
  }

  function show(card, state) {
    card.dataset.state = state;
    card.className = "item reply state-" + state;
    const label = card.querySelector("[data-role='state']");
    if (label) label.textContent = state;
  }

  async function act(card, verb, remember) {
    if (!card) return;
    try {
      const view = await TA.api("POST", "/api/replies/" + verb, { reply_id: card.dataset.id });
      show(card, view.state);
      if (remember) {
        const entry = { card, verb: verb === "unhide" ? "hide" : "unhide" };
        undoable.push(entry);
        const what = verb === "unhide" ? "Shown again; the rules will not hide it again" : "Hide asked";
        TA.toast(what, "", { label: "Undo", key: "z", run: () => undo(entry) });
      }
    } catch (error) {
      TA.toast("Refused: " + (error.message || "the connection failed"), "bad");
    }
  }

  async function undo(entry) {
    const target = entry || undoable.pop();
    if (!target) {
      TA.toast("Nothing to undo");
      return;
    }
    const at = undoable.indexOf(target);
    if (at !== -1) undoable.splice(at, 1);
    await act(target.card, target.verb, false);
  }

  async function post(url, body, done) {
    try {
      await TA.api("POST", url, body);
      TA.toast(done);
      return true;
    } catch (error) {
      TA.toast("Refused: " + (error.message || "the connection failed"), "bad");
      return false;
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const verb = button.dataset.act;
    if (verb === "unhide" || verb === "hide") {
      act(button.closest("article.reply"), verb, true);
    } else if (verb === "acknowledge") {
      const alert = button.closest("li");
      post("/api/alerts/" + alert.dataset.id + "/acknowledge", undefined, "Alert acknowledged").then(
        (ok) => {
          if (ok) alert.hidden = true;
        },
      );
    } else if (verb === "pause") {
      post("/api/speakers/pause", { speaker_ref: button.dataset.speaker, reason: "after an alert" }, "Publishing paused");
    } else if (verb === "resume") {
      post("/api/speakers/resume", { speaker_ref: button.dataset.speaker }, "Publishing resumed").then((ok) => {
        if (ok) button.closest("li").hidden = true;
      });
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const t = event.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
    if (event.key === "j") move(1);
    else if (event.key === "k") move(-1);
    else if (event.key === "u") act(current(), "unhide", true);
    else if (event.key === "h") act(current(), "hide", true);
    else if (event.key === "z") undo(null);
    else return;
    event.preventDefault();
  });
})();
