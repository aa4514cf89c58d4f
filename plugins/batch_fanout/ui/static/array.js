// The array view: one cell per logical index, filters, one child's attempts and log on click.
// Data comes from the plugin's JSON endpoints of the same origin; text is only ever set as text.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("config").textContent);
  const STATES = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"];
  const FILTERS = {
    all: () => true,
    failed: (cell) => cell[1] === "FAILED",
    running: (cell) => ["STARTING", "RUNNING"].includes(cell[1]),
    waiting: (cell) => ["SUBMITTED", "PENDING", "RUNNABLE"].includes(cell[1]),
    retried: (cell) => cell[2] > 1,
  };
  let filter = "all";
  let data = null;
  let selected = config.child || null;
  let timer = null;

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => node.setAttribute(key, value));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const seconds = (value) => (value === null || value === undefined ? "–" : value + " s");
  const when = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z" : "–");

  function describe(cell) {
    const [index, state, runs, exit, reason, duration, jobId] = cell;
    let text = `index ${index}: ${state}, runs ${runs}, exit code ${exit === null ? "–" : exit}, ${seconds(duration)}`;
    if (reason) text += `, ${reason}`;
    return text + ` (${jobId})`;
  }

  function renderFilters() {
    const box = $("filters");
    box.replaceChildren();
    Object.keys(FILTERS).forEach((name) => {
      const button = el("button", { type: "button", "aria-pressed": String(name === filter), "data-filter": name }, name);
      button.addEventListener("click", () => { filter = name; render(); });
      box.appendChild(button);
    });
  }

  function render() {
    if (!data) return;
    const job = data.job;
    $("status").textContent =
      `${job.job_name} · ${job.job_id} · ${job.status}` + (job.status_reason ? ` · ${job.status_reason}` : "") +
      (job.queue ? ` · queue ${job.queue}` : "") + (data.running ? " · refreshing" : "");
    const counts = $("counts");
    counts.replaceChildren();
    STATES.forEach((state) => {
      const span = el("span", { "data-state": state });
      span.appendChild(el("i", { class: state }));
      span.appendChild(document.createTextNode(`${state} ${data.counts[state] || 0}`));
      counts.appendChild(span);
    });
    counts.appendChild(el("span", {}, `of ${data.total} logical indices`));
    $("jobs").textContent = data.jobs.length > 1
      ? "Jobs, oldest first: " + data.jobs.map((j) => `${j.job_id} (${j.size}, ${j.status})`).join(" → ")
      : "";
    renderFilters();
    const grid = $("grid");
    const big = data.cells.length <= 200;
    const keep = FILTERS[filter];
    const fragment = document.createDocumentFragment();
    data.cells.forEach((cell) => {
      if (!keep(cell)) return;
      const button = el("button", {
        type: "button", class: `cell ${cell[1]}${big ? " big" : ""}${cell[6] === selected ? " sel" : ""}`,
        title: describe(cell), "data-index": cell[0], "data-state": cell[1], "data-job": cell[6],
      });
      if (big) button.textContent = `${cell[0]}\n${cell[1].slice(0, 4)}`;
      fragment.appendChild(button);
    });
    grid.replaceChildren(fragment);
  }

  async function load() {
    clearTimeout(timer);
    try {
      const response = await fetch(config.data_url, { credentials: "same-origin" });
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail || response.statusText);
      data = body;
      render();
      if (selected && !$("child").hidden && data.running) openChild(selected);
    } catch (error) {
      $("status").textContent = `Cannot read the job: ${error.message}`;
      $("status").classList.add("bad");
    }
    if (!data || data.running) timer = setTimeout(load, config.refresh_seconds * 1000);
  }

  async function openChild(jobId) {
    selected = jobId;
    render();
    const panel = $("child");
    panel.hidden = false;
    panel.replaceChildren(el("p", {}, `Reading ${jobId}…`));
    const url = `${config.child_url}&child=${encodeURIComponent(jobId)}`;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail || response.statusText);
      const cell = data && data.cells.find((c) => c[6] === jobId || c[7].some((run) => run[0] === jobId));
      panel.replaceChildren(
        el("h2", {}, `Logical index ${cell ? cell[0] : "?"}: ${body.job_id} · ${body.status}`),
        el("p", {}, body.status_reason || ""),
      );
      if (cell && cell[7].length) {
        const earlier = el("p", {}, "Earlier runs of this index: ");
        cell[7].forEach(([id, state, exit]) => {
          const link = el("a", { href: "#", "data-job": id }, `${id} (${state}, exit ${exit === null ? "–" : exit})`);
          link.addEventListener("click", (event) => { event.preventDefault(); openChild(id); });
          earlier.appendChild(link);
          earlier.appendChild(document.createTextNode(" "));
        });
        panel.appendChild(earlier);
      }
      const table = el("table", {});
      table.appendChild(el("tr", {})).append(
        el("th", {}, "attempt"), el("th", {}, "exit code"), el("th", {}, "reason"),
        el("th", {}, "started"), el("th", {}, "stopped"), el("th", {}, "log stream"));
      body.attempts.forEach((attempt, number) => {
        table.appendChild(el("tr", {})).append(
          el("td", {}, number + 1), el("td", {}, attempt.exit_code ?? "–"), el("td", {}, attempt.reason),
          el("td", {}, when(attempt.started_at)), el("td", {}, when(attempt.stopped_at)),
          el("td", {}, attempt.log_stream || "–"));
      });
      panel.appendChild(table);
      panel.appendChild(el("p", { class: "stream" },
        body.log_stream ? `Log: ${body.log_group} / ${body.log_stream}` : "No log stream yet (the child has not started)."));
      if (body.log_error) panel.appendChild(el("p", { class: "bad" }, body.log_error));
      panel.appendChild(el("pre", { class: "log" }, body.log.join("\n")));
    } catch (error) {
      panel.replaceChildren(el("p", { class: "bad" }, `Cannot read ${jobId}: ${error.message}`));
    }
  }

  $("grid").addEventListener("click", (event) => {
    const cell = event.target.closest(".cell");
    if (cell) openChild(cell.dataset.job);
  });
  load().then(() => {
    if (config.child) openChild(config.child);
  });
})();
