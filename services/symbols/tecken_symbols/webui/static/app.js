/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

// The Tecken symbols web UI: hash routes over the JSON API. Every value from
// the server is rendered with textContent / text nodes, never as markup.
"use strict";

const TOKEN_KEY = "tecken-auth-token";

// Every endpoint the page calls (the tests check each one exists).
const API = {
  authInfo: { method: "POST", path: "/upload/auth_info/" },
  session: { method: "GET", path: "/api/_auth/" },
  uploads: { method: "GET", path: "/api/uploads/" },
  upload: { method: "GET", path: "/api/uploads/upload/{id}" },
  stats: { method: "GET", path: "/api/stats/" },
  files: { method: "GET", path: "/api/uploads/files/" },
  file: { method: "GET", path: "/api/uploads/files/file/{id}" },
  uploadZip: { method: "POST", path: "/upload/" },
  missing: { method: "GET", path: "/missingsymbols/" },
  syminfo: { method: "GET", path: "/api/syminfo/{debug_file}/{debug_id}" },
  download: { method: "HEAD", path: "/{debug_file}/{debug_id}/{symbols_file}" },
};

// ---- helpers ---------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "onclick" || key === "onsubmit") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function url(endpoint, params, query) {
  let path = endpoint.path.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(params[name]));
  const qs = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") qs.set(key, value);
  }
  const text = qs.toString();
  return text ? `${path}?${text}` : path;
}

function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(endpoint, params, query) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers["Auth-Token"] = token;
  const resp = await fetch(url(endpoint, params, query), {
    method: endpoint.method,
    headers,
    credentials: token ? "omit" : "same-origin",
  });
  const text = await resp.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (e) {
    body = null;
  }
  if (!resp.ok) {
    const message = (body && (body.error || body.title || body.description)) || text || resp.statusText;
    throw new ApiError(resp.status, `${resp.status}: ${message}`);
  }
  return body;
}

function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function formatDate(value) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function hashLink(route, query, label) {
  const qs = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") qs.set(key, value);
  }
  const text = qs.toString();
  return el("a", { href: `#${route}${text ? "?" + text : ""}` }, label);
}

function errorBox(err) {
  let message = err instanceof Error ? err.message : String(err);
  if (err instanceof ApiError && err.status === 403 && !getToken()) {
    message += " (log in first, or paste an API token on the Token page)";
  }
  return el("p", { class: "error", role: "alert" }, message);
}

function render(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes.filter((node) => node !== null && node !== undefined));
}

function field(label, name, value, attrs) {
  return el("label", {}, label, el("input", { type: "text", name, value: value || "", ...(attrs || {}) }));
}

function formValues(form) {
  const values = {};
  for (const [key, value] of new FormData(form).entries()) {
    if (String(value).trim() !== "") values[key] = String(value).trim();
  }
  return values;
}

function pager(route, query, page, hasNext, total) {
  const prev = page > 1 ? hashLink(route, { ...query, page: page - 1 }, "← Previous") : null;
  const next = hasNext ? hashLink(route, { ...query, page: page + 1 }, "Next →") : null;
  return el("p", { class: "pager" }, prev, el("span", { class: "muted" }, `Page ${page} · ${total} in total`), next);
}

function table(headers, rows) {
  // Label every cell with its column, for the stacked layout at phone width.
  const labels = headers.map((h) => h.label || h);
  for (const row of rows) {
    Array.from(row.children).forEach((cell, i) => {
      if (labels[i]) cell.setAttribute("data-label", labels[i]);
    });
  }
  return el(
    "div",
    { class: "scroll" },
    el(
    "table",
    {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : null }, h.label || h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "Nothing here."))),
    ),
  );
}

function definitions(pairs) {
  return el("dl", {}, pairs.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

function symbolsFilename(debugFile) {
  return /\.pdb$/i.test(debugFile) ? debugFile.slice(0, -4) + ".sym" : debugFile + ".sym";
}

// ---- pages -----------------------------------------------------------------

// Signed in with a session: the email, a Sign out button (the same form as
// the server-rendered pages) and, for superusers, the Users link.
function showSession(span, auth) {
  span.replaceChildren(
    el("span", { class: "who" }, `Signed in as ${auth.user.email}`),
    el("form", { method: "post", action: auth.sign_out_url, class: "inline" },
      el("input", { type: "hidden", name: "csrf_token", value: auth.csrf_token }),
      el("button", { type: "submit" }, "Sign out")),
  );
  const nav = document.querySelector("header nav");
  if (auth.user.is_superuser && !nav.querySelector("a[href='/users']")) {
    nav.insertBefore(el("a", { href: "/users" }, "Users"), nav.querySelector("a[href='#/']"));
  }
}

async function refreshWhoami() {
  const span = document.getElementById("whoami");
  if (!getToken()) {
    // A browser session (log in on /login), else nobody.
    try {
      const auth = await call(API.session);
      if (auth.user) showSession(span, auth);
      else span.textContent = "Not signed in";
    } catch (err) {
      span.textContent = "Not signed in";
    }
    return null;
  }
  try {
    const info = await call(API.authInfo);
    span.textContent = `Token of ${info.email}`;
    return info;
  } catch (err) {
    // Who-am-I needs an upload permission: a view-only token is still a token.
    span.textContent = err.status === 403 && err.message.endsWith("Forbidden") ? "Token without upload permission" : "Token not accepted";
    throw err;
  }
}

async function tokenPage() {
  const form = el(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        const value = form.elements.token.value.trim();
        if (value) sessionStorage.setItem(TOKEN_KEY, value);
        else sessionStorage.removeItem(TOKEN_KEY);
        route();
      },
    },
    el("label", {}, "API token", el("input", { type: "password", name: "token", autocomplete: "off", placeholder: "paste your API token" })),
    el("button", { type: "submit" }, "Use this token"),
    el("button", { type: "button", onclick: () => { sessionStorage.removeItem(TOKEN_KEY); route(); } }, "Forget token"),
  );
  const status = el("div", {}, getToken() ? "Checking the token…" : "No token yet. It is kept in this tab only (sessionStorage).");
  render(el("h2", {}, "API token"), form, status);
  if (!getToken()) {
    refreshWhoami().catch(() => {});
    return;
  }
  try {
    const info = await refreshWhoami();
    status.replaceChildren(
      el("h3", {}, "Who am I"),
      definitions([
        ["Email", info.email],
        ["User id", String(info.user_id)],
        ["May upload try symbols", info.try_symbols ? "yes" : "no"],
        ["Token expires", formatDate(new Date(info.token_expires_at * 1000).toISOString())],
        ["Upload API version", String(info.upload_api_version)],
      ]),
    );
  } catch (err) {
    if (err instanceof ApiError && err.status === 403 && err.message.endsWith("Forbidden")) {
      // Valid, but without an upload permission (who-am-I needs one): say so.
      status.replaceChildren(el("p", {}, "This token is valid but holds no upload permission; it can still list uploads it may see."));
    } else {
      status.replaceChildren(errorBox(err));
    }
  }
}

// ---- auto-refresh of uploads still in progress ------------------------------

const REFRESH_MS = 5000;
let refreshTimer = null;

function stopRefresh() {
  if (refreshTimer !== null) clearTimeout(refreshTimer);
  refreshTimer = null;
}

// Calls load(true) in REFRESH_MS, unless the page (hash) changed by then; a
// hidden tab waits until it is shown again.
function refreshLater(load) {
  stopRefresh();
  const hash = location.hash;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    if (location.hash !== hash) return;
    if (document.hidden) refreshLater(load);
    else load(true);
  }, REFRESH_MS);
}

// An upload older than this that never completed was interrupted: not waited for.
const IN_PROGRESS_MAX_AGE_MS = 2 * 3600 * 1000;

function inProgress(upload) {
  const age = Date.now() - new Date(upload.created_at).getTime();
  return !upload.completed_at && !upload.error && age < IN_PROGRESS_MAX_AGE_MS;
}

function refreshNote(count, what) {
  return el("p", { class: "status", id: "refreshing" }, `${count} ${what} in progress: refreshed every ${REFRESH_MS / 1000} seconds until complete.`);
}

const UPLOAD_FILTERS = ["user", "size", "created_at", "completed_at", "sort", "reverse"];

async function uploadsPage(query) {
  const page = Math.max(1, parseInt(query.page || "1", 10) || 1);
  const filters = {};
  for (const name of UPLOAD_FILTERS) if (query[name]) filters[name] = query[name];
  const form = el(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        location.hash = hashLink("/uploads", formValues(form)).getAttribute("href");
      },
    },
    field("User (email or part of it, ! negates)", "user", filters.user),
    field("Size (e.g. >10mb,<2gb)", "size", filters.size),
    field("Created (today, >=2026-11-01, null)", "created_at", filters.created_at),
    field("Completed", "completed_at", filters.completed_at),
    el(
      "label",
      {},
      "Sort",
      el(
        "select",
        { name: "sort" },
        el("option", { value: "created_at", selected: filters.sort !== "size" }, "created"),
        el("option", { value: "size", selected: filters.sort === "size" }, "size"),
      ),
    ),
    el(
      "label",
      {},
      "Order",
      el(
        "select",
        { name: "reverse" },
        el("option", { value: "true", selected: filters.reverse !== "false" }, "descending"),
        el("option", { value: "false", selected: filters.reverse === "false" }, "ascending"),
      ),
    ),
    el("button", { type: "submit" }, "Filter"),
  );
  const results = el("div", {}, "Loading…");
  render(el("h2", {}, "Uploads"), form, results);
  let last = "";
  // Only the results are redrawn on a refresh (the filter form keeps what is
  // typed in it), and only when the answer changed.
  const load = async (again) => {
    try {
      const data = await call(API.uploads, {}, { ...filters, page });
      const pending = data.uploads.filter(inProgress).length;
      if (pending) refreshLater(load);
      const text = JSON.stringify(data);
      if (again && text === last) return;
      last = text;
      showUploads(results, data, filters, page, pending);
    } catch (err) {
      results.replaceChildren(errorBox(err));
    }
  };
  await load(false);
}

function showUploads(results, data, filters, page, pending) {
  const rows = data.uploads.map((u) =>
    el(
      "tr",
      {},
      el("td", {}, hashLink(`/uploads/${encodeURIComponent(u.id)}`, null, String(u.id))),
      el("td", {}, u.filename || "—"),
      el("td", {}, u.user.email),
      el("td", { class: "num" }, formatSize(u.size)),
      el("td", { class: "num" }, `${u.files_count}${u.files_incomplete_count ? ` (${u.files_incomplete_count} incomplete)` : ""}`),
      el("td", {}, u.try_symbols ? el("span", { class: "tag" }, "try") : "regular"),
      el("td", {}, formatDate(u.created_at)),
      el("td", {}, u.error ? el("span", { class: "notfound" }, u.error) : formatDate(u.completed_at)),
    ),
  );
  results.replaceChildren(
    el("p", { class: "muted" }, data.can_view_all ? "All users' uploads." : "Your uploads."),
    pending ? refreshNote(pending, pending === 1 ? "upload" : "uploads") : "",
    table(["Id", "File", "User", { label: "Size", num: true }, { label: "Files", num: true }, "Type", "Created", "Completed"], rows),
    pager("/uploads", filters, page, data.has_next, data.total),
  );
}

async function uploadPage(id) {
  render(el("h2", {}, `Upload ${id}`), el("p", {}, "Loading…"));
  let last = "";
  const load = async (again) => {
    try {
      const data = await call(API.upload, { id });
      if (inProgress(data.upload)) refreshLater(load);
      const text = JSON.stringify(data);
      if (again && text === last) return;
      last = text;
      showUpload(data.upload);
    } catch (err) {
      render(el("h2", {}, `Upload ${id}`), errorBox(err));
    }
  };
  await load(false);
}

function showUpload(upload) {
  const files = upload.file_uploads.map((f) => {
    const [debugFile, debugId, symbolsFile] = f.key.split("/").slice(-3);
    return el(
      "tr",
      {},
      el("td", {}, el("span", { class: "mono" }, f.key)),
      el("td", { class: "num" }, formatSize(f.size)),
      el("td", {}, f.update ? "update" : "new"),
      el("td", {}, f.compressed ? "yes" : "no"),
      el("td", {}, formatDate(f.completed_at)),
      el("td", {}, hashLink("/lookup", { debug_file: debugFile, debug_id: debugId, symbols_file: symbolsFile, try: upload.try_symbols ? "1" : "" }, "look up")),
    );
  });
  const listOf = (items) => (items && items.length ? el("ul", {}, items.map((k) => el("li", { class: "mono" }, k))) : "none");
  render(
    el("h2", {}, `Upload ${upload.id}`),
    inProgress(upload) ? refreshNote(1, "upload") : null,
    definitions([
      ["File", upload.filename || "—"],
      ["User", upload.user.email],
      ["Size", formatSize(upload.size)],
      ["Type", upload.try_symbols ? "try" : "regular"],
      ["Protocol", upload.upload_protocol || "—"],
      ["Storage", upload.try_symbols ? "try symbols" : "regular symbols"],
      ["Download URL", upload.download_url ? el("span", { class: "mono" }, upload.download_url) : "—"],
      ["Redirects", listOf(upload.redirect_urls)],
      ["Created", formatDate(upload.created_at)],
      ["Completed", formatDate(upload.completed_at)],
      ["Content hash", upload.content_hash ? el("span", { class: "mono" }, upload.content_hash) : "—"],
      ["Error", upload.error || "none"],
      ["Skipped keys", listOf(upload.skipped_keys)],
      ["Ignored keys", listOf(upload.ignored_keys)],
    ]),
    el("h3", {}, `Files (${upload.file_uploads.length})`),
    table(["Key", { label: "Size", num: true }, "New/update", "Compressed", "Completed", ""], files),
    el("h3", {}, "Related uploads"),
    upload.related.length
      ? el("ul", {}, upload.related.map((r) => el("li", {}, hashLink(`/uploads/${encodeURIComponent(r.id)}`, null, `${r.id}`), ` ${r.filename || ""} · ${formatDate(r.created_at)}`)))
      : el("p", { class: "muted" }, "None."),
    el("p", {}, hashLink("/uploads", null, "← All uploads")),
  );
}

async function statsPage() {
  render(el("h2", {}, "Upload statistics"), el("p", {}, "Loading…"));
  try {
    const data = await call(API.stats);
    const uploads = data.stats.uploads;
    const rows = [["today", "Today"], ["yesterday", "Yesterday"], ["last_30_days", "Last 30 days"]].map(([key, label]) =>
      el("tr", {}, el("td", {}, label), el("td", { class: "num" }, String(uploads[key].count)), el("td", { class: "num" }, formatSize(uploads[key].total_size))),
    );
    render(
      el("h2", {}, "Upload statistics"),
      el("p", { class: "muted" }, uploads.all_uploads ? "All users' uploads (UTC days)." : "Your uploads (UTC days)."),
      table(["Period", { label: "Uploads", num: true }, { label: "Total size", num: true }], rows),
    );
  } catch (err) {
    render(el("h2", {}, "Upload statistics"), errorBox(err));
  }
}

const MISSING_FILTERS = ["debug_file", "debug_id", "code_file", "since", "sort", "reverse"];

async function missingPage(query) {
  const page = Math.max(1, parseInt(query.page || "1", 10) || 1);
  const filters = {};
  for (const name of MISSING_FILTERS) if (query[name]) filters[name] = query[name];
  const form = el(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        location.hash = hashLink("/missing", formValues(form)).getAttribute("href");
      },
    },
    field("Debug file contains", "debug_file", filters.debug_file),
    field("Debug id (exact)", "debug_id", filters.debug_id),
    field("Code file contains", "code_file", filters.code_file),
    field("Since (YYYY-MM-DD)", "since", filters.since),
    el(
      "label",
      {},
      "Sort",
      el(
        "select",
        { name: "sort" },
        ["modified_at", "created_at", "count"].map((s) => el("option", { value: s, selected: (filters.sort || "modified_at") === s }, s.replace("_at", ""))),
      ),
    ),
    el("button", { type: "submit" }, "Filter"),
  );
  const results = el("div", {}, "Loading…");
  render(el("h2", {}, "Missing symbols"), form, results);
  try {
    const data = await call(API.missing, {}, { ...filters, page });
    const rows = data.missing_symbols.map((m) =>
      el(
        "tr",
        {},
        el("td", {}, el("span", { class: "mono" }, `${m.debug_file}/${m.debug_id}/${m.symbols_file}`)),
        el("td", {}, m.code_file || "—", m.code_id ? el("div", { class: "mono muted" }, m.code_id) : null),
        el("td", { class: "num" }, String(m.count)),
        el("td", {}, formatDate(m.created_at)),
        el("td", {}, formatDate(m.modified_at)),
        el("td", {}, hashLink("/lookup", { debug_file: m.debug_file, debug_id: m.debug_id, symbols_file: m.symbols_file }, "look up")),
      ),
    );
    results.replaceChildren(
      table(["Symbol", "Code file / id", { label: "Count", num: true }, "First seen", "Last seen", ""], rows),
      pager("/missing", filters, page, data.has_next, data.total),
    );
  } catch (err) {
    results.replaceChildren(errorBox(err));
  }
}

async function lookupPage(query) {
  const form = el(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        location.hash = hashLink("/lookup", formValues(form)).getAttribute("href");
      },
    },
    field("Debug file", "debug_file", query.debug_file, { required: true, placeholder: "xul.pdb" }),
    field("Debug id", "debug_id", query.debug_id, { required: true, pattern: "[0-9A-Fa-f]+", placeholder: "44E4EC8C2F41492B9369D6B9A059577C2" }),
    field("Symbols file (optional)", "symbols_file", query.symbols_file, { placeholder: "xul.sym" }),
    el("label", { class: "inline" }, el("input", { type: "checkbox", name: "try", value: "1", checked: Boolean(query.try) }), "try symbols"),
    el("button", { type: "submit" }, "Look up"),
  );
  const results = el("div", {});
  render(el("h2", {}, "Symbol lookup"), form, results);
  if (!query.debug_file || !query.debug_id) return;
  if (!/^[0-9A-Fa-f]+$/.test(query.debug_id)) {
    results.replaceChildren(errorBox("The debug id must be hexadecimal."));
    return;
  }
  const params = {
    debug_file: query.debug_file,
    debug_id: query.debug_id.toUpperCase(),
    symbols_file: query.symbols_file || symbolsFilename(query.debug_file),
  };
  const downloadUrl = url(API.download, params, query.try ? { try: "1" } : null);
  const download = el("p", {}, "Checking ", el("span", { class: "mono" }, downloadUrl), "…");
  const info = el("div", {}, "Looking up syminfo…");
  results.replaceChildren(el("h3", {}, "Download"), download, el("h3", {}, "Syminfo"), info);
  try {
    const resp = await fetch(downloadUrl, { method: API.download.method, credentials: "omit" });
    download.replaceChildren(
      resp.ok ? el("span", { class: "found" }, "Found") : el("span", { class: "notfound" }, resp.status === 404 ? "Not found" : `Error ${resp.status}`),
      " ",
      resp.ok ? el("a", { href: downloadUrl, class: "mono" }, downloadUrl) : el("span", { class: "mono" }, downloadUrl),
    );
  } catch (err) {
    download.replaceChildren(errorBox(err));
  }
  try {
    const data = await call(API.syminfo, params);
    info.replaceChildren(
      definitions([
        ["Debug file", data.debug_filename],
        ["Debug id", el("span", { class: "mono" }, data.debug_id)],
        ["Code file", data.code_file || "—"],
        ["Code id", data.code_id ? el("span", { class: "mono" }, data.code_id) : "—"],
        ["Generator", data.generator || "—"],
        ["URL", el("span", { class: "mono" }, data.url)],
      ]),
    );
  } catch (err) {
    info.replaceChildren(err instanceof ApiError && err.status === 404 ? el("p", { class: "notfound" }, "No syminfo for this debug file and id.") : errorBox(err));
  }
}

// ---- files (issue 12) -------------------------------------------------------

const FILE_FILTERS = ["key", "size", "created_at", "bucket_name", "upload_type"];

async function filesPage(query) {
  const page = Number(query.page || 1);
  const form = el(
    "form",
    { onsubmit: (event) => { event.preventDefault(); location.hash = hashLink("/files", formValues(form)).getAttribute("href"); } },
    field("Key contains", "key", query.key),
    field("Size", "size", query.size, { placeholder: ">1mb" }),
    field("Uploaded", "created_at", query.created_at, { placeholder: "today, >=2026-11-01" }),
    el("label", {}, "Type", el("select", { name: "upload_type" },
      ["", "regular", "try"].map((t) => el("option", { value: t, selected: (query.upload_type || "") === t }, t || "any")))),
    el("button", { type: "submit" }, "Filter"),
  );
  render(el("h2", {}, "Files"), form, el("p", {}, "Loading…"));
  try {
    const data = await call(API.files, {}, { ...pick(query, FILE_FILTERS), page });
    const rows = data.files.map((f) => el("tr", {},
      el("td", {}, hashLink(`/files/${encodeURIComponent(f.id)}`, null, el("span", { class: "mono" }, f.key))),
      el("td", { class: "num" }, formatSize(f.size)),
      el("td", {}, f.upload ? hashLink(`/uploads/${encodeURIComponent(f.upload.id)}`, null, `${f.upload.id}`) : "—"),
      el("td", {}, f.upload && f.upload.try_symbols ? "try" : "regular"),
      el("td", {}, formatDate(f.created_at)),
    ));
    render(el("h2", {}, "Files"), form,
      table(["Key", { label: "Size", num: true }, "Upload", "Type", "Uploaded"], rows),
      pager("/files", pick(query, FILE_FILTERS), page, data.has_next, data.total));
  } catch (err) {
    render(el("h2", {}, "Files"), form, errorBox(err));
  }
}

async function filePage(id) {
  render(el("h2", {}, `File ${id}`), el("p", {}, "Loading…"));
  try {
    const { file } = await call(API.file, { id });
    const parts = file.key.split("/").slice(-3);
    render(
      el("h2", {}, `File ${file.id}`),
      definitions([
        ["Key", el("span", { class: "mono" }, file.key)],
        ["Size", formatSize(file.size)],
        ["New/update", file.update ? "update" : "new"],
        ["Compressed", file.compressed ? "yes" : "no"],
        ["Debug file / id", `${file.debug_filename || "—"} ${file.debug_id || ""}`],
        ["Code file / id", `${file.code_file || "—"} ${file.code_id || ""}`],
        ["Generator", file.generator || "—"],
        ["Uploaded", formatDate(file.created_at)],
        ["Upload", file.upload ? hashLink(`/uploads/${encodeURIComponent(file.upload.id)}`, null, `${file.upload.id} by ${file.upload.user.email}`) : "—"],
      ]),
      el("p", {}, hashLink("/lookup", { debug_file: parts[0], debug_id: parts[1], symbols_file: parts[2], try: file.upload && file.upload.try_symbols ? "1" : "" }, "Look it up"),
        " · ", hashLink("/files", null, "← All files")),
    );
  } catch (err) {
    render(el("h2", {}, `File ${id}`), errorBox(err));
  }
}

function pick(query, names) {
  const out = {};
  for (const name of names) if (query[name]) out[name] = query[name];
  return out;
}

// ---- upload now (issue 12) --------------------------------------------------

async function uploadNowPage() {
  const status = el("div", { "aria-live": "polite" });
  const progress = el("progress", { max: "100", value: "0", hidden: true });
  const form = el(
    "form",
    { class: "stack", onsubmit: (event) => { event.preventDefault(); sendZip(form, progress, status); } },
    el("label", {}, "Symbols zip (debug_file/debug_id/file.sym paths)", el("input", { type: "file", name: "file", accept: ".zip,application/zip", required: true })),
    el("label", { class: "inline" }, el("input", { type: "checkbox", name: "try" }), " Try symbols"),
    el("button", { type: "submit" }, "Upload"),
  );
  render(el("h2", {}, "Upload now"),
    el("p", {}, "Upload a zip from this browser, with your session (or a pasted token). From a build system, use the CLI or curl: see ",
      el("a", { href: "/help#upload" }, "Help"), "."),
    form, progress, status);
}

async function sendZip(form, progress, status) {
  const file = form.elements.file.files[0];
  if (!file) return;
  const headers = {};
  const token = getToken();
  if (token) {
    headers["Auth-Token"] = token;
  } else {
    const auth = await call(API.session);
    if (!auth.user) {
      status.replaceChildren(el("p", { class: "error", role: "alert" }, "Log in first (or paste an API token)."));
      return;
    }
    headers["X-CSRF-Token"] = auth.csrf_token;
  }
  const body = new FormData();
  if (form.elements.try.checked) body.append("try", "true");
  body.append(file.name, file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open(API.uploadZip.method, url(API.uploadZip, {}, {}));
  for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
  progress.hidden = false;
  progress.value = 0;
  status.replaceChildren(el("p", {}, `Uploading ${file.name}…`));
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) progress.value = Math.round((100 * event.loaded) / event.total);
  });
  xhr.addEventListener("load", () => {
    let answer = null;
    try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = null; }
    if (xhr.status >= 200 && xhr.status < 300 && answer && answer.upload) {
      progress.value = 100;
      status.replaceChildren(el("p", { class: "found" }, "Uploaded: ",
        hashLink(`/uploads/${encodeURIComponent(answer.upload.id)}`, null, `upload ${answer.upload.id}`)));
    } else {
      const message = (answer && answer.error) || xhr.statusText;
      status.replaceChildren(el("p", { class: "error", role: "alert" }, `${xhr.status}: ${message}`));
    }
  });
  xhr.addEventListener("error", () => {
    status.replaceChildren(el("p", { class: "error", role: "alert" }, "The upload failed (network error)."));
  });
  xhr.send(body);
}

// ---- routing ---------------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?", 2);
  const query = {};
  for (const [key, value] of new URLSearchParams(qs || "").entries()) query[key] = value;
  return { path: path || "/", query };
}

function route() {
  stopRefresh();
  const { path, query } = parseHash();
  for (const link of document.querySelectorAll("nav a[href^='#']")) {
    const target = link.getAttribute("href").slice(1);
    link.classList.toggle("active", path === target || (target !== "/" && path.startsWith(target + "/")));
  }
  let match;
  if (path === "/") return tokenPage();
  if (path === "/uploads") return uploadsPage(query);
  if ((match = path.match(/^\/uploads\/(\d+)$/))) return uploadPage(match[1]);
  if (path === "/stats") return statsPage();
  if (path === "/files") return filesPage(query);
  if ((match = path.match(/^\/files\/(\d+)$/))) return filePage(match[1]);
  if (path === "/upload") return uploadNowPage();
  if (path === "/missing") return missingPage(query);
  if (path === "/lookup") return lookupPage(query);
  render(el("h2", {}, "Not found"), el("p", {}, "No such page. "), hashLink("/", null, "Start here"));
  return null;
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  // "#main" is not a route here: the skip link moves the focus itself.
  document.querySelector("a.skip").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
  route();
  if (location.hash.replace(/^#/, "") !== "" && location.hash !== "#/") {
    refreshWhoami().catch(() => {});
  }
});
