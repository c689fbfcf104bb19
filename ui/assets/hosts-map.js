// hosts-map.js: every agent as one small square on one canvas, coloured by
// status, from GET /ui/hosts/map.json (one digit per host, hostnames
// coded against the one before). Hovering a square names its host. Without JavaScript the
// legend's counts by status stay.
(function () {
  "use strict";
  var canvas = document.getElementById("hosts-map");
  if (!canvas || !canvas.getContext || !window.fetch) return;
  var hover = document.getElementById("map-hover");
  // Status colours (legend swatches use the same); state is also in text.
  var COLOURS = { online: "#1a6b2f", draining: "#b7791f", offline: "#6b7280", problem: "#a4161a", unreachable: "#111827" };
  var CELL = 6, GAP = 1, names = [], codes = "", statuses = [];

  // "p,s,middle|...": each name shares p leading and s trailing
  // characters with the one before (see pages/hosts_map.rs).
  function decode(text) {
    var out = [], prev = "";
    text.split("|").forEach(function (entry) {
      if (!entry) return;
      var a = entry.indexOf(","), b = entry.indexOf(",", a + 1);
      var p = Number(entry.slice(0, a)), s = Number(entry.slice(a + 1, b));
      prev = prev.slice(0, p) + entry.slice(b + 1) + prev.slice(prev.length - s);
      out.push(prev);
    });
    return out;
  }

  function draw() {
    var per = Math.max(1, Math.floor(canvas.width / (CELL + GAP)));
    var rows = Math.ceil(codes.length / per);
    canvas.height = Math.max(CELL, rows * (CELL + GAP));
    var ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (var i = 0; i < codes.length; i++) {
      ctx.fillStyle = COLOURS[statuses[codes.charCodeAt(i) - 48]] || "#000";
      ctx.fillRect((i % per) * (CELL + GAP), Math.floor(i / per) * (CELL + GAP), CELL, CELL);
    }
    canvas.setAttribute("data-drawn", String(codes.length));
    canvas.setAttribute("data-per-row", String(per));
  }

  canvas.addEventListener("mousemove", function (e) {
    var r = canvas.getBoundingClientRect();
    var per = Math.max(1, Math.floor(canvas.width / (CELL + GAP)));
    var x = Math.floor((e.clientX - r.left) * canvas.width / r.width / (CELL + GAP));
    var y = Math.floor((e.clientY - r.top) * canvas.height / r.height / (CELL + GAP));
    var i = y * per + x;
    var text = x < per && i < codes.length ? names[i] + " · " + statuses[codes.charCodeAt(i) - 48] : "";
    canvas.title = text;
    if (hover) hover.textContent = text;
  });

  fetch(canvas.getAttribute("data-src"), { headers: { Accept: "application/json" } })
    .then(function (r) { return r.json(); })
    .then(function (m) {
      statuses = m.statuses; codes = m.s; names = decode(m.names);
      draw();
    })
    .catch(function (e) { if (hover) hover.textContent = "The map could not be loaded: " + e.message; });
})();
