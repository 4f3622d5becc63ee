// What moderators mark the queue's cards with: tags, and the person looking after a
// question. "Tag" (or the key t) opens a small form on the card; a tag is added with
// Enter and taken off with its × button. "Take it" (or m) gives the question to me
// ("Only mine" in the filters finds it again); "Let go" gives it to nobody. Each
// change says what it did, with Undo. The keys come through TA.queueMarks.
(function () {
  "use strict";

  const TA = window.TA;
  const Q = TA && TA.queue;
  if (!Q) return;

  function chip(questionId, tag) {
    const item = document.createElement("li");
    item.className = "tag";
    item.dataset.tag = tag;
    const link = document.createElement("a");
    link.href = "/queue?status=&tag=" + encodeURIComponent(tag);
    link.textContent = tag;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "untag";
    remove.dataset.untag = tag;
    remove.setAttribute("aria-label", "Remove the tag " + tag);
    remove.textContent = "×";
    item.append(link, remove);
    return item;
  }

  function show(questionId, tags) {
    const list = document.getElementById("tags-" + questionId);
    if (list) list.replaceChildren(...tags.map((tag) => chip(questionId, tag)));
    const known = document.getElementById("tags-in-use");
    if (!known) return;
    const have = new Set(Array.from(known.options).map((o) => o.value));
    for (const tag of tags) {
      if (have.has(tag)) continue;
      const option = document.createElement("option");
      option.value = tag;
      known.append(option);
    }
  }

  function formOf(el) {
    return el ? el.querySelector("form.tag-form") : null;
  }

  function open(el, on) {
    const form = formOf(el);
    if (!form) return;
    const show = on === undefined ? form.hidden : on;
    form.hidden = !show;
    const toggle = el.querySelector(".tag-toggle");
    if (toggle) toggle.setAttribute("aria-expanded", show ? "true" : "false");
    if (show) form.querySelector("input").focus();
    else if (toggle) toggle.focus();
  }

  function tagsOf(questionId) {
    const list = document.getElementById("tags-" + questionId);
    return new Set(list ? Array.from(list.querySelectorAll(".tag"), (x) => x.dataset.tag) : []);
  }

  async function change(questionId, tag, add, quiet) {
    const before = tagsOf(questionId);
    try {
      const path = "/api/questions/" + encodeURIComponent(questionId) + "/tags";
      const result = add
        ? await TA.api("POST", path, { tag })
        : await TA.api("DELETE", path + "/" + encodeURIComponent(tag));
      show(questionId, result.tags);
      if (quiet) return true;
      const shown = add ? result.tags.find((t) => !before.has(t)) : tag;
      if (!shown) {
        TA.toast("Already tagged so");
        return true;
      }
      TA.toast((add ? "Tagged " : "Tag removed: ") + shown, "", {
        label: "Undo",
        run: () => change(questionId, shown, !add, true).then((ok) => ok && TA.toast("Undone")),
      });
      return true;
    } catch (error) {
      TA.toast(error.message || "Not saved: the connection failed.", "bad");
      return false;
    }
  }

  // --- the person looking after it ---------------------------------------------------

  function showAssignee(el, name) {
    const label = el.querySelector(".assignee");
    if (label) {
      label.hidden = !name;
      const who = label.querySelector("b");
      if (who) who.textContent = name === TA.me ? "you" : name || "";
    }
    const toggle = el.querySelector(".take-toggle");
    if (toggle) {
      toggle.dataset.take = name === TA.me ? "off" : "on";
      toggle.textContent = name === TA.me ? "Let go" : "Take it";
    }
  }

  async function give(el, user, quiet) {
    if (!el) {
      TA.toast("Press j to pick a question first");
      return;
    }
    const before = el.querySelector(".assignee b");
    const previous = el.querySelector(".assignee").hidden ? null : before.textContent === "you" ? TA.me : before.textContent;
    try {
      const result = await TA.api("PUT", "/api/questions/" + encodeURIComponent(el.dataset.id) + "/assignee", { user });
      showAssignee(el, result.assignee);
      if (quiet) return;
      TA.toast(result.assignee ? "Yours now: find it with Only mine" : "Let go: nobody looks after it now", "", {
        label: "Undo",
        run: () => give(el, previous, true),
      });
    } catch (error) {
      TA.toast(error.message || "Not saved: the connection failed.", "bad");
    }
  }

  function take(el) {
    if (!el) return give(el, null);
    const toggle = el.querySelector(".take-toggle");
    return give(el, toggle && toggle.dataset.take === "off" ? null : TA.me);
  }

  // --- input -------------------------------------------------------------------------------

  Q.body.addEventListener("click", (event) => {
    const el = event.target.closest(".item");
    if (!el) return;
    if (event.target.closest(".take-toggle")) {
      take(el);
      return;
    }
    const toggle = event.target.closest(".tag-toggle");
    if (toggle) {
      open(el);
      return;
    }
    const untag = event.target.closest("button[data-untag]");
    if (untag) change(el.dataset.id, untag.dataset.untag, false);
  });

  Q.body.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.tag-form");
    if (!form) return;
    event.preventDefault();
    const el = form.closest(".item");
    const input = form.querySelector("input");
    const tag = input.value.trim();
    if (!tag || !el) return;
    if (await change(el.dataset.id, tag, true)) {
      input.value = "";
      open(el, false);
    }
  });

  // Esc in the form closes it (the queue's own Esc handling then finds the card).
  Q.body.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const form = event.target.closest && event.target.closest("form.tag-form");
    if (!form) return;
    event.stopPropagation();
    open(form.closest(".item"), false);
  });

  TA.queueMarks = { tag: (el) => open(el, true), take };
})();
