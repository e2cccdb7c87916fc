// OrderShop live UI: incoming events from the WebSocket push (newest first)
// and the current state from GET /report?limit=N: the first page of every
// list, with a "more" button per list that follows its next cursor on the
// list's own route, so the pane stays fast however much the shop has sold.
// No framework, no inline code, and data only ever goes into the page as
// text.
"use strict";

(function () {
  const MAX_EVENTS = 500;
  const PAGE = 50;
  const COLLECTIONS = ["customers", "products", "inventory", "carts", "orders", "billings", "shippings"];
  // Each list's own route, where its next pages come from.
  const ROUTES = {
    customers: "/customers",
    products: "/products",
    inventory: "/inventories",
    carts: "/carts",
    orders: "/orders",
    billings: "/billings",
    shippings: "/shippings",
    mails: "/mails/sent",
  };

  const $ = (id) => document.getElementById(id);
  const els = {
    status: $("status"),
    events: $("events"),
    empty: $("events-empty"),
    count: $("event-count"),
    filter: $("event-filter"),
    reset: $("reset"),
    state: $("state"),
    meta: $("state-meta"),
    refresh: $("refresh"),
    auto: $("auto-refresh"),
  };

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(([key, value]) => {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    });
    (children || []).forEach((child) => child && node.appendChild(child));
    return node;
  }

  function clock(ms) {
    const date = ms ? new Date(ms) : new Date();
    return date.toLocaleTimeString([], { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
  }

  function short(id) {
    return typeof id === "string" && id.length > 13 ? id.slice(0, 8) + "…" : String(id);
  }

  // ---- incoming events ----------------------------------------------------

  let received = 0;

  function verb(action) {
    const match = /_(created|updated|deleted|sent)$/.exec(action || "");
    return match ? match[1] : "other";
  }

  function summary(action, data) {
    if (!data || typeof data !== "object") return String(data);
    if (action === "mail_sent") return "to " + (data.recipient || "?");
    const parts = [];
    if (data.entity_id) parts.push(short(data.entity_id));
    ["name", "email", "status", "amount", "price", "delivered"].forEach((field) => {
      if (data[field] !== undefined) parts.push(field + ": " + data[field]);
    });
    if (Array.isArray(data.product_ids)) parts.push(data.product_ids.length + " item(s)");
    return parts.join(" · ");
  }

  function matchesFilter(item) {
    const wanted = els.filter.value.trim().toLowerCase();
    return !wanted || item.dataset.search.includes(wanted);
  }

  function addEvent(message) {
    const action = message.action || "unknown";
    const detail = JSON.stringify(message.data, null, 2);
    const item = el("li", { class: "event " + verb(action), "data-action": action }, [
      el("div", { class: "event-line" }, [
        el("time", { class: "when", text: clock(message.ts) }),
        el("span", { class: "badge", text: action }),
        el("span", { class: "summary", text: summary(action, message.data) }),
      ]),
      el("details", {}, [el("summary", { text: "data" }), el("pre", { text: detail })]),
    ]);
    item.dataset.search = (action + " " + detail).toLowerCase();
    item.hidden = !matchesFilter(item);
    els.events.insertBefore(item, els.events.firstChild);
    while (els.events.children.length > MAX_EVENTS) els.events.removeChild(els.events.lastChild);
    received += 1;
    els.count.textContent = String(received);
    els.empty.hidden = true;
  }

  els.reset.addEventListener("click", () => {
    els.events.replaceChildren();
    received = 0;
    els.count.textContent = "0";
    els.empty.hidden = false;
  });

  els.filter.addEventListener("input", () => {
    Array.from(els.events.children).forEach((item) => {
      item.hidden = !matchesFilter(item);
    });
  });

  // ---- current state ------------------------------------------------------

  function cell(value, column) {
    if (value === null || value === undefined) return el("td", { class: "none", text: "—" });
    if (Array.isArray(value)) return el("td", { text: value.map(short).join(", "), title: value.join(", ") });
    if (typeof value === "object") return el("td", { text: JSON.stringify(value) });
    const text = String(value);
    if (column === "status") return el("td", {}, [el("span", { class: "pill " + text.toLowerCase(), text })]);
    const isId = /^[0-9a-f]{8}-[0-9a-f]{4}-/.test(text);
    return el("td", { class: isId ? "id" : "", text: isId ? short(text) : text, title: text });
  }

  function table(rows) {
    const columns = ["entity_id"];
    rows.forEach((row) => Object.keys(row).forEach((key) => columns.includes(key) || columns.push(key)));
    const head = el("tr", {}, columns.map((c) => el("th", { text: c === "entity_id" ? "id" : c })));
    const body = rows.map((row) => el("tr", {}, columns.map((c) => cell(row[c], c))));
    return el("table", {}, [el("thead", {}, [head]), el("tbody", {}, body)]);
  }

  function mailRows(mails) {
    return mails.map((entry) => {
      const event = Array.isArray(entry) ? entry[1] || {} : {};
      let data = {};
      try {
        data = JSON.parse(event.event_data || "{}");
      } catch (_) {
        data = { message: String(event.event_data) };
      }
      return el("li", { class: "mail" }, [
        el("div", { class: "mail-to", text: "To " + (data.recipient || "?") }),
        el("pre", { text: data.message || "" }),
      ]);
    });
  }

  // A gateway started with API tokens answers 401 without one: ask once,
  // keep it for this tab only (sessionStorage), send it as a bearer token.
  const TOKEN_KEY = "ordershop.token";
  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }
  function askToken() {
    const given = window.prompt("This OrderShop needs an API token:");
    if (given) sessionStorage.setItem(TOKEN_KEY, given.trim());
    return Boolean(given);
  }

  async function getJson(path, asked) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    const response = await fetch(path, { headers, cache: "no-store" });
    if (response.status === 401 && !asked && askToken()) return getJson(path, true);
    const body = await response.json().catch(() => ({ error: "the answer was not JSON" }));
    if (!response.ok || body.error) throw new Error(body.error || "HTTP " + response.status);
    return body;
  }

  // One list of the state pane: the rows loaded so far and the cursor of
  // the next page.
  function collection(name, rows, next, total) {
    const section = el("section", { class: "collection", "data-name": name });
    const count = el("span", { class: "count" });
    const body = el("div", { class: "rows" });
    const more = el("button", { type: "button", class: "more" });
    section.append(el("h3", {}, [document.createTextNode(name + " "), count]), body, more);
    let shown = rows;
    let cursor = next;
    function draw() {
      count.textContent = total != null && total !== shown.length ? shown.length + " of " + total : String(shown.length);
      if (!shown.length) body.replaceChildren(el("p", { class: "empty", text: "none" }));
      else if (name === "mails") body.replaceChildren(el("ol", { class: "mails" }, mailRows(shown)));
      else body.replaceChildren(table(shown));
      more.hidden = !cursor;
      more.textContent = "more";
    }
    more.addEventListener("click", async () => {
      more.disabled = true;
      try {
        const page = await getJson(ROUTES[name] + "?limit=" + PAGE + "&after=" + encodeURIComponent(cursor));
        shown = shown.concat(Array.isArray(page.result) ? page.result : []);
        cursor = page.next;
        draw();
      } catch (err) {
        more.textContent = "more (failed: " + err.message + ")";
      } finally {
        more.disabled = false;
      }
    });
    draw();
    return section;
  }

  function renderState(report) {
    const result = report.result || {};
    const next = report.next || {};
    const total = report.total || {};
    const sections = COLLECTIONS.concat(["mails"]).map((name) =>
      collection(name, Array.isArray(result[name]) ? result[name] : [], next[name], total[name]),
    );
    els.state.replaceChildren(...sections);
  }

  let loading = null;
  let again = false;

  async function refresh() {
    if (loading) {
      again = true;
      return loading;
    }
    els.refresh.disabled = true;
    loading = (async () => {
      try {
        renderState(await getJson("/report?limit=" + PAGE));
        els.state.dataset.state = "loaded";
        els.meta.textContent = "Updated " + clock();
        els.meta.classList.remove("error");
      } catch (err) {
        els.state.dataset.state = "error";
        els.meta.textContent = "Could not load the state: " + err.message;
        els.meta.classList.add("error");
      } finally {
        loading = null;
        els.refresh.disabled = false;
      }
      if (again) {
        again = false;
        await refresh();
      }
    })();
    return loading;
  }

  let pending = null;
  function refreshSoon() {
    if (!els.auto.checked) return;
    clearTimeout(pending);
    pending = setTimeout(refresh, 500);
  }

  els.refresh.addEventListener("click", () => refresh());

  // ---- the WebSocket --------------------------------------------------------

  let retry = 500;

  function setStatus(state, text) {
    els.status.className = "status " + state;
    els.status.textContent = text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // Browsers cannot set headers on a WebSocket: the token rides as the
    // second subprotocol (never in the URL, which logs keep).
    const url = scheme + "//" + location.host + "/ws";
    const socket = token() ? new WebSocket(url, ["ordershop.bearer", token()]) : new WebSocket(url);
    setStatus("connecting", "connecting…");
    socket.addEventListener("open", () => {
      retry = 500;
      setStatus("connected", "live");
      // Events may have happened while disconnected.
      refreshSoon();
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      addEvent(message);
      refreshSoon();
    });
    socket.addEventListener("close", (event) => {
      const why = event.reason ? " (" + event.reason + ")" : "";
      setStatus("disconnected", "reconnecting in " + Math.round(retry / 1000) + " s" + why);
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    });
  }

  refresh();
  connect();
})();
