// gitops-status: reloads the fleet or commit page every `data-reload` seconds (the URL, and so
// its filters, stay). The page says so and links to `refresh=0`, which stops it (WCAG 2.2.1).
// A hidden tab waits until it is shown again.
"use strict";
(function () {
  var seconds = Number(document.body.getAttribute("data-reload"));
  if (!(seconds > 0)) {
    return;
  }
  var notice = document.getElementById("reload");
  if (notice) {
    notice.hidden = false;
  }
  function reload() {
    if (document.visibilityState === "hidden") {
      document.addEventListener("visibilitychange", reload, { once: true });
      return;
    }
    window.location.reload();
  }
  window.setTimeout(reload, seconds * 1000);
})();
