// examples/web/chat.js: the chat page (chat.html) of examples/chat.sql.
//
// Two kinds of channel on pgapp-gateway's socket (docs/chat.md, docs/web.md):
// - chat_user:<sub>, the user's own: its rooms (and "rooms_changed" when
//   someone adds or removes it), the members' names of a room ("members"),
//   the limits, and an attachment's bytes ("download");
// - room:<id>, the room open on the page: the last 50 messages in the join's
//   reply, "new_msg" from the others (one's own come back as the push's
//   reply), "typing"/"typing_stopped", "attachment" when the uploads job has
//   stored a file, and presence (presence_state/presence_diff, read by the
//   phoenix client's Presence class).
// Everything that came from the database goes through esc() into the page.
import { Presence } from "./vendor/phoenix-1.8.1/phoenix.mjs";
import { askToken, connectSocket, esc, forgetToken, pushEvent } from "./lib/pgapp.js";

const $ = (id) => document.getElementById(id);
const els = {
  whoami: $("whoami"), pageError: $("page-error"), rooms: $("rooms"), online: $("online"),
  onlineCount: $("online-count"), roomHeading: $("room-heading"), messages: $("messages"),
  typing: $("typing"), composer: $("composer"), body: $("body"), send: $("send"), file: $("file"),
  fileCap: $("file-cap"), uploadStatus: $("upload-status"), error: $("composer-error"),
};

const MAX_MESSAGES_SHOWN = 500; // the page never holds more (older ones scroll away)
const TYPING_PUSH_EVERY_MS = 1500; // the server forgets a typist 3 s after its last push

const state = {
  socket: null,
  userChannel: null,
  me: null, // {id, name}
  limits: { max_attachment_bytes: 262144, max_body_chars: 5000 },
  rooms: [],
  names: new Map(), // user id -> name, from members, messages and presence
  room: null, // {id, name, channel, presence, typing: Set}
  lastTypingPush: 0,
};

// ---------------------------------------------------------------------------
// Small helpers

// The claims of a JWT (not verified: the gateway does that; the page only
// needs the sub to name its own channel).
function tokenClaims(token) {
  const part = token.split(".")[1] || "";
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const json = decodeURIComponent(Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)),
    (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""));
  return JSON.parse(json);
}

function kb(bytes) {
  if (bytes === 1) return "1 byte";
  return bytes < 1024 ? `${bytes} bytes` : `${Math.round(bytes / 102.4) / 10} kB`;
}

function nameOf(id) {
  return state.names.get(id) || `user ${String(id).slice(0, 8)}`;
}

const FIELD_NAMES = { body: "Message", data: "File", name: "File name", content_type: "File type", id: "Attachment" };

// The text of an error reply: changeset errors ({errors: {field: [...]}}),
// the rate limit ({reason: "rate_limited", message, retry_after}) or another
// reason.
function errorText(reply) {
  if (reply && reply.errors && typeof reply.errors === "object") {
    return Object.entries(reply.errors)
      .map(([field, msgs]) => `${FIELD_NAMES[field] || field} ${[].concat(msgs).join(", ")}`).join("; ") + ".";
  }
  // the recipe's limit (rate_limited, with a message) or the gateway's own ("rate limited")
  if (reply && (reply.reason === "rate_limited" || reply.reason === "rate limited")) {
    return `Too fast: ${reply.message || "too many requests"}. Try again in ${reply.retry_after || 1} s.`;
  }
  if (reply && reply.reason === "timeout") return "No answer from the server (is the connection down?).";
  return `Refused: ${(reply && (reply.message || reply.reason)) || "unknown error"}.`;
}

function showError(text) {
  els.error.textContent = text || "";
}

function setComposerEnabled(on) {
  for (const el of [els.body, els.send, els.file]) el.disabled = !on;
}

function pageFailed(text) {
  els.pageError.textContent = text;
}

// ---------------------------------------------------------------------------
// The user's channel: rooms, names, downloads

function renderRooms() {
  if (state.rooms.length === 0) {
    els.rooms.innerHTML = `<li class="muted">You are in no room yet: a room's owner adds you
      (<code>api.add_member</code>).</li>`;
    return;
  }
  // a room's button that has the focus keeps it across the redraw
  const focused = document.activeElement && document.activeElement.closest
    ? document.activeElement.closest("#rooms button[data-room]") : null;
  const focusedRoom = focused ? focused.dataset.room : null;
  els.rooms.innerHTML = state.rooms.map((r) => `
    <li><button type="button" data-room="${esc(r.id)}"
      aria-current="${state.room && state.room.id === r.id ? "true" : "false"}">${esc(r.name)}
      ${r.role === "owner" ? '<span class="role">(owner)</span>' : ""}</button></li>`).join("");
  if (focusedRoom !== null) {
    const again = Array.from(els.rooms.querySelectorAll("button[data-room]")).find((b) => b.dataset.room === focusedRoom);
    if (again) again.focus();
  }
}

// The user's rooms again; autoOpen: open the first if none is open (the
// user was in none and has been added to one).
async function refreshRooms({ autoOpen = false } = {}) {
  try {
    const reply = await pushEvent(state.userChannel, "rooms", {});
    state.rooms = reply.rooms || [];
    renderRooms();
    if (autoOpen && !state.room && state.rooms.length > 0) openRoom(state.rooms[0].id);
  } catch (err) {
    pageFailed(`Could not list your rooms: ${errorText(err)}`);
  }
}

async function refreshMembers(roomId) {
  try {
    const reply = await pushEvent(state.userChannel, "members", { room: roomId });
    for (const m of reply.members || []) state.names.set(m.id, m.name);
    if (state.room && state.room.id === roomId) {
      renderOnline();
      renderTyping();
    }
  } catch (_) {
    // not a member (any more): the room's own channel says so
  }
}

function joinUserChannel(sub) {
  const channel = state.socket.channel(`chat_user:${sub}`, {});
  state.userChannel = channel;
  channel.on("rooms_changed", ({ room, change }) => {
    if (state.room && state.room.id === room && change === "removed") {
      leaveRoom();
      pageFailed(`You were removed from the room ${room}.`);
      refreshRooms();
      return;
    }
    refreshRooms({ autoOpen: change === "added" });
  });
  // the reply of every (re)join: after a reconnect the list is fetched again
  return new Promise((resolve) => {
    channel.join()
      .receive("ok", (reply) => {
        state.me = reply.user;
        state.names.set(reply.user.id, reply.user.name);
        state.limits = { ...state.limits, ...(reply.limits || {}) };
        state.rooms = reply.rooms || [];
        els.whoami.textContent = `Signed in as ${reply.user.name}`;
        els.fileCap.textContent = `(at most ${kb(state.limits.max_attachment_bytes)})`;
        renderRooms();
        resolve();
      })
      .receive("error", (reply) => {
        channel.leave();
        pageFailed(`The chat refused this token: ${errorText(reply)}`);
      });
  });
}

// ---------------------------------------------------------------------------
// Messages

// Links are made only to the recipe's own paths (/uploads/<id>/<name>): an
// "attachment" event is a broadcast, and a URL of another shape (javascript:,
// another site) is not followed.
const UPLOAD_PATH = /^\/uploads\/\d+\/[^/?#]+$/;

function attachmentHtml(a) {
  if (!a) return "";
  if (a.state === "stored" && typeof a.url === "string" && UPLOAD_PATH.test(a.url)) {
    return `<span class="muted">File:</span>
      <a href="${esc(a.url)}" data-attachment-id="${esc(a.id)}" download="${esc(a.name)}">${esc(a.name)}</a>
      <span class="muted">(${esc(kb(a.size))})</span>`;
  }
  return `<span class="pending">File: ${esc(a.name)} (${esc(kb(a.size))}), uploading…</span>`;
}

function messageHtml(m) {
  const when = new Date(m.inserted_at);
  const time = Number.isNaN(when.getTime()) ? "" :
    when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return `
    <div class="meta"><span class="author">${esc(m.author && m.author.name)}</span>
      <time datetime="${esc(m.inserted_at)}" title="${esc(when.toLocaleString())}">${esc(time)}</time></div>
    ${m.body != null ? `<div class="body">${esc(m.body)}</div>` : ""}
    ${m.attachment ? `<div class="attachment">${attachmentHtml(m.attachment)}</div>` : ""}`;
}

function nearBottom() {
  const el = els.messages;
  return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
}

// Add (or replace, by id) message m in the list.
function addMessage(m) {
  if (!m || m.id == null) return;
  if (m.author) state.names.set(m.author.id, m.author.name);
  const stick = nearBottom();
  let li = els.messages.querySelector(`li[data-message-id="${CSS.escape(String(m.id))}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.messageId = String(m.id);
    // messages arrive in id order, except a reply overtaking a broadcast
    const after = Array.from(els.messages.children).reverse().find((x) => Number(x.dataset.messageId) < m.id);
    if (after) after.after(li); else els.messages.prepend(li);
  }
  li.className = `msg${state.me && m.author && m.author.id === state.me.id ? " mine" : ""}`;
  li.innerHTML = messageHtml(m);
  while (els.messages.children.length > MAX_MESSAGES_SHOWN) els.messages.firstElementChild.remove();
  if (stick) els.messages.scrollTop = els.messages.scrollHeight;
}

// The uploads job stored a file: its message gets the link.
function attachmentStored(a) {
  const li = els.messages.querySelector(`li[data-message-id="${CSS.escape(String(a.message_id))}"]`);
  if (!li) return;
  let box = li.querySelector(".attachment");
  if (!box) {
    box = document.createElement("div");
    box.className = "attachment";
    li.append(box);
  }
  box.innerHTML = attachmentHtml({ ...a, state: "stored" });
}

// ---------------------------------------------------------------------------
// Typing and presence

function renderTyping() {
  if (!state.room) { els.typing.textContent = ""; return; }
  const names = Array.from(state.room.typing).filter((k) => !state.me || k !== state.me.id).map(nameOf).sort();
  els.typing.textContent =
    names.length === 0 ? "" :
    names.length === 1 ? `${names[0]} is typing…` :
    names.length === 2 ? `${names[0]} and ${names[1]} are typing…` :
    `${names.length} people are typing…`;
}

function renderOnline() {
  if (!state.room) {
    els.online.innerHTML = "";
    els.onlineCount.textContent = "";
    return;
  }
  const people = state.room.presence.list((id, { metas }) => ({ id, devices: metas.length }));
  const unknown = people.some((p) => !state.names.has(p.id));
  people.sort((a, b) => nameOf(a.id).localeCompare(nameOf(b.id)));
  els.onlineCount.textContent = `(${people.length})`;
  els.online.innerHTML = people.map((p) => `
    <li data-user-id="${esc(p.id)}">${esc(nameOf(p.id))}${state.me && p.id === state.me.id ? ' <span class="you">(you)</span>' : ""}${
      p.devices > 1 ? ` <span class="muted">(${p.devices} tabs)</span>` : ""}</li>`).join("");
  // someone joined the room since its members were fetched
  if (unknown && !state.room.fetchingMembers) {
    state.room.fetchingMembers = true;
    const room = state.room;
    refreshMembers(room.id).finally(() => { room.fetchingMembers = false; });
  }
}

// ---------------------------------------------------------------------------
// Joining a room

function leaveRoom() {
  if (!state.room) return;
  state.room.channel.leave();
  state.room = null;
  els.messages.dataset.joined = "false";
  els.messages.innerHTML = "";
  els.roomHeading.textContent = "No room open";
  setComposerEnabled(false);
  renderOnline();
  renderTyping();
  renderRooms();
}

function openRoom(roomId, { focus = false } = {}) {
  if (state.room && state.room.id === roomId) return;
  leaveRoom();
  pageFailed("");
  showError("");
  const channel = state.socket.channel(`room:${roomId}`, {});
  const room = { id: roomId, channel, presence: new Presence(channel), typing: new Set() };
  state.room = room;
  const known = state.rooms.find((r) => r.id === roomId);
  els.roomHeading.textContent = known ? known.name : roomId;
  history.replaceState(null, "", `#room=${encodeURIComponent(roomId)}`);
  renderRooms();

  const mine = (fn) => (...args) => { if (state.room === room) fn(...args); };
  // data-joined on the list: whether the room's channel is joined now (tests wait for it)
  els.messages.dataset.joined = "false";
  channel.onError(mine(() => { els.messages.dataset.joined = "false"; }));
  room.presence.onSync(mine(renderOnline));
  channel.on("new_msg", mine(addMessage));
  channel.on("attachment", mine(attachmentStored));
  channel.on("typing", mine(({ key }) => { room.typing.add(key); renderTyping(); }));
  channel.on("typing_stopped", mine(({ key }) => { room.typing.delete(key); renderTyping(); }));

  // "ok" comes again after each reconnect: the history is shown afresh
  channel.join()
    .receive("ok", mine((reply) => {
      els.roomHeading.textContent = reply.room.name;
      els.messages.setAttribute("aria-busy", "true");
      els.messages.innerHTML = "";
      for (const m of reply.messages || []) addMessage(m);
      els.messages.setAttribute("aria-busy", "false");
      els.messages.scrollTop = els.messages.scrollHeight;
      room.typing = new Set(reply.typing || []);
      renderTyping();
      setComposerEnabled(true);
      els.messages.dataset.joined = "true";
      if (focus) { els.body.focus(); focus = false; }
      refreshMembers(room.id);
    }))
    .receive("error", mine((reply) => {
      channel.leave();
      state.room = null;
      setComposerEnabled(false);
      pageFailed(`You cannot join ${roomId}: ${errorText(reply)}`);
    }));
}

// ---------------------------------------------------------------------------
// Sending

function send() {
  const body = els.body.value;
  if (!state.room || body.trim() === "") return;
  const room = state.room;
  els.body.value = "";
  showError("");
  pushEvent(room.channel, "new_msg", { body })
    .then((message) => { if (state.room === room) addMessage(message); })
    .catch((reply) => {
      if (state.room !== room) return;
      showError(errorText(reply));
      // not sent: the text goes back into the box unless something new is there
      if (els.body.value === "") els.body.value = body;
    });
}

function typed() {
  if (!state.room || els.body.value === "") return;
  const now = Date.now();
  if (now - state.lastTypingPush < TYPING_PUSH_EVERY_MS) return;
  state.lastTypingPush = now;
  state.room.channel.push("typing", {});
}

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

async function attach(file) {
  if (!state.room || !file) return;
  const room = state.room;
  showError("");
  if (file.size > state.limits.max_attachment_bytes) {
    showError(`${file.name} is ${kb(file.size)}: files of at most ${kb(state.limits.max_attachment_bytes)} can be attached.`);
    return;
  }
  els.uploadStatus.textContent = `Uploading ${file.name}…`;
  try {
    const data = toBase64(await file.arrayBuffer());
    const message = await pushEvent(room.channel, "attach",
      { name: file.name, content_type: file.type || "application/octet-stream", data });
    if (state.room === room) addMessage(message);
    els.uploadStatus.textContent = `${file.name} sent; its link appears when it is stored.`;
  } catch (reply) {
    els.uploadStatus.textContent = "";
    if (state.room === room) showError(`${file.name} was not attached: ${errorText(reply)}`);
  }
}

// A stored attachment's link: its bytes come over the socket (chat_user's
// "download"), since the gateway alone serves no /uploads/... path.
async function download(link) {
  showError("");
  try {
    const f = await pushEvent(state.userChannel, "download", { id: Number(link.dataset.attachmentId) });
    const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bytes], { type: f.content_type }));
    const a = document.createElement("a");
    a.href = url;
    a.download = f.name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (reply) {
    showError(`Could not download: ${errorText(reply)}`);
  }
}

// ---------------------------------------------------------------------------
// Wiring

function wire() {
  els.rooms.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-room]");
    if (button) openRoom(button.dataset.room, { focus: true });
  });
  els.composer.addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
  els.body.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });
  els.body.addEventListener("input", typed);
  els.file.addEventListener("change", () => {
    const file = els.file.files[0];
    els.file.value = "";
    attach(file);
  });
  els.messages.addEventListener("click", (ev) => {
    const link = ev.target.closest("a[data-attachment-id]");
    if (link) { ev.preventDefault(); download(link); }
  });
}

async function start() {
  wire();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("room");
  const token = await askToken(document.getElementById("app"));
  let claims = {};
  try {
    claims = tokenClaims(token) || {};
  } catch (_) {
    claims = {};
  }
  const sub = claims.sub;
  if (!sub) {
    pageFailed("This token has no user (no \"sub\" claim): reload the page to enter another.");
    forgetToken();
    return;
  }
  // the gateway refuses an expired token at the upgrade (HTTP 403), which a
  // browser cannot tell from a server that is down: say it here
  if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) {
    pageFailed("This token has expired: reload the page to enter another.");
    forgetToken();
    return;
  }
  state.socket = connectSocket(token, {
    // closed with 1008: the token expired while the page was open
    onRefused: () => {
      state.socket.disconnect();
      setComposerEnabled(false);
      pageFailed("The server closed the connection: this token has expired. Reload the page to enter another.");
    },
  });
  await joinUserChannel(sub);
  const first = state.rooms.find((r) => r.id === wanted) || state.rooms[0];
  if (first) openRoom(first.id);
}

start();
