// live.js: keeps the job page's task table current without a reload.
//
// One EventSource per tab on GET /v1/events, scoped to the page's view
// (node = the job, kinds = job,task), resuming after the state version
// the page was rendered at (data-live-from): `from` is exclusive, so no
// change is missed; a change older than its row is skipped, and one seen
// twice writes the same row again.
// Updates are applied at most every 100 ms: the first change after a quiet
// spell is drawn at once (on the next turn of the event loop, so the rest
// of its version, arriving in the same read, joins it), later ones wait
// for the rest of the 100 ms (one action's changes, a placement then its
// RUNNING report, come tens of ms apart: a 200 ms batch held the second
// back by most of that, and missed the 250 ms commit-to-screen goal);
// the stream is closed while
// the tab is hidden and reopened from the last complete version when it
// is shown again. The deployments part is fetched again from the server
// when the job (or, during a deployment, one of its tasks) changes, and
// the "why tasks wait" part when the job's waiting text changes.
// Without JavaScript the page is the same, just static.
(function () {
  "use strict";
  var root = document.querySelector("[data-live-from]");
  var tbody = document.getElementById("tasks-body");
  if (!root || !tbody || !window.EventSource) return;
  var BATCH_MS = 100, MAX_QUEUE = 10000;
  var job = root.getAttribute("data-live-job");
  var node = root.getAttribute("data-live-node") || "";
  var kinds = root.getAttribute("data-live-kinds") || "job,task";
  var from = root.getAttribute("data-live-from");
  var status = document.getElementById("live-status");
  var pauseBtn = document.getElementById("live-pause");
  var es = null, queue = [], timer = null, paused = false, overflow = false, retry = null;
  var lastFlush = 0;

  function say(text) { if (status) status.textContent = text; }

  function open() {
    if (es) return;
    var url = "/v1/events?from=" + encodeURIComponent(from) + "&kinds=" + encodeURIComponent(kinds);
    if (node) url += "&node=" + encodeURIComponent(node);
    es = new EventSource(url);
    ["task_put", "task_removed", "job_put", "job_deleted"].forEach(function (k) {
      es.addEventListener(k, onEvent);
    });
    // Too far behind for the feed: the page itself is out of date.
    es.addEventListener("snapshot", function () { close(); location.reload(); });
    es.onopen = function () { say(paused ? "Paused" : "Live"); };
    es.onerror = function () {
      // Reconnect ourselves, from the last complete version: the browser's
      // own retry would repeat the page's original `from`.
      close();
      say("Disconnected; retrying…");
      if (!retry) retry = setTimeout(function () { retry = null; if (!document.hidden) open(); }, 2000);
    };
  }

  function close() { if (es) { es.close(); es = null; } }

  function onEvent(e) {
    if (queue.length >= MAX_QUEUE) { overflow = true; } else {
      queue.push({ kind: e.type, data: JSON.parse(e.data) });
    }
    // Only the last event of a version carries its id.
    if (e.lastEventId) from = e.lastEventId;
    if (!timer) timer = setTimeout(flush, Math.max(0, lastFlush + BATCH_MS - Date.now()));
  }

  function flush() {
    timer = null;
    lastFlush = Date.now();
    if (paused) { say("Paused (" + queue.length + " changes waiting)"); return; }
    if (overflow) { location.reload(); return; }
    var batch = queue; queue = [];
    deploymentsStale = false; waitingStale = false;
    batch.forEach(apply);
    if (batch.length) { summarise(); say("Live · version " + from); }
    if (deploymentsStale) refreshDeployments();
    if (waitingStale) refreshWaiting();
  }

  // Parts of the page the server renders (the deployments: progress,
  // holds, the actions that apply; why tasks wait: the waiting text read
  // into a table) are fetched again when what they show changed, each at
  // most one request at a time and one a second. `keep` leaves a part
  // alone while the user works in it (a box ticked in a form).
  function part(id, keep) {
    var fetching = false, lastFetch = 0, again = null;
    return function refresh() {
      var el = document.getElementById(id);
      if (!el || !window.fetch || (keep && keep(el))) return;
      var wait = 1000 - (Date.now() - lastFetch);
      if (fetching || wait > 0) {
        if (!again) again = setTimeout(function () { again = null; refresh(); }, Math.max(wait, 100));
        return;
      }
      fetching = true; lastFetch = Date.now();
      fetch(el.getAttribute("data-fragment"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          fetching = false;
          var now = document.getElementById(id);
          if (html === null || !now || paused) return;
          var t = document.createElement("template");
          t.innerHTML = html;
          var fresh = t.content.getElementById(id);
          if (fresh) now.replaceWith(fresh);
        }, function () { fetching = false; });
    };
  }
  var deploymentsStale = false, waitingStale = false;
  var refreshDeployments = part("deployments", function (el) {
    return el.querySelector("input[type=checkbox]:checked");
  });
  var refreshWaiting = part("waiting-detail");

  // The job's running count and state, by the rules of the server's
  // summary::job_state: flapping, waiting, idle, running, else starting.
  var waiting = root.getAttribute("data-job-waiting") === "true";
  var flapping = root.getAttribute("data-job-flapping") === "true";
  function summarise() {
    var running = 0;
    tbody.querySelectorAll("tr[data-task] td:nth-child(2)").forEach(function (td) {
      if (td.textContent === "RUNNING") running++;
    });
    var count = document.getElementById("job-running-count");
    if (count) count.textContent = String(running);
    var n = document.getElementById("job-instances");
    var instances = n ? Number(n.textContent) : 0;
    var state = flapping ? "flapping" : waiting ? "waiting" : instances === 0 ? "idle"
      : running >= instances ? "running" : "starting";
    var el = document.querySelector("#job-state .state");
    if (el) { el.textContent = state; el.className = "state state-" + state; }
  }

  function cell(text) { var td = document.createElement("td"); td.textContent = text; return td; }

  function row(t) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-task", t.id);
    tr.setAttribute("data-updated", String(t.updated_version));
    var link = document.createElement("a");
    link.href = "/ui/tasks/" + encodeURIComponent(t.id);
    link.textContent = t.id;
    var first = document.createElement("td"); first.appendChild(link); tr.appendChild(first);
    var st = cell(t.state + (t.kill_requested ? " (stopping)" : ""));
    st.className = "state state-" + t.state;
    tr.appendChild(st);
    tr.appendChild(cell(t.host));
    tr.appendChild(cell(t.ports.map(function (p) { return p.name + ":" + p.port; }).join(" ")));
    var h = t.healthy === true ? "healthy" : t.healthy === false ? "unhealthy" : "unknown";
    tr.appendChild(cell(t.health_message ? h + ": " + t.health_message : h));
    return tr;
  }

  function find(id) {
    var rows = tbody.querySelectorAll("tr[data-task]");
    for (var i = 0; i < rows.length; i++) if (rows[i].getAttribute("data-task") === id) return rows[i];
    return null;
  }

  function apply(ev) {
    var d = ev.data;
    if (ev.kind === "task_put") {
      if (d.task.job !== job) return;
      // Tasks move a deployment's progress only while one is active (its
      // actions are shown); a new one always comes with a job change.
      if (document.getElementById("deployment-actions")) deploymentsStale = true;
      var old = find(d.task.id);
      // Older than the row: skip. One version may change a task twice
      // (STARTING then RUNNING in one batch of reports), so an event of
      // the row's own version still applies: the later one wins.
      if (old && Number(old.getAttribute("data-updated")) > d.task.updated_version) return;
      var tr = row(d.task);
      if (old) tbody.replaceChild(tr, old); else tbody.appendChild(tr);
      var none = document.getElementById("no-tasks");
      if (none) none.remove();
    } else if (ev.kind === "task_removed") {
      var gone = find(d.id);
      if (gone) gone.remove();
    } else if (ev.kind === "job_put" && d.job.id === job) {
      deploymentsStale = true;
      var n = document.getElementById("job-instances");
      if (n && d.job.spec && d.job.spec.instances !== undefined) n.textContent = String(d.job.spec.instances);
      waiting = d.job.waiting !== null && d.job.waiting !== undefined;
      // The reason itself, as the record says it; the structured part
      // below it is the server's reading of it, fetched when it changed.
      var why = document.getElementById("job-waiting");
      var whyRow = document.getElementById("job-waiting-row");
      var text = waiting ? d.job.waiting : "";
      if (why && why.textContent !== text) { why.textContent = text; waitingStale = true; }
      if (whyRow) whyRow.hidden = !waiting;
      flapping = d.job.flapping === true;
      var sv = document.getElementById("job-spec-version");
      if (sv) sv.textContent = String(d.job.spec_version);
    } else if (ev.kind === "job_deleted" && d.id === job) {
      say("This job has been deleted (version " + d.version + ").");
      close();
    }
  }

  if (pauseBtn) {
    pauseBtn.hidden = false;
    pauseBtn.addEventListener("click", function () {
      paused = !paused;
      pauseBtn.textContent = paused ? "Resume updates" : "Pause updates";
      pauseBtn.setAttribute("aria-pressed", paused ? "true" : "false");
      if (!paused) flush(); else say("Paused");
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { close(); say("Paused while the tab is hidden"); }
    else open();
  });
  window.addEventListener("pagehide", close);
  say("Connecting…");
  if (!document.hidden) open();
})();
