// The interactive graph of llmtaskgraph (an anywidget front end; Python side: graph_view.py).
//
// Python sends the laid-out SVG once per layout (`svg`, `paths`: DOT node name -> task path) and,
// as a run goes on, small dicts: `statuses` (path -> shown status), `colours` (status -> fill),
// `marks` (path -> "failed" | "edited"), `info` (path -> hover text), `live_text` (path -> the
// reply so far). Nodes are recoloured in place; the SVG is replaced only when the layout changes.
// A click on a node sets `selected`; the view pans (drag, scrollbars) and zooms (buttons,
// ctrl+wheel), and fits the cell on open without shrinking labels below a readable size.

const MIN_FIT = 0.7; // 10 pt labels stay above 9 px when fitting the cell
const MIN_ZOOM = 0.2;
const MAX_ZOOM = 4;

function nodeShape(g) {
  return g.querySelector("path, polygon, ellipse");
}

function render({ model, el }) {
  el.classList.add("ltg-gv");
  const bar = document.createElement("div");
  bar.className = "ltg-gv-bar";
  const button = (label, title, cls) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.title = title;
    b.className = "ltg-gv-button " + cls;
    bar.appendChild(b);
    return b;
  };
  const zoomOut = button("−", "zoom out", "ltg-gv-zoom-out");
  const zoomIn = button("+", "zoom in", "ltg-gv-zoom-in");
  const fit = button("fit", "fit the drawing to the cell", "ltg-gv-fit");
  const scaleText = document.createElement("span");
  scaleText.className = "ltg-gv-scale";
  bar.appendChild(scaleText);
  const canvas = document.createElement("div");
  canvas.className = "ltg-gv-canvas";
  canvas.tabIndex = 0;
  const tip = document.createElement("div");
  tip.className = "ltg-gv-tip";
  tip.hidden = true;
  const live = document.createElement("div");
  live.className = "ltg-gv-live";
  const legend = document.createElement("div");
  legend.className = "ltg-gv-legend";
  const notes = document.createElement("div");
  notes.className = "ltg-gv-notes";
  el.append(bar, canvas, tip, live, legend, notes);

  let svg = null;
  let natural = { w: 1, h: 1 };
  let scale = 1;
  let fitted = false;
  let nodes = new Map(); // path -> g.node

  function setScale(s) {
    scale = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, s));
    if (svg) {
      svg.setAttribute("width", String(natural.w * scale));
      svg.setAttribute("height", String(natural.h * scale));
    }
    scaleText.textContent = Math.round(scale * 100) + "%";
  }

  function fitToCell() {
    const width = canvas.clientWidth || el.clientWidth;
    if (!svg || !width) {
      return false;
    }
    setScale(Math.max(MIN_FIT, Math.min(1, (width - 4) / natural.w)));
    fitted = true;
    return true;
  }

  function drawSvg() {
    canvas.innerHTML = model.get("svg"); // our own SVG: every text in it was escaped in Python
    svg = canvas.querySelector("svg");
    nodes = new Map();
    if (!svg) {
      return;
    }
    const box = svg.viewBox && svg.viewBox.baseVal;
    const w = parseFloat(svg.getAttribute("width")) * 4 / 3; // graphviz writes pt
    const h = parseFloat(svg.getAttribute("height")) * 4 / 3;
    natural = { w: w || (box && box.width) || 1, h: h || (box && box.height) || 1 };
    svg.removeAttribute("style");
    const paths = model.get("paths");
    svg.querySelectorAll("g.node").forEach((g) => {
      const title = g.querySelector("title");
      const path = title && paths[title.textContent];
      if (path === undefined) {
        return;
      }
      g.dataset.path = path;
      g.classList.add("ltg-gv-node");
      nodes.set(path, g);
      // the browser's own tooltip (graphviz's xlink:title) would cover ours
      g.querySelectorAll("a").forEach((a) => a.removeAttribute("xlink:title"));
      g.querySelectorAll("a").forEach((a) => a.removeAttributeNS("http://www.w3.org/1999/xlink", "title"));
    });
    if (!fitted || !fitToCell()) {
      setScale(scale);
    }
    paint();
  }

  function paint() {
    const statuses = model.get("statuses");
    const colours = model.get("colours");
    const marks = model.get("marks");
    const selected = model.get("selected");
    nodes.forEach((g, path) => {
      const status = statuses[path];
      const shape = nodeShape(g);
      if (shape && status !== undefined && colours[status]) {
        shape.setAttribute("fill", colours[status]);
      }
      g.dataset.status = status || "";
      g.classList.toggle("ltg-gv-running", status === "running");
      g.classList.toggle("ltg-gv-failed", marks[path] === "failed");
      g.classList.toggle("ltg-gv-edited", marks[path] === "edited");
      g.classList.toggle("ltg-gv-selected", path === selected);
    });
    const texts = model.get("live_text");
    live.replaceChildren();
    Object.keys(texts).forEach((path) => {
      const box = document.createElement("div");
      box.className = "ltg-gv-stream";
      const head = document.createElement("div");
      head.className = "ltg-gv-stream-head";
      head.textContent = "reply arriving: " + path;
      const body = document.createElement("pre");
      body.textContent = texts[path];
      box.append(head, body);
      live.appendChild(box);
    });
    legend.innerHTML = model.get("legend"); // written by Python from fixed words
    notes.replaceChildren(...model.get("notes").map((n) => {
      const d = document.createElement("div");
      d.textContent = n;
      return d;
    }));
  }

  function nodeAt(target) {
    const g = target && target.closest ? target.closest("g.ltg-gv-node") : null;
    return g && canvas.contains(g) ? g : null;
  }

  // -- pointer: click selects, drag pans, hover explains -----------------------------------------
  let drag = null;
  canvas.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY, left: canvas.scrollLeft, top: canvas.scrollTop, moved: false };
  });
  canvas.addEventListener("pointermove", (e) => {
    if (drag) {
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) {
        drag.moved = true;
      }
      if (drag.moved) {
        canvas.scrollLeft = drag.left - dx;
        canvas.scrollTop = drag.top - dy;
        tip.hidden = true;
        return;
      }
    }
    const g = nodeAt(e.target);
    if (!g) {
      tip.hidden = true;
      return;
    }
    const path = g.dataset.path;
    const info = model.get("info")[path] || path;
    const text = model.get("live_text")[path];
    tip.textContent = info + (text ? "\n\nreply so far:\n" + text.slice(-400) : "");
    tip.hidden = false;
    const r = el.getBoundingClientRect();
    tip.style.left = Math.min(e.clientX - r.left + 12, Math.max(r.width - 320, 0)) + "px";
    tip.style.top = (e.clientY - r.top + 16) + "px";
  });
  canvas.addEventListener("pointerleave", () => {
    tip.hidden = true;
  });
  canvas.addEventListener("pointerup", (e) => {
    const moved = drag && drag.moved;
    drag = null;
    if (moved) {
      return;
    }
    const g = nodeAt(e.target);
    if (g) {
      model.set("selected", g.dataset.path);
      model.save_changes();
    }
  });
  canvas.addEventListener("wheel", (e) => {
    if (e.ctrlKey || e.metaKey) {
      e.preventDefault();
      setScale(scale * (e.deltaY < 0 ? 1.1 : 1 / 1.1));
    }
  }, { passive: false });
  zoomIn.addEventListener("click", () => setScale(scale * 1.25));
  zoomOut.addEventListener("click", () => setScale(scale / 1.25));
  fit.addEventListener("click", () => fitToCell());

  // The cell may have no width yet when the view is created: fit once it has one.
  const sizes = new ResizeObserver(() => {
    if (!fitted) {
      fitToCell();
    }
  });
  sizes.observe(canvas);

  const onSvg = () => drawSvg();
  const onPaint = () => paint();
  model.on("change:svg", onSvg);
  ["statuses", "colours", "marks", "selected", "live_text", "legend", "notes"].forEach((name) =>
    model.on("change:" + name, onPaint));
  drawSvg();
  return () => {
    sizes.disconnect();
    model.off("change:svg", onSvg);
    ["statuses", "colours", "marks", "selected", "live_text", "legend", "notes"].forEach((name) =>
      model.off("change:" + name, onPaint));
  };
}

export default { render };
