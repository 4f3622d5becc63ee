// Answer review (/answers and a question's page) and the question page's actions.
(function () {
  "use strict";

  const TA = window.TA;
  if (!TA) return;

  function reviewed(card, text, state) {
    const actions = card.querySelector(".review-actions");
    if (actions) actions.remove();
    const result = card.querySelector(".review-result");
    if (result) {
      result.textContent = text;
      result.hidden = false;
    }
    const label = card.querySelector(".answer-state");
    if (label) label.textContent = state;
  }

  // Each recipient with the exact reply the publisher will post to them (its template,
  // their platform's form: @handle first on Mastodon, no link on X).
  function showRecipients(dialog, preview) {
    const list = dialog.querySelector(".recipients");
    list.replaceChildren(
      ...preview.recipients.map((r) => {
        const item = document.createElement("li");
        const who = document.createElement("b");
        who.textContent = "@" + r.author_handle;
        const asked = document.createElement("q");
        asked.textContent = r.question;
        item.append(who, " on " + r.platform + " (" + (r.lang || "language unknown") + "), who asked ", asked);
        const posted = document.createElement("blockquote");
        posted.className = "posted-text";
        posted.dir = "auto";
        if (r.reply_language) posted.lang = r.reply_language;
        posted.textContent = r.posted_text;
        const how = document.createElement("small");
        how.className = "hint";
        how.textContent =
          "Posted as (" + (r.reply_language || "no language") + ", " + r.posted_text.length + " characters" +
          (r.own_language_reply ? ", a line in their language: the video carries the answer" : "") + "):";
        item.append(how, posted);
        return item;
      }),
    );
    dialog.querySelector(".reply-text").textContent = preview.text;
  }

  // Every review call names the answer on the card (the video the moderator watched): the
  // server refuses it once a newer recording has replaced that one (409 answer_replaced).
  function previewPath(question, answer, standalone, caption) {
    const query = new URLSearchParams();
    query.set("answer_id", answer);
    if (standalone === "yes") query.set("standalone", "true");
    if (caption !== undefined) query.set("caption", caption);
    const q = query.toString();
    return "/api/questions/" + question + "/answer/preview" + (q ? "?" + q : "");
  }

  // Approving shows first who will receive a reply (every asker of the cluster) and the
  // reply's exact text for each, which can be corrected; only "Send" requests the replies.
  async function approve(button) {
    const card = button.closest(".answer");
    const dialog = card.querySelector("dialog.approve-dialog");
    const question = button.dataset.question;
    const answer = card.dataset.answer;
    const standalone = button.dataset.standalone || "";
    button.disabled = true;
    let preview;
    try {
      preview = await TA.api("GET", previewPath(question, answer, standalone));
    } catch (error) {
      TA.toast(error.message || "Could not load the recipients: the connection failed.", "bad");
      button.disabled = false;
      return;
    }
    button.disabled = false;
    const n = preview.recipients.length;
    dialog.querySelector(".recipient-count").textContent = n + (n === 1 ? " person" : " people");
    showRecipients(dialog, preview);
    const caption = dialog.querySelector(".approve-caption");
    caption.value = preview.caption;
    caption.dataset.original = preview.caption;
    // A correction is rendered by the server (the publisher's templates), not saved, as it is typed.
    let timer;
    const rerender = () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        try {
          showRecipients(dialog, await TA.api("GET", previewPath(question, answer, standalone, caption.value)));
        } catch (error) {
          TA.toast(error.message || "Could not show the new text: the connection failed.", "bad");
        }
      }, 300);
    };
    const canned = dialog.querySelector("select.canned");
    if (canned) {
      canned.replaceChildren(canned.options[0]);
      for (const text of preview.canned || []) canned.append(new Option(text, text));
      canned.closest("label").hidden = !(preview.canned || []).length;
      canned.onchange = () => {
        if (canned.value) caption.value = canned.value;
        rerender();
      };
    }
    caption.oninput = rerender;
    const send = dialog.querySelector("[data-review='confirm']");
    send.textContent = "Send " + n + (n === 1 ? " reply" : " replies");
    // "Approve as a standalone post" (a post X will not let us reply to) goes on to the confirmation.
    send.dataset.standalone = standalone;
    dialog.showModal();
  }

  async function confirmApprove(button) {
    const card = button.closest(".answer");
    const dialog = button.closest("dialog");
    const caption = dialog.querySelector(".approve-caption");
    const question = button.dataset.question;
    const answer = card.dataset.answer;
    button.disabled = true;
    try {
      if (caption.value.trim() !== (caption.dataset.original || "").trim()) {
        await TA.api("PUT", "/api/questions/" + question + "/answer/caption", { caption: caption.value, answer_id: answer });
      }
      // The words, subtitles and cut as this page shows them, and the reply's text as
      // the dialog shows it: a change by anyone else since refuses the approval.
      const body = { answer_id: answer, revision: card.dataset.revision, caption: caption.value };
      if (button.dataset.standalone === "yes") body.standalone = true;
      const replies = await TA.api("POST", "/api/questions/" + question + "/answer/approve", body);
      dialog.close();
      const n = replies.length;
      reviewed(card, "Approved: " + n + (n === 1 ? " reply" : " replies") + " requested.", "approved");
      const shown = card.querySelector(".caption");
      if (shown) shown.textContent = caption.value.trim() || "—";
    } catch (error) {
      TA.toast(error.message || "Not saved: the connection failed.", "bad");
      button.disabled = false;
      if (error.code === "answer_changed") {
        dialog.close();
        setTimeout(() => location.reload(), 2500); // show what changed
      }
    }
  }

  async function sendBack(form) {
    const card = form.closest(".answer");
    const note = form.elements.note.value.trim();
    if (!note) {
      TA.toast("Write a note telling the team what to change.", "bad");
      form.elements.note.focus();
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await TA.api("POST", "/api/questions/" + form.dataset.question + "/answer/return", { note, answer_id: card.dataset.answer });
      reviewed(card, "Sent back to the team.", "returned");
    } catch (error) {
      TA.toast(error.message || "Not saved: the connection failed.", "bad");
      button.disabled = false;
    }
  }

  async function questionAction(path, body, button, method) {
    if (button) button.disabled = true;
    try {
      await TA.api(method || "POST", path, body);
      location.reload();
    } catch (error) {
      TA.toast(error.message || "Not saved: the connection failed.", "bad");
      if (button) button.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const review = event.target.closest("button[data-review='approve']");
    if (review) {
      approve(review);
      return;
    }
    const confirm = event.target.closest("button[data-review='confirm']");
    if (confirm) {
      confirmApprove(confirm);
      return;
    }
    const cancel = event.target.closest("button[data-review='cancel']");
    if (cancel) {
      cancel.closest("dialog").close();
      return;
    }
    const act = event.target.closest("button[data-act-question]");
    if (act) {
      if (act.dataset.confirm && !window.confirm(act.dataset.confirm)) return;
      const id = act.closest("[data-question]").dataset.question;
      questionAction("/api/questions/" + id + "/" + act.dataset.actQuestion, {}, act);
    }
  });

  document.addEventListener("submit", (event) => {
    const back = event.target.closest("form.return-form");
    if (back) {
      event.preventDefault();
      sendBack(back);
      return;
    }
    const withdraw = event.target.closest("form.withdraw-form");
    if (withdraw) {
      event.preventDefault();
      const button = withdraw.querySelector("button");
      if (!window.confirm(button.dataset.confirm)) return;
      const field = withdraw.elements;
      questionAction(
        "/api/answers/" + withdraw.dataset.answer + "/consent/withdraw",
        {
          requested_by: field.requested_by.value.trim(),
          requested_at: new Date(field.requested_at.value).toISOString(),
          channel: field.channel.value.trim(),
          note: field.note.value.trim(),
        },
        button,
      );
      return;
    }
    const note = event.target.closest("form.note-form");
    if (note) {
      event.preventDefault();
      const text = note.elements.text.value.trim();
      if (!text) return;
      questionAction("/api/questions/" + note.dataset.question + "/notes", { text }, note.querySelector("button"));
      return;
    }
    const assignee = event.target.closest("form.assignee-form");
    if (assignee) {
      event.preventDefault();
      const user = assignee.elements.user.value || null;
      questionAction("/api/questions/" + assignee.dataset.question + "/assignee", { user }, assignee.querySelector("button"), "PUT");
      return;
    }
    const assign = event.target.closest("form.assign-form");
    if (assign) {
      event.preventDefault();
      const choice = assign.elements.team.selectedOptions[0];
      if (!choice || !choice.value) {
        TA.toast("Choose a team first.", "bad");
        return;
      }
      // A full team or one that does not speak the language: say so before, not after.
      if (choice.dataset.warn && !window.confirm(choice.dataset.warn + ". Assign anyway?")) return;
      questionAction(
        "/api/questions/" + assign.dataset.question + "/assign",
        { team: assign.elements.team.value },
        assign.querySelector("button"),
      );
    }
  });
})();
