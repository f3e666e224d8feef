/* What is indexed: every file the last ingest saw (from /files), problems first, and when it last synced. */
"use strict";

(() => {
  const { getJSON, el } = Llara;
  const $ = (id) => document.getElementById(id);
  const LIMIT = 1000;
  const view = { state: "", files: [], total: 0 };

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  async function load(append = false) {
    let body;
    try {
      body = await getJSON("/files", { state: view.state || null, offset: append ? view.files.length : 0, limit: LIMIT });
    } catch (err) {
      $("sync").textContent = err.status === 401 ? "Signed out: reload the page to sign in." : err.message;
      $("sync").classList.add("error");
      return;
    }
    view.files = append ? view.files.concat(body.files) : body.files;
    view.total = body.total;
    const s = body.last_sync;
    $("sync").textContent = s ? `Last synced ${fmtTime(s.finished_at)} (${s.status}, ${Number(s.seconds).toFixed(1)} s) · ` +
      `${body.counts.indexed} indexed · ${body.counts.skipped} skipped · ${body.counts.failed} failed`
      : "No ingest has finished yet: run `llara-search ingest FOLDER`.";
    $("n-all").textContent = body.counts.indexed + body.counts.skipped + body.counts.failed;
    for (const k of ["indexed", "skipped", "failed"]) $("n-" + k).textContent = body.counts[k];
    paint();
  }

  function paint() {
    const needle = $("filter").value.trim().toLowerCase();
    const rows = view.files.filter((f) => !needle || f.path.toLowerCase().includes(needle));
    const frag = document.createDocumentFragment();
    rows.forEach((f) => {
      const detail = f.state === "indexed"
        ? `${f.chunks} chunk${f.chunks === 1 ? "" : "s"}` + (f.format ? ` · ${f.format}` : "") + (f.updated_at ? ` · ${fmtTime(f.updated_at)}` : "")
        : (f.reason || "") + (f.kind ? ` (${f.kind})` : "") +
          (f.chunks ? ` · the version read before is still indexed (${f.chunks} chunk${f.chunks === 1 ? "" : "s"})` : "");
      frag.append(el("tr", { class: "file-row " + f.state },
        el("td", {}, el("span", { class: "badge " + f.state }, f.state)),
        el("td", { class: "path" }, f.path),
        el("td", {}, detail)));
    });
    $("files").replaceChildren(frag);
    $("more-files").hidden = view.files.length >= view.total;
  }

  document.querySelectorAll(".coverage-controls .chip").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll(".coverage-controls .chip").forEach((c) => c.setAttribute("aria-pressed", String(c === b)));
    view.state = b.dataset.state;
    load();
  }));
  $("filter").addEventListener("input", paint);
  $("more-files").addEventListener("click", () => load(true));
  load().then(() => { document.body.dataset.ready = "true"; });
})();
