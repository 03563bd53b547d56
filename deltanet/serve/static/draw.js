// The Draw page: a canvas (mouse, pen, touch) whose PNG the server turns into the model's
// input; shows the probabilities, every layer's output and the saliency map.
"use strict";

// version: strokes drawn so far; answered: the version of the last answer shown (tests wait
// for them to agree); cleared: the version at the last Clear (older answers are dropped).
const drawState = { version: 0, answered: 0, cleared: 0, inFlight: false, result: null,
                    model: null };
window.drawState = drawState;

(() => {
  const pad = document.getElementById("pad"), overlay = document.getElementById("overlay");
  const ctx = pad.getContext("2d");
  const note = document.getElementById("draw-note");

  function clearPad() {
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height);
    overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
    drawState.cleared = drawState.answered = drawState.version;
    drawState.result = null;
    document.getElementById("prediction").textContent = "\u2013";
    document.getElementById("prediction").dataset.class = "";
  }
  clearPad();
  // A brush 1/9 of the pad: a digit drawn across most of it then has strokes as thick,
  // relative to its height, as the pen strokes of the scanned forms behind the 8x8 digits.
  ctx.lineWidth = Math.round(pad.width / 9);
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.strokeStyle = "#fff";

  let drawing = false, last = null;
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left) * (pad.width / r.width), (e.clientY - r.top) * (pad.height / r.height)];
  };
  function stroke(to) {
    ctx.beginPath(); ctx.moveTo(...last); ctx.lineTo(...to); ctx.stroke();
    last = to;
    drawState.version++;
    send();
  }
  pad.addEventListener("pointerdown", (e) => {
    if (pad.classList.contains("off")) return;
    drawing = true; last = at(e);
    pad.setPointerCapture(e.pointerId);
    stroke(at(e));
  });
  pad.addEventListener("pointermove", (e) => { if (drawing) stroke(at(e)); });
  const end = () => { drawing = false; };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  document.getElementById("clear").addEventListener("click", clearPad);
  document.getElementById("show-saliency").addEventListener("change", () => show(drawState.result));

  // One request at a time; strokes drawn meanwhile go in the next one (the newest drawing).
  function send() {
    if (drawState.inFlight || drawState.version === drawState.cleared) return; // busy, or blank
    drawState.inFlight = true;
    const version = drawState.version;
    pad.toBlob(async (blob) => {
      try {
        const r = await fetch("/api/inspect", { method: "POST", body: blob,
                                                headers: { "Content-Type": "image/png" } });
        const answer = await r.json();
        if (!r.ok) throw new Error(answer.error || r.statusText);
        note.textContent = "";
        if (version > drawState.cleared && version >= drawState.answered) {
          drawState.result = answer;
          drawState.answered = version;
          show(answer);
        }
      } catch (err) {
        note.textContent = "error: " + err.message;
        drawState.answered = version;
      } finally {
        drawState.inFlight = false;
        if (drawState.version > version) send();
      }
    }, "image/png");
  }

  function show(res) {
    const o = overlay.getContext("2d");
    o.clearRect(0, 0, overlay.width, overlay.height);
    if (!res) return;
    const names = (drawState.model && drawState.model.class_names) || res.probabilities.map((_, i) => String(i));
    const p = document.getElementById("prediction");
    p.textContent = `${res.label} (${(100 * res.probabilities[res.class]).toFixed(1)}%)`;
    p.dataset.class = res.label;
    Charts.bars(document.getElementById("probs"), res.probabilities, { labels: names, highlight: res.class });
    const input = res.input, sal = res.saliency;
    Charts.image(document.getElementById("input-view").getContext("2d"), input, 0, 0, 160, 160, 0, 1, false);
    const salView = document.getElementById("saliency-view").getContext("2d");
    salView.clearRect(0, 0, 160, 160);
    if (!sal) note.textContent = `no saliency map: ${res.saliency_error}`;
    const [lo, hi] = sal ? Charts.range(sal) : [0, 0], s = Math.max(-lo, hi) || 1;
    if (sal) Charts.image(salView, sal, 0, 0, 160, 160, -s, s, true);
    if (sal && document.getElementById("show-saliency").checked) {
      const f = res.frame;
      o.imageSmoothingEnabled = false;
      Charts.image(o, sal, f.left, f.top, f.width, f.height, -s, s, true, true);
      o.strokeStyle = "#6cf"; o.setLineDash([4, 4]); o.strokeRect(f.left, f.top, f.width, f.height);
      o.setLineDash([]);
    }
    showLayers(res.layers);
  }

  function showLayers(layers) {
    const box = document.getElementById("layers");
    box.textContent = "";
    for (const layer of layers) {
      const div = document.createElement("div");
      div.className = "layer";
      const title = document.createElement("div");
      title.className = "title";
      const shown = layer.data.length < layer.shape[0] && layer.kind === "maps" ? ` (first ${layer.data.length} maps)` : "";
      title.textContent = `${layer.name}: ${layer.type}  output (${layer.shape.join(", ")})${shown}`;
      const c = document.createElement("canvas");
      div.append(title, c);
      box.append(div);
      if (layer.kind === "maps") {
        Charts.grid(c, layer.data, { width: Math.min(1100, window.innerWidth - 80) });
      } else {
        c.width = Math.min(1100, Math.max(120, layer.data.length * 8)); c.height = 60;
        Charts.bars(c, layer.data);
      }
    }
  }

  fetch("/api/model").then((r) => r.json()).then((m) => {
    drawState.model = m;
    const acc = m.test_accuracy != null ? `, ${(100 * m.test_accuracy).toFixed(1)}% test accuracy` : "";
    document.getElementById("model-info").textContent =
      `${m.model || "model"} on ${m.data || "?"}: input (${m.input_shape.join(", ")}), ` +
      `${m.parameters.toLocaleString()} parameters${acc}`;
    if (!m.recipe) {
      pad.classList.add("off");
      note.textContent = `This model takes examples of shape (${m.input_shape.join(", ")}): ` +
        "drawing needs a one-channel image model. POST JSON arrays to /api/predict instead.";
    }
  });
})();

// Tabs: Draw and Learn are two sections of one page.
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
    for (const page of document.querySelectorAll(".page")) {
      page.classList.toggle("hidden", page.id !== `page-${tab.dataset.page}`);
    }
  });
}
