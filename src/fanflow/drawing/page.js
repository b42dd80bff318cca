// fanflow drawing: pan, zoom, tooltips and path highlighting for one diagram.
// No dependencies; everything it touches lives under `root`.
function fanflowDiagram(root) {
  "use strict";
  var svg = root.querySelector("svg.canvas");
  var tip = root.querySelector(".tip");
  var data = JSON.parse(root.querySelector("script.ff-data").textContent);
  var home = svg.viewBox.baseVal;
  var view = { x: home.x, y: home.y, w: home.width, h: home.height };
  var start = { x: view.x, y: view.y, w: view.w, h: view.h };
  var nodes = {}, outs = {}, ins = {};

  root.querySelectorAll("g.node").forEach(function (g) {
    var id = g.getAttribute("data-id");
    nodes[id] = g; outs[id] = []; ins[id] = [];
  });
  root.querySelectorAll("g.edge").forEach(function (g) {
    var s = g.getAttribute("data-s"), t = g.getAttribute("data-t");
    outs[s].push({ node: t, edge: g });
    ins[t].push({ node: s, edge: g });
  });

  function apply() {
    svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
  }

  function pointAt(clientX, clientY) {
    var p = svg.createSVGPoint();
    p.x = clientX; p.y = clientY;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  }

  function zoom(factor, clientX, clientY) {
    var box = svg.getBoundingClientRect();
    var cx = clientX === undefined ? box.left + box.width / 2 : clientX;
    var cy = clientY === undefined ? box.top + box.height / 2 : clientY;
    var p = pointAt(cx, cy);
    var w = Math.min(Math.max(view.w * factor, start.w / 40), start.w * 8);
    var k = w / view.w;
    view.x = p.x - (p.x - view.x) * k;
    view.y = p.y - (p.y - view.y) * k;
    view.w *= k; view.h *= k;
    apply();
  }

  function fit() {
    view = { x: start.x, y: start.y, w: start.w, h: start.h };
    apply();
  }

  // A big drawing fitted to the window is too small to read: show its top at a
  // readable scale (its full width if that is readable), centred on the start.
  function initialView() {
    var box = svg.getBoundingClientRect();
    if (!box.width || !box.height) return;
    if (Math.min(box.width / start.w, box.height / start.h) >= 0.6) return;
    var scale = Math.min(Math.max(box.width / start.w, 0.6), 1);
    var w = box.width / scale, h = box.height / scale;
    var cx = start.x + start.w / 2;
    var first = root.querySelector("g.node.start");
    if (w < start.w && first) cx = first.transform.baseVal.getItem(0).matrix.e;
    view = { x: cx - w / 2, y: start.y, w: w, h: h };
    apply();
  }

  // Pan by dragging; a press that barely moves stays a click.
  var drag = null;
  svg.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0) return;
    drag = { p: pointAt(ev.clientX, ev.clientY), x: ev.clientX, y: ev.clientY, moved: false };
  });
  svg.addEventListener("pointermove", function (ev) {
    if (!drag) return;
    if (!drag.moved && Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) < 4) return;
    if (!drag.moved) { drag.moved = true; svg.setPointerCapture(ev.pointerId); }
    svg.classList.add("panning");
    hideTip();
    var p = pointAt(ev.clientX, ev.clientY);
    view.x -= p.x - drag.p.x; view.y -= p.y - drag.p.y;
    apply();
  });
  function endDrag(ev) {
    if (drag && drag.moved) {
      svg.classList.remove("panning");
      if (svg.hasPointerCapture(ev.pointerId)) svg.releasePointerCapture(ev.pointerId);
      draggedAt = Date.now();
    }
    drag = null;
  }
  // The click that ends a drag is not a click on a node or the background.
  var draggedAt = 0;
  svg.addEventListener("click", function (ev) {
    if (Date.now() - draggedAt < 300) ev.stopImmediatePropagation();
  }, true);
  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", endDrag);
  svg.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    zoom(Math.exp(ev.deltaY * 0.0015), ev.clientX, ev.clientY);
  }, { passive: false });
  svg.addEventListener("dblclick", function (ev) { ev.preventDefault(); fit(); });

  root.querySelectorAll(".tools button").forEach(function (b) {
    b.addEventListener("click", function () {
      var what = b.getAttribute("data-zoom");
      if (what === "in") zoom(1 / 1.25);
      else if (what === "out") zoom(1.25);
      else fit();
    });
  });
  root.addEventListener("keydown", function (ev) {
    if (ev.key === "+" || ev.key === "=") zoom(1 / 1.25);
    else if (ev.key === "-") zoom(1.25);
    else if (ev.key === "0") fit();
    else if (ev.key === "Escape") clearFocus();
  });

  // Tooltips: the node's title and a table of its fields or settings.
  function showTip(id, clientX, clientY) {
    var info = data.nodes[id];
    if (!info) return;
    tip.textContent = "";
    var title = document.createElement("strong");
    title.textContent = info.title;
    tip.appendChild(title);
    var table = document.createElement("table");
    info.rows.forEach(function (row) {
      var tr = table.insertRow();
      tr.insertCell().textContent = row[0];
      tr.insertCell().textContent = row[1];
    });
    tip.appendChild(table);
    tip.hidden = false;
    var box = root.getBoundingClientRect();
    var x = clientX - box.left + 14, y = clientY - box.top + 14;
    if (x + tip.offsetWidth > box.width) x = Math.max(4, clientX - box.left - tip.offsetWidth - 14);
    if (y + tip.offsetHeight > box.height) y = Math.max(4, clientY - box.top - tip.offsetHeight - 14);
    tip.style.left = x + "px"; tip.style.top = y + "px";
  }
  function hideTip() { tip.hidden = true; }

  // Highlight every path through a node: all it comes from and all it leads to.
  function reach(id, links) {
    var seen = {}, todo = [id], edges = [];
    seen[id] = true;
    while (todo.length) {
      links[todo.pop()].forEach(function (l) {
        edges.push(l.edge);
        if (!seen[l.node]) { seen[l.node] = true; todo.push(l.node); }
      });
    }
    return { nodes: seen, edges: edges };
  }
  function clearFocus() {
    svg.classList.remove("focus");
    root.querySelectorAll(".hl, .selected").forEach(function (el) {
      el.classList.remove("hl", "selected");
    });
  }
  function focusOn(id) {
    clearFocus();
    [reach(id, outs), reach(id, ins)].forEach(function (r) {
      Object.keys(r.nodes).forEach(function (n) { nodes[n].classList.add("hl"); });
      r.edges.forEach(function (e) { e.classList.add("hl"); });
    });
    nodes[id].classList.add("selected");
    svg.classList.add("focus");
  }

  Object.keys(nodes).forEach(function (id) {
    var g = nodes[id];
    g.addEventListener("pointerenter", function (ev) { if (!drag) showTip(id, ev.clientX, ev.clientY); });
    g.addEventListener("pointermove", function (ev) { if (!drag) showTip(id, ev.clientX, ev.clientY); });
    g.addEventListener("pointerleave", hideTip);
    g.addEventListener("focus", function () {
      var r = g.getBoundingClientRect();
      showTip(id, r.left + r.width / 2, r.bottom);
    });
    g.addEventListener("blur", hideTip);
    g.addEventListener("click", function (ev) {
      ev.stopPropagation();
      if (g.classList.contains("selected")) clearFocus(); else focusOn(id);
    });
    g.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); focusOn(id); }
    });
  });
  svg.addEventListener("click", clearFocus);
  initialView();
}
