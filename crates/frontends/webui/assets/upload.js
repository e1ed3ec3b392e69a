// One file POSTed as the request body with a progress bar: the Firmware page's update and the
// setup page's backup restore (firmware.js, restore.js) use it.
//   flakebootUpload({url, headers, file, bar, say, done})
// `say(text, kind)` shows progress; `done(status, answer)` gets the HTTP status and the JSON
// answer (`{error: ...}` when it is none); a dropped connection is status 0.
"use strict";
window.flakebootUpload = function (o) {
  var mib = function (n) {
    return Math.round(n / 1048576);
  };
  o.bar.hidden = false;
  o.bar.max = o.file.size || 1;
  o.bar.value = 0;
  o.say("Sending " + o.file.name + " (" + mib(o.file.size) + " MiB)");
  var xhr = new XMLHttpRequest();
  xhr.open("POST", o.url);
  Object.keys(o.headers).forEach(function (name) {
    xhr.setRequestHeader(name, o.headers[name]);
  });
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.onprogress = function (e) {
    if (e.lengthComputable) {
      o.bar.max = e.total;
      o.bar.value = e.loaded;
      o.say("Sent " + mib(e.loaded) + " of " + mib(e.total) + " MiB");
    }
  };
  xhr.upload.onload = function () {
    o.bar.value = o.bar.max;
    o.say(o.sent);
  };
  xhr.onload = function () {
    var answer = {};
    try {
      answer = JSON.parse(xhr.responseText);
    } catch (e) {
      answer = { error: "HTTP " + xhr.status };
    }
    o.done(xhr.status, answer);
  };
  xhr.onerror = function () {
    o.done(0, { error: "the connection to the appliance ended" });
  };
  xhr.send(o.file);
};
