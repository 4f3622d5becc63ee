// The queue page's furniture around the list: saved views (filter sets kept in this
// browser), the filters folded on a phone, and the keyboard help.
(function () {
  "use strict";

  const TA = window.TA;
  if (!TA) return;

  // Saved views: filter sets kept in this browser, one click away.
  const VIEWS_KEY = "ta-saved-views";
  function loadViews() {
    try {
      const views = JSON.parse(localStorage.getItem(VIEWS_KEY) || "[]");
      return Array.isArray(views) ? views : [];
    } catch (_) {
      return [];
    }
  }
  function showViews() {
    const box = document.getElementById("saved-views");
    if (!box) return;
    box.replaceChildren(
      ...loadViews().map((view, index) => {
        const item = document.createElement("li");
        const link = document.createElement("a");
        link.href = "/queue?" + view.query;
        link.textContent = view.name;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "link";
        remove.textContent = "×";
        remove.setAttribute("aria-label", "Forget the view " + view.name);
        remove.addEventListener("click", () => {
          const views = loadViews();
          views.splice(index, 1);
          localStorage.setItem(VIEWS_KEY, JSON.stringify(views));
          showViews();
        });
        item.append(link, " ", remove);
        return item;
      }),
    );
  }
  const saveView = document.getElementById("save-view");
  if (saveView) {
    saveView.addEventListener("click", () => {
      const name = (window.prompt("A name for this view (its filters are kept in this browser):") || "").trim();
      if (!name) return;
      const views = loadViews().filter((view) => view.name !== name);
      views.push({ name: name.slice(0, 60), query: location.search.replace(/^\?/, "") });
      localStorage.setItem(VIEWS_KEY, JSON.stringify(views.slice(-12)));
      showViews();
      TA.toast("View saved: " + name);
    });
  }
  showViews();

  // On a phone the filters start folded (the questions come first).
  const filtersBox = document.getElementById("filters-box");
  if (filtersBox && window.matchMedia("(max-width: 40rem)").matches) filtersBox.open = false;

  const helpButton = document.getElementById("help-button");
  if (helpButton) helpButton.addEventListener("click", () => document.getElementById("help").showModal());
})();
