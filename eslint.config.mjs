// ESLint for the triage web's own scripts (make lint). Plain browser scripts, no build step;
// the vendored htmx is someone else's code.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["**/vendor/**", "node_modules/**", ".venv/**", "var/**"] },
  js.configs.recommended,
  {
    // The team page's service worker runs in a worker, not a page.
    files: ["services/**/static/team-sw.js"],
    languageOptions: { globals: { ...globals.serviceworker } },
  },
  {
    files: ["services/**/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "script",
      globals: { ...globals.browser, htmx: "readonly" },
    },
    rules: {
      eqeqeq: ["error", "always"],
      "no-var": "error",
      "prefer-const": "error",
      strict: ["error", "function"],
      // `catch (_)` and `(_, i)` say "deliberately unused".
      "no-unused-vars": ["error", { argsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_" }],
      // `let data = null; try { data = ... } catch (_) { data = null; }` states the
      // fallback where it applies; the rule would have it removed.
      "no-useless-assignment": "off",
    },
  },
];
