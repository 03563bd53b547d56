// The Learn page: settings -> POST /api/train, then the run's Server-Sent Events drawn live:
// loss and accuracy per batch, validation per epoch, mean |δ| per layer, the first filters.
"use strict";

const learnState = { run: null, loss: [], acc: [], valLoss: [], valAcc: [], delta: [],
                     layers: [], steps: 1, filters: null, source: null, done: false };
window.learnState = learnState;

(() => {
  const $ = (id) => document.getElementById(id);
  const status = (text) => { $("learn-status").textContent = text; };
  let options = null;

  function fill(select, values, chosen) {
    select.textContent = "";
    for (const v of values) select.add(new Option(v, v, false, v === chosen));
  }

  fetch("/api/train/options").then((r) => r.json()).then((o) => {
    options = o;
    const d = o.defaults;
    fill($("data"), Object.keys(o.datasets), d.data);
    fill($("optimizer"), o.optimizers, d.optimizer);
    fill($("policy"), o.policies, d.lr_policy);
    $("lr").value = d.lr; $("epochs").value = d.epochs; $("batch-size").value = d.batch_size;
    models();
  });
  function models() {
    const list = options.datasets[$("data").value].models;
    fill($("model"), list, list.includes($("model").value) ? $("model").value : list[0]);
  }
  $("data").addEventListener("change", models);

  $("train-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { data: $("data").value, model: $("model").value, optimizer: $("optimizer").value,
                   lr: Number($("lr").value), lr_policy: $("policy").value,
                   epochs: Number($("epochs").value), batch_size: Number($("batch-size").value) };
    const r = await fetch("/api/train", { method: "POST", body: JSON.stringify(body),
                                          headers: { "Content-Type": "application/json" } });
    const answer = await r.json();
    if (!r.ok) { status(`refused (${r.status}): ${answer.error}`); return; }
    listen();
  });
  $("stop").addEventListener("click", async () => {
    const r = await fetch("/api/train/stop", { method: "POST" });
    const answer = await r.json();
    status(r.ok ? "stopping after this epoch..." : answer.error);
  });

  function listen() {
    Object.assign(learnState, { loss: [], acc: [], valLoss: [], valAcc: [], delta: [],
                                filters: null, done: false });
    if (learnState.source) learnState.source.close();
    const source = new EventSource("/api/train/events");
    learnState.source = source;
    $("train").disabled = true; $("stop").disabled = false;
    source.onmessage = (m) => handle(JSON.parse(m.data));
    source.onerror = () => { if (learnState.done) source.close(); };
  }

  let drawPending = false;
  function redraw() { // at most once a frame, however fast the events come
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => { drawPending = false; draw(); });
  }

  function handle(ev) {
    if (ev.type === "start") {
      Object.assign(learnState, { run: ev.run_dir, layers: ev.layers, steps: ev.steps_per_epoch });
      status(`training ${ev.model} on ${ev.data}: ${ev.epochs} epochs of ${ev.steps_per_epoch} batches -> ${ev.run_dir}`);
    } else if (ev.type === "batch") {
      learnState.loss.push([ev.step, ev.loss]);
      learnState.acc.push([ev.step, ev.accuracy]);
      learnState.delta.push([ev.step, ev.delta]);
      $("loss-chart").dataset.points = learnState.loss.length;
    } else if (ev.type === "epoch") {
      const x = (ev.epoch + 1) * learnState.steps;
      if (ev.val_loss !== undefined) {
        learnState.valLoss.push([x, ev.val_loss]); learnState.valAcc.push([x, ev.val_accuracy]);
      }
      const val = ev.val_accuracy !== undefined ? `, validation accuracy ${ev.val_accuracy.toFixed(4)}` : "";
      status(`epoch ${ev.epoch + 1}: loss ${ev.loss.toFixed(4)}, accuracy ${ev.accuracy.toFixed(4)}${val}`);
    } else if (ev.type === "filters") {
      learnState.filters = ev.data;
    } else if (ev.type === "done" || ev.type === "error") {
      learnState.done = true;
      learnState.source.close();
      $("train").disabled = false; $("stop").disabled = true;
      status(ev.type === "error" ? `failed: ${ev.message}` :
        `${ev.stopped ? "stopped" : "done"} after ${ev.epochs} epoch(s): test accuracy ` +
        `${ev.test_accuracy.toFixed(4)}. Run directory ${ev.run_dir} ` +
        `(deltanet serve ${ev.run_dir}/model.safetensors serves it)`);
      $("learn-status").dataset.done = ev.type;
    }
    redraw();
  }

  function draw() {
    const s = learnState;
    Charts.line($("loss-chart"), [{ name: "batch loss", points: s.loss },
                                  { name: "validation", points: s.valLoss, dots: true, color: "#d62728" }]);
    Charts.line($("acc-chart"), [{ name: "batch accuracy", points: s.acc },
                                 { name: "validation", points: s.valAcc, dots: true, color: "#d62728" }]);
    Charts.line($("delta-chart"), s.layers.map((name, i) => ({
      name, points: s.delta.map(([x, d]) => [x, d[i]]) })), { logY: true });
    if (s.filters) Charts.grid($("filters"), s.filters, { width: 460, cell: Math.max(2, Math.floor(40 / s.filters[0].length)) });
  }

  // A run already going (the page was reloaded): show it from its start.
  fetch("/api/train").then((r) => r.json()).then((st) => { if (st.running) listen(); });
})();
