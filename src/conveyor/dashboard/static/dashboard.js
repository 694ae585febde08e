/* Conveyor dashboard: live refresh, charts on <canvas>, and confirmations. No dependencies.
 *
 * Live refresh re-fetches the current page every few seconds (body[data-refresh]) and swaps
 * in each element marked [data-live][id] (a job's page: its state, progress bar and attempts),
 * keeping open the <details> the user opened; it waits while the user has ticked a box, is
 * typing or has selected text, and shows a banner instead of a stack trace when the backend
 * or the server is down.
 * Charts read /api/history and are redrawn on each refresh.
 */
(function () {
  "use strict";

  var body = document.body;
  var base = body.getAttribute("data-base") || "";
  var every = Math.max(1, parseFloat(body.getAttribute("data-refresh") || "5")) * 1000;
  var banner = document.getElementById("banner");
  var toggle = document.getElementById("live-toggle");
  var live = localStorage.getItem("conveyor.live") !== "off";
  var colors = { ok: "#1f9d55", bad: "#d64545", grid: "#e6e6e2", text: "#6b7280" };

  // -- banner ----------------------------------------------------------------------------
  function showBanner(text) {
    if (!banner) return;
    banner.textContent = text;
    banner.hidden = false;
  }
  function hideBanner() {
    if (banner) banner.hidden = true;
  }

  // -- confirmations ---------------------------------------------------------------------
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // -- charts ----------------------------------------------------------------------------
  function niceMax(value) {
    if (value <= 5) return 5;
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * power >= value) return steps[i] * power;
    }
    return 10 * power;
  }

  function hhmm(minute) {
    var d = new Date(minute * 1000);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function frame(canvas, top, labelY) {
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth || canvas.width;
    var height = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    var box = { left: 40, right: width - 8, top: 8, bottom: height - 20 };
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = colors.text;
    ctx.strokeStyle = colors.grid;
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (var i = 0; i <= 4; i++) {
      var y = box.bottom - (box.bottom - box.top) * (i / 4);
      ctx.beginPath();
      ctx.moveTo(box.left, Math.round(y) + 0.5);
      ctx.lineTo(box.right, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillText(labelY((top * i) / 4), box.left - 6, y);
    }
    return { ctx: ctx, box: box };
  }

  function xLabels(ctx, box, series) {
    var step = (box.right - box.left) / series.length;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.fillStyle = colors.text;
    series.forEach(function (point, i) {
      if ((point.minute / 60) % 10 === 0) {
        ctx.fillText(hhmm(point.minute), box.left + step * (i + 0.5), box.bottom + 5);
      }
    });
  }

  function drawThroughput(canvas, series) {
    var peak = 0;
    series.forEach(function (p) { peak = Math.max(peak, p.succeeded + p.failed); });
    var top = niceMax(peak);
    var f = frame(canvas, top, function (v) { return String(Math.round(v)); });
    var ctx = f.ctx, box = f.box;
    var step = (box.right - box.left) / series.length;
    var scale = (box.bottom - box.top) / top;
    series.forEach(function (p, i) {
      var x = box.left + step * i + Math.max(1, step * 0.15);
      var w = Math.max(1, step * 0.7);
      var okH = p.succeeded * scale, badH = p.failed * scale;
      ctx.fillStyle = colors.ok;
      ctx.fillRect(x, box.bottom - okH, w, okH);
      ctx.fillStyle = colors.bad;
      ctx.fillRect(x, box.bottom - okH - badH, w, badH);
    });
    xLabels(ctx, box, series);
  }

  function drawFailure(canvas, series) {
    var f = frame(canvas, 100, function (v) { return Math.round(v) + "%"; });
    var ctx = f.ctx, box = f.box;
    var step = (box.right - box.left) / series.length;
    ctx.strokeStyle = colors.bad;
    ctx.fillStyle = colors.bad;
    ctx.lineWidth = 2;
    var drawing = false;
    ctx.beginPath();
    series.forEach(function (p, i) {
      if (p.failure_rate === null) { drawing = false; return; }
      var x = box.left + step * (i + 0.5);
      var y = box.bottom - (box.bottom - box.top) * p.failure_rate;
      if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      drawing = true;
      ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
    });
    ctx.stroke();
    xLabels(ctx, box, series);
  }

  function drawCharts() {
    var canvases = document.querySelectorAll("canvas[data-chart]");
    if (!canvases.length) return Promise.resolve();
    return fetch(base + "/api/history?minutes=60", { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("history: HTTP " + response.status);
        return response.json();
      })
      .then(function (history) {
        canvases.forEach(function (canvas) {
          var kind = canvas.getAttribute("data-chart");
          if (kind === "throughput") drawThroughput(canvas, history.series);
          else drawFailure(canvas, history.series);
          var points = history.series.filter(function (p) { return p.succeeded + p.failed > 0; });
          canvas.setAttribute("data-points", String(points.length));
          canvas.setAttribute("data-rendered", "true");
        });
      });
  }

  // -- live refresh ----------------------------------------------------------------------
  function busy() {
    var active = document.activeElement;
    if (active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) return true;
    if (document.querySelector("[data-live] input[type=checkbox]:checked")) return true;
    var selection = window.getSelection && window.getSelection();
    return Boolean(selection && String(selection).length);
  }

  // A <details> the user opened (a traceback) stays open across refreshes: the fresh copy
  // of each open one with an id is opened before it replaces the old.
  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    document.querySelectorAll("[data-live][id]").forEach(function (old) {
      var next = fresh.getElementById(old.id);
      if (!next) return;
      var node = document.importNode(next, true);
      old.querySelectorAll("details[open][id]").forEach(function (details) {
        var again = node.querySelector("#" + CSS.escape(details.id));
        if (again) again.open = true;
      });
      old.replaceWith(node);
    });
  }

  function refresh() {
    if (!live || document.hidden || busy()) return;
    var onErrorPage = Boolean(document.querySelector("main > .banner-error[data-status='503']"));
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Conveyor-Live": "1" } })
      .then(function (response) {
        return response.text().then(function (html) { return { response: response, html: html }; });
      })
      .then(function (r) {
        if (r.response.redirected) return;
        if (r.response.status === 503) {
          var page = new DOMParser().parseFromString(r.html, "text/html");
          var error = page.querySelector(".banner-error");
          showBanner(error ? error.textContent.trim() : "the backend is unavailable");
          return;
        }
        if (!r.response.ok) return;
        hideBanner();
        if (onErrorPage) { window.location.reload(); return; }
        swap(r.html);
        return drawCharts();
      })
      .catch(function () {
        showBanner("The dashboard server cannot be reached; retrying every few seconds.");
      });
  }

  function setLive(on) {
    live = on;
    localStorage.setItem("conveyor.live", on ? "on" : "off");
    if (toggle) {
      toggle.setAttribute("aria-pressed", on ? "true" : "false");
      toggle.textContent = on ? "● live" : "○ paused";
      toggle.title = on ? "Refreshing every " + every / 1000 + "s: click to pause" : "Click to refresh live";
    }
  }

  if (toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () { setLive(!live); if (live) refresh(); });
  }
  setLive(live);
  drawCharts().catch(function (error) { showBanner("Charts unavailable: " + error.message); });
  window.setInterval(refresh, every);
  window.addEventListener("resize", function () { drawCharts().catch(function () {}); });
})();
