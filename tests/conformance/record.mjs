// Records the reference's answers to every case into fixture.json.
//   node tests/conformance/record.mjs http://127.0.0.1:PORT    (the mediasoup reference: README.md)
// Refuses to write the fixture when a case disagrees with what the reference did: a refused step
// needs our expected code (`refuse`), a `deliberate` difference needs the reference to accept.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CASES, differences, labelOf } from './cases.mjs';
import { runCases } from './runner.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const base = process.argv[2];
if (!base) {
  console.error('usage: node tests/conformance/record.mjs http://127.0.0.1:PORT');
  process.exit(2);
}

const health = await (await fetch(`${base}/health`)).json();
const mediasoup = /mediasoup-(\d+\.\d+\.\d+)/.exec(health.version ?? '')?.[1];
if (!mediasoup) {
  console.error(`${base} is not the mediasoup reference (GET /health version: ${health.version})`);
  process.exit(2);
}

const problems = [];
const started = Date.now();
const results = await runCases(base, CASES, (c, answers) => {
  for (const [i, step] of c.steps.entries()) {
    const label = labelOf(step, i);
    const a = answers[label] ?? answers['<case>'];
    const where = `${c.name} / ${label}`;
    if (step.literal || a.skipped) continue;
    if (a.code?.startsWith('<')) problems.push(`${where}: ${a.code} ${a.error ?? ''}`);
    else if (!a.ok && !step.refuse) problems.push(`${where}: the reference refuses (${a.error}): give the step our code (refuse)`);
    else if (a.ok && step.refuse) problems.push(`${where}: the reference accepts, the case says refuse ${step.refuse}`);
    else if (!a.ok && step.deliberate) problems.push(`${where}: marked deliberate but the reference refuses too (${a.error})`);
  }
  const verdicts = Object.entries(answers).map(([l, a]) => `${l}:${a.skipped ? 'skipped' : a.ok ? 'ok' : a.code}`);
  console.log(`${c.name.padEnd(48)} ${verdicts.join(' ')}`);
});
if (problems.length) {
  console.error(`\nfixture not written, ${problems.length} problem(s):\n${problems.join('\n')}`);
  process.exit(1);
}

const cases = Object.fromEntries(CASES.map((c) => {
  const steps = Object.fromEntries(Object.entries(results[c.name]).map(([label, a]) => {
    const step = c.steps.find((s, i) => labelOf(s, i) === label);
    // No reference answer for these (the reference has no ping): the case holds the expected one.
    return [label, step.literal ? { literal: step.literal, reference_raw: a.raw } : a];
  }));
  return [c.name, { about: c.about, steps }];
}));
const fixture = {
  about: 'Answers of the real mediasoup to tests/conformance/cases.mjs, normalized by runner.mjs. Re-record: tests/conformance/README.md.',
  reference: { mediasoup, server: health.version },
  differences: differences(),
  cases,
};
fs.writeFileSync(path.join(here, 'fixture.json'), `${JSON.stringify(fixture, null, 1)}\n`);
console.log(`\n${CASES.length} cases recorded from mediasoup ${mediasoup} in ${((Date.now() - started) / 1000).toFixed(1)} s: tests/conformance/fixture.json`);
