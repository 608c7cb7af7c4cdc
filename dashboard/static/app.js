// The dashboard's own script: copy buttons, a confirmation before destructive forms, and
// the create form's upload, sent straight to the Image API with a progress bar.
"use strict";

document.addEventListener("click", function (ev) {
  var btn = ev.target.closest("button[data-copy]");
  if (btn) {
    var text = document.getElementById(btn.dataset.copy).textContent;
    var done = function () { btn.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
    return;
  }
  if (ev.target.closest("button[data-back]")) {
    history.back();
  }
});

function fallbackCopy(text) {
  var ta = document.createElement("textarea");
  ta.value = text;
  document.body.appendChild(ta);
  ta.select();
  document.execCommand("copy");
  ta.remove();
}

document.addEventListener("submit", function (ev) {
  var form = ev.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    ev.preventDefault();
  }
  if (form.id === "create-form" && form.elements.method.value === "upload") {
    ev.preventDefault();
    createAndUpload(form);
  }
});

function showError(msg) {
  var el = document.getElementById("upload-error");
  el.textContent = msg;
  el.hidden = false;
}

// errorText is the message of a failed answer: the dashboard's JSON, or Glance's error body
// (whose message carries Glance's HTML line breaks).
function errorText(xhrText, status) {
  var msg = "";
  try {
    var b = JSON.parse(xhrText);
    if (b.message) { msg = b.message; }
    else if (b.error && b.error.message) { msg = b.error.message; }
    else {
      for (var k in b) {
        if (b[k] && b[k].message) { msg = b[k].message; break; }
      }
    }
  } catch (e) { /* not JSON */ }
  if (!msg) { return "The server answered " + status + "."; }
  msg = msg.replace(/<br\s*\/?>/g, " ").replace(/\s+/g, " ").trim();
  return /[.!?]$/.test(msg) ? msg : msg + ".";
}

function createAndUpload(form) {
  var file = form.elements.file.files[0];
  if (!file) {
    showError("Choose a file to upload.");
    return;
  }
  document.getElementById("upload-error").hidden = true;
  var body = new URLSearchParams();
  new FormData(form).forEach(function (v, k) {
    if (k !== "file") { body.append(k, v); }
  });
  fetch(form.action, {
    method: "POST", body: body, credentials: "same-origin",
    headers: { "X-CSRF-Token": form.dataset.csrf, "Accept": "application/json" }
  }).then(function (resp) {
    return resp.text().then(function (t) {
      if (!resp.ok) { throw new Error(errorText(t, resp.status)); }
      return JSON.parse(t);
    });
  }).then(function (created) {
    upload(created, file);
  }).catch(function (e) { showError(e.message); });
}

function upload(created, file) {
  var box = document.getElementById("upload");
  var bar = document.getElementById("upload-progress");
  var pct = document.getElementById("upload-percent");
  box.hidden = false;
  var xhr = new XMLHttpRequest();
  xhr.open("PUT", created.upload);
  xhr.setRequestHeader("X-Auth-Token", created.token);
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.onprogress = function (ev) {
    if (ev.lengthComputable) {
      var p = Math.floor(ev.loaded * 100 / ev.total);
      bar.value = p;
      pct.textContent = p + "%";
    }
  };
  xhr.onload = function () {
    if (xhr.status >= 200 && xhr.status < 300) {
      bar.value = 100;
      pct.textContent = "100%";
      box.dataset.done = "true";
      var link = document.getElementById("upload-done");
      link.href = created.page;
      link.hidden = false;
      link.focus();
    } else {
      showError("The upload was refused: " + errorText(xhr.responseText, xhr.status) +
        " The image stays queued; open it to delete it or upload again.");
      box.dataset.done = "error";
    }
  };
  xhr.onerror = function () { showError("The upload failed: the connection was lost."); };
  xhr.send(file);
}
