// bench/gateway/wsclient.mjs: the load generator's WebSocket client, a
// minimal one written on node:net for this benchmark (no npm package): the
// opening handshake (Sec-WebSocket-Accept checked), masked text frames out,
// unmasked frames in (7-, 16- and 64-bit lengths, fragments, ping answered
// with pong, close).  It is cheaper per message than the `ws` package's
// client, so that one load-generator process can receive what the servers
// send; both servers are measured with the same client.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

// Open a WebSocket to 127.0.0.1:port at target (path and query).  Resolves
// with the connection once the server answered 101; onMessage(buffer) gets
// each text message, onClose(code) the end.
export function wsConnect(port, target, { onMessage, onClose } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    const key = randomBytes(16).toString('base64');
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    let head = Buffer.alloc(0);
    let open = false;
    let buf = null; // unparsed bytes
    let frags = null; // a fragmented message
    const conn = {
      sock,
      send(text) { sock.write(frame(1, Buffer.from(text))); },
      close() { if (!sock.destroyed) sock.end(frame(8, Buffer.from([0x03, 0xe8]))); },
      destroy() { sock.destroy(); },
    };
    let closed = false;
    const finish = (code) => {
      if (closed) return;
      closed = true;
      if (!open) reject(new Error(`connection closed before the upgrade (${code})`));
      else if (onClose) onClose(code);
    };
    sock.setNoDelay(true);
    sock.on('connect', () => {
      sock.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    sock.on('error', (err) => { if (!open) reject(err); });
    sock.on('close', () => finish(1006));
    sock.on('data', (chunk) => {
      if (!open) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = head.subarray(0, end).toString();
        if (!/^HTTP\/1\.1 101/.test(text) || !text.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)) {
          sock.destroy();
          reject(new Error(`upgrade refused: ${text.split('\r\n')[0]}`));
          return;
        }
        open = true;
        resolve(conn);
        chunk = head.subarray(end + 4);
        head = null;
        if (chunk.length === 0) return;
      }
      buf = buf ? Buffer.concat([buf, chunk]) : chunk;
      let off = 0;
      for (;;) {
        if (buf.length - off < 2) break;
        const b0 = buf[off];
        let len = buf[off + 1] & 0x7f;
        let hdr = 2;
        if (len === 126) {
          if (buf.length - off < 4) break;
          len = buf.readUInt16BE(off + 2);
          hdr = 4;
        } else if (len === 127) {
          if (buf.length - off < 10) break;
          len = Number(buf.readBigUInt64BE(off + 2));
          hdr = 10;
        }
        if (buf.length - off < hdr + len) break;
        const payload = buf.subarray(off + hdr, off + hdr + len);
        off += hdr + len;
        const opcode = b0 & 0x0f;
        const fin = (b0 & 0x80) !== 0;
        if (opcode === 1 || opcode === 0) {
          if (!fin) { frags = frags ? Buffer.concat([frags, payload]) : Buffer.from(payload); continue; }
          const msg = frags ? Buffer.concat([frags, payload]) : payload;
          frags = null;
          if (onMessage) onMessage(msg);
        } else if (opcode === 8) {
          const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
          sock.end();
          finish(code);
          return;
        } else if (opcode === 9) {
          sock.write(frame(10, Buffer.from(payload)));
        }
      }
      buf = off === buf.length ? null : buf.subarray(off);
    });
  });
}

// A masked client frame (FIN set) of opcode with payload.
function frame(opcode, payload) {
  const len = payload.length;
  const hdr = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(hdr + 4 + len);
  out[0] = 0x80 | opcode;
  if (hdr === 2) out[1] = 0x80 | len;
  else if (hdr === 4) { out[1] = 0x80 | 126; out.writeUInt16BE(len, 2); }
  else { out[1] = 0x80 | 127; out.writeBigUInt64BE(BigInt(len), 2); }
  const mask = randomBytes(4);
  mask.copy(out, hdr);
  for (let i = 0; i < len; i++) out[hdr + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}
