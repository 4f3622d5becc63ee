// The moderators' queue: focus and claims, actions with Undo, bulk actions, paging and
// live updates. The keys and clicks that call these are in queue-input.js.
//
// The focused question is claimed, so nobody else works on it. After an action the next
// question gets the focus, and a notice with an Undo button says what happened.
//
// Changes go through the JSON API; the list itself is server-rendered
// (/queue/items) and re-fetched when the live stream (/api/events) says something
// changed. A re-fetch that started before this page's own latest change is thrown
// away, so an item acted on never comes back for a moment.
(function () {
  "use strict";

  const TA = window.TA;
  const body = document.getElementById("queue-body");
  if (!TA || !body) return;

  const CLAIM_RENEW_MS = 45000;
  const REFRESH_DELAY_MS = 250;
  const PAST = {
    approve: "approved",
    reject: "rejected",
    quarantine: "quarantined",
    restore: "restored",
    block: "blocked",
    assign: "assigned",
  };
  // The moderator's recent actions that can be taken back (latest last): {ids, what}.
  const undoable = [];

  let focusedId = null; // the question with the focus
  let claimedId = null; // the question this page holds a claim on
  let lastEventId = Number(body.dataset.after || "0");
  let actionSeq = 0; // bumped by every change made from this page
  const busy = new Set(); // questions with an action in flight
  const selected = new Set();

  let refreshTimer = null;
  let refreshing = false;
  let refreshAgain = false;

  // --- the list ----------------------------------------------------------------

  const list = () => document.getElementById("queue-list");
  const byId = (id) => document.getElementById("q-" + id);
  const isLocked = (el) => el.classList.contains("locked");
  const usable = (el) => !isLocked(el) && !busy.has(el.dataset.id);

  function visible(el) {
    const details = el.closest("details");
    return !details || details.open;
  }

  function items() {
    return Array.from(body.querySelectorAll(".item")).filter(visible);
  }

  function statusesShown() {
    const value = list() ? list().dataset.statuses : "";
    return value ? value.split(",") : null; // null: every status
  }

  function highlightTeam(slug) {
    for (const team of body.querySelectorAll("#teams .team")) {
      team.classList.toggle("suggested", Boolean(slug) && team.dataset.slug === slug);
    }
  }

  function updateSelectionCount() {
    const counter = document.getElementById("selection-count");
    if (counter) counter.textContent = String(selected.size);
  }

  function updateCount(delta) {
    const count = document.getElementById("queue-count");
    if (!count) return;
    const total = Math.max(0, Number(count.dataset.total || "0") + delta);
    count.dataset.total = String(total);
    count.textContent = body.querySelectorAll(".item").length + " shown of " + total;
  }

  // The key of the last question loaded: a refresh keeps every page loaded so far.
  function loadedThrough() {
    const all = body.querySelectorAll(".item[data-key]");
    return all.length > 100 ? all[all.length - 1].dataset.key : "";
  }

  // --- focus and claims ------------------------------------------------------------

  function lock(el, holder) {
    el.classList.add("locked");
    el.dataset.claimedBy = holder || "someone";
    const badge = el.querySelector(".lock");
    if (badge) {
      badge.hidden = false;
      const name = badge.querySelector(".holder");
      if (name) name.textContent = holder || "someone";
    }
  }

  function unlock(el) {
    el.classList.remove("locked");
    delete el.dataset.claimedBy;
    const badge = el.querySelector(".lock");
    if (badge) badge.hidden = true;
  }

  function release(keepalive) {
    const id = claimedId;
    claimedId = null;
    if (!id || !byId(id)) return; // gone: the action that removed it ended the claim
    TA.api("POST", "/api/questions/" + id + "/release", undefined, { keepalive }).catch(() => {});
  }

  async function claim(el) {
    const id = el.dataset.id;
    if (claimedId !== id) release(false);
    try {
      await TA.api("POST", "/api/questions/" + id + "/claim");
      claimedId = id;
      const current = byId(id);
      if (current) unlock(current);
    } catch (error) {
      const current = byId(id);
      if (!current) return;
      if (error.code === "claimed") {
        lock(current, error.details && error.details.holder);
      } else if (error.status === 409 || error.status === 404) {
        scheduleRefresh(0); // moved on meanwhile
      }
    }
  }

  function setFocus(el, options) {
    const claimIt = !options || options.claim !== false;
    const moveFocus = !options || options.dom !== false;
    const previous = focusedId ? byId(focusedId) : null;
    if (previous) previous.classList.remove("focused");
    if (!el) {
      focusedId = null;
      highlightTeam(null);
      release(false);
      return;
    }
    focusedId = el.dataset.id;
    el.classList.add("focused");
    if (moveFocus) {
      el.focus({ preventScroll: true });
      el.scrollIntoView({ block: "nearest" });
    }
    highlightTeam(el.dataset.suggested);
    // A question someone else holds is not claimed (the next refresh shows when it is free).
    if (claimIt && claimedId !== focusedId && !busy.has(focusedId) && !isLocked(el)) claim(el);
    else if (isLocked(el)) release(false);
  }

  function move(delta) {
    const all = items();
    if (!all.length) return;
    const at = focusedId ? all.findIndex((x) => x.dataset.id === focusedId) : -1;
    const index = at === -1 ? (delta > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + delta));
    setFocus(all[index]);
  }

  // The next question to work on after `el`: the next usable one below, else above.
  function focusAfter(el) {
    const all = items();
    const at = all.indexOf(el);
    const ok = (x) => x !== el && usable(x);
    const next = all.slice(at + 1).find(ok) || all.slice(0, Math.max(at, 0)).reverse().find(ok) || null;
    setFocus(next);
  }

  // --- changing questions ----------------------------------------------------------------

  function removeItem(el) {
    const id = el.dataset.id;
    selected.delete(id);
    const group = el.closest(".group");
    const details = group ? group.querySelector("details.similar") : null;
    if (details && !details.contains(el)) {
      const first = details.querySelector(".item"); // the next of the cluster leads it
      if (first) el.replaceWith(first);
      else el.remove();
    } else {
      el.remove();
    }
    if (details) {
      const left = details.querySelectorAll(".item").length;
      if (!left) details.remove();
      else details.querySelector(".badge").textContent = "+" + left + " similar";
    }
    if (group && !group.querySelector(".item")) group.remove();
    if (focusedId === id) focusedId = null;
    if (claimedId === id) claimedId = null;
    updateCount(-1);
    updateSelectionCount();
    const count = document.getElementById("queue-count");
    if (items().length < 5 && count && Number(count.dataset.total) > items().length) scheduleRefresh(0);
    if (!body.querySelector(".item") && list() && !list().querySelector(".empty")) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "Nothing left here. New questions appear as they arrive.";
      list().append(empty);
    }
  }

  function applyStatus(el, status) {
    const shown = statusesShown();
    if (shown && !shown.includes(status)) {
      removeItem(el);
      return;
    }
    el.dataset.status = status;
    const label = el.querySelector(".status");
    if (label) {
      label.textContent = status;
      label.className = "status status-" + status;
    }
  }

  function refused(el, error) {
    if (error.code === "claimed") {
      lock(el, error.details && error.details.holder);
      TA.toast("Held by " + ((error.details && error.details.holder) || "someone else") + ": skipped", "bad");
    } else if (error instanceof TA.ApiError) {
      TA.toast(error.message, "bad");
      if (error.status === 409 || error.status === 404) scheduleRefresh(0);
    } else {
      TA.toast("Not saved: the connection failed. Try again.", "bad");
    }
  }

  async function act(action, el, extra) {
    if (!el) {
      TA.toast("Press j to pick a question first");
      return;
    }
    const id = el.dataset.id;
    if (busy.has(id)) return;
    if (isLocked(el)) {
      TA.toast("Held by " + (el.dataset.claimedBy || "someone else") + ": skipped", "bad");
      focusAfter(el);
      return;
    }
    const mates = clusterMates(el);
    busy.add(id);
    actionSeq += 1;
    el.classList.add("pending");
    if (claimedId === id) claimedId = null; // the action ends the claim
    focusAfter(el); // keep going while the request is on its way
    try {
      const path = action === "assign" ? "/assign" : "/" + action;
      const result = await TA.api("POST", "/api/questions/" + id + path, extra || {});
      actionSeq += 1;
      const current = byId(id);
      if (current) applyStatus(current, result.status);
      done([id], action, extra && extra.team ? " to " + extra.team : "", who(el));
      offerCluster(action, mates);
      if (action === "block" || action === "assign") scheduleRefresh(); // other rows, capacities
    } catch (error) {
      const current = byId(id);
      if (current) refused(current, error);
    } finally {
      busy.delete(id);
      const current = byId(id);
      if (current) current.classList.remove("pending");
    }
  }

  // The questions shown under a cluster's first question ("+N similar"), when `el` leads it.
  function clusterMates(el) {
    if (el.closest("details.similar")) return [];
    const group = el.closest(".group");
    const details = group ? group.querySelector("details.similar") : null;
    return details ? Array.from(details.querySelectorAll(".item")).map((x) => x.dataset.id) : [];
  }

  // Approving or rejecting the first of a cluster offers the same for the others.
  function offerCluster(action, mates) {
    if (!mates.length || (action !== "approve" && action !== "reject")) return;
    const verb = action === "approve" ? "Approve" : "Reject";
    const label = verb + " the " + mates.length + " similar too";
    TA.toast("The same question was asked " + mates.length + " more times.", "", {
      label,
      run: () => bulk(action, mates.filter((id) => byId(id))),
    });
  }

  function who(el) {
    const author = el && el.querySelector(".author");
    return author ? " (" + author.textContent.trim() + ")" : "";
  }

  // Feedback for an action that worked, with Undo (undoing a block lifts it and puts
  // back every question of the author it rejected).
  function done(ids, action, detail, whose) {
    const what =
      action === "block"
        ? "Author" + (whose || "") + " blocked: their open questions are rejected"
        : (ids.length === 1 ? "Question" : ids.length + " questions") + " " + (PAST[action] || action) + (detail || "") + (whose || "");
    const entry = { ids, what };
    undoable.push(entry);
    while (undoable.length > 20) undoable.shift();
    TA.toast(what, "", { label: "Undo", key: "z", run: () => undo(entry) });
  }

  async function undo(entry) {
    const target = entry || undoable[undoable.length - 1];
    if (!target) {
      TA.toast("Nothing to undo");
      return;
    }
    const at = undoable.indexOf(target);
    if (at !== -1) undoable.splice(at, 1);
    actionSeq += 1;
    const failed = [];
    for (const id of target.ids) {
      try {
        await TA.api("POST", "/api/questions/" + id + "/undo");
      } catch (error) {
        failed.push(error.message || "the connection failed");
      }
    }
    actionSeq += 1;
    const back = target.ids.length - failed.length;
    if (back) {
      TA.toast("Undone: " + (back === 1 ? "the question is" : back + " questions are") + " back");
      pendingFocus = target.ids[0];
    }
    if (failed.length) TA.toast("Could not undo: " + failed[0], "bad");
    scheduleRefresh(0);
  }
  let pendingFocus = null; // a question to focus once the refresh brings it back

  // Blocking rejects every open question of the author: one stray key must not do that.
  function confirmBlock(el) {
    const author = el.querySelector(".author");
    const who = author ? author.textContent.trim() : "this author";
    return window.confirm(
      "Block " + who + "? Their open questions are rejected, and what they send later skips the queue.",
    );
  }

  // What to know before giving a question to a team: full today, another language.
  function assignWarning(el, team) {
    const problems = [];
    if (Number(team.dataset.remaining || "0") <= 0) problems.push("full today");
    const lang = ((el && el.dataset.lang) || "").split(/[-_]/)[0].toLowerCase();
    const speaks = (team.dataset.languages || "").split(" ");
    if (lang && lang !== "und" && !speaks.includes(lang)) problems.push("does not speak " + lang);
    return problems.length ? (team.dataset.name || team.dataset.slug) + ": " + problems.join(", ") : "";
  }

  function assignTo(n, el) {
    const team = body.querySelector('#teams .team[data-index="' + n + '"]');
    if (!team) {
      TA.toast("There is no team " + n, "bad");
      return;
    }
    assignSlug(team.dataset.slug, el);
  }

  function assignSlug(slug, el) {
    if (!el) {
      TA.toast("Press j to pick a question first");
      return;
    }
    const team = body.querySelector('#teams .team[data-slug="' + CSS.escape(slug) + '"]');
    const warning = team ? assignWarning(el, team) : "";
    if (warning && !window.confirm(warning + ". Assign anyway?")) return;
    act("assign", el, { team: slug });
  }

  function toggleMenu(button, open) {
    const menu = document.getElementById(button.getAttribute("aria-controls"));
    if (!menu) return;
    const show = open === undefined ? menu.hidden : open;
    menu.hidden = !show;
    button.setAttribute("aria-expanded", show ? "true" : "false");
    if (show) {
      const first = menu.querySelector(".is-suggested") || menu.querySelector("button");
      if (first) first.focus();
    }
  }

  // The next page of the queue (keyset: after the last question shown).
  async function loadMore(button) {
    button.disabled = true;
    actionSeq += 1; // a refresh already on its way knows only the first pages: fetch again
    clearTimeout(refreshTimer);
    const params = new URLSearchParams(location.search);
    params.set("after", button.dataset.after);
    try {
      const html = await TA.getHtml("/queue/more?" + params.toString());
      const part = TA.fragment(html);
      const groups = part.getElementById("more-groups");
      const next = part.getElementById("queue-next");
      const firstNew = groups ? groups.content.querySelector(".item") : null;
      if (groups && list()) list().append(groups.content);
      actionSeq += 1;
      const old = document.getElementById("queue-next");
      if (old && next) old.replaceWith(next);
      updateCount(0);
      restore({ open: new Set(), revealed: new Set(), hadFocus: false, index: -1 });
      if (firstNew) setFocus(byId(firstNew.dataset.id), { claim: false });
    } catch (error) {
      button.disabled = false;
      TA.toast(error.message || "Could not load more: the connection failed.", "bad");
    }
  }

  function toggleSelect(el, on) {
    if (!el) return;
    const id = el.dataset.id;
    const pick = on === undefined ? !selected.has(id) : on;
    if (pick) selected.add(id);
    else selected.delete(id);
    el.classList.toggle("selected", pick);
    const box = el.querySelector("input.select");
    if (box) box.checked = pick;
    updateSelectionCount();
  }

  async function bulk(action, only) {
    const ids = (only || Array.from(selected)).filter((id) => {
      const el = byId(id);
      return el && usable(el);
    });
    if (!ids.length) {
      TA.toast("Select questions with x first");
      return;
    }
    ids.forEach((id) => busy.add(id));
    actionSeq += 1;
    try {
      const outcomes = await TA.api("POST", "/api/questions/bulk", { ids, action });
      actionSeq += 1;
      const failed = [];
      for (const outcome of outcomes) {
        busy.delete(outcome.question_id);
        const el = byId(outcome.question_id);
        if (!outcome.ok) {
          failed.push(outcome);
          continue;
        }
        selected.delete(outcome.question_id);
        if (!el) continue;
        toggleSelect(el, false);
        if (el.dataset.id === focusedId) focusAfter(el);
        applyStatus(el, outcome.status);
      }
      const worked = outcomes.filter((o) => o.ok).map((o) => o.question_id);
      if (worked.length) done(worked, action);
      if (failed.length) TA.toast(failed.length + " refused (" + failed[0].error + ")", "bad");
    } catch (error) {
      TA.toast(error.message || "Not saved: the connection failed.", "bad");
    } finally {
      ids.forEach((id) => busy.delete(id));
      updateSelectionCount();
    }
  }

  // --- live updates ---------------------------------------------------------------------

  function scheduleRefresh(delay) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, delay === undefined ? REFRESH_DELAY_MS : delay);
  }

  function snapshot() {
    const all = items();
    return {
      index: focusedId ? all.findIndex((x) => x.dataset.id === focusedId) : -1,
      open: new Set(Array.from(body.querySelectorAll("details.similar[open]")).map((d) => d.dataset.cluster)),
      revealed: new Set(Array.from(body.querySelectorAll(".item .blur.revealed")).map((b) => b.closest(".item").dataset.id)),
      hadFocus: document.activeElement === document.body || Boolean(document.activeElement && document.activeElement.closest(".item")),
      menu: (body.querySelector(".assign-menu:not([hidden])") || {}).id || "",
    };
  }

  function restore(state) {
    for (const details of body.querySelectorAll("details.similar")) {
      if (state.open.has(details.dataset.cluster)) details.open = true;
    }
    for (const id of Array.from(selected)) {
      const el = byId(id);
      if (el) toggleSelect(el, true);
      else selected.delete(id);
    }
    const menu = state.menu && document.getElementById(state.menu);
    if (menu) {
      // A team menu the moderator opened stays open across a live refresh.
      menu.hidden = false;
      const toggle = body.querySelector('[aria-controls="' + state.menu + '"]');
      if (toggle) toggle.setAttribute("aria-expanded", "true");
    }
    for (const id of state.revealed) {
      const blur = byId(id) && byId(id).querySelector(".blur");
      if (blur) TA.toggleBlur(blur, true);
    }
    updateSelectionCount();
    if (!focusedId) return;
    const el = byId(focusedId);
    if (el && visible(el)) {
      el.classList.add("focused");
      highlightTeam(el.dataset.suggested);
      if (state.hadFocus) el.focus({ preventScroll: true });
      return;
    }
    // The focused question left (someone else acted on it): take the one in its place.
    focusedId = null;
    const all = items().filter(usable);
    if (state.index >= 0 && all.length && state.hadFocus) setFocus(all[Math.min(state.index, all.length - 1)]);
  }

  async function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    const typing = document.activeElement && document.activeElement.closest && document.activeElement.closest(".item form");
    if (busy.size || typing) {
      scheduleRefresh(typing ? 1000 : undefined); // not under the moderator's fingers
      return;
    }
    refreshing = true;
    const seq = actionSeq;
    try {
      const params = new URLSearchParams(location.search);
      const through = loadedThrough();
      if (through) params.set("through", through);
      const html = await TA.getHtml("/queue/items?" + params.toString());
      if (seq !== actionSeq || busy.size) {
        refreshAgain = true; // our own change raced it: fetch again
        return;
      }
      const state = snapshot();
      body.replaceChildren(TA.fragment(html));
      restore(state);
      if (pendingFocus && byId(pendingFocus)) {
        const back = byId(pendingFocus);
        const details = back.closest("details");
        if (details) details.open = true;
        setFocus(back);
      }
      pendingFocus = null;
    } catch (_) {
      // offline or signed out: the next event tries again
    } finally {
      refreshing = false;
      if (refreshAgain) {
        refreshAgain = false;
        scheduleRefresh();
      }
    }
  }

  function connect() {
    const source = new EventSource("/api/events?after=" + lastEventId);
    source.addEventListener("hello", (event) => {
      lastEventId = Number(event.lastEventId) || lastEventId;
      TA.setLive(true);
    });
    source.addEventListener("question", (event) => {
      lastEventId = Number(event.lastEventId) || lastEventId;
      let change = null;
      try {
        change = JSON.parse(event.data);
      } catch (_) {
        change = null;
      }
      // Our own claims change nothing on this page.
      if (change && change.actor === TA.me && (change.event === "claimed" || change.event === "released")) return;
      scheduleRefresh();
    });
    source.onerror = () => {
      TA.setLive(false);
      source.close();
      setTimeout(() => {
        connect();
        scheduleRefresh(0);
      }, 2000);
    };
  }

  // htmx swaps the list when the filters change: keep selection and focus.
  // (htmx fires beforeSwap on the form that asked, afterSwap on what it swapped.)
  let beforeSwap = null;
  const intoList = (event) => event.detail && event.detail.target === body;
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (!intoList(event)) return;
    beforeSwap = snapshot();
    actionSeq += 1; // a refresh started with the old filters is stale now
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    if (!intoList(event)) return;
    restore(beforeSwap || snapshot());
    beforeSwap = null;
  });

  setInterval(() => {
    if (claimedId && claimedId === focusedId && byId(claimedId)) {
      TA.api("POST", "/api/questions/" + claimedId + "/claim").catch(() => {});
    }
  }, CLAIM_RENEW_MS);

  window.addEventListener("pagehide", () => release(true));

  // What the page's input (queue-input.js) acts through.
  TA.queue = {
    body,
    byId,
    focused: () => (focusedId ? byId(focusedId) : null),
    move,
    act,
    bulk,
    undo,
    toggleSelect,
    toggleMenu,
    assignTo,
    assignSlug,
    confirmBlock,
    loadMore,
    setFocus,
  };

  connect();
})();
