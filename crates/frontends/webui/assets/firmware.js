// The Firmware page's upload: the bundle is POSTed to /api/v1/firmware as the request body with
// the session's CSRF token (upload.js: progress bar), and the appliance's answer (installed,
// or why it was refused) is shown afterwards.
"use strict";
(function () {
  var form = document.getElementById("firmware-upload");
  if (!form) {
    return;
  }
  var out = document.getElementById("firmware-result");
  var say = function (text, kind) {
    out.textContent = text;
    out.className = kind || "";
  };
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var file = form.querySelector("input[type=file]").files[0];
    if (!file) {
      return;
    }
    var button = form.querySelector("button");
    button.disabled = true;
    window.flakebootUpload({
      url: "/api/v1/firmware",
      headers: { "X-CSRF-Token": form.dataset.csrf },
      file: file,
      bar: document.getElementById("firmware-progress"),
      say: say,
      sent: "Sent. Checking the signature and installing...",
      done: function (status, answer) {
        button.disabled = false;
        if (status === 200) {
          say("Installed " + answer.version + " in slot " + answer.slot +
            ". Reboot to start it.", "ok");
        } else if (status === 0) {
          say("The upload failed: " + answer.error + ".", "bad");
        } else {
          say("Not installed: " + (answer.error || "HTTP " + status), "bad");
        }
      },
    });
  });
})();
