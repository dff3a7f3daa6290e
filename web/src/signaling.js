// Requests on a signaling socket and their answers: each request carries a `requestId` that its
// answer echoes; an answer that does not come in time, or a socket that closes, fails it as lost.
import { friendly, state } from './ui.js';

let requestId = 0;
const pending = new Map();

/** A request on the call's socket; `timeoutMs` bounds the wait for its answer. */
export function request(type, data = {}, { timeoutMs } = {}) {
  return requestOn(state.ws, type, data, timeoutMs);
}

/** The socket is gone or did not answer in time (as opposed to a refusal). */
function lost(message) {
  const e = new Error(message);
  e.lost = true;
  return e;
}

export function requestOn(ws, type, data, timeoutMs) {
  return new Promise((resolve, reject) => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return reject(lost('Connection lost.'));
    const id = ++requestId;
    const timer = timeoutMs && setTimeout(() => {
      pending.delete(id);
      reject(lost(`No answer to ${type} within ${timeoutMs / 1000} s.`));
    }, timeoutMs);
    const settle = (fn) => (v) => { clearTimeout(timer); fn(v); };
    pending.set(id, { resolve: settle(resolve), reject: settle(reject), ws });
    ws.send(JSON.stringify({ type, requestId: id, ...data }));
  });
}

/** Settles the request `msg` answers; false if it answers none (a notification). */
export function answer(msg) {
  const p = msg.requestId && pending.get(msg.requestId);
  if (!p) return false;
  pending.delete(msg.requestId);
  if (msg.type === 'error' || msg.type === 'authError') p.reject(new Error(friendly(msg.code, msg.error)));
  else p.resolve(msg);
  return true;
}

/** Fails what is still waiting for an answer on `ws`. */
export function rejectPending(ws) {
  for (const [id, p] of pending) {
    if (p.ws === ws) {
      pending.delete(id);
      p.reject(lost('Connection lost.'));
    }
  }
}
