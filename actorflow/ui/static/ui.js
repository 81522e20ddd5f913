// actorflow UI: refresh the runs table while "live" is ticked (the page works without it).
(function () {
  "use strict";
  var section = document.getElementById("runs-live");
  var live = document.getElementById("live");
  if (!section || !live) { return; }
  var every = 3000;
  function refresh() {
    if (!live.checked || document.hidden) { return; }
    fetch(section.getAttribute("data-fragment"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html !== null) { section.innerHTML = html; } })
      .catch(function () { /* the next tick tries again */ });
  }
  live.addEventListener("change", function () { if (live.checked) { refresh(); } });
  window.setInterval(refresh, every);
}());
