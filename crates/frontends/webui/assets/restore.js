// The setup page's restore: the backup is POSTed to /setup/restore as the request body with the
// setup code, the passphrase and the page's form token in headers (upload.js: progress bar),
// and the appliance's answer is shown. On success the appliance starts again on the backup:
// the page waits for it and goes to the sign-in page.
"use strict";
(function () {
  var form = document.getElementById("restore-upload");
  if (!form) {
    return;
  }
  var out = document.getElementById("restore-result");
  var value = function (id) {
    return document.getElementById(id).value;
  };
  var say = function (text, kind) {
    out.textContent = text;
    out.className = kind || "";
  };
  var waitForRestart = function () {
    var tries = 0;
    var poll = function () {
      tries += 1;
      var xhr = new XMLHttpRequest();
      xhr.open("GET", "/login");
      xhr.onload = function () {
        window.location.assign("/login");
      };
      xhr.onerror = function () {
        if (tries < 60) {
          window.setTimeout(poll, 2000);
        } else {
          say("The appliance did not come back within two minutes: look at its console.",
            "notice bad");
        }
      };
      xhr.send();
    };
    window.setTimeout(poll, 2000);
  };
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var file = document.getElementById("restore-file").files[0];
    if (!file) {
      say("Choose the backup file.", "notice bad");
      return;
    }
    var button = form.querySelector("button");
    button.disabled = true;
    window.flakebootUpload({
      url: "/setup/restore",
      headers: {
        "X-Flakeboot-Form": form.dataset.form,
        "X-Flakeboot-Setup-Code": value("restore-code"),
        "X-Flakeboot-Passphrase": value("restore-passphrase"),
      },
      file: file,
      bar: document.getElementById("restore-progress"),
      say: say,
      sent: "Sent. Decrypting and checking the backup...",
      done: function (status, answer) {
        if (status === 200) {
          say("Restored the backup of flakeboot " + answer.restored +
            ". The appliance starts again with it; sign in with the old admin password.",
            "notice ok");
          waitForRestart();
          return;
        }
        button.disabled = false;
        if (status === 0) {
          say("The upload failed: " + answer.error + ".", "notice bad");
        } else {
          say("Not restored: " + (answer.error || "HTTP " + status), "notice bad");
        }
      },
    });
  });
})();
