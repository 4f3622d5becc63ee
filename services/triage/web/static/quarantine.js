// The quarantine page: restore one mention or every selected one to the queue, with Undo
// (z) putting them back in quarantine.
(function () {
  "use strict";

  const TA = window.TA;
  const list = document.getElementById("quarantine-list");
  if (!TA || !list) return;

  const undoable = [];

  function cards(ids) {
    return ids.map((id) => document.getElementById("q-" + id)).filter(Boolean);
  }

  function hide(ids, on) {
    for (const card of cards(ids)) {
      card.closest("li").hidden = on;
      const box = card.querySelector("input.select");
      if (box) box.checked = false;
    }
  }

  async function each(ids, path) {
    const worked = [];
    let refusal = "";
    for (const id of ids) {
      try {
        await TA.api("POST", "/api/questions/" + id + path);
        worked.push(id);
      } catch (error) {
        refusal = refusal || error.message || "the connection failed";
      }
    }
    if (refusal) TA.toast("Refused: " + refusal, "bad");
    return worked;
  }

  async function undo(entry) {
    const target = entry || undoable.pop();
    if (!target) {
      TA.toast("Nothing to undo");
      return;
    }
    const at = undoable.indexOf(target);
    if (at !== -1) undoable.splice(at, 1);
    const back = await each(target.ids, "/undo");
    hide(back, false);
    if (back.length) TA.toast("Undone: " + back.length + " back in quarantine");
  }

  async function restore(ids) {
    if (!ids.length) {
      TA.toast("Select mentions first");
      return;
    }
    const worked = await each(ids, "/restore");
    hide(worked, true);
    if (!worked.length) return;
    const entry = { ids: worked };
    undoable.push(entry);
    const what = worked.length === 1 ? "Restored to the queue" : worked.length + " restored to the queue";
    TA.toast(what, "", { label: "Undo", key: "z", run: () => undo(entry) });
  }

  document.addEventListener("click", (event) => {
    const one = event.target.closest("button[data-act='restore']");
    if (one) {
      restore([one.closest(".item").dataset.id]);
      return;
    }
    if (event.target.closest("#restore-selected")) {
      const ids = Array.from(list.querySelectorAll("li:not([hidden]) input.select:checked")).map(
        (box) => box.closest(".item").dataset.id,
      );
      restore(ids);
      return;
    }
    const all = event.target.closest("#select-all");
    if (all) {
      for (const box of list.querySelectorAll("li:not([hidden]) input.select")) box.checked = all.checked;
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    if (event.target.closest && event.target.closest("input:not([type=checkbox]), textarea, select")) return;
    if (event.key === "z" || event.key === "u") {
      event.preventDefault();
      undo();
    }
  });
})();
