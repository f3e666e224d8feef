/* The search page: search as you type over the server's own /search, results grouped by file, filters from
   /facets, a preview from /chunks/{id}. State lives in the URL (q, mode, where, folder, type) so a search can be
   bookmarked; the token never does (it is an HttpOnly cookie). */
"use strict";

(() => {
  const { getJSON, termPattern, appendMarked, snippet, el, basename, dirname, where, fileUrl, editorUrl } = Llara;
  const DEBOUNCE_MS = 200;
  const PAGE = 10;
  const $ = (id) => document.getElementById(id);
  const box = $("q"), globBox = $("where"), results = $("results"), statusLine = $("status"), moreBtn = $("more");

  const state = {
    config: { modes: ["bm25", "dense", "hybrid"], rerank: false, editor_url: null, auth: false },
    mode: "hybrid", k: PAGE, folder: null, folderGlob: null, type: null, typeGlob: null,
    seq: 0, sent: 0, controller: null, timer: null, busy: null, keyAt: 0, hits: [], active: -1, lastQuery: "",
    preview: null,
  };

  /* ------------------------------------------------------------------------------------------ URL state */
  function readUrl() {
    const p = new URLSearchParams(location.search);
    box.value = p.get("q") || "";
    if (p.get("mode")) state.mode = p.get("mode");
    state.folder = p.get("folder");
    state.type = p.get("type");
    globBox.value = p.get("where") || "";
  }

  function writeUrl() {
    const p = new URLSearchParams();
    if (box.value.trim()) p.set("q", box.value);
    p.set("mode", state.mode);
    if (globBox.value.trim()) p.set("where", globBox.value.trim());
    if (state.folder) p.set("folder", state.folder);
    if (state.type) p.set("type", state.type);
    history.replaceState(null, "", "?" + p.toString());
  }

  /* ------------------------------------------------------------------------------------------ search */
  function schedule() {
    state.keyAt = performance.now();
    clearTimeout(state.timer);
    state.timer = setTimeout(() => search({}), DEBOUNCE_MS);
  }

  async function search({ rerank = false, keepK = false }) {
    clearTimeout(state.timer);
    const q = box.value.trim();
    writeUrl();
    if (!keepK) state.k = PAGE;
    const seq = ++state.seq;
    if (state.controller) state.controller.abort();  // an older answer still on its way is not wanted any more
    if (!q) {
      state.controller = null;
      render(seq, q, [], null);
      return;
    }
    const controller = new AbortController();
    state.controller = controller;
    state.sent += 1;  // searches sent so far (the benchmark counts those a typed query cost)
    const firedAt = performance.now();
    const params = { q, mode: state.mode, k: state.k, where: globBox.value.trim() || null };
    if (state.config.rerank) params.rerank = rerank ? "true" : "false";  // typing stays fast; Enter re-ranks
    clearTimeout(state.busy);  // said only when an answer is slow to come, so quick answers do not flicker
    state.busy = setTimeout(() => { if (seq === state.seq) statusLine.textContent = rerank ? "Re-ranking…" : "Searching…"; },
      rerank ? 0 : 300);
    try {
      const body = await getJSON("/search", params, controller.signal);
      if (seq !== state.seq) return;  // a newer query was typed meanwhile: never paint an older answer over it
      render(seq, q, body.results, body.rerank || null, firedAt, performance.now());
    } catch (err) {
      if (err.name === "AbortError" || seq !== state.seq) return;
      clearTimeout(state.busy);
      if (err.status === 401) { statusLine.textContent = "Signed out: reload the page to sign in again."; return; }
      results.replaceChildren();
      moreBtn.hidden = true;
      statusLine.textContent = err.message;
      statusLine.classList.add("error");
    }
  }

  /* The folder of a result, relative to the indexed root (the facets' root) when it is under it. */
  function shortDir(path) {
    const dir = dirname(path), root = state.root;
    if (root && (dir + "/").startsWith(root.replace(/\/$/, "") + "/")) return dir.slice(root.replace(/\/$/, "").length + 1) || "";
    return dir;
  }

  function groupByFile(hits) {
    const groups = new Map();
    hits.forEach((h) => {
      if (!groups.has(h.path)) groups.set(h.path, []);
      groups.get(h.path).push(h);
    });
    return [...groups.entries()];
  }

  function render(seq, q, hits, rerank, firedAt, answeredAt) {
    clearTimeout(state.busy);
    statusLine.classList.remove("error");
    state.hits = [];
    state.active = -1;
    state.lastQuery = q;
    box.removeAttribute("aria-activedescendant");
    const pattern = termPattern(q);
    const frag = document.createDocumentFragment();
    groupByFile(hits).forEach(([path, group], gi) => {
      const headId = `file-${seq}-${gi}`;
      const g = el("div", { class: "group", role: "group", "aria-labelledby": headId });
      g.append(el("div", { class: "file", id: headId },
        el("span", { class: "name", title: path }, basename(path)), el("span", { class: "dir" }, shortDir(path))));
      group.forEach((h) => {
        const idx = state.hits.length;
        state.hits.push(h);
        const score = `score ${h.score.toFixed(4)} · rank ${h.rank}` +
          (h.first_stage_rank ? ` (first stage rank ${h.first_stage_rank})` : "");
        const opt = el("div", { class: "hit", role: "option", id: `hit-${seq}-${idx}`, "aria-selected": "false",
          "data-index": idx, title: score });
        const meta = el("div", { class: "meta" });
        if (h.heading) meta.append(el("span", { class: "heading" }, h.heading));
        const loc = where(h);
        if (loc) meta.append(el("span", { class: "loc" }, loc));
        meta.append(el("span", { class: "score", "aria-label": score }, h.score.toFixed(3)));
        const text = el("p", { class: "snippet" });
        appendMarked(text, snippet(h.text, pattern), pattern);
        opt.append(meta, text);
        if (h.also_in && h.also_in.length) {
          opt.append(el("p", { class: "also" }, "also in: " + h.also_in.map(basename).join(", ")));
          opt.lastChild.title = h.also_in.join("\n");
        }
        g.append(opt);
      });
      frag.append(g);
    });
    results.replaceChildren(frag);
    box.setAttribute("aria-expanded", hits.length ? "true" : "false");
    const files = new Set(hits.map((h) => h.path)).size;
    let line = q ? `${hits.length} passage${hits.length === 1 ? "" : "s"} in ${files} file${files === 1 ? "" : "s"}` : "";
    if (q && !hits.length) line = "No passages match" + (globBox.value.trim() ? " under this filter." : ".");
    if (rerank) line += rerank.applied ? ` · re-ranked by ${rerank.model}` : ` · first-stage order (${rerank.reason || "not re-ranked"})`;
    statusLine.textContent = line;
    moreBtn.hidden = !(q && hits.length >= state.k && state.k < 1000);
    if (state.preview) {  // the open preview follows the new answer: its file's hits, or closed if none is left
      if (hits.some((h) => h.path === state.preview.path)) {
        state.preview.hits = docHits(state.preview.path);
        state.preview.hit = state.preview.hits.find((h) => h.chunk_id === state.preview.hit.chunk_id) || state.preview.hits[0];
        if (state.preview.doc) paintPreview(state.preview);
      } else closePreview(false);
    }
    if (firedAt !== undefined) {
      const keyAt = state.keyAt || firedAt;
      requestAnimationFrame(() => setTimeout(() => {  // after the frame that shows the results is painted
        performance.measure("llara:painted", { start: keyAt, end: performance.now(),
          detail: { query: q, mode: state.mode, fired: firedAt - keyAt, answered: answeredAt - keyAt,
            results: hits.length, sent: state.sent } });
      }, 0));
    }
  }

  /* ------------------------------------------------------------------------------------------ selection */
  function setActive(i) {
    const opts = results.querySelectorAll('[role="option"]');
    if (!opts.length) return;
    i = Math.max(0, Math.min(opts.length - 1, i));
    opts.forEach((o) => o.setAttribute("aria-selected", "false"));
    const opt = opts[i];
    opt.setAttribute("aria-selected", "true");
    box.setAttribute("aria-activedescendant", opt.id);
    opt.scrollIntoView({ block: "nearest" });
    state.active = i;
  }

  results.addEventListener("click", (ev) => {
    const opt = ev.target.closest('[role="option"]');
    if (!opt) return;
    setActive(Number(opt.dataset.index));
    openPreview(state.hits[state.active]);
  });

  moreBtn.addEventListener("click", () => { state.k = Math.min(1000, state.k + PAGE); search({ keepK: true }); });

  /* ------------------------------------------------------------------------------------------ preview */
  const preview = $("preview"), previewBody = $("preview-body");

  function docHits(path) {
    const hits = state.hits.filter((h) => h.path === path);
    return hits.sort((a, b) => (a.page || 0) - (b.page || 0) || (a.start_line || 0) - (b.start_line || 0) || a.chunk_id - b.chunk_id);
  }

  async function openPreview(hit, focusPane = false) {
    if (!hit) return;
    const view = { path: hit.path, hit, hits: docHits(hit.path), before: 2, after: 2 };
    state.preview = view;
    await loadPreview(view);
    if (focusPane) $("preview-scroll").focus();
  }

  async function loadPreview(view) {
    let body;
    try {
      body = await getJSON(`/chunks/${encodeURIComponent(view.hit.chunk_id)}`, { before: view.before, after: view.after });
    } catch (err) {
      if (state.preview !== view) return;
      preview.hidden = false;
      previewBody.replaceChildren(el("p", { class: "error" }, err.message));
      return;
    }
    if (state.preview !== view) return;  // another result was chosen meanwhile
    view.doc = body;
    paintPreview(view);
  }

  function paintPreview(view) {
    const body = view.doc, hit = view.hit, pattern = termPattern(state.lastQuery);
    const hitIds = new Set(view.hits.map((h) => h.chunk_id));
    $("preview-title").textContent = body.document.title || basename(body.document.path);
    const loc = where(hit);
    $("preview-path").textContent = body.document.path + (hit.start_line ? `:${hit.start_line}` : "") + (loc ? ` (${loc})` : "");
    const pos = view.hits.findIndex((h) => h.chunk_id === hit.chunk_id);
    $("hit-pos").textContent = view.hits.length > 1 ? `hit ${pos + 1} of ${view.hits.length} here` : "the only hit here";
    $("prev-hit").disabled = pos <= 0;
    $("next-hit").disabled = pos < 0 || pos >= view.hits.length - 1;
    const file = fileUrl(body.document.path, hit.page);
    const openFile = $("open-file");
    openFile.hidden = !file;
    if (file) { openFile.href = file; openFile.textContent = hit.page ? `open file (page ${hit.page})` : "open file"; }
    const editor = editorUrl(state.config.editor_url, body.document.path, hit.start_line, hit.page);
    $("open-editor").hidden = !editor;
    if (editor) $("open-editor").href = editor;
    $("load-before").hidden = !body.more_before;
    $("load-after").hidden = !body.more_after;
    const frag = document.createDocumentFragment();
    let current = null;
    body.chunks.forEach((c) => {
      const cls = "chunk" + (hitIds.has(c.chunk_id) ? " hit" : "") + (c.chunk_id === hit.chunk_id ? " current" : "");
      const section = el("section", { class: cls, "data-chunk": c.chunk_id,
        "aria-label": (c.chunk_id === hit.chunk_id ? "the chosen hit: " : hitIds.has(c.chunk_id) ? "a hit: " : "") + (c.heading || where(c) || "text") });
      const meta = [c.heading, where(c)].filter(Boolean).join(" · ");
      if (meta) section.append(el("div", { class: "meta" }, meta));
      const p = el("div", { class: "text" });
      appendMarked(p, c.text, pattern);
      section.append(p);
      frag.append(section);
      if (c.chunk_id === hit.chunk_id) current = section;
    });
    previewBody.replaceChildren(frag);
    preview.hidden = false;
    document.body.classList.add("previewing");
    if (current) {  // centre the hit in the preview's own scroller, leaving the page where it is
      const scroller = $("preview-scroll");
      scroller.scrollTop = Math.max(0, current.offsetTop - scroller.clientHeight / 2 + current.offsetHeight / 2);
    }
  }

  function moveHit(step) {
    const view = state.preview;
    if (!view) return;
    const pos = view.hits.findIndex((h) => h.chunk_id === view.hit.chunk_id);
    const next = view.hits[pos + step];
    if (!next) return;
    view.hit = next;
    const idx = state.hits.indexOf(next);
    if (idx >= 0) setActive(idx);
    if (view.doc && view.doc.chunks.some((c) => c.chunk_id === next.chunk_id)) paintPreview(view);
    else { view.before = 2; view.after = 2; loadPreview(view); }
  }

  function closePreview(refocus = true) {
    preview.hidden = true;
    state.preview = null;
    document.body.classList.remove("previewing");
    if (refocus) box.focus();
  }

  $("next-hit").addEventListener("click", () => moveHit(1));
  $("prev-hit").addEventListener("click", () => moveHit(-1));
  $("close-preview").addEventListener("click", () => closePreview());
  $("load-before").addEventListener("click", () => { const v = state.preview; if (v) { v.before += 10; loadPreview(v); } });
  $("load-after").addEventListener("click", () => { const v = state.preview; if (v) { v.after += 10; loadPreview(v); } });
  $("copy-path").addEventListener("click", async () => {
    const v = state.preview;
    if (!v) return;
    const text = v.path + (v.hit.start_line ? `:${v.hit.start_line}` : "");
    try { await navigator.clipboard.writeText(text); statusLine.textContent = `copied ${text}`; } catch (e) {
      statusLine.textContent = text;
    }
  });

  /* ------------------------------------------------------------------------------------------ keyboard */
  box.addEventListener("input", schedule);
  box.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      setActive(state.active + (ev.key === "ArrowDown" ? 1 : -1));
      if (!preview.hidden && state.active >= 0) openPreview(state.hits[state.active]);  // the preview follows
    }
    else if (ev.key === "Enter") {
      ev.preventDefault();
      if (state.active >= 0) openPreview(state.hits[state.active], true);  // read on with the keys; Esc comes back
      else search({ rerank: state.config.rerank });
    }
  });
  $("search-form").addEventListener("submit", (ev) => ev.preventDefault());

  document.addEventListener("keydown", (ev) => {
    const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement;
    if (ev.key === "/" && !typing && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      ev.preventDefault();
      box.focus();
      box.select();
    } else if (ev.key === "Escape") {
      if (!preview.hidden) { ev.preventDefault(); closePreview(); }
      else if (state.active >= 0) { ev.preventDefault(); state.active = -1; box.removeAttribute("aria-activedescendant");
        results.querySelectorAll('[aria-selected="true"]').forEach((o) => o.setAttribute("aria-selected", "false")); }
      else if (document.activeElement !== box) { box.focus(); }
    } else if (!preview.hidden && !typing && (ev.key === "n" || ev.key === "p")) {
      moveHit(ev.key === "n" ? 1 : -1);
    }
  });

  /* ------------------------------------------------------------------------------------------ modes */
  function paintModes() {
    document.querySelectorAll('input[name="mode"]').forEach((r) => {
      r.disabled = !state.config.modes.includes(r.value);
      r.checked = r.value === state.mode;
    });
  }
  document.querySelectorAll('input[name="mode"]').forEach((r) => r.addEventListener("change", () => {
    if (r.checked) { state.mode = r.value; search({}); }
  }));

  /* ------------------------------------------------------------------------------------------ filters */
  function composeGlob() {
    if (!state.folderGlob && !state.typeGlob) return "";
    return (state.folderGlob || "") + (state.typeGlob || "*");
  }

  function chip(label, count, pressed, onClick, extra) {
    const b = el("button", { type: "button", class: "chip" + (extra ? " " + extra : ""), "aria-pressed": pressed ? "true" : "false" },
      label, count === null ? null : el("span", { class: "count" }, String(count)));
    b.addEventListener("click", onClick);
    return b;
  }

  async function loadFacets() {
    let top, here;
    try {
      top = await getJSON("/facets", {});
      here = state.folder ? await getJSON("/facets", { folder: state.folder }) : top;
    } catch (err) {
      $("folder-chips").replaceChildren(el("span", { class: "muted" }, "filters unavailable: " + err.message));
      return;
    }
    state.root = top.root;
    state.folderGlob = state.folder ? here.folder_glob : null;
    const typeEntry = top.types.find((t) => t.ext === state.type);
    state.typeGlob = typeEntry ? typeEntry.glob : null;
    if (!typeEntry) state.type = null;
    const folders = $("folder-chips");
    const parts = [el("span", { class: "chips-label" }, "folders")];
    if (state.folder) {
      const crumbs = state.folder.split("/");
      parts.push(chip("all", null, false, () => pickFolder(null)));
      crumbs.forEach((c, i) => {
        const f = crumbs.slice(0, i + 1).join("/");
        parts.push(chip(c + (i === crumbs.length - 1 ? " ✕" : ""), i === crumbs.length - 1 ? here.documents : null,
          true, () => pickFolder(i === crumbs.length - 1 ? (i ? crumbs.slice(0, i).join("/") : null) : f),
          "crumb"));
      });
    }
    here.folders.slice(0, 24).forEach((f) => parts.push(chip(f.name + "/", f.count, false, () => pickFolder(f.folder))));
    if (!here.folders.length && !state.folder) parts.push(el("span", { class: "muted" }, "one folder"));
    folders.replaceChildren(...parts);
    const types = $("type-chips");
    types.replaceChildren(el("span", { class: "chips-label" }, "types"),
      ...top.types.slice(0, 16).map((t) => chip("." + t.ext, t.count, t.ext === state.type,
        () => pickType(t.ext === state.type ? null : t.ext))));
  }

  async function pickFolder(folder) {
    state.folder = folder;
    await loadFacets();
    globBox.value = composeGlob();
    search({});
  }

  async function pickType(ext) {
    state.type = ext;
    await loadFacets();
    globBox.value = composeGlob();
    search({});
  }

  globBox.addEventListener("input", () => {
    if (globBox.value.trim() !== composeGlob()) {  // typed by hand: the chips no longer describe the filter
      if (state.folder || state.type) {
        state.folder = null; state.type = null; state.folderGlob = null; state.typeGlob = null;
        document.querySelectorAll("#folder-chips .chip, #type-chips .chip").forEach((c) => c.setAttribute("aria-pressed", "false"));
      }
    }
    schedule();
  });
  globBox.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); search({}); } });

  /* ------------------------------------------------------------------------------------------ start */
  async function start() {
    readUrl();
    try {
      state.config = await getJSON("/ui/config", {});
    } catch (err) {
      statusLine.textContent = err.status === 401 ? "Signed out: reload the page to sign in." : err.message;
      return;
    }
    if (!state.config.modes.includes(state.mode)) state.mode = state.config.modes.includes("hybrid") ? "hybrid" : state.config.modes[0];
    $("signout").hidden = !state.config.auth;
    paintModes();
    const hadGlob = globBox.value;
    await loadFacets();
    if (state.folder || state.type) globBox.value = composeGlob(); else globBox.value = hadGlob;
    document.body.dataset.ready = "true";
    if (box.value.trim()) search({});
    box.focus();
  }
  start();
})();
