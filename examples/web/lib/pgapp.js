// examples/web/lib/pgapp.js: what the pages of examples/web/ share.
//
// - the token: from the page's address (#token=...), else the one kept in
//   this browser (localStorage), else a small form asks for it; scripts/run
//   prints each page's address with a fresh token;
// - the socket: the official phoenix client on the gateway's /socket;
// - the "reconnecting" banner: any element with data-connection-banner is
//   shown while the socket is down and hidden when it is back;
// - joinChannel: a promise of the join's reply.
import { Socket } from "../vendor/phoenix-1.8.1/phoenix.mjs";

const TOKEN_KEY = "pgapp.token";

// The token of this page: #token=... (then kept, and removed from the address
// bar so that it is not shared by copying the URL), else the kept one.
export function pageToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromHash = params.get("token");
  if (fromHash) {
    localStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, "", location.pathname + location.search);
    return fromHash;
  }
  return localStorage.getItem(TOKEN_KEY);
}

// Forget the kept token (a refused one) so that the form asks again.
export function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
}

// Resolve with a token: the page's, or what the user types into a form
// added at the top of container (a label, an input and a button).
export function askToken(container = document.body) {
  const known = pageToken();
  if (known) return Promise.resolve(known);
  return new Promise((resolve) => {
    const form = document.createElement("form");
    form.className = "token-form";
    form.innerHTML = `
      <label for="token-input">Token (from <code>bash scripts/run</code> or
        <code>SELECT pgapp.encode_token(...)</code>)</label>
      <input id="token-input" name="token" autocomplete="off" required>
      <button type="submit">Connect</button>`;
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = form.elements.token.value.trim();
      if (!token) return;
      localStorage.setItem(TOKEN_KEY, token);
      form.remove();
      resolve(token);
    });
    container.prepend(form);
    form.elements.token.focus();
  });
}

// Show or hide every [data-connection-banner] element.
function banner(down) {
  for (const el of document.querySelectorAll("[data-connection-banner]")) {
    el.hidden = !down;
  }
  document.documentElement.dataset.connection = down ? "down" : "up";
}

// The "exp" claim of a JWT (seconds since 1970), or null when it has none or
// cannot be read.  Only to tell the user early: the gateway checks the token.
export function tokenExpiry(token) {
  try {
    const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(b64)).exp;
    return typeof exp === "number" ? exp : null;
  } catch {
    return null;
  }
}

// Would the gateway refuse token at the upgrade?  It does (HTTP 403) when
// the token is not a JWT, has no numeric "exp" or has expired.
function expired(token) {
  const exp = tokenExpiry(token);
  return exp === null || exp * 1000 <= Date.now();
}

// A connected phoenix Socket with token; the banner follows its state.
// When the gateway closes the socket for its token (1008: bad, expired or
// revoked), the socket stops reconnecting with it, the kept token is
// forgotten, the banner stays hidden (the connection is not down: the token
// is refused) and onRefused(ev) runs (ask for another token, say).
// A token the gateway would refuse at the upgrade (not a JWT, no "exp", or
// expired: HTTP 403, which a browser cannot tell from a gateway that is
// down) is refused the same way without connecting, and so is one that
// expires while the socket is away.
export function connectSocket(token, { onRefused } = {}) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new Socket(`${scheme}://${location.host}/socket`, {
    params: { token },
    // reconnect quickly at first, then back off (as Phoenix's default does)
    reconnectAfterMs: (tries) => [100, 250, 500, 1000, 2000][tries - 1] || 5000,
  });
  let opened = false;
  const refuse = (ev) => {
    forgetToken();
    socket.disconnect();
    banner(false);
    if (onRefused) onRefused(ev);
  };
  if (expired(token)) {
    setTimeout(() => refuse({ code: 1008, reason: "token expired" }), 0);
    return socket;
  }
  socket.onOpen(() => { opened = true; banner(false); });
  socket.onClose((ev) => {
    if (expired(token)) {
      refuse({ code: 1008, reason: "token expired" });
      return;
    }
    if (ev && ev.code === 1008) {
      refuse(ev);
      return;
    }
    // shown only once the socket had been open: the page says "reconnecting"
    banner(opened);
  });
  socket.connect();
  return socket;
}

// Join topic with params: resolves with the "ok" reply, rejects with the
// "error" reply (the channel is left then, so the client does not retry) or
// on timeout.
export function joinChannel(channel) {
  return new Promise((resolve, reject) => {
    channel.join()
      .receive("ok", resolve)
      .receive("error", (reply) => { channel.leave(); reject(reply); })
      .receive("timeout", () => reject({ reason: "timeout" }));
  });
}

// Push event with payload: resolves with the "ok" reply, rejects with the
// "error" reply or on timeout.
export function pushEvent(channel, event, payload = {}) {
  return new Promise((resolve, reject) => {
    channel.push(event, payload)
      .receive("ok", resolve)
      .receive("error", reject)
      .receive("timeout", () => reject({ reason: "timeout" }));
  });
}

// Escape text for HTML (pages build rows from data sent by the database).
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
