// The model page: start a retrain, make an earlier version live (rollback).
(function () {
  "use strict";

  const TA = window.TA;
  if (!TA) return;

  async function post(url, body, done) {
    try {
      await TA.api("POST", url, body);
      TA.toast(done);
      setTimeout(() => location.reload(), 800);
    } catch (error) {
      TA.toast("Refused: " + (error.message || "the connection failed"), "bad");
    }
  }

  const retrain = document.getElementById("retrain");
  if (retrain) {
    retrain.addEventListener("click", () => post("/api/model/retrain", {}, "Retrain started"));
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-rollback]");
    if (!button) return;
    if (!window.confirm("Make " + button.dataset.rollback + " live?")) return;
    post("/api/model/rollback", { version: button.dataset.rollback }, "Live: " + button.dataset.rollback);
  });
})();
