// The queue page's input: the keys, clicks and Tab on the cards, turned into the
// actions queue.js carries out (through TA.queue).
//
// Keys: j/k move, a approve, r reject, q quarantine, b block the author, 1-9 assign to
// that team, x select, Shift+A / Shift+R approve / reject the selection, v show blurred
// text, t tag, m take it (or let go), o open the timeline, z undo the last action, ? help.
(function () {
  "use strict";

  const TA = window.TA;
  const Q = TA && TA.queue;
  if (!Q) return;
  const body = Q.body;

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (target.closest && target.closest("input:not(.select), select, textarea, [contenteditable]")) {
      if (event.key === "Escape" && target.blur) {
        target.blur(); // leave the filters; the keys work again
        const el = Q.focused();
        if (el) el.focus({ preventScroll: true });
      }
      return;
    }
    const help = document.getElementById("help");
    if (help && help.open) return; // the dialog handles Esc itself
    const key = event.key.length === 1 && !event.shiftKey ? event.key.toLowerCase() : event.key;
    const el = Q.focused();
    switch (key) {
      case "j":
        Q.move(1);
        break;
      case "k":
        Q.move(-1);
        break;
      case "a":
        Q.act("approve", el);
        break;
      case "r":
        Q.act("reject", el);
        break;
      case "q":
        Q.act("quarantine", el);
        break;
      case "b":
        if (el && !Q.confirmBlock(el)) break;
        Q.act("block", el);
        break;
      case "x":
        Q.toggleSelect(el);
        break;
      case "A":
        Q.bulk("approve");
        break;
      case "R":
        Q.bulk("reject");
        break;
      case "t":
        if (el && TA.queueMarks) TA.queueMarks.tag(el);
        else if (!el) TA.toast("Press j to pick a question first");
        break;
      case "m":
        if (TA.queueMarks) TA.queueMarks.take(el);
        break;
      case "v": {
        const blur = el && el.querySelector(".blur");
        if (blur) TA.toggleBlur(blur);
        break;
      }
      case "o":
        if (el) location.href = "/questions/" + encodeURIComponent(el.dataset.id);
        break;
      case "z":
      case "u":
        Q.undo();
        break;
      case "?":
        if (help) help.showModal();
        break;
      default:
        if (/^[1-9]$/.test(key)) Q.assignTo(Number(key), el);
        else return;
    }
    event.preventDefault();
  });

  body.addEventListener("click", (event) => {
    const more = event.target.closest("#load-more");
    if (more) {
      Q.loadMore(more);
      return;
    }
    const bulkButton = event.target.closest("button[data-bulk]");
    if (bulkButton) {
      Q.bulk(bulkButton.dataset.bulk);
      return;
    }
    const el = event.target.closest(".item");
    if (!el) return;
    const button = event.target.closest("button[data-act]");
    if (button) {
      const action = button.dataset.act;
      if (action === "menu") {
        Q.toggleMenu(button);
        return;
      }
      if (el !== Q.focused()) Q.setFocus(el, { claim: false, dom: false });
      if (action === "assign") {
        const menu = button.closest(".assign-menu");
        if (menu) menu.hidden = true;
        Q.assignSlug(button.dataset.team, el);
      } else {
        Q.act(action, el);
      }
      return;
    }
    if (event.target.closest("input.select")) {
      Q.toggleSelect(el, event.target.checked);
      return;
    }
    // Following a link or showing blurred text is reading, not picking the question.
    if (event.target.closest("a, .blur, button.reveal")) return;
    if (el !== Q.focused()) Q.setFocus(el);
  });

  // Tab onto a card (or a button in it) makes it the card the keys act on.
  body.addEventListener("focusin", (event) => {
    const el = event.target.closest && event.target.closest(".item");
    if (el && el !== Q.focused()) Q.setFocus(el, { dom: false });
  });

  // Esc closes an open team menu and goes back to its Assign button.
  body.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const menu = event.target.closest && event.target.closest(".assign-menu");
    if (!menu) return;
    const toggle = body.querySelector('[aria-controls="' + menu.id + '"]');
    if (toggle) {
      Q.toggleMenu(toggle, false);
      toggle.focus();
    }
    event.stopPropagation();
  });
})();
