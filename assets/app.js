// billable's timesheet page: the keyboard, the side panel and scan progress.
// Everything else is htmx attributes in the server's HTML; this file needs no build.
(() => {
  "use strict";

  const rows = () => Array.from(document.querySelectorAll("#sheet tr.entry"));
  let currentId = null;
  let currentIndex = 0;

  function setCurrent(row, focus = true) {
    for (const r of rows()) r.classList.remove("current");
    if (!row) {
      currentId = null;
      return;
    }
    row.classList.add("current");
    currentId = row.dataset.id;
    currentIndex = rows().indexOf(row);
    if (focus) {
      row.focus();
      row.scrollIntoView({ block: "nearest" });
    }
  }

  function current() {
    return rows().find((r) => r.dataset.id === currentId) || null;
  }

  function move(delta) {
    const all = rows();
    if (!all.length) return;
    let i = all.findIndex((r) => r.dataset.id === currentId);
    i = i < 0 ? 0 : Math.min(all.length - 1, Math.max(0, i + delta));
    setCurrent(all[i]);
  }

  // After the sheet is replaced, the same entry (or the one now in its place) is current.
  function restore() {
    const all = rows();
    if (!all.length || currentId === null) return;
    const row = current() || all[Math.min(currentIndex, all.length - 1)];
    const panelOpen = document.getElementById("panel")?.childElementCount > 0;
    setCurrent(row, !panelOpen || !document.activeElement || document.activeElement === document.body);
  }

  const selected = () =>
    Array.from(document.querySelectorAll('#entries input[name="ids"]:checked'));

  function toggle() {
    const box = current()?.querySelector('input[name="ids"]');
    if (box) box.checked = !box.checked;
  }

  // An action applies to the ticked entries, or else to the current one: ticked just
  // before htmx reads the form, whether the key or the button started it.
  function tickCurrent(button) {
    if (button.value !== "undo" && !selected().length) {
      const box = current()?.querySelector('input[name="ids"]');
      if (box) box.checked = true;
    }
  }

  function act(action) {
    const button = document.querySelector(`#entries button[name="action"][value="${action}"]`);
    if (button && !button.disabled) button.click();
  }

  function rangeParams() {
    const form = document.getElementById("entries");
    const params = new URLSearchParams();
    for (const name of ["view", "date"]) {
      const v = form?.querySelector(`input[name="${name}"]`)?.value;
      if (v) params.set(name, v);
    }
    return params;
  }

  function openPanel(path, then) {
    const row = current();
    if (!row || !window.htmx) return;
    htmx
      .ajax("GET", `/app/entries/${encodeURIComponent(row.dataset.id)}/${path}?${rangeParams()}`, {
        target: "#panel",
      })
      .then(then);
  }

  function edit() {
    openPanel("edit", () => {
      const minutes = document.getElementById("edit-minutes");
      if (minutes) {
        minutes.focus();
        minutes.select();
      }
    });
  }

  function source() {
    openPanel("source", () => document.querySelector("#panel .close")?.focus());
  }

  function closePanel() {
    const panel = document.getElementById("panel");
    if (panel) panel.innerHTML = "";
    const row = current();
    if (row) row.focus();
  }

  function help() {
    const dialog = document.getElementById("keys");
    if (dialog && !dialog.open) dialog.showModal();
  }

  function typing(target) {
    if (!(target instanceof Element)) return false;
    if (target.closest("textarea, select, [contenteditable]")) return true;
    const input = target.closest("input");
    return !!input && !["checkbox", "radio", "button", "submit"].includes(input.type);
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "Escape") {
      closePanel();
      return;
    }
    if (typing(e.target) || document.getElementById("keys")?.open) return;
    const keys = {
      j: () => move(1),
      k: () => move(-1),
      x: toggle,
      a: () => act("approve"),
      r: () => act("reject"),
      m: () => act("merge"),
      s: () => act("split"),
      u: () => act("undo"),
      e: edit,
      o: source,
      "?": help,
    };
    const run = keys[e.key];
    if (!run || !document.getElementById("entries")) return;
    e.preventDefault();
    if (currentId === null && "arsxeo".includes(e.key)) move(0);
    run();
  });

  document.addEventListener("click", (e) => {
    const target = e.target instanceof Element ? e.target : null;
    if (!target) return;
    const action = target.closest('#entries button[name="action"]');
    if (action) tickCurrent(action);
    if (target.closest("[data-close-panel]")) closePanel();
    if (target.closest("#help")) help();
    const row = target.closest("tr.entry");
    if (row) setCurrent(row, false);
    if (target.closest("#scan")) scan(target.closest("#scan"));
  });

  document.addEventListener("htmx:afterSettle", restore);
  // A refused request (signed out, a stale page) says why where the person looks.
  document.addEventListener("htmx:responseError", (e) => {
    const flash = document.querySelector("#sheet .flash");
    if (flash) {
      flash.className = "flash failed";
      flash.setAttribute("role", "alert");
      flash.textContent = e.detail.xhr.responseText || "The request failed; reload the page.";
    }
  });

  // Scan now: the scan's server-sent events, read from a POST (EventSource only GETs).
  async function scan(button) {
    const status = document.getElementById("scan-status");
    const bar = document.getElementById("scan-progress");
    const text = document.getElementById("scan-text");
    status.hidden = false;
    status.dataset.state = "running";
    bar.removeAttribute("value");
    text.textContent = "Scanning your mail…";
    button.disabled = true;
    try {
      const response = await fetch("/app/scan", {
        method: "POST",
        headers: { "X-CSRF-Token": button.dataset.csrf, Accept: "text/event-stream" },
        credentials: "same-origin",
      });
      if (!response.ok) {
        status.dataset.state = "failed";
        text.textContent = await response.text();
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          event(buffer.slice(0, end), status, bar, text);
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (err) {
      status.dataset.state = "failed";
      text.textContent = `The scan stopped (${err.message}). Scan again to continue: nothing is billed twice.`;
    } finally {
      button.disabled = false;
    }
  }

  function event(chunk, status, bar, text) {
    let name = "message";
    let data = "";
    for (const line of chunk.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (!data) return;
    const d = JSON.parse(data);
    if (name === "progress") {
      text.textContent = `Examined ${d.examined} messages · ${d.analyzed} analyzed · ${d.entries} entries`;
    } else if (name === "result") {
      bar.max = 1;
      bar.value = 1;
      status.dataset.state = "done";
      text.textContent =
        `Scan finished: ${d.examined} messages examined, ${d.entries_created} new entries` +
        (d.errors_total ? `, ${d.errors_total} messages could not be read` : "") + ".";
      const params = rangeParams();
      if (!new URLSearchParams(location.search).has("date")) params.delete("date");
      htmx.ajax("GET", `/app?${params}`, { target: "#sheet", swap: "outerHTML" });
    } else if (name === "error") {
      status.dataset.state = "failed";
      text.textContent = d.error?.message || "The scan failed.";
    }
  }
})();
