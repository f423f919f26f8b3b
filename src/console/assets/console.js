// bodycamd console: live counts in the menu. Every page works without it.
(function () {
  "use strict";
  function refresh() {
    fetch("/console/live", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (counts) {
        if (!counts) { return; }
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var n = counts[el.getAttribute("data-live")];
          el.textContent = n ? String(n) : "";
        });
        document.querySelectorAll("[data-count]").forEach(function (el) {
          var n = counts[el.getAttribute("data-count")];
          if (n !== undefined) { el.textContent = String(n); }
        });
      })
      .catch(function () {});
  }
  document.addEventListener("DOMContentLoaded", function () {
    refresh();
    setInterval(refresh, 10000);
  });
})();
