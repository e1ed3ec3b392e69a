// The setup page's restore: the backup is POSTed to /setup/restore as the request body with
// the setup code, the passphrase and the page's form token in headers, with a progress bar
// while it is sent and the appliance's answer afterwards. On success the appliance starts
// again on the backup: the page waits for it and goes to the sign-in page.
"use strict";
(function () {
  var form = document.getElementById("restore-upload");
  if (!form) {
    return;
  }
  var bar = document.getElementById("restore-progress");
  var out = document.getElementById("restore-result");
  var value = function (id) {
    return document.getElementById(id).value;
  };
  var mib = function (n) {
    return Math.round(n / 1048576);
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
          say("The appliance did not come back within two minutes: look at its console.", "notice bad");
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
    bar.hidden = false;
    bar.max = file.size || 1;
    bar.value = 0;
    say("Sending " + file.name + " (" + mib(file.size) + " MiB)");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/setup/restore");
    xhr.setRequestHeader("X-Flakeboot-Form", form.dataset.form);
    xhr.setRequestHeader("X-Flakeboot-Setup-Code", value("restore-code"));
    xhr.setRequestHeader("X-Flakeboot-Passphrase", value("restore-passphrase"));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) {
        bar.max = e.total;
        bar.value = e.loaded;
        say("Sent " + mib(e.loaded) + " of " + mib(e.total) + " MiB");
      }
    };
    xhr.upload.onload = function () {
      bar.value = bar.max;
      say("Sent. Decrypting and checking the backup...");
    };
    xhr.onload = function () {
      var answer = {};
      try {
        answer = JSON.parse(xhr.responseText);
      } catch (e) {
        answer = { error: "HTTP " + xhr.status };
      }
      if (xhr.status === 200) {
        say("Restored the backup of flakeboot " + answer.restored +
          ". The appliance starts again with it; sign in with the old admin password.", "notice ok");
        waitForRestart();
      } else {
        button.disabled = false;
        say("Not restored: " + (answer.error || "HTTP " + xhr.status), "notice bad");
      }
    };
    xhr.onerror = function () {
      button.disabled = false;
      say("The upload failed: the connection to the appliance ended.", "notice bad");
    };
    xhr.send(file);
  });
})();
