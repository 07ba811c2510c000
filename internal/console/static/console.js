// The console's only script (no library, no build): it remembers the
// browser's time zone, makes a whole results row open its details, and
// moves focus to the details panel. Every page works without it.
(function () {
  "use strict";
  var tzName = "mailtrace_tz";
  function cookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : "";
  }
  // Default the time zone to the browser's, once; the form's choice replaces it.
  if (!cookie(tzName)) {
    var tz = "";
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { tz = ""; }
    if (tz && tz !== "UTC") {
      document.cookie = tzName + "=" + encodeURIComponent(tz) + "; path=/; max-age=34560000; samesite=strict";
      if (!sessionStorage.getItem("mailtrace_tz_reloaded")) {
        sessionStorage.setItem("mailtrace_tz_reloaded", "1");
        location.reload();
      }
    }
  }
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (!(t instanceof Element) || t.closest("a, button, input, select, label")) { return; }
    var row = t.closest("tr[data-href]");
    if (row) { location.href = row.getAttribute("data-href"); }
  });
  document.addEventListener("change", function (ev) {
    var t = ev.target;
    if (t instanceof HTMLSelectElement && t.hasAttribute("data-autosubmit") && t.form) { t.form.submit(); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (location.hash === "#details") {
      var p = document.getElementById("details");
      if (p) { p.focus(); }
    }
  });
}());
