// Debian's Firefox ESR through geckodriver (WebDriver), behind the small part of playwright-core's
// Page API the tests use, so the same helpers drive both browsers. Fake camera and microphone.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, sleep, waitUntilUp } from './lib.mjs';

const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8' };

/** $GECKODRIVER, else geckodriver on the PATH, else cargo's bin folder (`cargo install geckodriver`). */
export function geckodriverPath() {
  const onPath = (process.env.PATH || '').split(':').filter(Boolean).map((d) => path.join(d, 'geckodriver'));
  const candidates = [process.env.GECKODRIVER, ...onPath, path.join(os.homedir(), '.cargo/bin/geckodriver')];
  return candidates.find((p) => p && fs.existsSync(p));
}

/**
 * Starts geckodriver; `newContext()` opens a fresh Firefox (its own profile) per user. With
 * `netns` (netns.mjs), geckodriver and so Firefox run inside that namespace, geckodriver listening
 * on the namespace's address (Marionette stays on the namespace's own loopback); `server`'s
 * address is then a secure context for Firefox (getUserMedia needs one).
 */
export async function launchFirefox({ netns, server } = {}) {
  const port = await freePort();
  const host = netns ? netns.nsIp : '127.0.0.1';
  const args = ['--host', host, '--port', String(port), '--log', 'error'];
  const proc = netns
    ? spawn('ip', ['netns', 'exec', netns.name, geckodriverPath(), ...args], { stdio: 'ignore' })
    : spawn(geckodriverPath(), args, { stdio: 'ignore' });
  const base = `http://${host}:${port}`;
  await waitUntilUp(`${base}/status`);
  return {
    newContext: async () => {
      const page = await FirefoxPage.open(base, server && new URL(server.base).hostname);
      return { newPage: async () => page, close: () => page.close() };
    },
    close: async () => proc.kill('SIGTERM'),
  };
}

class FirefoxPage {
  static async open(base, secureHost) {
    const caps = {
      browserName: 'firefox',
      'moz:firefoxOptions': {
        binary: '/usr/bin/firefox-esr',
        args: ['-headless'],
        prefs: {
          'media.navigator.streams.fake': true,
          'media.navigator.permission.disabled': true,
          'media.autoplay.default': 0,
          'media.autoplay.blocking_policy': 0,
          'media.peerconnection.ice.obfuscate_host_addresses': false,
          ...(secureHost ? { 'dom.securecontext.allowlist': secureHost } : {}),
        },
      },
    };
    const r = await (await fetch(`${base}/session`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ capabilities: { alwaysMatch: caps } }) })).json();
    if (!r.value?.sessionId) throw new Error(`geckodriver: no session: ${JSON.stringify(r)}`);
    return new FirefoxPage(`${base}/session/${r.value.sessionId}`);
  }

  constructor(session) {
    this.session = session;
  }

  async cmd(method, what, body) {
    const r = await fetch(`${this.session}${what}`, { method, headers: JSON_TYPE, body: body && JSON.stringify(body) });
    const out = await r.json();
    if (out.value?.error) throw new Error(`webdriver ${what}: ${out.value.error}: ${out.value.message}`);
    return out.value;
  }

  on() {} // console capture is Chromium-only here

  goto(url) {
    return this.cmd('POST', '/url', { url });
  }

  /** Runs `fn(arg)` (sync or async) in the page and returns its JSON result. */
  async evaluate(fn, arg) {
    const script = `const done = arguments[arguments.length - 1];
      Promise.resolve().then(() => (${fn})(arguments[0])).then(done, (e) => done({ __error: String(e && e.stack || e) }));`;
    const v = await this.cmd('POST', '/execute/async', { script, args: [arg === undefined ? null : arg] });
    if (v && v.__error) throw new Error(v.__error);
    return v;
  }

  $eval(selector, fn) {
    return this.evaluate(`(s) => (${fn})(document.querySelector(s))`, selector);
  }

  fill(selector, value) {
    return this.evaluate(([s, v]) => {
      const el = document.querySelector(s);
      el.value = v;
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
    }, [selector, value]);
  }

  click(selector) {
    return this.evaluate((s) => document.querySelector(s).click(), selector);
  }

  check(selector) {
    return this.evaluate((s) => {
      const el = document.querySelector(s);
      if (!el.checked) el.click();
    }, selector);
  }

  selectOption(selector, value) {
    return this.fill(selector, value);
  }

  async waitForFunction(fn, arg, { timeout = 30000 } = {}) {
    const end = Date.now() + timeout;
    while (Date.now() < end) {
      if (await this.evaluate(fn, arg)) return;
      await sleep(200);
    }
    throw new Error(`firefox: timed out waiting for ${String(fn).slice(0, 120)}`);
  }

  waitForSelector(selector, { state = 'visible', timeout = 30000 } = {}) {
    return this.waitForFunction(([s, st]) => {
      const el = document.querySelector(s);
      return !!el && (st === 'attached' || (!el.closest('[hidden]') && el.getClientRects().length > 0));
    }, [selector, state], { timeout });
  }

  async screenshot({ path: file }) {
    const png = await this.cmd('GET', '/screenshot');
    fs.writeFileSync(file, Buffer.from(png, 'base64'));
  }

  close() {
    return this.cmd('DELETE', '');
  }
}
