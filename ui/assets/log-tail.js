// log-tail.js: follows a task's stdout and stderr on its page.
//
// One fetch per stream on GET /v1/tasks/{id}/logs?stream=S&tail=100&follow=true
// (the same endpoint as `ocean task logs -f`), read chunk by chunk; the
// first chunk is the tail the page already shows, so the text is replaced
// once and appended to after. The fetches stop while the tab is hidden and
// start again (with a fresh tail) when it is shown; "Pause" holds new text
// so lines don't move while read. At most 64 KB per stream stay on screen.
(function () {
  "use strict";
  var root = document.querySelector("[data-log-task]");
  if (!root || !window.fetch || !window.AbortController || !window.TextDecoder) return;
  var task = root.getAttribute("data-log-task");
  var MAX = 64 * 1024;
  var pauseBtn = document.getElementById("log-pause");
  var status = document.getElementById("log-status");
  var paused = false, controller = null;
  var held = { stdout: "", stderr: "" };

  function say(t) { if (status) status.textContent = t; }

  function pre(stream) {
    var el = document.getElementById("log-" + stream);
    if (el && el.tagName === "PRE") return el;
    var p = document.createElement("pre");
    p.className = "log"; p.id = "log-" + stream; p.tabIndex = 0;
    if (el) el.replaceWith(p); else return null;
    return p;
  }

  function write(stream, text, fresh) {
    var el = pre(stream);
    if (!el) return;
    var t = (fresh ? "" : el.textContent) + text;
    if (t.length > MAX) t = t.slice(t.length - MAX);
    el.textContent = t;
  }

  function follow(stream, signal) {
    var url = "/v1/tasks/" + encodeURIComponent(task) + "/logs?stream=" + stream + "&tail=100&follow=true";
    var first = true;
    return fetch(url, { signal: signal }).then(function (resp) {
      if (!resp.ok || !resp.body) { say("Log " + stream + ": the master answered " + resp.status); return; }
      var reader = resp.body.getReader();
      var dec = new TextDecoder();
      function next() {
        return reader.read().then(function (r) {
          if (r.done) return;
          var text = dec.decode(r.value, { stream: true });
          if (paused) { held[stream] = (held[stream] + text).slice(-MAX); }
          else { write(stream, text, first); first = false; }
          return next();
        });
      }
      return next();
    }).catch(function (e) { if (e.name !== "AbortError") say("Log " + stream + ": " + e.message); });
  }

  function start() {
    if (controller) return;
    controller = new AbortController();
    say(paused ? "Paused" : "Following the log");
    var c = controller;
    Promise.all(["stdout", "stderr"].map(function (s) { return follow(s, c.signal); }))
      .then(function () { if (controller === c) { controller = null; say("The log stream ended"); } });
  }

  function stop() { if (controller) { controller.abort(); controller = null; } }

  if (pauseBtn) {
    pauseBtn.hidden = false;
    pauseBtn.addEventListener("click", function () {
      paused = !paused;
      pauseBtn.textContent = paused ? "Resume log" : "Pause log";
      pauseBtn.setAttribute("aria-pressed", paused ? "true" : "false");
      if (!paused) {
        ["stdout", "stderr"].forEach(function (s) { if (held[s]) { write(s, held[s], false); held[s] = ""; } });
        say("Following the log");
      } else say("Paused");
    });
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { stop(); say("Stopped while the tab is hidden"); } else start();
  });
  window.addEventListener("pagehide", stop);
  if (!document.hidden) start();
})();
