// Live build log and progress. The page works without it (a refresh shows the log so far).
(function () {
  "use strict";
  var log = document.getElementById("build-log");
  if (!log || !window.EventSource) { return; }
  var id = log.getAttribute("data-build");
  var state = document.getElementById("build-state");
  var bar = document.getElementById("build-bar");
  var counts = document.getElementById("build-counts");
  var current = document.getElementById("build-current");
  var source = new EventSource("/api/v1/builds/" + encodeURIComponent(id) + "/events");
  var first = true;
  source.addEventListener("line", function (e) {
    if (first) { log.textContent = ""; first = false; }
    var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.textContent += e.data + "\n";
    if (atEnd) { log.scrollTop = log.scrollHeight; }
  });
  source.addEventListener("status", function (e) {
    var s = JSON.parse(e.data);
    if (state) { state.textContent = s.state; state.className = "badge " + s.class; }
    if (s.progress) {
      var p = s.progress;
      if (bar && p.total > 0) { bar.value = Math.round(100 * p.done / p.total); }
      // nix reports no totals for some builds: say nothing rather than "0 of 0".
      if (counts) { counts.textContent = p.total > 0 ? p.done + " of " + p.total + " built" : ""; }
      if (current) { current.textContent = p.current || ""; }
    }
    if (s.finished) {
      var cancel = document.getElementById("cancel-form");
      if (cancel) { cancel.hidden = true; }
      // The finished page (generation, end time, whole log) comes from the server.
      source.close();
      window.setTimeout(function () { window.location.reload(); }, 300);
    }
  });
  source.onerror = function () { source.close(); };
})();
