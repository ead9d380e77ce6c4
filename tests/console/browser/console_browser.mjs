// console_browser.mjs - the web console end to end (issue 20, point 3):
// a real sluiced seeded through the CLI (schemas, a bound topic with
// invalid messages dead-lettered, a mapping, routing table v1 with
// derived messages and lineage, a durable subscription with lag), a real
// sluice-console serving the built app, and Debian's Chromium driven
// headless by playwright-core. Logs in, visits every view and checks the
// real data is on it, resets a cursor, redrives a dead letter, applies a
// routes table (check, then apply) and rolls it back, then logs in as a
// viewer and checks a refused action shows the broker's 403. Screenshots of
// every view go to SHOTS. Usage (run.sh): node console_browser.mjs BUILD
// SRC WEBROOT NODE_MODULES SHOTS.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Harness, sleep } from './harness.mjs';

const [BUILD, SRC, WEBROOT, MODULES, SHOTS] = process.argv.slice(2);
const { chromium } = createRequire(path.join(MODULES, 'x.js'))('playwright-core');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const T = 15000;   // how long the page may take to show something

const hx = new Harness(BUILD);
let browser = null;
let page = null;
let step = 'setup';
let shot = 0;
let checks = 0;

function ok(cond, what, detail) {
  checks++;
  assert.ok(cond, `${what}${detail !== undefined ? `: ${JSON.stringify(detail)}` : ''}`);
}

// ---------------------------------------------------------------- page helpers

const tid = (id) => page.getByTestId(id);

// Wait until LOCATOR's text contains TEXT (string or RegExp).
async function seeText(locator, text, what) {
  const end = Date.now() + T;
  let last = '';
  for (;;) {
    last = (await locator.first().textContent({ timeout: T }).catch(() => '')) || '';
    if (typeof text === 'string' ? last.includes(text) : text.test(last)) { checks++; return last; }
    if (Date.now() > end) throw new Error(`${what}: expected ${text} in ${JSON.stringify(last.slice(0, 600))}`);
    await sleep(100);
  }
}

// No error banner: a view that loaded must not have failed quietly either.
async function noErrors(what) {
  const n = await tid('error-banner').count();
  const texts = n ? await tid('error-banner').allTextContents() : [];
  ok(n === 0, `${what}: no error banner`, texts);
}

// TOP: scroll the page up first (a view just reloaded keeps its scroll).
async function screenshot(name, top = true) {
  if (top) await page.evaluate(() => window.scrollTo(0, 0));
  shot++;
  const file = path.join(SHOTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
}

async function go(hash, viewTestid) {
  await page.goto(`${hx.url}/${hash}`);
  await tid(viewTestid).waitFor({ timeout: T });
}

async function confirm(expectTitle) {
  await tid('confirm-dialog').waitFor({ timeout: T });
  await seeText(tid('confirm-dialog'), expectTitle, 'confirmation dialog');
  await tid('confirm-ok').click();
  await tid('confirm-dialog').waitFor({ state: 'detached', timeout: T });
}

const row = (testid, attr, value) => page.locator(`[data-testid="${testid}"][${attr}="${value}"]`);

// ---------------------------------------------------------------- seed

// Payments: amounts must be numbers in v1; v2 also takes them as strings.
const PAYMENT_V1 = JSON.stringify({
  type: 'object', required: ['id', 'amount'],
  properties: { id: { type: 'string' }, amount: { type: 'number' } },
});
const PAYMENT_V2 = JSON.stringify({
  type: 'object', required: ['id', 'amount'],
  properties: { id: { type: 'string' }, amount: { type: ['number', 'string'] } },
});

function seed() {
  const R = path.join(SRC, 'tests', 'routes');
  const file = (name, text) => { fs.writeFileSync(path.join(hx.tmp, name), text); return path.join(hx.tmp, name); };
  hx.cli(['schema', 'register', 'shop.order', path.join(R, 'schemas', 'shop.order@1.json')]);
  hx.cli(['schema', 'register', 'canonical.order', path.join(R, 'schemas', 'canonical.order@1.json')]);
  hx.cli(['topic', 'set', 'shop.orders', '--schema', 'shop.order']);
  hx.cli(['mapping', 'add', path.join(R, 'mappings', 'order-to-canonical.yaml')]);
  hx.cli(['routes', 'apply', path.join(R, 'shop.routes.yaml')]);
  // Three orders: archived through the chain, the EU ones mapped.
  hx.cli(['pub', 'shop.orders', '--content-type', 'application/json', '--header', 'source=web-shop'], {
    input: ['{"id":"A1","region":"EU","total":12.5,"customer":"Ada Lovelace"}',
      '{"id":"U1","region":"US","total":3}',
      '{"id":"A2","region":"EU","total":40}'].join('\n') + '\n',
  });
  // Payments with the amount as a string: payment@1 refuses them into the
  // dead letters (--invalid=dlq).
  hx.cli(['schema', 'register', 'payment', file('payment.v1.json', PAYMENT_V1)]);
  hx.cli(['topic', 'set', 'payments', '--schema', 'payment', '--invalid=dlq']);
  const r = hx.cli(['pub', 'payments', '--content-type', 'application/json', '--header', 'gateway=acme'], {
    ok: false,
    input: '{"id":"P-7001","amount":"12.50"}\n{"id":"P-7002","amount":7}\n{"id":"P-7003","amount":"3.10"}\n',
  });
  ok(/published 1 of 3/.test(r.stderr), 'seed: 1 payment stored, 2 dead-lettered', r.stderr);
  hx.cli(['pub', 'sensors.temp', '--header', 'unit=celsius'], { input: 'plain text reading 21.5\n{"t":22.1}\n' });
  // A durable subscription that acked one order: it lags behind.
  hx.cli(['sub', 'shop.orders', '--subscription', 'billing', '--from', 'earliest', '--count', '1', '--timeout', '20']);
  // The next version takes string amounts: the dead letters may go back.
  hx.cli(['schema', 'register', 'payment', file('payment.v2.json', PAYMENT_V2)]);
}

// ---------------------------------------------------------------- the views

async function login(token, identity) {
  await page.goto(`${hx.url}/#/login`);
  await tid('login-token').fill(token);
  await tid('login-submit').click();
  await tid('view-overview').waitFor({ timeout: T });
  await seeText(tid('identity'), identity, 'the nav bar names the identity');
}

async function viewOverview(admin) {
  const stats = hx.stats();
  await seeText(tid('count-topics'), /\d/, 'overview topics');
  const o = await hx.api(admin, '/api/overview');
  await seeText(tid('count-topics'), String(o.topics), 'overview: topic count as the API says');
  ok(o.topics >= stats.topics.length - 1 && o.topics > 3, 'overview counts the seeded topics', o.topics);
  await seeText(tid('count-dead-letters'), '2', 'overview: the two dead letters');
  await seeText(tid('counters-table'), 'publish', 'overview: broker counters listed');
  ok(await page.locator('[data-testid=counters-table] tbody tr').count() === Object.keys(o.counters).length,
    'overview: one row per broker counter', Object.keys(o.counters).length);
  // Auto-refresh: publishes made while the page is open show up as a rate.
  const lines = Array.from({ length: 200 }, (_, i) => `{"n":${i}}`).join('\n') + '\n';
  const before = await tid('overview-updated').textContent();
  const end = Date.now() + 20000;
  let rate = '0';
  while (Date.now() < end) {
    hx.cli(['pub', 'sensors.load'], { input: lines });
    await sleep(700);
    rate = (await tid('rate-publishes').textContent()).replace(/,/g, '');
    if (Number(rate) > 0) break;
  }
  ok(Number(rate) > 0, 'overview refreshes by itself: publishes/s above 0', rate);
  ok((await tid('overview-updated').textContent()) !== before, 'overview: updated time moved');
  await noErrors('overview');
  await screenshot('overview');
}

async function viewTopics() {
  await tid('nav-topics').click();
  await tid('view-topics').waitFor({ timeout: T });
  const stats = hx.stats();
  const shop = stats.topics.find((t) => t.name === 'shop.orders');
  await seeText(row('topic-row', 'data-name', 'shop.orders'), 'shop.order', 'topics: shop.orders with its schema');
  await seeText(row('topic-row', 'data-name', 'shop.orders'), String(shop.messages), 'topics: message count');
  await seeText(row('topic-row', 'data-name', 'canonical.orders.eu'), 'canonical.orders.eu', 'topics: a routed topic');
  await noErrors('topics');
  await screenshot('topics');
}

async function viewMessages() {
  await row('topic-row', 'data-name', 'shop.orders').getByRole('link').click();
  await tid('view-topics').waitFor({ timeout: T });
  await seeText(tid('topic-name'), 'shop.orders', 'message browser title');
  await seeText(tid('messages'), 'Ada Lovelace', 'message browser: a JSON field of a message');
  await seeText(tid('messages'), '"total": 12.5', 'message browser: JSON pretty-printed');
  await seeText(tid('msg-headers'), 'web-shop', 'message browser: the headers table');
  // A derived message: lineage, linked to the source message.
  await go('#/topics/canonical.orders.eu', 'view-topics');
  await seeText(tid('msg-json'), '"amount_cents": 1250', 'the mapped message');
  await seeText(tid('msg-lineage'), 'shop.orders @ 0', 'lineage names the source message');
  await seeText(tid('msg-lineage'), 'order-to-canonical', 'lineage names the mapping');
  await noErrors('message browser');
  await screenshot('topic-messages');
  await tid('lineage-link').first().click();
  await seeText(tid('topic-name'), 'shop.orders', 'the lineage link opens the source topic');
  await seeText(page.locator('article.msg.highlight'), 'Ada Lovelace', 'the source message is highlighted');
  // Paging: a page starting at offset 1 does not show offset 0.
  await tid('goto-offset').fill('1');
  await tid('goto-submit').click();
  await seeText(tid('page-info'), /^offsets 1–/, 'go to offset 1');
  ok(await page.locator('[data-testid=msg][data-offset="0"]').count() === 0, 'offset 0 is not on the page from 1');
  await noErrors('message paging');
}

async function viewSubscriptions() {
  await tid('nav-subscriptions').click();
  await tid('view-subscriptions').waitFor({ timeout: T });
  const sub = hx.stats().subscriptions.find((s) => s.name === 'billing');
  ok(sub && sub.lag > 0, 'billing lags behind (CLI stats)', sub);
  const billing = row('sub-row', 'data-name', 'billing');
  await seeText(billing.getByTestId('sub-lag'), String(sub.lag), 'subscriptions: billing lag as the broker reports');
  await noErrors('subscriptions');
  await screenshot('subscriptions');
  // Reset the cursor to the earliest message, confirmed: the lag grows.
  await billing.getByTestId('seek-open').click();
  await tid('seek-mode').selectOption('earliest');
  await tid('seek-topic').fill('shop.orders');
  await tid('seek-submit').click();
  await confirm('Reset the cursor of billing');
  await seeText(tid('notice-banner'), 'billing: cursor moved', 'seek notice');
  const after = hx.stats().subscriptions.find((s) => s.name === 'billing');
  ok(after.lag > sub.lag, 'the reset moved billing back', { before: sub.lag, after: after.lag });
  await seeText(row('sub-row', 'data-name', 'billing').getByTestId('sub-lag'), String(after.lag), 'the table shows the new lag');
  await noErrors('subscription seek');
}

const DLQ = '_dlq.schema.payments';

async function viewDlq() {
  await tid('nav-dlq').click();
  await tid('view-dlq').waitFor({ timeout: T });
  await seeText(row('dlq-row', 'data-name', DLQ), DLQ, 'dead-letter topics listed');
  await noErrors('dead letters');
  await screenshot('dlq');
  await row('dlq-row', 'data-name', DLQ).getByRole('link').click();
  await seeText(tid('dlq-name'), DLQ, 'dead-letter topic view');
  await seeText(tid('dlq-messages'), 'P-7001', 'a dead letter\'s payload');
  await seeText(tid('dlq-reason'), '/amount', 'a dead letter\'s reason');
  await seeText(tid('dlq-messages'), 'payments', 'the original topic');
  await noErrors('dead-letter topic');
  await screenshot('dlq-messages');

  // Redrive the one with P-7001, confirmed.
  const card = page.locator('[data-testid=msg]', { hasText: 'P-7001' });
  const offset = await card.getAttribute('data-offset');
  const payNext = hx.stats().topics.find((t) => t.name === 'payments').next_offset;
  await card.getByTestId('redrive-one').click();
  await confirm(`Redrive 1 dead letter (offset ${offset})`);
  await seeText(tid('redriven-row'), 'published to payments @', 'the redrive result');
  await noErrors('redrive');
  await page.locator(`[data-testid=msg][data-offset="${offset}"]`).waitFor({ state: 'detached', timeout: T });
  await seeText(tid('dlq-messages'), 'P-7003', 'the other dead letter stays');
  await seeText(tid('dlq-remaining'), '1 waiting', 'one dead letter left');
  const res = await hx.api(admin, `/api/dlq/${DLQ}/messages?from=0&limit=50`);
  ok(!res.messages.some((m) => String(m.offset) === offset), 'the API lists the redriven one no more', res);
  // It is on its topic now: follow the result's link.
  const linkText = await tid('redriven-link').textContent();
  const newOffset = Number(linkText.split('@')[1]);
  ok(newOffset >= payNext, 'redriven to a new offset on payments', { newOffset, payNext });
  await tid('redriven-link').click();
  await seeText(tid('topic-name'), 'payments', 'the redriven message\'s topic');
  await seeText(page.locator('article.msg.highlight'), 'P-7001', 'the redriven message on payments');
  await noErrors('redriven message');
}

async function viewSchemas() {
  await tid('nav-schemas').click();
  await tid('view-schemas').waitFor({ timeout: T });
  await seeText(row('schema-row', 'data-subject', 'payment'), 'v2', 'schemas: payment at v2');
  await seeText(row('schema-row', 'data-subject', 'shop.order'), 'shop.order', 'schemas: shop.order');
  await row('schema-row', 'data-subject', 'payment').getByTestId('schema-version').first().click();
  await seeText(tid('schema-json'), '"amount"', 'a schema version shown');
  await seeText(tid('schema-detail'), 'payment version 1', 'the version clicked is the one shown');
  await seeText(tid('schema-compat'), /\w/, 'its compatibility');
  await noErrors('schemas');
  await screenshot('schemas');
}

const MAPPING_FIXTURES = `cases:
  - name: an EU order in cents
    input: {id: A9, region: EU, total: 2.5}
    output: {order_id: A9, amount_cents: 250, region: EU}
`;

async function viewMappings() {
  await tid('nav-mappings').click();
  await tid('view-mappings').waitFor({ timeout: T });
  await seeText(row('mapping-row', 'data-name', 'order-to-canonical'), 'shop.order@1', 'mappings: order-to-canonical');
  await row('mapping-row', 'data-name', 'order-to-canonical').getByRole('link').click();
  await seeText(tid('mapping-yaml'), 'amount_cents', 'the mapping\'s YAML');
  await tid('mapping-fixtures').fill(MAPPING_FIXTURES);
  await tid('mapping-test-run').click();
  await seeText(tid('mapping-test-verdict'), 'PASS: 1 passed', 'the mapping\'s fixture passes');
  await noErrors('mappings');
  await screenshot('mappings');
}

// Before all-orders, which takes every order: after it, the table check
// would refuse the new route as shadowed.
const US_ROUTE = `  - name: us-orders
    match: { topic: "shop.orders", where: '$.region == "US"' }
    to: us.orders
    continue: true
`;

// Routing fixtures for the new table (docs/routing.md, "Fixtures"); the
// console supplies the table, the mappings and the schemas.
const routeFixtures = (total) => `bindings: {shop.orders: shop.order@1}
cases:
  - name: a US order goes to us.orders and is archived
    topic: shop.orders
    input: {id: U9, region: US, total: 5}
    output:
      us.orders: {id: U9, region: US, total: ${total}}
      archive.orders: {id: U9, region: US, total: 5}
    nothing_on: canonical.orders.eu
`;

async function viewRoutes() {
  await tid('nav-routes').click();
  await tid('view-routes').waitFor({ timeout: T });
  const live = (await hx.api(admin, '/api/routes')).live;
  await seeText(tid('routes-live'), `live version ${live}`, 'routes: the live version');
  for (const name of ['drop-tests', 'malformed', 'eu-orders', 'all-orders', 'archive-chain']) {
    await seeText(row('route-stat-row', 'data-name', name), name, `routes: route ${name} in the live table`);
  }
  await seeText(tid('routes-live-yaml'), 'order-to-canonical', 'the live table\'s YAML');
  ok(await tid('apply').isDisabled(), 'Apply is disabled before a check');
  await noErrors('routes');
  await screenshot('routes');

  // A new table: v1 plus a route for US orders. Check, then apply.
  const v1 = await tid('editor-yaml').inputValue();
  ok(v1.includes('  - name: all-orders'), 'the editor starts with the live table', v1);
  await tid('editor-yaml').fill(v1.replace('  - name: all-orders', `${US_ROUTE}  - name: all-orders`));
  await tid('editor-replay').fill('shop.orders');
  // A fixture that expects the wrong total: the check fails, Apply stays off.
  await tid('editor-fixtures').fill(routeFixtures(6));
  await tid('check').click();
  await tid('check-verdict').waitFor({ timeout: T });
  let verdict = await tid('check-result').textContent();
  ok(verdict.includes('Check failed') && verdict.includes('Fixtures: FAIL'), 'a failing fixture fails the check', verdict);
  ok(await tid('apply').isDisabled(), 'Apply stays disabled after a failing check');
  // The right fixture: fixtures and the replay pass.
  await tid('editor-fixtures').fill(routeFixtures(5));
  await tid('check').click();
  await seeText(tid('check-verdict'), /Check (passed|failed)/, 'the second check answered');
  verdict = await tid('check-result').textContent();
  ok(verdict.includes('Check passed'), 'the new table checks', verdict);
  await seeText(tid('check-result'), 'Fixtures: pass', 'its fixtures pass');
  await seeText(tid('check-result'), /Replay: pass/, 'the replay ran');
  await seeText(tid('check-replay'), /\S/, 'the replay says what it did');
  await tid('check-result').scrollIntoViewIfNeeded();
  await screenshot('routes-check', false);
  await seeText(tid('check-diff'), 'us-orders', 'the check shows the diff against the live table');
  ok(!(await tid('apply').isDisabled()), 'Apply is enabled after a passing check');
  await tid('apply').click();
  await confirm(`Apply this table as version ${live + 1}`);
  await seeText(tid('routes-live'), `live version ${live + 1}`, 'the applied table is live');
  await seeText(row('route-stat-row', 'data-name', 'us-orders'), 'us-orders', 'the new route is live');
  await seeText(tid('notice-banner'), `version ${live + 1} is live`, 'apply notice');
  ok((await hx.api(admin, '/api/routes')).live === live + 1, 'the API says the same');
  await noErrors('routes apply');
  await screenshot('routes-applied');

  // The diff between the two versions.
  await tid('diff-a').selectOption(String(live));
  await tid('diff-b').selectOption(String(live + 1));
  await tid('diff-run').click();
  await seeText(tid('diff-output'), 'us-orders', 'the diff between v1 and v2');

  // Roll back to v1: a new version with v1's content.
  await tid(`rollback-${live}`).click();
  await confirm(`Roll back to version ${live}`);
  await seeText(tid('routes-live'), `live version ${live + 2}`, 'the rollback is a new version');
  const yaml = await tid('routes-live-yaml').textContent();
  ok(!yaml.includes('us-orders') && yaml.includes('eu-orders'), 'the live table is v1\'s again', yaml);
  const v3 = await hx.api(admin, `/api/routes/${live + 2}`);
  const v1api = await hx.api(admin, `/api/routes/${live}`);
  ok(v3.yaml === v1api.yaml, 'version N+2 has version N\'s table');
  ok((await row('route-stat-row', 'data-name', 'us-orders').count()) === 0, 'the route is gone from the live table');
  await seeText(row('route-version-row', 'data-version', String(live + 2)), `rollback to v${live}`, 'history notes the rollback');
  await noErrors('routes rollback');
}

async function viewAudit() {
  await tid('nav-audit').click();
  await tid('view-audit').waitFor({ timeout: T });
  await seeText(tid('audit-table'), 'routes.apply', 'audit: the route applies');
  await seeText(tid('audit-table'), 'schema.register', 'audit: schema registrations');
  await tid('audit-filter').fill('routes.');
  await seeText(tid('audit-table'), 'routes.', 'the filter keeps matching records');
  ok(!(await tid('audit-table').textContent()).includes('schema.register'), 'the filter hides the others');
  await tid('audit-filter').fill('');
  await noErrors('audit');
  await screenshot('audit');
}

// The viewer may subscribe only: resetting billing's cursor is refused by
// the broker, and the page says so with the API's 403 and reason.
async function refusedAsViewer(viewerToken) {
  await tid('logout').click();
  await tid('login-form').waitFor({ timeout: T });
  await login(viewerToken, 'viewer');
  await go('#/subscriptions', 'view-subscriptions');
  const lagBefore = hx.stats().subscriptions.find((s) => s.name === 'billing').lag;
  await row('sub-row', 'data-name', 'billing').getByTestId('seek-open').click();
  await tid('seek-mode').selectOption('latest');
  await tid('seek-submit').click();
  await confirm('Reset the cursor of billing');
  await seeText(tid('error-banner'), 'HTTP 403 denied', 'the refused action shows the 403');
  const lagAfter = hx.stats().subscriptions.find((s) => s.name === 'billing').lag;
  ok(lagAfter === lagBefore && lagAfter > 0, 'the refused seek moved nothing', { lagBefore, lagAfter });
  const { records } = await hx.api(admin, '/api/audit?limit=20');
  const denied = records.find((r) => r.identity === 'viewer' && r.target === 'billing');
  ok(denied && denied.outcome !== 'ok', 'the broker audited the refusal', records.slice(0, 3));
  await screenshot('refused');
}

// ---------------------------------------------------------------- main

let admin = null;

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) if (f.endsWith('.png')) fs.unlinkSync(path.join(SHOTS, f));
  await hx.startBroker();
  seed();
  admin = hx.token('admin', path.join(hx.data, 'admin.cert'));
  const viewer = hx.token('viewer', hx.identity('viewer', ['--subscribe', '>']));
  await hx.startConsole(WEBROOT);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const external = [];
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.hostname !== '127.0.0.1') { external.push(u.href); return route.abort(); }
    return route.continue();
  });

  const steps = [
    ['login', async () => {
      await page.goto(`${hx.url}/#/overview`);
      await tid('login-form').waitFor({ timeout: T });
      await tid('login-token').fill('sht_not_a_token');
      await tid('login-submit').click();
      await seeText(tid('error-banner'), 'HTTP 401', 'a wrong token is refused with the 401');
      await screenshot('login-refused');
      await login(admin, 'admin');
    }],
    ['overview', () => viewOverview(admin)], ['topics', viewTopics], ['messages', viewMessages],
    ['subscriptions', viewSubscriptions], ['dlq', viewDlq], ['schemas', viewSchemas],
    ['mappings', viewMappings], ['routes', viewRoutes], ['audit', viewAudit],
    ['viewer', () => refusedAsViewer(viewer)],
  ];
  for (const [name, fn] of steps) {
    step = name;
    const t0 = Date.now();
    await fn();
    console.log(`ok ${name} (${Date.now() - t0} ms)`);
  }
  ok(consoleErrors.length === 0, 'no uncaught errors in the page', consoleErrors);
  ok(external.length === 0, 'the app asked for nothing outside the console', external);
}

let failed = false;
try {
  await main();
  console.log(`${checks} checks passed, ${shot} screenshots in ${SHOTS}`);
} catch (e) {
  failed = true;
  console.error(`FAIL in step ${step}: ${e.stack || e}`);
  if (page) await page.screenshot({ path: path.join(SHOTS, `failed-${step}.png`) }).catch(() => {});
  for (const name of ['console', 'sluiced', 'cli']) {
    console.error(`--- ${name}.log (last 3000 chars)\n${hx.logText(name).slice(-3000)}`);
  }
} finally {
  if (browser) await browser.close().catch(() => {});
  await hx.stopAll();
  // A sanitized build: what ASan, LSan (at exit) or UBSan said about the
  // console fails the test; about the broker it is printed (the broker's
  // own tests own it).
  for (const name of ['console', 'sluiced']) {
    const m = /(ERROR: (Address|Leak)Sanitizer|runtime error:).*/.exec(hx.logText(name));
    if (m && name === 'console') { failed = true; console.error(`FAIL: ${name}.log: ${m[0]}`); }
    if (m && name !== 'console') console.log(`WARNING: ${name}.log: ${m[0]}`);
  }
  if (!failed) fs.rmSync(hx.tmp, { recursive: true, force: true });
  else console.error(`kept ${hx.tmp}`);
}
process.exit(failed ? 1 : 0);
