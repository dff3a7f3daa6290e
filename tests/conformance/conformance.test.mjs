// Our server against the real mediasoup's recorded answers (fixture.json): every case of cases.mjs
// is run on our server and compared field by field. Needs the server binary (ATOME_BIN, else
// $CARGO_TARGET_DIR/debug/atome) and web/node_modules (ws, mediasoup-client); not mediasoup.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, waitUntilUp } from '../e2e/lib.mjs';
import { CASES, differences, labelOf } from './cases.mjs';
import { runCase } from './runner.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = JSON.parse(fs.readFileSync(path.join(here, 'fixture.json'), 'utf8'));
const target = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache/atome-target');
const binary = process.env.ATOME_BIN || path.join(target, 'debug/atome');

// ---------- our server, restarted if a case leaves it unable to answer ----------

let server;
async function startServer() {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'atome-conformance-'));
  const log = fs.openSync(path.join(dataDir, 'server.log'), 'a');
  // ICE-TCP off, as the reference runs (enableTcp: false): transportOptions list the UDP candidate only.
  const proc = spawn(binary, ['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--rtc-port', '0', '--workers', '1', '--dev-auth', '--rtc-tcp=false'],
    { stdio: ['ignore', log, log] });
  const base = `http://127.0.0.1:${port}`;
  await waitUntilUp(`${base}/health`);
  return { base, log: path.join(dataDir, 'server.log'), stop: () => proc.kill('SIGTERM') };
}
/** Why the server cannot go on (its media worker is gone, it does not answer), or null. */
async function brokenServer() {
  try {
    const h = await (await fetch(`${server.base}/health`)).json();
    return h.media === null ? `/health says media: null (${JSON.stringify(h)})` : null;
  } catch (e) {
    return `/health does not answer (${e.message})`;
  }
}

before(async () => {
  assert.ok(fs.existsSync(binary), `no server binary at ${binary}: cargo build -p atome, or set ATOME_BIN`);
  server = await startServer();
});
after(() => server?.stop());

// ---------- comparison ----------

const parsePath = (p) => [...p.matchAll(/\[([^\]]*)\]|([^.[\]]+)/g)].map((m) => m[1] ?? m[2]);
const showPath = (segs) => segs.map((s, i) => (/^[\w-]+$/.test(s) && !/^\d+$/.test(s) ? `${i ? '.' : ''}${s}` : `[${s}]`)).join('');
const show = (v) => (v === undefined ? '(absent)' : JSON.stringify(v).slice(0, 300));
const ignored = differences().filter((d) => d.path).map((d) => ({ case: d.case, segs: parsePath(d.path) }));

function isIgnored(caseName, segs) {
  return ignored.some((d) => (!d.case || d.case === caseName) && d.segs.length <= segs.length
    && d.segs.every((s, i) => s === '*' || s === String(segs[i])));
}

/** Field-by-field differences of two normalized bodies, except the listed deliberate ones. */
function diff(ref, ours, segs, skip, out = []) {
  if (skip(segs)) return out;
  const object = (v) => v !== null && typeof v === 'object';
  if (object(ref) && object(ours) && Array.isArray(ref) === Array.isArray(ours)) {
    const keys = Array.isArray(ref)
      ? [...Array(Math.max(ref.length, ours.length)).keys()].map(String)
      : [...new Set([...Object.keys(ref), ...Object.keys(ours)])];
    for (const k of keys) diff(ref[k], ours[k], [...segs, k], skip, out);
  } else if (JSON.stringify(ref) !== JSON.stringify(ours)) {
    out.push(`${showPath(segs) || '(body)'}: reference ${show(ref)}, ours ${show(ours)}`);
  }
  return out;
}

/** Where our answer to one step differs from what it must be. */
function compareStep(caseName, step, ref, ours) {
  const refused = (a) => `refused ${a.code}${a.error ? ` (${a.error})` : ''}`;
  if (step.literal) {
    const got = rawRequestId(ours.raw ?? '');
    if (ours.type === step.literal.type && got === step.literal.requestId) return [];
    return [`answer: expected ${step.literal.type} echoing requestId ${step.literal.requestId}, ours ${ours.raw ?? refused(ours)}`];
  }
  // A step not run on one side follows a refusal already reported (or a deliberate one).
  if (ref.skipped || ours.skipped) return [];
  if (step.deliberate) {
    return !ours.ok && ours.code === step.deliberate.code ? []
      : [`deliberate difference: expected ours refused ${step.deliberate.code}, ours ${ours.ok ? `accepted (${ours.type})` : refused(ours)}`];
  }
  if (ref.ok && !ours.ok) return [`accepted by the reference (${ref.type}), ours ${refused(ours)}`];
  if (!ref.ok && ours.ok) return [`refused by the reference (${ref.error}), ours accepted (${ours.type}) expected code ${step.refuse}`];
  if (!ref.ok) return ours.code === step.refuse ? [] : [`refused by both: expected code ${step.refuse}, ours ${refused(ours)}`];
  if (ref.type !== ours.type) return [`reply type: reference ${ref.type}, ours ${ours.type}`];
  return diff(ref.body, ours.body, [], (segs) => isIgnored(caseName, segs));
}

/** The raw JSON text of the first requestId in `text` (strings, objects and arrays included). */
function rawRequestId(text) {
  const at = text.indexOf('"requestId":');
  if (at < 0) return undefined;
  let i = at + '"requestId":'.length;
  const start = i;
  let depth = 0;
  let inString = false;
  for (; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{' || ch === '[') depth++;
    else if ((ch === '}' || ch === ']') && depth > 0) depth--;
    else if ((ch === ',' || ch === '}' || ch === ']') && depth === 0) break;
  }
  return text.slice(start, i).trim();
}

// ---------- the cases ----------

test('the fixture holds every case and lists every deliberate difference', () => {
  const missing = CASES.map((c) => c.name).filter((n) => !fixture.cases[n]);
  const stale = Object.keys(fixture.cases).filter((n) => !CASES.some((c) => c.name === n));
  assert.deepEqual({ missing, stale }, { missing: [], stale: [] }, 're-record the fixture (tests/conformance/README.md)');
  assert.deepEqual(fixture.differences, differences(), 'cases.mjs changed its differences: re-record the fixture');
});

const summary = [];
for (const [index, c] of CASES.entries()) {
  const recorded = fixture.cases[c.name];
  test(c.name, { skip: !recorded && 'not in the fixture' }, async () => {
    const answers = await runCase(server.base, c, index);
    const problems = [];
    for (const [i, step] of c.steps.entries()) {
      const label = labelOf(step, i);
      const [ref, ours] = [recorded.steps[label], answers[label]];
      for (const p of compareStep(c.name, step, ref, ours)) problems.push(`${label}: ${p}`);
      // After an accept/refuse disagreement the rest of the case follows from it: not compared.
      if (!step.literal && !ref.skipped && !ours.skipped && ref.ok !== ours.ok) break;
    }
    const broken = await brokenServer();
    if (broken) {
      problems.push(`the server cannot go on after this case: ${broken} (log: ${server.log}); restarted for the next cases`);
      server.stop();
      server = await startServer();
    }
    for (const p of problems) summary.push(`${c.name} / ${p}`);
    assert.ok(problems.length === 0, `${c.name} (${c.about}) differs from mediasoup ${fixture.reference.mediasoup}:\n  ${problems.join('\n  ')}`);
  });
}

test('summary', () => {
  if (summary.length) console.log(`\n${summary.length} difference(s) from mediasoup ${fixture.reference.mediasoup}:\n${summary.join('\n')}`);
});
