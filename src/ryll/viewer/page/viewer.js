// ryll's viewer page: draws what ryll sends on its WebSocket, sends the person's input back.
// The protocol is in ryll/viewer/wire.py (messages) and page_link.py (the page's kinds).
"use strict";

const RECT = 1, RAW = 0, PNG = 1, JPEG = 2, HEADER = 11;
const $ = (id) => document.getElementById(id);
const screens = $("screens");

const view = {
  ws: null, ended: false, retry: 500,
  displays: new Map(),        // display index -> {box, canvas, ctx, overlay, octx, info}
  mouse: "server",            // SPICE mouse mode
  cursor: {png: null, url: null, hotX: 0, hotY: 0, img: null, x: 0, y: 0, visible: true,
           display: 0},
  fit: false, focused: false, frames: 0, framesTotal: 0, drawnThisFrame: false,
  last: null,                 // the previous status, for the rates
  selecting: false, wheel: 0,
};

// --- the socket ---------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  view.ws = ws;
  ws.onopen = () => {
    view.retry = 500;
    hideMessage();
    if (document.hasFocus()) takeFocus();
    sendSize();
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") onText(JSON.parse(ev.data));
    else onRect(ev.data);
  };
  ws.onclose = () => {
    view.ws = null;
    if (view.ended) return;
    setState("disconnected", "reconnecting to ryll");
    setTimeout(connect, view.retry);
    view.retry = Math.min(view.retry * 2, 5000);
  };
}

function send(obj) {
  if (view.ws && view.ws.readyState === WebSocket.OPEN) view.ws.send(JSON.stringify(obj));
}

// --- pixels -------------------------------------------------------------------------------

// Updates of one display are drawn in the order they came, also when one of them (a PNG)
// decodes asynchronously.
const chains = new Map();

function onRect(buf) {
  const dv = new DataView(buf);
  if (buf.byteLength < HEADER || dv.getUint8(0) !== RECT) return;
  const display = dv.getUint8(1), x = dv.getUint16(2, true), y = dv.getUint16(4, true);
  const w = dv.getUint16(6, true), h = dv.getUint16(8, true), enc = dv.getUint8(10);
  const d = view.displays.get(display);
  if (!d || w === 0 || h === 0) return;
  const draw = async () => {
    if (enc === RAW) {
      if (buf.byteLength - HEADER !== w * h * 4) return;
      d.ctx.putImageData(new ImageData(new Uint8ClampedArray(buf, HEADER, w * h * 4), w, h),
                         x, y);
    } else if (enc === PNG || enc === JPEG) {
      const type = enc === PNG ? "image/png" : "image/jpeg";
      const bitmap = await createImageBitmap(new Blob([new Uint8Array(buf, HEADER)], {type}));
      d.ctx.drawImage(bitmap, x, y);
      bitmap.close();
    }
    view.drawnThisFrame = true;
    d.box.dataset.updates = String(Number(d.box.dataset.updates || 0) + 1);
  };
  const prev = chains.get(display);
  if (prev === undefined && enc === RAW) { draw(); return; }  // the common case: no promise
  const next = (prev || Promise.resolve()).then(draw).catch(() => {});
  chains.set(display, next);
  next.then(() => { if (chains.get(display) === next) chains.delete(display); });
}

function countFrames() {
  if (view.drawnThisFrame) { view.frames++; view.framesTotal++; view.drawnThisFrame = false; }
  requestAnimationFrame(countFrames);
}

function layout(displays) {
  const keep = new Set(displays.map((d) => d.display));
  for (const [i, d] of view.displays) {
    if (!keep.has(i)) { d.box.remove(); view.displays.delete(i); }
  }
  for (const info of displays) {
    let d = view.displays.get(info.display);
    if (!d) {
      const box = document.createElement("div");
      box.className = "display";
      const canvas = document.createElement("canvas");
      canvas.className = "screen";
      canvas.dataset.display = String(info.display);
      const overlay = document.createElement("canvas");
      overlay.className = "overlay";
      box.append(canvas, overlay);
      screens.append(box);
      d = {box, canvas, overlay, ctx: canvas.getContext("2d", {alpha: false}),
           octx: overlay.getContext("2d"), info};
      attachPointer(d);
      view.displays.set(info.display, d);
    }
    d.info = info;
    if (d.canvas.width !== info.width || d.canvas.height !== info.height) {
      d.canvas.width = d.overlay.width = info.width;   // a mode change: a new, blank canvas
      d.canvas.height = d.overlay.height = info.height;
    }
  }
  applyFit();
  drawCursor();
}

function applyFit() {
  screens.classList.toggle("fit", view.fit);
  $("fit").classList.toggle("on", view.fit);
  const n = Math.max(1, view.displays.size);
  for (const d of view.displays.values()) {
    let scale = 1;
    if (view.fit) {
      const availW = screens.clientWidth / n - 8, availH = screens.clientHeight;
      scale = Math.min(availW / d.info.width, availH / d.info.height);
    } else {
      // 1:1 when it fits; smaller (never larger) when it does not, so nothing is cut off.
      scale = Math.min(1, (screens.clientWidth - 8) / d.info.width);
    }
    scale = Math.max(scale, 0.05);
    const w = `${Math.floor(d.info.width * scale)}px`, h = `${Math.floor(d.info.height * scale)}px`;
    for (const c of [d.canvas, d.overlay]) { c.style.width = w; c.style.height = h; }
  }
}

// --- the cursor ---------------------------------------------------------------------------

function setCursorShape(m) {
  view.cursor.png = m.png;
  view.cursor.hotX = m.hot_x; view.cursor.hotY = m.hot_y;
  view.cursor.url = `url(data:image/png;base64,${m.png}) ${m.hot_x} ${m.hot_y}, auto`;
  const img = new Image();
  img.onload = () => { view.cursor.img = img; drawCursor(); };
  img.src = `data:image/png;base64,${m.png}`;
  applyCursor();
}

function applyCursor() {
  for (const d of view.displays.values()) {
    if (view.mouse === "client") {
      d.canvas.style.cursor = !view.cursor.visible ? "none" : (view.cursor.url || "default");
    } else {
      d.canvas.style.cursor = "none";  // the guest's pointer is drawn on the overlay
    }
  }
  drawCursor();
}

function drawCursor() {
  for (const [i, d] of view.displays) {
    d.octx.clearRect(0, 0, d.overlay.width, d.overlay.height);
    const c = view.cursor;
    if (view.mouse === "server" && c.visible && c.img && i === c.display) {
      d.octx.drawImage(c.img, c.x - c.hotX, c.y - c.hotY);
    }
  }
}

// --- input --------------------------------------------------------------------------------

function takeFocus() {
  view.focused = true;
  send({t: "focus"});
  if (navigator.clipboard && navigator.clipboard.readText) {
    navigator.clipboard.readText().then((text) => {
      if (text && text !== view.lastClipboard) {
        view.lastClipboard = text;
        send({t: "clipboard", text});
      }
    }).catch(() => {});
  }
}

function releaseAll() {
  send({t: "release"});
}

function guestPos(d, ev) {
  const r = d.canvas.getBoundingClientRect();
  const x = Math.round((ev.clientX - r.left) * d.canvas.width / r.width);
  const y = Math.round((ev.clientY - r.top) * d.canvas.height / r.height);
  return [Math.max(0, Math.min(d.canvas.width - 1, x)),
          Math.max(0, Math.min(d.canvas.height - 1, y))];
}

let pendingMove = null;
function flushMove() {
  if (pendingMove) { send(pendingMove); pendingMove = null; }
}

function attachPointer(d) {
  const c = d.canvas;
  c.addEventListener("contextmenu", (ev) => ev.preventDefault());
  c.addEventListener("mousemove", (ev) => {
    if (view.selecting) return;
    if (view.mouse === "client") {
      const [x, y] = guestPos(d, ev);
      if (!pendingMove) requestAnimationFrame(flushMove);
      pendingMove = {t: "move", display: d.info.display, x, y};
    } else if (document.pointerLockElement === c) {
      send({t: "rel", dx: ev.movementX, dy: ev.movementY});
    }
  });
  c.addEventListener("mousedown", (ev) => {
    ev.preventDefault();
    screens.focus();
    if (!view.focused) takeFocus();
    if (view.selecting) { startSelection(d, ev); return; }
    if (view.mouse === "server" && document.pointerLockElement !== c) {
      c.requestPointerLock();
      return;
    }
    flushMove();
    const [x, y] = guestPos(d, ev);
    send({t: "button", button: ev.button, down: true, display: d.info.display, x, y});
  });
  c.addEventListener("mouseup", (ev) => {
    if (view.selecting) return;
    ev.preventDefault();
    flushMove();
    const [x, y] = guestPos(d, ev);
    send({t: "button", button: ev.button, down: false, display: d.info.display, x, y});
  });
  c.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const unit = ev.deltaMode === 1 ? 33 : ev.deltaMode === 2 ? 400 : 1;
    view.wheel += ev.deltaY * unit;
    const notches = Math.trunc(view.wheel / 100);
    if (notches !== 0) {
      view.wheel -= notches * 100;
      send({t: "wheel", notches});
    }
  }, {passive: false});
}

function keyEvent(ev, down) {
  if (ev.target && (ev.target.tagName === "INPUT" || ev.target.tagName === "TEXTAREA")) return;
  if (!view.focused) takeFocus();
  // Keep the browser's shortcuts for the guest while the page has focus.
  ev.preventDefault();
  ev.stopPropagation();
  if (ev.code) send({t: "key", code: ev.code, down});
}

document.addEventListener("keydown", (ev) => keyEvent(ev, true), true);
document.addEventListener("keyup", (ev) => keyEvent(ev, false), true);
window.addEventListener("blur", () => { releaseAll(); view.focused = false; });
window.addEventListener("focus", () => takeFocus());
document.addEventListener("visibilitychange", () => { if (document.hidden) releaseAll(); });

// --- the page's size -> the guest's resolution --------------------------------------------

function sendSize() {
  send({t: "size", width: Math.floor(screens.clientWidth), height: Math.floor(screens.clientHeight)});
}
new ResizeObserver(() => { applyFit(); sendSize(); }).observe(screens);

// --- the bar ------------------------------------------------------------------------------

function setState(cls, text) {
  const el = $("state");
  el.className = `state ${cls}`;
  el.textContent = text;
}

function human(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function setMouseMode(mode) {
  if (mode === view.mouse) return;
  view.mouse = mode;
  if (mode === "client" && document.pointerLockElement) document.exitPointerLock();
  applyCursor();
}

function onStatus(m) {
  setMouseMode(m.mouse);
  setState(m.state, m.state === "connected" ? `connected (${m.mouse} mouse)` : m.state);
  const now = performance.now();
  if (view.last) {
    const dt = (now - view.last.at) / 1000;
    if (dt > 0.2) {
      $("bandwidth").textContent = `in ${human((m.bytes_in - view.last.bytes_in) / dt)}/s, ` +
        `out ${human((m.bytes_out - view.last.bytes_out) / dt)}/s`;
      $("fps").textContent = `${Math.round(view.frames / dt)} fps`;
      view.frames = 0;
    }
  }
  view.last = {at: now, bytes_in: m.bytes_in, bytes_out: m.bytes_out};
  $("latency").textContent = m.latency_ms == null ? "latency -" :
    `latency ${m.latency_ms.toFixed(1)} ms`;
  const s = $("streaming");
  s.className = m.streams > 0 ? "on" : "off";
  s.textContent = m.streams > 0 ? `streaming (${m.streams})` : "no stream";
  const keys = Object.keys(m.gaps || {});
  $("gap-count").textContent = `${keys.length} gap${keys.length === 1 ? "" : "s"}`;
  $("gaps").classList.toggle("some", keys.length > 0);
  const list = $("gap-list");
  list.replaceChildren(...keys.map((k) => {
    const li = document.createElement("li");
    li.textContent = `${k} x${m.gaps[k]}`;
    return li;
  }));
}

function showMessage(text, info) {
  const el = $("message");
  el.textContent = text;
  el.className = info ? "info" : "";
  el.hidden = false;
  if (info) setTimeout(() => { if (el.textContent === text) el.hidden = true; }, 6000);
}
function hideMessage() { $("message").hidden = true; }

function onText(m) {
  switch (m.t) {
    case "hello": break;
    case "layout": layout(m.displays); break;
    case "status": onStatus(m); break;
    case "mouse": setMouseMode(m.mode); break;
    case "unfocused": view.focused = false; break;  // another page drives the guest now
    case "cursor_shape": setCursorShape(m); break;
    case "cursor":
      Object.assign(view.cursor, {x: m.x, y: m.y, visible: m.visible, display: m.display});
      applyCursor();
      break;
    case "clipboard":
      view.lastClipboard = m.text;
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(m.text).catch(() => {});
      }
      break;
    case "pasted": showMessage(`typed ${m.characters} characters`, true); break;
    case "report":
      showMessage(m.error ? `bug report failed: ${m.error}` : `bug report written: ${m.path}`,
                  !m.error);
      break;
    case "error": showMessage(m.message, false); break;
    case "ended":
      view.ended = true;
      setState("ended", `session ended (${m.reason})`);
      showMessage(`The session ended: ${m.message}`, false);
      break;
  }
}

$("fit").addEventListener("click", () => { view.fit = !view.fit; applyFit(); });
$("cad").addEventListener("click", () => { takeFocus(); send({t: "cad"}); });
$("paste").addEventListener("click", () => {
  const text = prompt("Text to type into the guest:");
  if (text) { takeFocus(); send({t: "paste", text}); }
});
$("screenshot").addEventListener("click", () => {
  const a = document.createElement("a");
  a.href = "/screenshot.png?display=0";
  a.download = "ryll-display-0.png";
  a.click();
});
$("fullscreen").addEventListener("click", async () => {
  if (document.fullscreenElement) { await document.exitFullscreen(); return; }
  await document.documentElement.requestFullscreen();
  // In full screen the browser lets a page keep even Escape and ctrl-w from itself.
  if (navigator.keyboard && navigator.keyboard.lock) navigator.keyboard.lock().catch(() => {});
});

// The bug report: drag a region on a display, or click for the whole session.
let selection = null;
$("report").addEventListener("click", () => {
  view.selecting = !view.selecting;
  $("report").classList.toggle("on", view.selecting);
  if (view.selecting) showMessage("Drag a region on a display for the report, or click it for all of it.", true);
});
function startSelection(d, ev) {
  const [x0, y0] = guestPos(d, ev);
  const mark = document.createElement("div");
  mark.className = "selection";
  d.box.append(mark);
  selection = {d, x0, y0, x1: x0, y1: y0, mark};
  const move = (e) => {
    [selection.x1, selection.y1] = guestPos(d, e);
    const r = d.canvas.getBoundingClientRect(), s = r.width / d.canvas.width;
    const left = Math.min(selection.x0, selection.x1), top = Math.min(selection.y0, selection.y1);
    Object.assign(mark.style, {left: `${left * s}px`, top: `${top * s}px`,
      width: `${Math.abs(selection.x1 - selection.x0) * s}px`,
      height: `${Math.abs(selection.y1 - selection.y0) * s}px`});
  };
  const up = () => {
    window.removeEventListener("mousemove", move);
    window.removeEventListener("mouseup", up);
    mark.remove();
    view.selecting = false;
    $("report").classList.remove("on");
    const w = Math.abs(selection.x1 - selection.x0), h = Math.abs(selection.y1 - selection.y0);
    const region = w > 2 && h > 2 ?
      [Math.min(selection.x0, selection.x1), Math.min(selection.y0, selection.y1), w, h] : null;
    const description = prompt("What went wrong?") || "";
    send({t: "report", description, region, display: d.info.display});
    selection = null;
  };
  window.addEventListener("mousemove", move);
  window.addEventListener("mouseup", up);
}

countFrames();
connect();
