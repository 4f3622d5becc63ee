// Labels for the model, on the queue and on the "model is unsure" page: keys on the
// focused card (Shift+O offensive, Shift+H hate, Shift+N neither, Shift+Q a genuine
// question, Shift+X reject as abusive), the cards' label buttons, and the quarantine
// page's "Confirm: it is abuse".
(function () {
  "use strict";

  const TA = window.TA;
  if (!TA) return;

  const LABELS = {
    offensive: { offensive: true },
    hate: { offensive: true, hate: true },
    neither: { offensive: false, hate: false },
    question: { question: true },
  };
  const KEYS = { O: "offensive", H: "hate", N: "neither", Q: "question" };

  function focusedCard() {
    const active = document.activeElement;
    const card = active && active.closest ? active.closest(".item[data-id]") : null;
    return card || document.querySelector(".item.focused[data-id]");
  }

  async function label(card, name) {
    if (!card) return;
    try {
      await TA.api("POST", "/api/questions/" + encodeURIComponent(card.dataset.id) + "/labels", LABELS[name]);
      card.classList.add("labelled");
      TA.toast("Labelled: " + name);
    } catch (error) {
      TA.toast("Refused: " + (error.message || "the connection failed"), "bad");
    }
  }

  async function rejectAbusive(card) {
    if (!card) return;
    try {
      await TA.api("POST", "/api/questions/" + encodeURIComponent(card.dataset.id) + "/reject", { reason: "abusive" });
      TA.toast("Rejected as abusive");
    } catch (error) {
      TA.toast("Refused: " + (error.message || "the connection failed"), "bad");
    }
  }

  document.addEventListener("keydown", (event) => {
    if (!event.shiftKey || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (target.closest && target.closest("input, select, textarea, [contenteditable]")) return;
    const key = event.key.toUpperCase();
    if (key === "X") {
      rejectAbusive(focusedCard());
    } else if (KEYS[key]) {
      label(focusedCard(), KEYS[key]);
    } else {
      return;
    }
    event.preventDefault();
  });

  async function confirmQuarantine(card) {
    try {
      await TA.api("POST", "/api/questions/" + encodeURIComponent(card.dataset.id) + "/quarantine/confirm");
      card.classList.add("labelled");
      TA.toast("Confirmed as abuse");
    } catch (error) {
      TA.toast("Refused: " + (error.message || "the connection failed"), "bad");
    }
  }

  document.addEventListener("click", (event) => {
    const confirmButton = event.target.closest("button[data-confirm-quarantine]");
    if (confirmButton) {
      confirmQuarantine(confirmButton.closest(".item[data-id]"));
      return;
    }
    const button = event.target.closest("button[data-label]");
    if (!button) return;
    label(button.closest(".item[data-id]"), button.dataset.label);
  });
})();
