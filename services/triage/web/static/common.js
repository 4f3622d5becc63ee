// Shared by every page: the JSON API with the session's CSRF token, server-rendered
// fragments, short notices, and blurred (possibly abusive) text that is shown on request.
(function () {
  "use strict";

  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const userMeta = document.querySelector('meta[name="ta-user"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || null;
    }
  }

  function toLogin() {
    const here = location.pathname + location.search;
    location.href = "/login?next=" + encodeURIComponent(here);
  }

  // A JSON API call. Resolves to the decoded body (null for 204); rejects with an
  // ApiError carrying the API's {error: {code, message, details}}, or with a
  // TypeError when the network failed.
  async function api(method, url, body, options) {
    const headers = { Accept: "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (options && options.keepalive) init.keepalive = true;
    const response = await fetch(url, init);
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      if (response.status === 401) toLogin();
      const error = (data && data.error) || {};
      throw new ApiError(
        response.status,
        error.code || "http_" + response.status,
        error.message || response.statusText || "request failed",
        error.details,
      );
    }
    return data;
  }

  // A server-rendered fragment (HTML we rendered and escaped), as text.
  async function getHtml(url) {
    const response = await fetch(url, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "text/html" },
    });
    if (response.redirected && new URL(response.url).pathname === "/login") {
      toLogin();
      throw new ApiError(401, "unauthorized", "signed out");
    }
    if (!response.ok) throw new ApiError(response.status, "http_" + response.status, response.statusText);
    return response.text();
  }

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  // A short notice. `action` ({label, key, run}) adds a button (Undo): the notice then
  // stays longer, and pressing the button runs it once and closes the notice.
  function toast(message, kind, action) {
    const box = document.getElementById("toasts");
    if (!box) return null;
    const note = document.createElement("div");
    note.className = "toast" + (kind ? " " + kind : "");
    const text = document.createElement("span");
    text.textContent = message;
    note.append(text);
    if (action) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "toast-action";
      button.textContent = action.label;
      if (action.key) {
        button.setAttribute("aria-keyshortcuts", action.key);
        button.title = action.label + " (" + action.key + ")";
      }
      button.addEventListener("click", () => {
        note.remove();
        action.run();
      });
      note.append(button);
    }
    box.append(note);
    while (box.children.length > 4) box.firstElementChild.remove();
    setTimeout(() => note.remove(), action ? 10000 : kind === "bad" ? 6000 : 3000);
    return note;
  }

  // Blurred text is hidden from screen readers too (aria-hidden) until it is shown; its
  // button (Show the hidden text) is what the keyboard and screen readers press.
  function toggleBlur(el, show) {
    const on = show === undefined ? !el.classList.contains("revealed") : show;
    el.classList.toggle("revealed", on);
    el.setAttribute("aria-hidden", on ? "false" : "true");
    el.title = on ? "Click to blur again" : "Possibly abusive text: click to show";
    const button = el.parentElement && el.parentElement.querySelector("button.reveal");
    if (button) button.setAttribute("aria-pressed", on ? "true" : "false");
    return on;
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest && event.target.closest(".blur, button.reveal");
    if (!target) return;
    const blur = target.classList.contains("blur") ? target : target.parentElement.querySelector(".blur");
    if (blur) toggleBlur(blur);
  });

  function setLive(on) {
    const badge = document.getElementById("live");
    if (!badge) return;
    badge.textContent = on ? "live" : "reconnecting…";
    badge.className = "live " + (on ? "on" : "off");
  }

  // The unread notifications badge (new work for the team, a question given to me):
  // checked on load and every 30 s; a new one also shows as a notice. The
  // notifications page marks what it shows read.
  const NOTIFY_MS = 30000;
  let unreadBefore = null;
  async function checkNotifications() {
    const badge = document.getElementById("unread");
    const link = document.getElementById("notifications-link");
    if (!badge || !link) return;
    try {
      const list = document.getElementById("notification-list");
      if (list && Number(list.dataset.unread) > 0) {
        await api("POST", "/api/notifications/read", {});
        list.dataset.unread = "0";
      }
      const { unread } = await api("GET", "/api/notifications/unread-count");
      badge.hidden = unread === 0;
      badge.textContent = String(unread);
      link.setAttribute("aria-label", "Notifications" + (unread ? ", " + unread + " unread" : ""));
      if (unreadBefore !== null && unread > unreadBefore) {
        const [latest] = await api("GET", "/api/notifications");
        if (latest) toast(latest.text, "", { label: "Open", run: () => (location.href = latest.link || "/notifications") });
      }
      unreadBefore = unread;
    } catch (_) {
      // offline or signed out: the next check tries again
    }
  }
  if (userMeta) {
    checkNotifications();
    setInterval(checkNotifications, NOTIFY_MS);
  }

  window.TA = {
    api,
    ApiError,
    getHtml,
    fragment,
    toast,
    toggleBlur,
    setLive,
    checkNotifications,
    csrf,
    me: userMeta ? userMeta.content : "",
  };
})();
