// The web app end to end in headless Chromium (Debian's, driven by playwright-core), as a user
// goes through it after `cohort demo` and `cohort serve`. Started by tests/it/explorer.rs,
// which passes: BASE (the API's URL), TOKEN and OTHER_TOKEN (the tokens of the two served
// spaces), SPACE and OTHER (their names), SEARCH (a bare email of the demo data), AUDIENCE (an
// audience it is in), OUT (where downloads and screenshots go), CHROMIUM (the browser).
// Prints one JSON line of what it saw; fails (exit 1) at the first step that does not hold.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const env = (k) => {
  if (!process.env[k]) throw new Error(`${k} is not set`);
  return process.env[k];
};
const BASE = env('BASE');
const OUT = env('OUT');
const seen = {};

function check(cond, what) {
  if (!cond) throw new Error('failed: ' + what);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, name + '.png'), fullPage: false });
}

(async () => {
  const browser = await chromium.launch({
    executablePath: env('CHROMIUM'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 860 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.setDefaultTimeout(60000);
  try {
    // Signed out: the sign-in page, and a wrong token opens nothing.
    await page.goto(BASE + '/');
    await page.waitForSelector('#token');
    await shot(page, 'signin');
    await page.fill('#token', 'not-a-token');
    await page.click('#signin button');
    await page.waitForSelector('#banner:not([hidden])');
    check((await page.textContent('#banner')).includes('opens no space'), 'a wrong token is refused');
    check(await page.$('#results') === null, 'a wrong token shows no page of data');

    // Sign in, search a profile of the demo by a bare value, open it.
    await page.fill('#token', env('TOKEN'));
    await page.click('#signin button');
    await page.waitForSelector('#search');
    await page.fill('#search', env('SEARCH'));
    await page.press('#search', 'Enter');
    await page.waitForSelector('#results tr.hit');
    seen.hits = await page.$$eval('#results tr.hit', (r) => r.length);
    await shot(page, 'search');
    await page.click('#results tr.hit a');
    await page.waitForSelector('#identifiers');
    const ids = await page.textContent('#identifiers');
    check(ids.includes(env('SEARCH')), 'the profile page lists the searched identifier');
    await page.waitForSelector('#events li');
    seen.events = await page.$$eval('#events li', (l) => l.length);
    await page.click('#events li summary');
    await page.waitForSelector('#events li details[open] pre');
    await page.click('#why');
    await page.waitForSelector('#identity-graph svg .node');
    seen.graph_nodes = await page.$$eval('#identity-graph svg .node', (n) => n.length);
    seen.profile_url = page.url();
    await shot(page, 'profile');

    // Follow the audience it is in.
    await page.click(`#audiences a[href$="/a/${encodeURIComponent(env('AUDIENCE'))}"]`);
    await page.waitForSelector('#definition');
    await page.waitForSelector('#conditions table', { timeout: 120000 });
    seen.conditions = await page.$$eval('#conditions tr', (r) => r.length - 1);
    seen.audience_size = (await page.textContent('#size')).trim();
    await page.fill('#why-id', 'email:' + env('SEARCH'));
    await page.press('#why-id', 'Enter');
    await page.waitForSelector('#why-out table', { timeout: 120000 });
    seen.why = (await page.textContent('#why-out p')).trim();
    await shot(page, 'audience');

    // Each CSV format, saved for tests/it/explorer.rs to compare with `cohort export`.
    for (const fmt of ['unformatted', 'indexed', 'single']) {
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv-' + fmt)]);
      await download.saveAs(path.join(OUT, fmt + '.csv'));
    }

    // The audience list.
    await page.click('#nav-audiences');
    await page.waitForSelector('#audience-list tr td');
    seen.audiences = await page.$$eval('#audience-list tr', (r) => r.length - 1);
    await shot(page, 'audiences');

    // The builder: a broken query shows its caret, a good one previews.
    await page.click('#nav-builder');
    await page.waitForSelector('#query');
    await page.type('#query', "event('Order Completed').within(30 days).count( >= 2");
    await page.waitForSelector('#caret');
    seen.caret = await page.textContent('#caret');
    seen.parse_message = await page.textContent('#parse-message');
    await shot(page, 'builder-error');
    await page.fill('#query', "event('Order Completed').within(3650 days).count() >= 2");
    await page.waitForSelector('#parse-ok');
    await page.click('#run-preview');
    await page.waitForSelector('#preview-size', { timeout: 180000 });
    seen.preview_size = (await page.textContent('#preview-size')).trim();
    await shot(page, 'builder');

    // Runs: "Run now" queues a run, and it appears.
    await page.click('#nav-runs');
    await page.waitForSelector('#runs tr.run');
    seen.runs_before = await page.$$eval('#runs tr.run', (r) => r.length);
    await page.click('#run-now');
    await page.waitForFunction(() => document.querySelector('#run-status').textContent.includes('finished'),
      null, { timeout: 300000 });
    seen.runs_after = await page.$$eval('#runs tr.run', (r) => r.length);
    seen.last_trigger = await page.textContent('#runs tr.run td:nth-child(3)');
    await page.click('#runs tr.run details summary');
    await shot(page, 'runs');

    // A second space side by side: its token adds it to the switcher; neither token opens
    // the other space.
    await page.click('#add-space');
    await page.fill('#token', env('OTHER_TOKEN'));
    await page.click('#signin button');
    await page.waitForSelector('#search');
    seen.switcher = await page.$$eval('#switch option', (o) => o.map((x) => x.value));
    seen.cross = await page.evaluate(async ([space, token]) => {
      const r = await fetch('/v1/spaces/' + space + '/audiences', { headers: { Authorization: 'Basic ' + btoa(token + ':'), 'X-Cohort-App': '1' } });
      return r.status;
    }, [env('SPACE'), env('OTHER_TOKEN')]);
    await page.selectOption('#switch', env('SPACE'));
    await page.waitForSelector('#nav-profiles.on');
    seen.switched = page.url();

    // How long a profile page and the audience list take to load, from a fresh page load.
    for (const [name, url, sel] of [['profile_ms', seen.profile_url, '#identifiers'],
      ['audience_list_ms', seen.profile_url.replace(/\/p\/.*$/, '/audiences'), '#audience-list tr td']]) {
      const times = [];
      for (let i = 0; i < 5; i++) {
        await page.goto('about:blank');
        const t = Date.now();
        await page.goto(url);
        await page.waitForSelector(sel);
        times.push(Date.now() - t);
      }
      seen[name] = times.sort((a, b) => a - b)[2];
    }
    seen.errors = errors;
    console.log(JSON.stringify(seen));
  } catch (e) {
    await shot(page, 'failure').catch(() => {});
    console.error(e.stack || String(e));
    console.error('saw: ' + JSON.stringify(seen) + ' errors: ' + JSON.stringify(errors));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();
