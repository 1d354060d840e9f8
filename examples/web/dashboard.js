// examples/web/dashboard.js: the live dashboard (docs/web.md, "Live dashboard").
//
// The data side is examples/dashboard.sql.  The page joins three topics
// through pgapp-gateway; each join reply is that topic's part of the
// snapshot, and the phoenix client calls the "ok" hook again on every rejoin,
// so after a reconnect the page catches up from a fresh snapshot (merged
// with what it already has):
//
//   orders:new      join {"orders", "today"}        event "created"  one order (a feed entry)
//   users:activity  join {"active_users", "users"}  event "seen"     one customer seen
//   system:health   join {"health"}                  event "updated"  the health panel
//
// Pushes: "search" {"q"} on orders:new (the server searches every order and
// answers the 20 newest matches), "refresh" on any topic (its join reply).
//
// The table never holds more than MAX_ORDERS rows (LiveView's
// temporary_assigns lesson): a new order goes in, the oldest goes out.
import { askToken, connectSocket, esc, pushEvent } from "./lib/pgapp.js";

const MAX_ORDERS = 20;          // rows in the table, ever
const MAX_POINTS = 30;          // bars in the chart
const MAX_USERS = 100;          // active users the page keeps (the join sends at most 100)
const USERS_SHOWN = 8;          // in the "Recently seen" list
const SEARCH_DEBOUNCE_MS = 300;
const TICK_MS = 15000;          // who is still active; relative times
const RECENT_IDS = 200;         // order ids remembered to ignore a message seen twice

const $ = (selector, root = document) => root.querySelector(selector);
const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const number = new Intl.NumberFormat();
const collator = new Intl.Collator(undefined, { sensitivity: "base", numeric: true });
const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");
const clock = (ms = Date.now()) =>
  new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

const state = {
  orders: [],                   // the rows, newest first: at most MAX_ORDERS feed entries
  query: "",                    // the search the rows answer ("" = the most recent orders)
  sort: { key: "created_at", dir: "descending" },
  points: [],                   // the chart: {id, total}, oldest first, at most MAX_POINTS
  seenIds: new Set(),           // order ids already counted (insertion order; at most RECENT_IDS)
  today: null,                  // {orders, revenue} since the server's midnight
  todayDate: "",                // the local day of that snapshot
  users: new Map(),             // id -> {id, name, seen (ms)}: customers seen within the window
  usersComplete: true,          // users holds every active customer (else the count is the server's)
  activeUsers: null,
  windowMs: 300000,
  channels: {},                 // topic -> phoenix Channel
  joined: new Set(),            // topics whose join has succeeded (since the socket opened)
};

// ---------------------------------------------------------------------------
// Orders
// ---------------------------------------------------------------------------

// A feed entry as the page keeps it; null for what is not one (the shop of
// examples/shop.sql also says "created" on orders:new, with user_id and no
// customer: those orders are not the dashboard's).
function toOrder(entry) {
  if (!entry || typeof entry.customer !== "string" || !Number.isSafeInteger(Number(entry.id))) return null;
  const time = Date.parse(entry.created_at);
  return {
    id: Number(entry.id),
    customer: entry.customer,
    total: Number(entry.total) || 0,
    createdAt: String(entry.created_at ?? ""),
    time: Number.isNaN(time) ? 0 : time,
  };
}
const newestFirst = (a, b) => (b.time - a.time) || (b.id - a.id);

// The search's rule, as dashboard.recent_orders applies it: the customer's
// name contains q (case-insensitively), or the order's id is q ("17", "#17").
function matches(order, q) {
  const text = q.trim();
  if (!text) return true;
  if (/^#?[0-9]{1,15}$/.test(text) && order.id === Number(text.replace("#", ""))) return true;
  return order.customer.toLowerCase().includes(text.toLowerCase());
}

// Remember an order id; false if it was already known.
function remember(id) {
  if (state.seenIds.has(id)) return false;
  state.seenIds.add(id);
  if (state.seenIds.size > RECENT_IDS) state.seenIds.delete(state.seenIds.values().next().value);
  return true;
}

const toOrders = (entries) => (Array.isArray(entries) ? entries : []).map(toOrder).filter(Boolean);

// Show orders (a search's answer) for query; with keep, the rows already
// shown stay too (a join reply: what came since its snapshot is kept).
// Either way the newest MAX_ORDERS remain.
function setOrders(orders, query, keep = false) {
  const byId = new Map((keep ? state.orders : []).map((o) => [o.id, o]));
  for (const o of orders) byId.set(o.id, o);
  state.query = query;
  state.orders = [...byId.values()].sort(newestFirst).slice(0, MAX_ORDERS);
  renderOrders();
}

// orders:new "created": count it, chart it, and show it if it answers the
// search; the 21st row (the oldest) leaves the table.
function onCreated(payload) {
  const order = toOrder(payload);
  if (!order || !remember(order.id)) return;
  if (state.today) {
    state.today = { orders: state.today.orders + 1, revenue: state.today.revenue + order.total };
    renderToday();
  }
  addPoints([order]);
  if (!matches(order, state.query)) return;
  state.orders.push(order);
  state.orders.sort(newestFirst);
  state.orders.splice(MAX_ORDERS);          // drops the oldest
  if (state.orders.includes(order)) renderOrders(order.id);
}

const SORTS = {
  id: (a, b) => a.id - b.id,
  customer: (a, b) => collator.compare(a.customer, b.customer) || a.id - b.id,
  total: (a, b) => a.total - b.total || a.id - b.id,
  created_at: (a, b) => a.time - b.time || a.id - b.id,
};

const rows = new Map();         // order id -> its <tr>

function fillRow(tr, order) {
  tr.dataset.id = order.id;
  tr.innerHTML = `<td class="mono">#${order.id}</td>
    <td>${esc(order.customer)}</td>
    <td class="num">${esc(money.format(order.total))}</td>
    <td><time datetime="${esc(order.createdAt)}">${esc(order.time ? clock(order.time) : order.createdAt)}</time></td>`;
}

// Bring the table in line with state.orders and state.sort, moving rows
// rather than rebuilding them; flashId marks a new row.
function renderOrders(flashId) {
  const tbody = $("#orders tbody");
  const compare = SORTS[state.sort.key];
  const shown = [...state.orders].sort(state.sort.dir === "ascending" ? compare : (a, b) => compare(b, a));
  const keep = new Set(shown.map((o) => o.id));
  for (const [id, tr] of rows) {
    if (!keep.has(id)) { tr.remove(); rows.delete(id); }
  }
  shown.forEach((order, i) => {
    let tr = rows.get(order.id);
    if (!tr) {
      tr = document.createElement("tr");
      rows.set(order.id, tr);
    }
    fillRow(tr, order);
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
  });
  if (flashId !== undefined && rows.has(flashId) && !reducedMotion.matches) {
    const tr = rows.get(flashId);
    tr.classList.remove("new");
    void tr.offsetWidth;                    // restart the animation
    tr.classList.add("new");
  }
  for (const th of document.querySelectorAll("#orders th[data-key]")) {
    if (th.dataset.key === state.sort.key) th.setAttribute("aria-sort", state.sort.dir);
    else th.removeAttribute("aria-sort");
  }
  const table = $("#orders");
  table.dataset.query = state.query;
  table.dataset.rows = shown.length;
  const n = shown.length;
  $("#orders-summary").textContent = state.query
    ? `${n === 0 ? "No" : n} order${n === 1 ? "" : "s"} matching “${state.query}”${n === MAX_ORDERS ? " (the 20 most recent)" : ""}.`
    : n === 0 ? "No orders yet; new ones appear at once."
    : `The ${n} most recent order${n === 1 ? "" : "s"}; new ones appear at once.`;
}

function setupSorting() {
  for (const th of document.querySelectorAll("#orders th[data-key]")) {
    $("button", th).addEventListener("click", () => {
      const key = th.dataset.key;
      if (state.sort.key === key) {
        state.sort.dir = state.sort.dir === "ascending" ? "descending" : "ascending";
      } else {
        state.sort = { key, dir: key === "customer" ? "ascending" : "descending" };
      }
      renderOrders();
    });
  }
}

// The search box: what was typed goes to the server 300 ms after the last
// keystroke (at once on Enter); an answer to an older search is dropped.
let searchTimer = 0;
let searchSeq = 0;
function setupSearch() {
  const input = $("#search");
  input.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, SEARCH_DEBOUNCE_MS);
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { clearTimeout(searchTimer); runSearch(); }
  });
}

async function runSearch() {
  const channel = state.channels["orders:new"];
  const q = $("#search").value.trim();
  if (!channel) return;
  const seq = ++searchSeq;
  $("#orders").setAttribute("aria-busy", "true");
  try {
    const reply = await pushEvent(channel, "search", { q });
    if (seq !== searchSeq) return;
    setOrders(toOrders(reply.orders), typeof reply.q === "string" ? reply.q : q);
  } catch (err) {
    if (seq !== searchSeq) return;
    $("#orders-summary").textContent = `The search failed: ${err?.reason ?? "no answer"}.`;
  } finally {
    if (seq === searchSeq) $("#orders").removeAttribute("aria-busy");
  }
}

// ---------------------------------------------------------------------------
// Stat cards, chart, users, health
// ---------------------------------------------------------------------------

// Show value (formatted as text) on a card; its arrow tells the direction
// and size of the last change.
function setCard(id, value, text, format = (v) => number.format(v)) {
  const card = document.getElementById(id);
  if (value === null || value === undefined || Number.isNaN(value)) return;
  const before = card.dataset.value === undefined ? null : Number(card.dataset.value);
  card.dataset.value = value;
  $(".value", card).textContent = text;
  if (before === null || Math.abs(value - before) < 1e-9) return;
  const up = value > before;
  const trend = $(".trend", card);
  trend.dataset.trend = up ? "up" : "down";
  trend.innerHTML = `<span aria-hidden="true">${up ? "▲" : "▼"}</span> ${up ? "up" : "down"} ${
    esc(format(Math.abs(value - before)))} <span class="since">at ${esc(clock())}</span>`;
  if (!reducedMotion.matches) {
    card.classList.remove("changed");
    void card.offsetWidth;
    card.classList.add("changed");
  }
}

function renderToday() {
  if (!state.today) return;
  setCard("card-orders-today", state.today.orders, number.format(state.today.orders));
  setCard("card-revenue-today", state.today.revenue, money.format(state.today.revenue), (v) => money.format(v));
}

// Add orders to the chart (skipping those it has), keep the last MAX_POINTS.
function addPoints(orders) {
  const have = new Set(state.points.map((p) => p.id));
  const fresh = orders.filter((o) => !have.has(o.id)).map((o) => ({ id: o.id, total: o.total, time: o.time }));
  if (!fresh.length) return;
  state.points = state.points.concat(fresh)
    .sort((a, b) => (a.time - b.time) || (a.id - b.id)).slice(-MAX_POINTS);
  renderChart();
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function renderChart() {
  const svg = $("#chart");
  const width = 300, height = 120, top = 6;
  const slot = width / MAX_POINTS;
  const max = Math.max(1, ...state.points.map((p) => p.total));
  const n = state.points.length;
  const bars = state.points.map((p, i) => {
    const h = Math.max(1, (p.total / max) * (height - top));
    const bar = svgEl("rect", {
      x: (width - (n - i) * slot + 1).toFixed(2), y: (height - h).toFixed(2),
      width: (slot - 2).toFixed(2), height: h.toFixed(2), class: i === n - 1 ? "bar latest" : "bar",
    });
    bar.append(svgEl("title", {}));
    bar.firstChild.textContent = `#${p.id}: ${money.format(p.total)}`;
    return bar;
  });
  svg.replaceChildren(svgEl("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }), ...bars);
  svg.dataset.points = n;
  if (n) {
    const last = state.points[n - 1];
    svg.setAttribute("aria-label", `Totals of the last ${n} orders, up to ${money.format(max)}; the latest, #${
      last.id}, ${money.format(last.total)}`);
  }
}

// users:activity's join reply: the count and (at most 100 of) the
// customers.  What the page learnt since the server's snapshot (a later
// "seen") is kept.
function applyUsers(reply) {
  state.windowMs = (Number(reply.window_seconds) || 300) * 1000;
  const known = state.users;
  state.users = new Map();
  for (const u of Array.isArray(reply.users) ? reply.users : []) addUser(u);
  state.activeUsers = Number(reply.active_users) || 0;
  state.usersComplete = state.users.size >= state.activeUsers;
  for (const [id, u] of known) {
    if (u.seen > (state.users.get(id)?.seen ?? 0)) state.users.set(id, u);
  }
  settleUsers(false);
}

function addUser(u) {
  const seen = Date.parse(u?.last_seen_at);
  if (u?.id === undefined || Number.isNaN(seen)) return false;
  state.users.delete(u.id);
  if (seen <= Date.now() - state.windowMs) return false;
  state.users.set(u.id, { id: u.id, name: String(u.name ?? ""), seen });
  return true;
}

// users:activity "seen": a customer was seen (or their last_seen_at moved
// back out of the window).  While the page knows every active customer it
// counts them itself; otherwise it asks the server for the count.
function onSeen(payload) {
  addUser(payload);
  settleUsers();
}

// Drop the customers whose window is over and count the rest; ask the
// server for the count (ask) when the page does not know every one.
function settleUsers(ask = true) {
  const oldest = Date.now() - state.windowMs;
  for (const [id, u] of state.users) if (u.seen <= oldest) state.users.delete(id);
  if (state.usersComplete) state.activeUsers = state.users.size;
  if (state.users.size > MAX_USERS) {
    const byAge = [...state.users.values()].sort((a, b) => a.seen - b.seen);
    for (const u of byAge.slice(0, state.users.size - MAX_USERS)) state.users.delete(u.id);
    state.usersComplete = false;
  }
  if (!state.usersComplete && ask) refreshSoon("users:activity");
  renderUsers();
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? "just now" : `${Math.floor(s / 60)} min ago`;
}

function renderUsers() {
  setCard("card-active-users", state.activeUsers, number.format(state.activeUsers ?? 0));
  const list = [...state.users.values()].sort((a, b) => b.seen - a.seen).slice(0, USERS_SHOWN);
  $("#users").replaceChildren(...list.map((u) => {
    const li = document.createElement("li");
    li.dataset.id = u.id;
    li.innerHTML = `<span class="name">${esc(u.name)}</span>
      <time datetime="${esc(new Date(u.seen).toISOString())}">${esc(ago(u.seen))}</time>`;
    return li;
  }));
  $("#users-empty").hidden = list.length > 0;
}

// The gauge: the share of block reads served from shared buffers, 0-100.
let gaugeFrame = 0;
let gaugeShown = 0;
function setGauge(percent) {
  const gauge = $("#gauge");
  const v = percent === null ? 0 : Math.max(0, Math.min(100, percent));
  gauge.setAttribute("aria-valuenow", v.toFixed(1));
  gauge.setAttribute("aria-valuetext", percent === null ? "no block reads yet"
    : `${v.toFixed(1)}% of block reads served from the cache`);
  gauge.dataset.level = percent === null ? "none" : v >= 99 ? "good" : v >= 90 ? "fair" : "poor";
  // the arc and the needle move by CSS transitions; the number follows
  $(".gauge-value", gauge).style.strokeDasharray = `${v} 100`;
  $(".gauge-needle", gauge).style.transform = `rotate(${(-90 + v * 1.8).toFixed(2)}deg)`;
  const text = $(".gauge-text", gauge);
  const label = (x) => (percent === null ? "–" : `${x.toFixed(1)}%`);
  cancelAnimationFrame(gaugeFrame);
  const from = gaugeShown;
  gaugeShown = v;
  if (reducedMotion.matches || percent === null) { text.textContent = label(v); return; }
  const t0 = performance.now();
  const step = (now) => {
    const k = Math.min(1, (now - t0) / 600);
    const eased = 1 - (1 - k) ** 3;
    text.textContent = label(from + (v - from) * eased);
    if (k < 1) gaugeFrame = requestAnimationFrame(step);
  };
  gaugeFrame = requestAnimationFrame(step);
}

// system:health's join reply and its "updated" events.
function applyHealth(health) {
  if (!health || typeof health !== "object") return;
  const ratio = health.blks_hit_ratio === null || health.blks_hit_ratio === undefined
    ? null : Number(health.blks_hit_ratio);
  setGauge(ratio === null || Number.isNaN(ratio) ? null : ratio * 100);
  const status = String(health.status ?? "unknown");
  const statusEl = $("#health-status");
  statusEl.textContent = status;
  statusEl.dataset.status = status;
  $("#health-version").textContent = String(health.version ?? "–");
  $("#health-commits").textContent = number.format(Number(health.xact_commit) || 0);
  $("#health-rollbacks").textContent = number.format(Number(health.xact_rollback) || 0);
  setCard("card-connections", Number(health.numbackends), number.format(Number(health.numbackends) || 0));
  const panel = $("#health");
  panel.dataset.updates = Number(panel.dataset.updates) + 1;
  $("#health-updated").textContent = `at ${clock()}`;
}

// ---------------------------------------------------------------------------
// The socket and the channels
// ---------------------------------------------------------------------------

const TOPICS = {
  "orders:new": {
    events: { created: onCreated },
    recheck: true,
    joined(reply) {
      const orders = toOrders(reply.orders);
      for (const o of [...orders].reverse()) remember(o.id);
      addPoints(orders);
      if (reply.today) {
        // the server's count at its snapshot and the page's (its own
        // snapshot's plus each order since) both miss nothing they saw:
        // the larger is the closer, except on a new day
        const today = { orders: Number(reply.today.orders) || 0, revenue: Number(reply.today.revenue) || 0 };
        const day = new Date().toDateString();
        if (!state.today || state.todayDate !== day || today.orders >= state.today.orders) state.today = today;
        state.todayDate = day;
        renderToday();
      }
      // a search in progress is asked again: orders may have come meanwhile
      if (state.query || $("#search").value.trim()) runSearch();
      else setOrders(orders, "", true);
    },
  },
  "users:activity": { events: { seen: onSeen }, joined: applyUsers, recheck: true },
  "system:health": { events: { updated: applyHealth }, joined: (reply) => applyHealth(reply.health) },
};

// Ask a topic for its join reply again, at most once every 2 s.
const refreshing = {};
function refreshSoon(topic) {
  if (refreshing[topic]) return;
  refreshing[topic] = setTimeout(async () => {
    try {
      TOPICS[topic].joined(await pushEvent(state.channels[topic], "refresh"));
    } catch { /* the next change or tick asks again */ }
    setTimeout(() => { refreshing[topic] = 0; }, 2000);
  }, 0);
}

function showError(text) {
  const el = $("#page-error");
  el.textContent = text;
  el.hidden = !text;
}

function setLive(socket) {
  const el = $("#live-status");
  const all = Object.keys(TOPICS).every((t) => state.joined.has(t));
  const live = socket.isConnected() && all;
  el.dataset.state = live ? "live" : socket.isConnected() ? "joining" : "connecting";
  el.textContent = live ? "Live" : socket.isConnected() ? "Joining…" : "Connecting…";
}

function join(socket, topic) {
  const spec = TOPICS[topic];
  const channel = socket.channel(topic, {});
  for (const [event, handler] of Object.entries(spec.events)) channel.on(event, handler);
  channel.onError(() => { state.joined.delete(topic); setLive(socket); });
  // "ok" runs on the first join and again on each rejoin after a reconnect
  channel.join()
    .receive("ok", (reply) => {
      state.joined.add(topic);
      spec.joined(reply ?? {});
      setLive(socket);
      // The gateway runs the join function before it delivers the topic's
      // broadcasts to this socket: a message committed in between would be
      // in neither.  Asking again once joined closes that window (what
      // arrives meanwhile is counted once: orders by id, users by id).
      if (spec.recheck) pushEvent(channel, "refresh").then((again) => spec.joined(again ?? {})).catch(() => {});
    })
    .receive("error", (reply) => {
      showError(`The server refused to show ${topic}: ${reply?.reason ?? "refused"}.`);
      channel.leave();
    });
  state.channels[topic] = channel;
}

async function start() {
  $("#live-status").textContent = "Waiting for a token…";
  const token = await askToken($("#dashboard"));
  const socket = connectSocket(token, {
    onRefused() {
      // lib/pgapp.js has stopped the socket and hidden the banner
      state.joined.clear();
      showError("The server refused this token (expired or not valid): enter another one.");
      start();
    },
  });
  socket.onOpen(() => { showError(""); setLive(socket); });
  socket.onClose(() => { state.joined.clear(); setLive(socket); });
  for (const topic of Object.keys(TOPICS)) join(socket, topic);
}

// Every TICK_MS: customers whose 5 minutes are over leave, relative times
// move on, and at a new day the order counts start again from the server's.
setInterval(() => {
  if (state.activeUsers !== null) settleUsers();
  if (state.today && state.todayDate !== new Date().toDateString() && state.channels["orders:new"]) {
    state.todayDate = new Date().toDateString();
    pushEvent(state.channels["orders:new"], "refresh")
      .then((reply) => {
        state.today = { orders: Number(reply.today?.orders) || 0, revenue: Number(reply.today?.revenue) || 0 };
        renderToday();
      })
      .catch(() => {});
  }
}, TICK_MS);

setupSorting();
setupSearch();
renderChart();
start();
