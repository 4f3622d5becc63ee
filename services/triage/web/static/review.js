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

  async function approve(button) {
    const card = button.closest(".answer");
    button.disabled = true;
    try {
      const body = button.dataset.standalone === "yes" ? { standalone: true } : undefined;
      const replies = await TA.api("POST", "/api/questions/" + button.dataset.question + "/answer/approve", body);
      const n = replies.length;
      reviewed(card, "Approved: " + n + (n === 1 ? " reply" : " replies") + " requested.", "approved");
    } catch (error) {
      TA.toast(error.message || "Not saved: the connection failed.", "bad");
      button.disabled = false;
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
      await TA.api("POST", "/api/questions/" + form.dataset.question + "/answer/return", { note });
      reviewed(card, "Sent back to the team.", "returned");
    } catch (error) {
      TA.toast(error.message || "Not saved: the connection failed.", "bad");
      button.disabled = false;
    }
  }

  async function questionAction(path, body, button) {
    if (button) button.disabled = true;
    try {
      await TA.api("POST", path, body);
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
    const assign = event.target.closest("form.assign-form");
    if (assign) {
      event.preventDefault();
      questionAction(
        "/api/questions/" + assign.dataset.question + "/assign",
        { team: assign.elements.team.value },
        assign.querySelector("button"),
      );
    }
  });
})();
