// The web console (issue 18) in a real browser: Debian's chromium, headless,
// driven by puppeteer-core, against a real tether-gateway and three real
// agents. Run by ctest: node console_test.mjs, with TETHER_BIN_DIR (the
// binaries) and TETHER_SCREENSHOTS (where each page's picture goes).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import puppeteer from 'puppeteer-core';

const bin = process.env.TETHER_BIN_DIR;
const shots = process.env.TETHER_SCREENSHOTS || path.join(os.tmpdir(), 'tether-console-screens');
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
if (!bin) throw new Error('TETHER_BIN_DIR is not set');
if (!fs.existsSync(chromium)) throw new Error(`${chromium} is missing: tools/bootstrap installs Debian's chromium`);
fs.mkdirSync(shots, { recursive: true });
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-console-'));
const children = [];
let failures = 0;

function check(ok, what) {
  if (ok) console.log(`ok: ${what}`);
  else { failures++; console.log(`FAIL: ${what}`); }
}
function must(ok, what) { check(ok, what); if (!ok) throw new Error(`cannot go on: ${what}`); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function start(file, args) {
  const p = spawn(path.join(bin, file), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  p.out = '';
  p.err = '';
  p.stdout.on('data', (d) => { p.out += d; });
  p.stderr.on('data', (d) => { p.err += d; });
  children.push(p);
  return p;
}
async function until(pred, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await pred()) return true; await sleep(50); }
  throw new Error(`timed out: ${what}`);
}

function request(port, target, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method, headers }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function startGateway(name, extra = []) {
  const data = path.join(work, name);
  const gw = start('tether-gateway', ['serve', '--listen', '127.0.0.1:0', '--data-dir', data, '--log-format', 'json', ...extra]);
  await until(() => gw.err.includes('gateway.listening'), 20000, `${name} listening`);
  const line = gw.err.split('\n').find((l) => l.includes('gateway.listening'));
  gw.port = JSON.parse(line).port;
  gw.tokenFile = path.join(data, 'admin.token');
  gw.token = fs.readFileSync(gw.tokenFile, 'utf8').trim();
  return gw;
}

async function main() {
  // ---- A gateway and three enrolled agents ------------------------------------
  const gw = await startGateway('gw');
  const port = gw.port;
  const url = `http://127.0.0.1:${port}`;
  const token = gw.token;
  const admin = ['admin', '--server', url, '--admin-token-file', gw.tokenFile];
  const agents = [];
  for (const name of ['alpha', 'bravo', 'charlie']) {
    const code = execFileSync(path.join(bin, 'tether-gateway'), [...admin, 'create-enrollment-code', '--org', 'acme']).toString().trim();
    const state = path.join(work, name);
    execFileSync(path.join(bin, 'tether'), ['enroll', '--server', url, '--state-dir', state, '--name', name], { env: { ...process.env, TETHER_CODE: code } });
    const id = JSON.parse(fs.readFileSync(path.join(state, 'state.json'), 'utf8')).nodeId;
    agents.push({ name, id, proc: start('tether', ['run', '--state-dir', state, '--heartbeat-interval', '5s', '--log-format', 'json']) });
  }
  for (const a of agents) await until(() => a.proc.err.includes('heartbeat.ok') && a.proc.err.includes('sse.connected'), 20000, `${a.name} running`);

  // ---- The browser ---------------------------------------------------------------
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  const problems = [];
  const failedRequests = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // The browser logs every 4xx answer as a console error; those are
    // checked as requests below, each where the test expects one.
    if (m.text().startsWith('Failed to load resource')) return;
    problems.push(`console error: ${m.text()}`);
  });
  page.on('requestfailed', (r) => { if (!r.url().includes('/v1/admin/events')) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`); });
  page.on('response', (r) => { if (r.status() >= 400) failedRequests.push(`${r.status()} ${new URL(r.url()).pathname}`); });
  const shot = async (name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  const text = (sel) => page.$eval(sel, (e) => e.textContent.trim()).catch(() => null);
  const waitText = (sel, want, ms = 10000) => page.waitForFunction((s, w) => document.querySelector(s)?.textContent.trim() === w, { timeout: ms, polling: 50 }, sel, want);

  // Log in.
  const first = await page.goto(`${url}/ui/`);
  const h = first.headers();
  check(h['content-security-policy']?.includes("script-src 'self'") && !h['content-security-policy'].includes('unsafe-inline'), 'a strict CSP with no inline script');
  check(h['x-frame-options'] === 'DENY', 'X-Frame-Options: DENY');
  check(h['referrer-policy'] === 'no-referrer', 'Referrer-Policy: no-referrer');
  await page.waitForSelector('#login');
  await shot('login-1280');
  await page.type('#admin-token', 'not the token');
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#login-error .error');
  check((await text('#login-error')).includes('wrong admin token'), 'a wrong token is refused');
  const refusal = failedRequests.splice(0).join();
  check(refusal === '401 /ui/api/login', `the refusal was the only failed request (${refusal})`);
  await page.type('#admin-token', token);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#count-online');
  const cookies = await page.cookies();
  const cookie = cookies.find((c) => c.name === 'tether_console');
  must(cookie, 'a console session cookie was set');
  check(cookie.httpOnly && cookie.sameSite === 'Strict', 'the cookie is HttpOnly and SameSite=Strict');
  check(!cookie.secure, 'and not Secure on plain HTTP (the browser would drop it)');
  check(cookie.value !== token, 'the cookie is not the admin token');

  // Three online, live.
  await waitText('#count-online', '3');
  check(true, 'three nodes online');
  await waitText('#live', 'live');
  await page.evaluate(() => { window.__noReload = 1; });
  await shot('overview-1280');

  // Publish in the editor: the rollout bar reaches 3/3 without a reload.
  await page.click('a[data-nav=config]');
  await page.waitForFunction(() => document.querySelector('#config-version')?.textContent === '0', { timeout: 5000 });
  await page.$eval('#config-editor', (e) => { e.value = JSON.stringify({ flags: { console: true }, heartbeatIntervalSeconds: 5 }, null, 2); });
  await page.click('#publish');
  await page.waitForSelector('#config-published');
  const published = await text('#config-version');
  check(/^\d+$/.test(published) && published !== '0', `published version ${published}`);
  await shot('config-1280');
  const publishedAt = Date.now();
  await page.click('a[data-nav=overview]');
  await page.waitForFunction((v) => document.querySelector('#rollout-version')?.textContent === v &&
    document.querySelector('#rollout-text')?.textContent === '3/3', { timeout: 15000, polling: 50 }, published);
  check(true, `the rollout bar reached 3/3 in ${Date.now() - publishedAt} ms`);
  check(await page.evaluate(() => window.__noReload === 1), 'without a reload');
  await shot('overview-rolled-out-1280');

  // An invalid document: the error is shown at the field the gateway names.
  await page.click('a[data-nav=config]');
  await page.waitForFunction((v) => document.querySelector('#config-version')?.textContent === v, { timeout: 5000 }, published);
  await page.$eval('#config-editor', (e) => { e.value = JSON.stringify({ flags: { console: true }, rateLimits: [{ route: '/x', maxRequests: 'lots', windowSeconds: 1 }] }, null, 2); });
  await page.click('#publish');
  await page.waitForSelector('#config-error');
  const field = await page.$eval('#config-error', (e) => e.dataset.field);
  check(field.startsWith('rateLimits[0]') && field.includes('maxRequests'), `the error names the field (${field})`);
  check(await page.$eval('#config-editor', (e) => e.classList.contains('invalid') &&
    e.value.slice(e.selectionStart, e.selectionEnd) === '"maxRequests"'), 'the editor selects that field');
  const refusedPublish = failedRequests.splice(0).join();
  check(refusedPublish === '400 /tether.v1.AdminService/PublishConfig', `the refused publish was the only failed request (${refusedPublish})`);
  await shot('config-invalid-1280');

  // Someone publishes while the editor holds an edit of the version it
  // loaded: the console's publish is refused rather than undoing theirs,
  // and the edit stays until the operator asks for the latest.
  const gatewayCli = (args, input) => execFileSync(path.join(bin, 'tether-gateway'), [...admin, ...args], { input }).toString().trim();
  const mine = JSON.stringify({ flags: { console: true, mine: true }, heartbeatIntervalSeconds: 5 }, null, 2);
  await page.$eval('#config-editor', (e, v) => { e.value = v; }, mine);
  const theirs = gatewayCli(['publish-config', '--org', 'acme', '-'], JSON.stringify({ flags: { console: true, theirs: true }, heartbeatIntervalSeconds: 5 }));
  await page.click('#publish');
  await page.waitForSelector('#config-conflict');
  const conflictText = await text('#config-conflict');
  check(conflictText.includes(`latest config is ${theirs}, not ${published}`), `the console says what was published meanwhile (${conflictText})`);
  check(await page.$eval('#config-editor', (e) => e.value) === mine, 'the edit stays in the editor');
  const kept = JSON.parse(gatewayCli(['get-config', '--org', 'acme']));
  check(kept.flags.theirs === true && !('mine' in kept.flags), `their change is the org's config still (${JSON.stringify(kept)})`);
  const conflicted = failedRequests.splice(0).join();
  check(conflicted === '409 /tether.v1.AdminService/PublishConfig', `the refused publish was the only failed request (${conflicted})`);
  await shot('config-conflict-1280');
  await page.click('#config-reload');
  await waitText('#config-version', theirs);
  check((await page.$eval('#config-editor', (e) => JSON.parse(e.value))).flags.theirs === true, 'loading the latest shows their change');
  await page.$eval('#config-editor', (e) => { const d = JSON.parse(e.value); d.flags.mine = true; e.value = JSON.stringify(d, null, 2); });
  await page.click('#publish');
  await page.waitForSelector('#config-published');
  const merged = JSON.parse(gatewayCli(['get-config', '--org', 'acme']));
  check(merged.flags.theirs === true && merged.flags.mine === true, `an edit of the latest is published with both changes (${JSON.stringify(merged)})`);

  // Nodes page: three rows, search and sort.
  await page.click('a[data-nav=nodes]');
  await page.waitForSelector('#nodes tbody tr');
  check((await page.$$('#nodes tbody tr')).length === 3, 'three rows');
  await page.type('#node-search', 'brav');
  await page.waitForFunction(() => document.querySelectorAll('#nodes tbody tr').length === 1);
  check((await text('#nodes tbody tr td a')) === 'bravo', 'search finds bravo');
  await page.$eval('#node-search', (e) => { e.value = ''; e.dispatchEvent(new Event('input')); });
  await page.click('button[data-sort=nodeName]');  // was ascending: now descending
  check((await text('#nodes tbody tr:first-child td a')) === 'charlie', 'sorted by name, descending');
  await shot('nodes-1280');

  // Pages of 20: 22 more nodes, enrolled and never run (offline). They show
  // up at the console's next count (every 10 s) without a reload.
  const spare = execFileSync(path.join(bin, 'tether-gateway'), [...admin, 'create-enrollment-code', '--org', 'acme', '--uses', '22']).toString().trim();
  for (let i = 0; i < 22; i++) {
    execFileSync(path.join(bin, 'tether'), ['enroll', '--server', url, '--state-dir', path.join(work, `spare${i}`), '--name', `spare-${String(i).padStart(2, '0')}`], { stdio: 'ignore', env: { ...process.env, TETHER_CODE: spare } });
  }
  await waitText('#node-count', '25 of 25', 15000);
  check((await text('.pager span')) === 'page 1 of 2' && (await page.$$('#nodes tbody tr')).length === 20, 'the table shows 20 of 25 nodes on page 1 of 2');
  await page.click('.pager button:last-child');
  await waitText('.pager span', 'page 2 of 2');
  check((await page.$$('#nodes tbody tr')).length === 5, 'page 2 holds the other 5');
  check(await page.$eval('.pager button:last-child', (b) => b.disabled), 'and Next is disabled there');
  await page.click('button[data-sort=online]');  // online first, then offline
  await page.click('.pager button:first-child');
  await page.click('button[data-sort=online]');
  check((await text('#nodes tbody tr:first-child td:nth-child(3)')) === 'online', 'sorted by status, online first');
  check((await text('#nodes tbody tr:nth-child(4) td a')) === 'spare-00', 'ties by name');
  await page.type('#node-search', 'spare-1');
  await waitText('#node-count', '10 of 25');
  check((await text('.pager span')) === 'page 1 of 1', 'a search goes back to one page');
  await page.$eval('#node-search', (e) => { e.value = ''; e.dispatchEvent(new Event('input')); });
  await shot('nodes-paged-1280');

  // Node detail and revoke, with a confirmation: it leaves the online count.
  const victim = agents[2];
  await page.click(`tr[data-node="${victim.id}"] a`);
  await page.waitForSelector('#revoke');
  await shot('node-1280');
  await page.click('#revoke');
  await page.waitForSelector('#revoke-confirm');
  await shot('node-revoke-confirm-1280');
  await page.click('#revoke-confirm');
  await page.waitForSelector('#revoked-notice');
  await page.click('a[data-nav=overview]');
  await waitText('#count-online', '2');
  await waitText('#count-revoked', '1');
  check(true, 'the revoked node left the online count');
  await until(() => victim.proc.exitCode !== null, 10000, 'the revoked agent exits');
  check(victim.proc.exitCode === 3, `the revoked agent exited with 3 (${victim.proc.exitCode})`);

  // The phone size: every page fits its width.
  await page.setViewport({ width: 390, height: 844 });
  for (const [name, hash] of [['overview', '#/'], ['nodes', '#/nodes'], ['node', `#/node/${agents[0].id}`], ['config', '#/config']]) {
    await page.evaluate((x) => { location.hash = x; }, hash);
    await sleep(300);
    const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    check(scroll <= width, `${name} at 390x844 has no horizontal scroll (${scroll} <= ${width})`);
    await shot(`${name}-390`);
  }
  await page.setViewport({ width: 1280, height: 800 });

  // The token is nowhere in the browser, nor in the gateway's log.
  const stored = await page.evaluate(() => JSON.stringify({ l: { ...localStorage }, s: { ...sessionStorage }, u: location.href, c: document.cookie }));
  check(!stored.includes(token), 'the admin token is not in storage, the URL or script-visible cookies');
  check(!gw.err.includes(token) && !gw.out.includes(token), 'nor in the gateway log');

  // Log out: the cookie no longer works, on the server.
  const jar = `tether_console=${cookie.value}`;
  const before = await request(port, '/ui/api/session', { headers: { Cookie: jar } });
  check(JSON.parse(before.body).loggedIn === true, 'the cookie works before logout');
  await page.click('#logout');
  await page.waitForSelector('#login');
  const after = await request(port, '/ui/api/session', { headers: { Cookie: jar } });
  check(JSON.parse(after.body).loggedIn === false, 'after logout the cookie is refused');
  const rpcAfter = await request(port, '/tether.v1.AdminService/ListNodes', {
    method: 'POST', headers: { Cookie: jar, 'Content-Type': 'application/json', 'X-CSRF-Token': 'x' }, body: '{}',
  });
  check(rpcAfter.status === 401, `and an RPC with it gets 401 (${rpcAfter.status})`);
  const streamAfter = await request(port, '/v1/admin/events', { headers: { Cookie: jar } });
  check(streamAfter.status === 401, `and the admin stream too (${streamAfter.status})`);
  await shot('logged-out-1280');

  // Behind a balancer that ends TLS, the gateway serves plain HTTP on
  // loopback: --console-secure-cookie still marks the cookie Secure.
  const behind = await startGateway('gw-behind-tls', ['--console-secure-cookie']);
  const secure = await request(behind.port, '/ui/api/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ adminToken: behind.token }),
  });
  const setCookie = String(secure.headers['set-cookie'] || '');
  check(secure.status === 200 && setCookie.includes('; Secure'),
    `--console-secure-cookie marks the cookie Secure (${setCookie.replace(/=[^;]*/, '=…')})`);

  check(problems.length === 0, `no console errors on any page${problems.length ? `: ${problems.join('; ')}` : ''}`);
  check(failedRequests.length === 0, `no unexpected failed requests${failedRequests.length ? `: ${failedRequests.join(', ')}` : ''}`);
  await browser.close();
  console.log(`screenshots in ${shots}`);
}

try {
  await main();
} catch (e) {
  failures++;
  console.log(`FAIL: ${e.stack || e}`);
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await sleep(300);
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
}
console.log(failures ? `${failures} failed` : 'all passed');
process.exit(failures ? 1 : 0);
