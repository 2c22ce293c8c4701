// The web page: shortens a link through the JSON API and shows a link's stats.
//
// Text that comes from the server, from a form or from the address bar reaches the
// page only through textContent and attributes, never as markup: a destination URL
// or an alias is data, whatever characters it holds. The Content-Security-Policy
// allows no inline script or style, so nothing here relies on either.
"use strict";

(() => {
  const KEY_STORE = "shortener.api-key";
  const RECENT_STORE = "shortener.recent";
  const RECENT_MAX = 10;
  const REFRESH_MS = 10000;
  const HOUR_MS = 3600 * 1000;
  const DAY_MS = 24 * HOUR_MS;
  const RANGES = {
    "24h": { span: DAY_MS, granularity: "hour" },
    "7d": { span: 7 * DAY_MS, granularity: "hour" },
    "30d": { span: 30 * DAY_MS, granularity: "day" },
    "90d": { span: 90 * DAY_MS, granularity: "day" },
  };
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  // Storage may be switched off or full: the page then works without remembering.
  const store = {
    get(name) {
      try {
        return sessionStorage.getItem(name);
      } catch {
        return null;
      }
    },
    set(name, value) {
      try {
        sessionStorage.setItem(name, value);
      } catch {
        // Not remembered past this page view.
      }
    },
    remove(name) {
      try {
        sessionStorage.removeItem(name);
      } catch {
        // Nothing was stored.
      }
    },
  };

  /** An element with attributes (`text` sets its text) and children (strings become text). */
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "text") {
        node.textContent = value;
      } else {
        node.setAttribute(name, value);
      }
    }
    node.append(...children);
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    return node;
  }

  /** `value` as an http(s) address for an href, or null: never a `javascript:` link. */
  function safeHref(value) {
    try {
      const url = new URL(String(value), location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function setLink(anchor, address, text) {
    anchor.textContent = text;
    const href = safeHref(address);
    if (href) {
      anchor.setAttribute("href", href);
    } else {
      anchor.removeAttribute("href");
    }
  }

  /** `#/stats/CODE`, or `#/stats/DOMAIN/CODE` for a link on a branded domain. */
  const statsHash = (code, domain) =>
    "#/stats/" + (domain ? encodeURIComponent(domain) + "/" : "") + encodeURIComponent(code);
  /** The query naming a link's branded domain, if it has one. */
  const onDomain = (domain) => (domain ? "domain=" + encodeURIComponent(domain) : "");
  const number = (n) => (Number.isFinite(n) ? n.toLocaleString() : "–");

  function apiKey() {
    return (store.get(KEY_STORE) || "").trim();
  }

  /** Fetches `path` on this origin with the API key, if one is set. */
  async function call(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    const key = apiKey();
    if (key) {
      headers.Authorization = "Bearer " + key;
    }
    return fetch(path, { ...options, headers, cache: "no-store", credentials: "same-origin" });
  }

  /** A JSON call: `{ ok: true, body }` or `{ ok: false, status, problem }`. */
  async function request(path, options) {
    let response;
    try {
      response = await call(path, options);
    } catch (error) {
      return {
        ok: false,
        status: 0,
        problem: { title: "The server could not be reached", detail: String(error) },
      };
    }
    const text = await response.text().catch(() => "");
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (response.ok) {
      return { ok: true, status: response.status, body };
    }
    const problem =
      body && typeof body === "object" && typeof body.title === "string"
        ? body
        : { title: `The server answered ${response.status}`, detail: "" };
    return { ok: false, status: response.status, problem };
  }

  /** Shows an RFC 9457 problem in `box`: its title, and its detail or field errors. */
  function showProblem(box, problem) {
    box.querySelector(".problem-title").textContent =
      typeof problem.title === "string" && problem.title ? problem.title : "Something went wrong";
    const detail = typeof problem.detail === "string" ? problem.detail : "";
    box.querySelector(".problem-detail").textContent = detail;
    const fields = box.querySelector(".problem-fields");
    fields.replaceChildren();
    // The API's detail already lists every field error; the list is for problems without one.
    if (!detail && Array.isArray(problem.errors)) {
      for (const error of problem.errors) {
        if (error && typeof error.field === "string" && typeof error.message === "string") {
          fields.append(el("li", {}, el("code", { text: error.field }), ": " + error.message));
        }
      }
    }
    box.hidden = false;
  }

  // ---- The form ----------------------------------------------------------------

  async function onCreate(event) {
    event.preventDefault();
    const errorBox = $("create-error");
    errorBox.hidden = true;
    const body = { url: $("url").value.trim() };
    const alias = $("alias").value.trim();
    if (alias) {
      body.alias = alias;
    }
    const domain = $("domain").value;
    if (domain) {
      body.domain = domain;
    }
    const expires = $("expires").value;
    if (expires) {
      // A datetime-local value has no offset, so Date reads it as local time.
      const at = new Date(expires);
      if (Number.isNaN(at.getTime())) {
        showProblem(errorBox, { title: "Invalid link", detail: "expires_at: not a date and time" });
        return;
      }
      body.expires_at = at.toISOString();
    }
    const password = $("link-password").value;
    if (password) {
      body.password = password;
    }
    const button = $("create-button");
    button.disabled = true;
    const answer = await request("/api/v1/links", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    button.disabled = false;
    if (!answer.ok) {
      showProblem(errorBox, answer.problem);
      if (answer.status === 401) {
        $("key-box").open = true;
      }
      return;
    }
    const link = answer.body;
    $("link-password").value = "";
    remember(link);
    showResult(link);
    renderRecent();
  }

  function formatTime(value) {
    const at = new Date(value);
    return Number.isNaN(at.getTime()) ? String(value) : at.toLocaleString();
  }

  function showResult(link) {
    setLink($("short-link"), link.short_url, link.short_url);
    $("result-url").textContent = link.url;
    $("result-code").textContent = link.code;
    $("result-expires").textContent = link.expires_at ? formatTime(link.expires_at) : "never";
    $("result-password").textContent = link.password_protected ? "asked before redirecting" : "none";
    // The preview (`/{code}+`) shows where the link goes without going there.
    setLink($("result-preview"), link.short_url + "+", "Preview");
    const domain = branded(link);
    $("result-stats").setAttribute("href", statsHash(link.code, domain));
    $("copy-status").textContent = "";
    $("result").hidden = false;
    loadQr(link.code, domain);
  }

  let qrRequest = 0;

  /** The QR image, fetched with the key and shown as a data: URL (the CSP allows no blob:). */
  async function loadQr(code, domain) {
    const image = $("qr-image");
    const note = $("qr-note");
    const mine = ++qrRequest;
    image.hidden = true;
    image.removeAttribute("src");
    note.hidden = true;
    let response;
    try {
      const query = ["size=4", onDomain(domain)].filter(Boolean).join("&");
      response = await call(`/api/v1/links/${encodeURIComponent(code)}/qr?${query}`, {
        headers: { Accept: "image/png" },
      });
    } catch {
      response = null;
    }
    if (mine !== qrRequest) {
      return;
    }
    if (!response || !response.ok) {
      const ownerOnly = response && (response.status === 401 || response.status === 404);
      note.textContent = ownerOnly
        ? "QR codes and stats are shown to the owner of a link: create it with an API key to see them."
        : "The QR code could not be loaded.";
      note.hidden = false;
      return;
    }
    const blob = await response.blob();
    if (blob.type !== "image/png") {
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      if (mine === qrRequest && typeof reader.result === "string") {
        image.src = reader.result;
        image.hidden = false;
      }
    };
    reader.readAsDataURL(blob);
  }

  async function copyShortLink() {
    const link = $("short-link");
    const text = link.textContent;
    let copied = false;
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        copied = true;
      } catch {
        copied = false;
      }
    }
    if (!copied) {
      // Plain http on a public host has no Clipboard API: copy the selected link
      // text the old way, and leave it selected for Ctrl+C if even that fails.
      const selection = window.getSelection();
      selection.selectAllChildren(link);
      try {
        copied = document.execCommand("copy");
      } catch {
        copied = false;
      }
      if (copied) {
        selection.removeAllRanges();
      }
    }
    $("copy-status").textContent = copied ? "Copied" : "Selected: press Ctrl+C to copy";
  }

  // ---- Links made in this tab --------------------------------------------------

  function recent() {
    let list;
    try {
      list = JSON.parse(store.get(RECENT_STORE) || "[]");
    } catch {
      list = [];
    }
    return Array.isArray(list)
      ? list
          .filter((l) => l && ["code", "short_url", "url"].every((k) => typeof l[k] === "string"))
          .map((l) => ({ ...l, domain: typeof l.domain === "string" ? l.domain : "" }))
      : [];
  }

  /** The link's branded domain, or "" on the default domain (known from the list). */
  function branded(link) {
    return typeof link.domain === "string" && domainNames.includes(link.domain) ? link.domain : "";
  }

  function remember(link) {
    const domain = branded(link);
    const entry = { code: link.code, short_url: link.short_url, url: link.url, domain };
    const same = (l) => l.code === link.code && (l.domain || "") === domain;
    const list = [entry, ...recent().filter((l) => !same(l))].slice(0, RECENT_MAX);
    store.set(RECENT_STORE, JSON.stringify(list));
  }

  function renderRecent() {
    const list = recent();
    const ul = $("recent-list");
    ul.replaceChildren();
    for (const link of list) {
      const short = el("a", { class: "short-small" });
      setLink(short, link.short_url, link.short_url);
      ul.append(
        el(
          "li",
          {},
          short,
          el("span", { class: "url", text: link.url }),
          el("a", { href: statsHash(link.code, link.domain || ""), text: "Stats" }),
        ),
      );
    }
    $("recent").hidden = list.length === 0;
  }

  // ---- The API key ---------------------------------------------------------------

  function showKeyState() {
    $("key-state").textContent = apiKey() ? "(in use)" : "(optional)";
  }

  function onKeyInput() {
    const key = $("api-key").value.trim();
    if (key) {
      store.set(KEY_STORE, key);
    } else {
      store.remove(KEY_STORE);
    }
    showKeyState();
  }

  function forgetKey() {
    $("api-key").value = "";
    store.remove(KEY_STORE);
    showKeyState();
    loadDomains();
  }

  // ---- Domains -------------------------------------------------------------------

  /** The caller's branded domains, as the picker lists them. */
  let domainNames = [];

  /** Fills the domain picker with the key's domains; hidden when there are none. */
  async function loadDomains() {
    const select = $("domain");
    const chosen = select.value;
    const answer = apiKey() ? await request("/api/v1/domains") : { ok: false };
    const items = answer.ok && answer.body && Array.isArray(answer.body.items) ? answer.body.items : [];
    domainNames = items.map((d) => d && d.name).filter((n) => typeof n === "string");
    select.replaceChildren(el("option", { value: "", text: "Default domain" }));
    for (const name of domainNames) {
      select.append(el("option", { value: name, text: name }));
    }
    select.value = domainNames.includes(chosen) ? chosen : "";
    $("domain-field").hidden = domainNames.length === 0;
  }

  // ---- Stats ---------------------------------------------------------------------

  let statsCode = null;
  let statsDomain = "";
  let statsRange = "24h";
  let statsRequest = 0;
  let refreshTimer = null;

  function showStats(code, domain) {
    $("create-view").hidden = true;
    $("stats-view").hidden = false;
    if (code !== statsCode || domain !== statsDomain) {
      statsCode = code;
      statsDomain = domain;
      clearStats();
    }
    $("stats-code").textContent = domain ? `${domain}/${code}` : code;
    const known = recent().find((l) => l.code === code && (l.domain || "") === domain);
    $("stats-target").textContent = known ? `${known.short_url} → ${known.url}` : "";
    document.title = `Stats for ${code} · Shortener`;
    loadStats();
    if (refreshTimer === null) {
      refreshTimer = window.setInterval(() => {
        if (document.visibilityState === "visible") {
          loadStats();
        }
      }, REFRESH_MS);
    }
  }

  function clearStats() {
    for (const id of ["stat-total", "stat-unique", "stat-bots"]) {
      $(id).textContent = "–";
    }
    $("chart").replaceChildren();
    $("chart-caption").textContent = "";
    $("stats-updated").textContent = "";
  }

  async function loadStats() {
    const mine = ++statsRequest;
    const range = RANGES[statsRange];
    const from = new Date(Date.now() - range.span).toISOString();
    const query = new URLSearchParams({ granularity: range.granularity, from });
    if (statsDomain) {
      query.set("domain", statsDomain);
    }
    const answer = await request(`/api/v1/links/${encodeURIComponent(statsCode)}/stats?${query}`);
    if (mine !== statsRequest || statsCode === null) {
      return;
    }
    const errorBox = $("stats-error");
    if (!answer.ok) {
      showProblem(errorBox, answer.problem);
      $("stats-key-hint").hidden = answer.status !== 401 && answer.status !== 404;
      $("stats-body").hidden = true;
      return;
    }
    errorBox.hidden = true;
    $("stats-body").hidden = false;
    renderStats(answer.body || {});
  }

  function renderStats(stats) {
    $("stat-total").textContent = number(stats.total);
    $("stat-unique").textContent = number(stats.unique_visitors);
    $("stat-bots").textContent = number(stats.bots);
    drawChart(stats);
    fillTable("table-referrers", stats.referrers, (v) => v);
    fillTable("table-browsers", stats.browsers, (v) => v);
    fillTable("table-countries", stats.countries, countryName);
    fillTable("table-os", stats.os, (v) => v);
    fillTable("table-devices", stats.devices, (v) => v);
    $("stats-updated").textContent =
      `Updated ${new Date().toLocaleTimeString()}. New clicks show up within a few seconds.`;
  }

  let regionNames = null;
  try {
    regionNames = new Intl.DisplayNames(undefined, { type: "region" });
  } catch {
    regionNames = null;
  }

  function countryName(value) {
    if (regionNames && /^[A-Z]{2}$/.test(value)) {
      try {
        const name = regionNames.of(value);
        if (name && name !== value) {
          return `${name} (${value})`;
        }
      } catch {
        // Not a region Intl knows: show the code itself.
      }
    }
    return value;
  }

  function fillTable(id, rows, label) {
    const table = $(id);
    table.replaceChildren();
    const valid = Array.isArray(rows)
      ? rows.filter((r) => r && typeof r.value === "string" && Number.isFinite(r.clicks))
      : [];
    if (valid.length === 0) {
      table.append(el("tr", {}, el("td", { class: "none", text: "No clicks yet" })));
      return;
    }
    const total = valid.reduce((sum, r) => sum + r.clicks, 0) || 1;
    valid.sort((a, b) => b.clicks - a.clicks || a.value.localeCompare(b.value));
    for (const row of valid.slice(0, 10)) {
      const share = el("meter", { min: "0", max: String(total), value: String(row.clicks) });
      table.append(
        el(
          "tr",
          {},
          el("td", { class: "value", text: label(row.value) }),
          el("td", { class: "share" }, share),
          el("td", { class: "count", text: number(row.clicks) }),
        ),
      );
    }
  }

  /** The smallest of 1, 2, 5, 10, 20, 50… that is at least `x`. */
  function niceStep(x) {
    if (x <= 1) {
      return 1;
    }
    const power = 10 ** Math.floor(Math.log10(x));
    for (const m of [1, 2, 5, 10]) {
      if (m * power >= x) {
        return m * power;
      }
    }
    return 10 * power;
  }

  function timeLabel(date, granularity) {
    return granularity === "hour"
      ? date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })
      : date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }

  /** A bar per bucket, drawn as SVG elements with four whole-number grid lines. */
  function drawChart(stats) {
    const chart = $("chart");
    chart.replaceChildren();
    const width = 800;
    const height = 200;
    const left = 48;
    const right = 12;
    const top = 14;
    const bottom = 32;
    const granularity = stats.granularity === "hour" ? "hour" : "day";
    const points = (Array.isArray(stats.series) ? stats.series : [])
      .map((p) => ({ t: new Date(p && p.t), clicks: p && p.clicks }))
      .filter((p) => !Number.isNaN(p.t.getTime()) && Number.isFinite(p.clicks));
    const max = points.reduce((m, p) => Math.max(m, p.clicks), 0);
    const step = niceStep(max / 4);
    const ceiling = step * 4;
    const plotHeight = height - top - bottom;
    const base = top + plotHeight;
    const y = (value) => base - (value / ceiling) * plotHeight;

    for (let i = 0; i <= 4; i++) {
      const value = step * i;
      chart.append(svg("line", { class: "grid", x1: left, x2: width - right, y1: y(value), y2: y(value) }));
      const tick = svg("text", { class: "axis", x: left - 8, y: y(value) + 4, "text-anchor": "end" });
      tick.textContent = value.toLocaleString();
      chart.append(tick);
    }

    const slot = points.length ? (width - left - right) / points.length : 0;
    const barWidth = Math.max(1, slot * 0.78);
    points.forEach((p, i) => {
      const x = left + i * slot + (slot - barWidth) / 2;
      const group = svg("g", {});
      const bar = svg("rect", {
        class: "bar",
        x: x.toFixed(2),
        y: y(p.clicks).toFixed(2),
        width: barWidth.toFixed(2),
        height: Math.max(0, base - y(p.clicks)).toFixed(2),
        rx: Math.min(3, barWidth / 3).toFixed(2),
      });
      const title = svg("title", {});
      title.textContent = `${timeLabel(p.t, granularity)}: ${number(p.clicks)} ${p.clicks === 1 ? "click" : "clicks"}`;
      bar.append(title);
      group.append(bar);
      chart.append(group);
    });

    if (points.length) {
      const marks = [0, Math.floor((points.length - 1) / 2), points.length - 1];
      [...new Set(marks)].forEach((index, k, all) => {
        const anchor = all.length === 1 ? "middle" : k === 0 ? "start" : k === all.length - 1 ? "end" : "middle";
        const x =
          anchor === "start" ? left : anchor === "end" ? width - right : left + (index + 0.5) * slot;
        const label = svg("text", { class: "axis", x, y: height - 10, "text-anchor": anchor });
        label.textContent = timeLabel(points[index].t, granularity);
        chart.append(label);
      });
    }
    if (max === 0) {
      const empty = svg("text", { class: "empty", x: (left + width - right) / 2, y: top + plotHeight / 2, "text-anchor": "middle" });
      empty.textContent = "No clicks in this range yet";
      chart.append(empty);
    }
    $("chart-caption").textContent = points.length
      ? `Clicks per ${granularity}, ${timeLabel(points[0].t, granularity)} to ${timeLabel(points[points.length - 1].t, granularity)}`
      : "";
  }

  function selectRange(event) {
    const button = event.target.closest("button[data-range]");
    if (!button || !(button.dataset.range in RANGES)) {
      return;
    }
    statsRange = button.dataset.range;
    for (const other of document.querySelectorAll("button[data-range]")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    loadStats();
  }

  // ---- Views ---------------------------------------------------------------------

  function showCreate() {
    statsCode = null;
    if (refreshTimer !== null) {
      window.clearInterval(refreshTimer);
      refreshTimer = null;
    }
    $("stats-view").hidden = true;
    $("create-view").hidden = false;
    document.title = "Shortener";
  }

  /** `#/stats/[DOMAIN/]CODE` is a link's stats; anything else is the form. */
  function route() {
    const match = /^#\/stats\/(.+)$/.exec(location.hash);
    if (!match) {
      showCreate();
      return;
    }
    // Codes and domain names never hold a `/`: `DOMAIN/CODE` splits at the last one.
    const parts = match[1].split("/");
    const decode = (text) => {
      try {
        return decodeURIComponent(text);
      } catch {
        return text;
      }
    };
    const code = decode(parts.pop());
    showStats(code, parts.length > 0 ? decode(parts.join("/")) : "");
  }

  function start() {
    $("create-form").addEventListener("submit", onCreate);
    $("copy").addEventListener("click", copyShortLink);
    $("api-key").value = apiKey();
    $("api-key").addEventListener("input", onKeyInput);
    $("api-key").addEventListener("change", loadDomains);
    $("forget-key").addEventListener("click", forgetKey);
    document.querySelector(".ranges").addEventListener("click", selectRange);
    $("refresh").addEventListener("click", () => loadStats());
    window.addEventListener("hashchange", route);
    showKeyState();
    renderRecent();
    route();
    loadDomains().finally(() => {
      document.documentElement.dataset.ready = "true";
    });
  }

  start();
})();
