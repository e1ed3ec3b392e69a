// The Firmware page's upload: the bundle is POSTed to /api/v1/firmware as the request body with
// the session's CSRF token, with a progress bar while it is sent and the appliance's answer
// (installed, or why it was refused) afterwards.
"use strict";
(function () {
  var form = document.getElementById("firmware-upload");
  if (!form) {
    return;
  }
  var bar = document.getElementById("firmware-progress");
  var out = document.getElementById("firmware-result");
  var mib = function (n) {
    return Math.round(n / 1048576);
  };
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var file = form.querySelector("input[type=file]").files[0];
    if (!file) {
      return;
    }
    var button = form.querySelector("button");
    button.disabled = true;
    bar.hidden = false;
    bar.max = file.size || 1;
    bar.value = 0;
    out.textContent = "Sending " + file.name + " (" + mib(file.size) + " MiB)";
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/firmware");
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) {
        bar.max = e.total;
        bar.value = e.loaded;
        out.textContent = "Sent " + mib(e.loaded) + " of " + mib(e.total) + " MiB";
      }
    };
    xhr.upload.onload = function () {
      bar.value = bar.max;
      out.textContent = "Sent. Checking the signature and installing...";
    };
    xhr.onload = function () {
      button.disabled = false;
      var answer = {};
      try {
        answer = JSON.parse(xhr.responseText);
      } catch (e) {
        answer = { error: "HTTP " + xhr.status };
      }
      if (xhr.status === 200) {
        out.textContent = "Installed " + answer.version + " in slot " + answer.slot +
          ". Reboot to start it.";
        out.className = "ok";
      } else {
        out.textContent = "Not installed: " + (answer.error || "HTTP " + xhr.status);
        out.className = "bad";
      }
    };
    xhr.onerror = function () {
      button.disabled = false;
      out.textContent = "The upload failed: the connection to the appliance ended.";
      out.className = "bad";
    };
    xhr.send(file);
  });
})();
