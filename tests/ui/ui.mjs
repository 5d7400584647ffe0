// Drives `flowscope ui`'s page in Debian's headless Chromium with Playwright (playwright-core
// from ui/node_modules: no browser is downloaded). Run by tests/tests/ui.rs:
//
//   node tests/ui/ui.mjs   with the environment:
//     UI_URL          the page, e.g. http://127.0.0.1:9966/
//     UI_OUT          where to write map.png and the export
//     UI_NODE_MODULES ui/node_modules (where playwright-core is)
//     LIVE_REQUEST    a shell command that makes one new request (curl in the client netns)
//     EXPECT          JSON: { "client": "curl", "server": "nginx", "requests": 4,
//                             "statuses": {"2xx": 3, "4xx": 1}, "status_filter": "--http-status 404",
//                             "live_filter": "--http-path ^/live", "live_path": "/live.txt" }
//
// Prints one line per step; exits non-zero with what failed.
import { createRequire } from 'node:module';
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const url = env('UI_URL');
const out = env('UI_OUT');
const expect = JSON.parse(env('EXPECT'));
const require = createRequire(join(env('UI_NODE_MODULES'), 'noop.js'));
const { chromium } = require('playwright-core');

mkdirSync(out, { recursive: true });
const step = (s) => console.log(`ui.mjs: ${s}`);
const fail = (s) => {
  throw new Error(s);
};

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const outside = [];
const pageErrors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    // The refused --bogus filter below is answered 400 on purpose; any other error is not.
    if (m.type() === 'error' && !m.text().includes('400 (Bad Request)')) pageErrors.push(m.text());
  });
  // The page must load nothing from anywhere but flowscope ui itself (no CDN, no fonts).
  const origin = new URL(url).origin;
  await page.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith(origin) || u.startsWith('blob:') || u.startsWith('data:')) return route.continue();
    outside.push(u);
    return route.abort();
  });
  await page.goto(url);
  step('page loaded');

  // 1. The map: both processes and the edge between them with the right count and mix.
  const edgeId = await page
    .waitForFunction(
      ({ client, server, requests }) => {
        const s = window.flowscope?.state.snapshot;
        if (!s) return null;
        const label = (id) => s.nodes.find((n) => n.id === id)?.label;
        const e = s.edges.find((e) => label(e.client) === client && label(e.server) === server && e.requests === requests);
        return e && window.flowscope.map.cy.getElementById(e.id).nonempty() ? e.id : null;
      },
      expect,
      { timeout: 20000, polling: 250 },
    )
    .then((h) => h.jsonValue())
    .catch(async () => {
      const s = await page.evaluate(() => JSON.stringify(window.flowscope?.state.snapshot));
      fail(`the map never showed ${expect.client} -> ${expect.server} with ${expect.requests} requests; last snapshot: ${s}`);
    });
  const edge = await page.evaluate((id) => window.flowscope.state.snapshot.edges.find((e) => e.id === id), edgeId);
  if (JSON.stringify(edge.statuses) !== JSON.stringify(expect.statuses)) {
    fail(`edge ${edgeId}: statuses ${JSON.stringify(edge.statuses)}, want ${JSON.stringify(expect.statuses)}`);
  }
  const drawn = await page.evaluate((id) => {
    const cy = window.flowscope.map.cy;
    const e = cy.getElementById(id);
    return { label: e.data('label'), source: e.source().data('name'), target: e.target().data('name') };
  }, edgeId);
  if (drawn.source !== expect.client || drawn.target !== expect.server) fail(`edge drawn ${JSON.stringify(drawn)}`);
  if (!drawn.label.includes(`${expect.requests} req`)) fail(`edge label ${JSON.stringify(drawn.label)} lacks the request count`);
  for (const [k, v] of Object.entries(expect.statuses)) {
    if (!drawn.label.includes(`${k} ${v}`)) fail(`edge label ${JSON.stringify(drawn.label)} lacks ${k} ${v}`);
  }
  step(`map: ${expect.client} -> ${expect.server}: ${JSON.stringify(drawn.label)}`);
  await page.waitForTimeout(300);
  await page.locator('#map-pane').screenshot({ path: join(out, 'map.png') });
  step(`screenshot: ${join(out, 'map.png')}`);

  // 2. A click on the edge narrows the table to its flows.
  const rowsOf = () =>
    page.evaluate(() => [...document.querySelectorAll('#flows tbody tr')].map((tr) => ({ edge: tr.dataset.edge, text: tr.innerText })));
  await page.waitForFunction(() => document.querySelectorAll('#flows tbody tr').length > 0, null, { timeout: 10000 });
  const before = await rowsOf();
  if (!before.some((r) => r.edge !== edgeId)) fail(`the table should also show other edges' flows before the click: ${JSON.stringify(before)}`);
  // A node arriving between reading the edge's position and the click moves the layout: try
  // again then (the click itself is a real mouse click on the canvas).
  for (let attempt = 0; ; attempt++) {
    const point = await page.evaluate((id) => {
      const cy = window.flowscope.map.cy;
      const p = cy.getElementById(id).renderedMidpoint();
      const box = cy.container().getBoundingClientRect();
      return { x: box.left + p.x, y: box.top + p.y };
    }, edgeId);
    await page.mouse.click(point.x, point.y);
    const selected = await page.evaluate((id) => window.flowscope.map.cy.getElementById(id).selected(), edgeId);
    if (selected) break;
    if (attempt === 3) fail(`clicking edge ${edgeId} at ${JSON.stringify(point)} did not select it`);
    await page.waitForTimeout(500);
  }
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll('#flows tbody tr')];
    return rows.length > 0 && rows.every((tr) => tr.dataset.edge === id);
  }, edgeId, { timeout: 5000 }).catch(async () => fail(`after clicking the edge the table shows ${JSON.stringify(await rowsOf())}`));
  const afterClick = await rowsOf();
  const responses = afterClick.filter((r) => r.text.includes('http-response')).length;
  if (responses !== expect.requests) fail(`the edge's table shows ${responses} HTTP responses, want ${expect.requests}`);
  if (!(await page.locator('#edge-filter').isVisible())) fail('no chip says the table is narrowed to the edge');
  step(`edge click: ${afterClick.length} rows, all of ${edgeId}`);
  // The chip undoes it.
  await page.locator('#edge-filter').click();
  await page.waitForFunction(() => [...document.querySelectorAll('#flows tbody tr')].length > 0 && document.querySelector('#edge-filter').hidden);

  // 3. A filter typed in the box changes the table (the agent filters the stream).
  await page.fill('#filter', '--bogus');
  await page.press('#filter', 'Enter');
  await page.waitForFunction(() => document.querySelector('#filter-error').textContent.includes('not a filter flag'), null, { timeout: 5000 });
  await page.fill('#filter', expect.status_filter);
  await page.press('#filter', 'Enter');
  await page.waitForFunction((want) => {
    const rows = [...document.querySelectorAll('#flows tbody tr')];
    return rows.length > 0 && rows.every((tr) => tr.innerText.includes(want));
  }, String(expect.status_code), { timeout: 10000 }).catch(async () => fail(`after filtering ${expect.status_filter} the table shows ${JSON.stringify(await rowsOf())}`));
  step(`filter ${expect.status_filter}: ${(await rowsOf()).length} rows`);

  // 4. A new request appears live (and the detail pane shows it).
  await page.fill('#filter', expect.live_filter);
  await page.press('#filter', 'Enter');
  await page.waitForFunction(() => document.querySelector('#flows tbody').children.length === 0 && document.querySelector('#filter-error').textContent === '', null, { timeout: 5000 });
  await page.waitForTimeout(500);
  execSync(env('LIVE_REQUEST'), { stdio: 'inherit' });
  await page.waitForFunction((path) => [...document.querySelectorAll('#flows tbody tr')].some((tr) => tr.innerText.includes(path)), expect.live_path, { timeout: 10000 })
    .catch(async () => fail(`the new request to ${expect.live_path} did not appear: ${JSON.stringify(await rowsOf())}`));
  await page.locator('#flows tbody tr').first().click();
  await page.waitForFunction((path) => document.querySelector('#detail-body').innerText.includes(path) && !document.querySelector('#detail').hidden, expect.live_path, { timeout: 5000 });
  step(`live: ${JSON.stringify((await rowsOf()).map((r) => r.text))}`);
  await page.screenshot({ path: join(out, 'page.png') });

  // 5. Pause holds new rows back; resume shows them. Export writes what is shown.
  await page.click('#pause');
  const held = (await rowsOf()).length;
  execSync(env('LIVE_REQUEST'), { stdio: 'inherit' });
  await page.waitForFunction(() => window.flowscope.state.pending.length > 0, null, { timeout: 10000 });
  if ((await rowsOf()).length !== held) fail('rows arrived while paused');
  await page.click('#pause');
  await page.waitForFunction((n) => document.querySelectorAll('#flows tbody tr').length > n, held, { timeout: 5000 });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const exported = join(out, 'export.json');
  await download.saveAs(exported);
  const doc = JSON.parse(readFileSync(exported, 'utf8'));
  if (doc.filter !== expect.live_filter || doc.flows.length !== (await rowsOf()).length || !doc.map?.edges?.length) {
    fail(`export: filter ${doc.filter}, ${doc.flows.length} flows, ${doc.map?.edges?.length} edges`);
  }
  step(`pause/resume and export: ${doc.flows.length} flows, ${doc.map.edges.length} edges`);

  if (outside.length) fail(`the page asked for outside resources: ${outside.join(', ')}`);
  if (pageErrors.length) fail(`errors in the page: ${pageErrors.join(' | ')}`);
  writeFileSync(join(out, 'done'), 'ok\n');
  step('ok');
} finally {
  await browser.close();
}
