/* Helpers shared by the search and coverage pages. Document text only ever enters the page through text nodes
   (append(string), textContent): never innerHTML, so a file's "<script>" is shown, not run. */
"use strict";

const Llara = (() => {
  const STOP = new Set(["a", "an", "and", "are", "as", "at", "be", "by", "do", "for", "from", "how", "i", "in", "is",
    "it", "of", "on", "or", "that", "the", "this", "to", "what", "when", "where", "which", "with", "why"]);

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  /* GET a JSON route of this server; the sign-in cookie goes along by itself (same origin). */
  async function getJSON(path, params, signal) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, String(v));
    }
    const r = await fetch(url, { signal, headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!r.ok) {
      let detail = r.statusText;
      try { const body = await r.json(); detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); } catch (e) { /* not JSON */ }
      throw new ApiError(r.status, detail || `HTTP ${r.status}`);
    }
    return r.json();
  }

  function stem(w) {
    for (const s of ["ing", "ed", "es", "s"]) {
      if (w.length > s.length + 3 && w.endsWith(s)) return w.slice(0, -s.length);
    }
    return w;
  }

  /* The query's words as highlight patterns: stopwords dropped, simple suffixes cut so "packing" marks "packs". */
  function termPattern(query) {
    const words = (query.toLowerCase().match(/[\p{L}\p{N}_]+/gu) || []).filter((w) => !STOP.has(w));
    const terms = [...new Set(words.map(stem))].filter((t) => t.length > 1 || /\p{N}/u.test(t));
    if (!terms.length) return null;
    terms.sort((a, b) => b.length - a.length);
    const esc = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    return new RegExp("(?<![\\p{L}\\p{N}_])(?:" + esc.join("|") + ")[\\p{L}\\p{N}_]*", "giu");
  }

  /* Append `text` to `parent` with the pattern's matches in <mark>; returns how many were marked. */
  function appendMarked(parent, text, pattern) {
    if (!pattern) { parent.append(text); return 0; }
    let last = 0, n = 0;
    for (const m of text.matchAll(pattern)) {
      if (m.index > last) parent.append(text.slice(last, m.index));
      const mark = document.createElement("mark");
      mark.textContent = m[0];
      parent.append(mark);
      last = m.index + m[0].length;
      n += 1;
    }
    if (last < text.length) parent.append(text.slice(last));
    return n;
  }

  /* A window of `text` around its first match, cut at word boundaries. */
  function snippet(text, pattern, size = 320) {
    text = text.replace(/\s+/g, " ").trim();
    if (text.length <= size) return text;
    let at = 0;
    if (pattern) { pattern.lastIndex = 0; const m = pattern.exec(text); pattern.lastIndex = 0; if (m) at = m.index; }
    let start = Math.max(0, at - Math.floor(size / 3));
    if (start > 0) { const sp = text.indexOf(" ", start); start = sp >= 0 && sp < at ? sp + 1 : start; }
    let end = Math.min(text.length, start + size);
    if (end < text.length) { const sp = text.lastIndexOf(" ", end); end = sp > start ? sp : end; }
    return (start > 0 ? "… " : "") + text.slice(start, end) + (end < text.length ? " …" : "");
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v; else node.setAttribute(k, v === true ? "" : String(v));
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function basename(path) { const i = path.lastIndexOf("/"); return i >= 0 ? path.slice(i + 1) : path; }
  function dirname(path) { const i = path.lastIndexOf("/"); return i > 0 ? path.slice(0, i) : ""; }

  function where(hit) {
    if (hit.page !== null && hit.page !== undefined) return `page ${hit.page}`;
    if (hit.start_line) return hit.end_line && hit.end_line !== hit.start_line ? `lines ${hit.start_line}–${hit.end_line}` : `line ${hit.start_line}`;
    return "";
  }

  /* A path as a URL path: every segment percent-encoded, so "#", "?" or spaces in a file name stay in the path. */
  function urlPath(path) { return path.split("/").map(encodeURIComponent).join("/"); }

  function fileUrl(path, page) {
    if (!path.startsWith("/")) return null;
    return "file://" + urlPath(path) + (page ? `#page=${page}` : "");
  }

  function editorUrl(template, path, line, page) {
    if (!template || !path.startsWith("/")) return null;
    const i = template.indexOf("{path}");
    const p = i > 0 && template[i - 1] === "/" ? path.slice(1) : path;
    return template.replaceAll("{path}", urlPath(p)).replaceAll("{line}", String(line || 1))
      .replaceAll("{page}", String(page || 1));
  }

  return { ApiError, getJSON, termPattern, appendMarked, snippet, el, basename, dirname, where, fileUrl, editorUrl };
})();
