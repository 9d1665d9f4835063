// /explore: the collection as a zoomable, pannable map, drawn on a canvas.
//
// The map is the unit square of painting_map (x right, y up). Each change of view asks
// GET /api/map for the paintings inside it (at most LIMIT, an even sample when there are
// more), with the page's filters; far out every painting is a dot, close in a thumbnail.
// Drag pans, the wheel and +/- zoom about the pointer, a click opens the painting under
// the pointer, "Search here" runs more like this from the painting nearest the centre.
// window.pgalleryMap exposes the view and what was drawn (the browser tests read it).
(function () {
  "use strict";
  var canvas = document.getElementById("map");
  if (!canvas) return;
  var ctx = canvas.getContext("2d");
  var tip = document.getElementById("map-tip");
  var statusLine = document.getElementById("map-status");
  var api = canvas.dataset.api;
  var searchUrl = canvas.dataset.search;
  var LIMIT = 400;            // points per request
  var LIMIT_FILTERED = 200;   // with filters: a filtered view reads about limit / (share
                              // passing) rows, so half the points halve its cost
  var PICTURES_BELOW = 160;   // zoomed in, fewer visible points than this: thumbnails
  var PICTURES_ZOOM = 1.5;    // ... from this zoom on (the whole map is dots, unless
  var FEW = 40;               // it holds fewer than FEW paintings)
  var MAX_SCALE = 4000;       // pixels per map unit, at most
  var view = {cx: 0.5, cy: 0.5, scale: 1};   // centre (map units), pixels per map unit
  var points = [];            // the last answer's points
  var screen = [];            // [{x, y, r, point}] as drawn
  var images = {};            // thumbnail_url -> Image
  var requests = 0, pending = null, timer = null;
  var state = {view: view, points: points, screen: screen, mode: "", requests: 0,
               loaded: 0, fitScale: 1};
  window.pgalleryMap = state;

  function size() {
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return {w: w, h: h};
  }

  function fit() {
    var s = size();
    view.cx = 0.5; view.cy = 0.5;
    view.scale = state.fitScale = Math.min(s.w, s.h) * 0.94;
  }

  function toScreen(x, y, s) {
    return {x: s.w / 2 + (x - view.cx) * view.scale, y: s.h / 2 - (y - view.cy) * view.scale};
  }

  function toMap(px, py) {
    var s = size();
    return {x: view.cx + (px - s.w / 2) / view.scale, y: view.cy - (py - s.h / 2) / view.scale};
  }

  function bbox() {
    var s = size(), a = toMap(0, s.h), b = toMap(s.w, 0);
    return [a.x, a.y, b.x, b.y].map(function (v) { return v.toFixed(6); }).join(",");
  }

  function image(url) {
    var img = images[url];
    if (!img) {
      img = images[url] = new Image();
      img.onload = function () { state.loaded += 1; draw(); };
      img.src = url;
    }
    return img;
  }

  function draw() {
    var s = size();
    ctx.clearRect(0, 0, s.w, s.h);
    screen.length = 0;
    var visible = points.filter(function (p) {
      var q = toScreen(p.x, p.y, s);
      return q.x >= -60 && q.x <= s.w + 60 && q.y >= -60 && q.y <= s.h + 60;
    });
    var zoomed = view.scale / state.fitScale >= PICTURES_ZOOM;
    var pictures = visible.length < FEW || (zoomed && visible.length < PICTURES_BELOW);
    state.mode = pictures ? "pictures" : "dots";
    canvas.dataset.mode = state.mode;
    var side = pictures ? Math.max(28, Math.min(120, Math.sqrt(s.w * s.h / Math.max(visible.length, 1)) * 0.55)) : 0;
    visible.forEach(function (p) {
      var q = toScreen(p.x, p.y, s);
      if (pictures) {
        var img = image(p.thumbnail_url);
        var w = side, h = side;
        if (img.complete && img.naturalWidth) {
          var k = side / Math.max(img.naturalWidth, img.naturalHeight);
          w = img.naturalWidth * k; h = img.naturalHeight * k;
          ctx.drawImage(img, q.x - w / 2, q.y - h / 2, w, h);
        } else {
          ctx.fillStyle = "#2a2a30";
          ctx.fillRect(q.x - w / 2, q.y - h / 2, w, h);
        }
        screen.push({x: q.x, y: q.y, r: Math.max(w, h) / 2, point: p});
      } else {
        ctx.fillStyle = "rgba(212, 175, 55, 0.85)";
        ctx.beginPath();
        ctx.arc(q.x, q.y, 2.5, 0, 2 * Math.PI);
        ctx.fill();
        screen.push({x: q.x, y: q.y, r: 5, point: p});
      }
    });
    // the cross "Search here" searches from
    ctx.strokeStyle = "rgba(255, 255, 255, 0.6)";
    ctx.beginPath();
    ctx.moveTo(s.w / 2 - 8, s.h / 2); ctx.lineTo(s.w / 2 + 8, s.h / 2);
    ctx.moveTo(s.w / 2, s.h / 2 - 8); ctx.lineTo(s.w / 2, s.h / 2 + 8);
    ctx.stroke();
    canvas.dataset.drawn = String(screen.length);
    statusLine.textContent = screen.length + " paintings shown · zoom " +
      (view.scale / state.fitScale).toFixed(1) + "×";
  }

  function load() {
    if (pending) pending.abort();
    var controller = pending = new AbortController();
    var filtered = api.indexOf("?") >= 0;
    var url = api + (filtered ? "&" : "?") + "bbox=" + bbox() + "&limit=" +
      (filtered ? LIMIT_FILTERED : LIMIT);
    requests += 1;
    state.requests = requests;
    fetch(url, {signal: controller.signal, headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
      .then(function (answer) {
        if (controller !== pending) return;
        pending = null;
        if (!answer.ok) { statusLine.textContent = answer.body.error || "the map could not be read"; return; }
        points = state.points = answer.body.points;
        canvas.dataset.requests = String(requests);
        draw();
        canvas.dataset.ready = "true";
        if (!points.length) statusLine.textContent = "no painting here" +
          (api.indexOf("?") >= 0 ? " with these filters" : "") + " (is the map laid out? pgallery map layout)";
      })
      .catch(function (error) { if (error.name !== "AbortError") statusLine.textContent = "the map could not be read"; });
  }

  function changed() {
    draw();
    clearTimeout(timer);
    timer = setTimeout(load, 90);
  }

  function zoom(factor, px, py) {
    var s = size();
    if (px === undefined) { px = s.w / 2; py = s.h / 2; }
    var before = toMap(px, py);
    view.scale = Math.max(state.fitScale * 0.5, Math.min(MAX_SCALE * state.fitScale, view.scale * factor));
    var after = toMap(px, py);
    view.cx += before.x - after.x;
    view.cy += before.y - after.y;
    changed();
  }

  function at(px, py) {
    var best = null, bestD = Infinity;
    screen.forEach(function (d) {
      var dist = Math.hypot(d.x - px, d.y - py);
      if (dist <= d.r && dist < bestD) { best = d; bestD = dist; }
    });
    return best;
  }

  function local(event) {
    var rect = canvas.getBoundingClientRect();
    return {x: event.clientX - rect.left, y: event.clientY - rect.top};
  }

  var drag = null;
  canvas.addEventListener("pointerdown", function (event) {
    var p = local(event);
    drag = {x: p.x, y: p.y, cx: view.cx, cy: view.cy, moved: false};
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", function (event) {
    var p = local(event);
    if (drag) {
      if (Math.hypot(p.x - drag.x, p.y - drag.y) > 4) drag.moved = true;
      if (drag.moved) {
        canvas.classList.add("dragging");
        view.cx = drag.cx - (p.x - drag.x) / view.scale;
        view.cy = drag.cy + (p.y - drag.y) / view.scale;
        changed();
      }
      return;
    }
    var hit = at(p.x, p.y);
    if (hit && hit.point.title !== undefined) {
      tip.hidden = false;
      tip.textContent = hit.point.title || hit.point.image_file;
      tip.style.left = Math.min(p.x + 14, canvas.clientWidth - 200) + "px";
      tip.style.top = (p.y + 14) + "px";
      canvas.style.cursor = "pointer";
    } else {
      tip.hidden = true;
      canvas.style.cursor = "";
    }
  });
  canvas.addEventListener("pointerup", function (event) {
    var p = local(event);
    var wasDrag = drag && drag.moved;
    drag = null;
    canvas.classList.remove("dragging");
    if (wasDrag) return;
    var hit = at(p.x, p.y);
    if (hit) window.location.href = hit.point.painting_url;
  });
  canvas.addEventListener("pointerleave", function () { tip.hidden = true; });
  canvas.addEventListener("wheel", function (event) {
    event.preventDefault();
    var p = local(event);
    zoom(Math.exp(-event.deltaY * 0.0015), p.x, p.y);
  }, {passive: false});
  canvas.addEventListener("dblclick", function (event) {
    var p = local(event);
    zoom(2, p.x, p.y);
  });
  canvas.addEventListener("keydown", function (event) {
    var step = 60 / view.scale;
    var keys = {"+": function () { zoom(1.5); }, "=": function () { zoom(1.5); },
                "-": function () { zoom(1 / 1.5); }, "0": function () { fit(); changed(); },
                ArrowLeft: function () { view.cx -= step; changed(); },
                ArrowRight: function () { view.cx += step; changed(); },
                ArrowUp: function () { view.cy += step; changed(); },
                ArrowDown: function () { view.cy -= step; changed(); }};
    if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
  });
  document.getElementById("zoom-in").addEventListener("click", function () { zoom(2); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoom(0.5); });
  document.getElementById("zoom-reset").addEventListener("click", function () { fit(); changed(); });
  document.getElementById("search-here").addEventListener("click", function () {
    var s = size(), best = null, bestD = Infinity;
    points.forEach(function (p) {
      var q = toScreen(p.x, p.y, s);
      var d = Math.hypot(q.x - s.w / 2, q.y - s.h / 2);
      if (d < bestD) { best = p; bestD = d; }
    });
    if (!best) return;
    window.location.href = searchUrl + (searchUrl.indexOf("?") < 0 ? "?" : "&") +
      "similar=" + encodeURIComponent(best.image_file);
  });
  window.addEventListener("resize", changed);

  fit();
  draw();
  load();
})();
