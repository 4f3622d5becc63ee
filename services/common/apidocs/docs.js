// Starts Swagger UI on the page /docs serves (an external file: the CSP refuses inline
// scripts). A service whose API description needs a signed-in person (the triage web)
// answers 401 until one is: the page then says where to sign in.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var url = root.getAttribute("data-openapi");

  function start() {
    window.ui = window.SwaggerUIBundle({
      url: url,
      domNode: root,
      deepLinking: true,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      validatorUrl: null,
      tryItOutEnabled: false,
    });
  }

  fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (response) {
      if (response.status !== 401) return start();
      var note = document.createElement("p");
      note.className = "sign-in";
      var link = document.createElement("a");
      link.href = "/login?next=" + encodeURIComponent(location.pathname);
      link.textContent = "Sign in";
      note.append(link, " to read this API reference.");
      root.replaceChildren(note);
    })
    .catch(start);
})();
