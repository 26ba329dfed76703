// The docs portal in a real browser: headless Chromium driven by Playwright.
//   node portal.mjs PLAN_JSON   prints one JSON object of observations; exits 1 on failure
// PLAN_JSON: {"origin": "http://localhost:PORT", "screenshots": DIR,
//             "tryIt": [{"entry": "ns/name", "method": "POST", "path": "/", "bodies": [["invalid", "..."], ["valid", null]]}],
//             "model": "ns/name", "visit": "ns/name", "brokenBundle": "ns/name",
//             "waitFor": {"title": "...", "timeoutMs": 20000}}       (optional steps)
// With `waitFor`, the script prints `{"phase":"open"}` once the index is shown, then waits for an
// entry with that title to appear in the open page (the caller edits the cluster meanwhile).
// KEA_CHROMIUM names the browser binary (default /usr/bin/chromium).
import { chromium } from 'playwright-core';

const plan = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: process.env.KEA_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  // No sandbox as root; no background connections (this machine's network is closed).
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ...(plan.hostRules ? [`--host-resolver-rules=${plan.hostRules}`] : [])],
});
const seen = { pageErrors: [], dialogs: 0 };
const shot = async (page, name) => {
  if (plan.screenshots) await page.screenshot({ path: `${plan.screenshots}/${name}.png`, fullPage: true });
};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // Uncaught errors of the page's own code (a 400 from try-it is a console message, not one).
  page.on('pageerror', (error) => seen.pageErrors.push(String(error)));
  // A script injected through an API's description would open a dialog.
  page.on('dialog', async (dialog) => { seen.dialogs += 1; await dialog.dismiss(); });

  const started = Date.now();
  await page.goto(`${plan.origin}/docs/`);
  await page.waitForSelector('body[data-ready=true]', { timeout: 20000 });
  seen.indexMs = Date.now() - started;
  seen.index = await page.$$eval('table.index tbody tr', (rows) => rows.map((row) => ({
    title: row.cells[0].querySelector('a').textContent,
    kind: row.cells[1].textContent,
    basePath: row.cells[3].textContent,
    versions: row.cells[4].textContent,
    auth: row.cells[5].textContent,
    status: row.cells[6].textContent,
    operations: Number(row.cells[7].textContent),
  })));
  await shot(page, 'index');

  if (plan.waitFor) {
    console.log(JSON.stringify({ phase: 'open' }));
    const from = Date.now();
    await page.waitForFunction((title) => [...document.querySelectorAll('table.index tbody tr td:first-child a')]
      .some((a) => a.textContent === title), plan.waitFor.title, { timeout: plan.waitFor.timeoutMs ?? 20000, polling: 100 });
    seen.appearedMs = Date.now() - from;
    await shot(page, 'index-updated');
  }

  seen.tryIt = [];
  for (const step of plan.tryIt ?? []) {
    const result = { entry: step.entry };
    await page.goto(`${plan.origin}/docs/#/${step.entry}`);
    await page.waitForSelector('section.operations');
    result.heading = await page.textContent('h1');
    const operation = page.locator(`details.operation[data-method="${step.method}"][data-path="${step.path}"]`);
    await operation.locator('summary').click();
    const form = operation.locator('form.try-it');
    for (const [name, given] of step.bodies) {
      // `null`: the body the page generates from the schema.
      if (given === null) await form.locator('button.reset').click();
      else await form.locator('textarea[name=body]').fill(given);
      const body = await form.locator('textarea[name=body]').inputValue();
      // The browser's verdict for exactly this body.
      await page.waitForFunction((text) => {
        const node = document.querySelector('details.operation[open] [data-role=browser-verdict]');
        return node && node.dataset.verdict && node.dataset.body === text;
      }, body);
      const verdict = form.locator('[data-role=browser-verdict]');
      const problemText = await verdict.locator('pre[data-role=problem]').textContent().catch(() => null);
      const browser = {
        verdict: await verdict.getAttribute('data-verdict'),
        text: await verdict.textContent(),
        problem: problemText ? JSON.parse(problemText) : null,
      };
      await form.locator('button.send').click();
      await form.locator('[data-role=gateway-response] pre[data-role=body]').waitFor();
      const statusText = await form.locator('[data-role=gateway-response] [data-role=status]').textContent();
      const bodyText = await form.locator('[data-role=gateway-response] pre[data-role=body]').textContent();
      let gatewayBody = bodyText;
      try { gatewayBody = JSON.parse(bodyText); } catch { /* not JSON */ }
      result[name] = { browser, gateway: { status: Number(statusText.split(' ')[0]), body: gatewayBody } };
      await shot(page, `try-it-${step.entry.replace('/', '-')}-${name}`);
    }
    seen.tryIt.push(result);
  }

  if (plan.model) {
    await page.goto(`${plan.origin}/docs/#/${plan.model}`);
    await page.waitForSelector('section.model table.tensor-table');
    seen.model = await page.$$eval('section.model .tensors', (sections) => sections.map((section) => ({
      title: section.querySelector('h3').textContent,
      rows: [...section.querySelectorAll('tbody tr')].map((row) => [...row.cells].map((cell) => cell.textContent)),
    })));
    await shot(page, 'model');
  }
  if (plan.visit) {
    await page.goto(`${plan.origin}/docs/#/${plan.visit}`);
    await page.waitForSelector('section.operations, p.problem', { timeout: 20000 });
    await page.locator('details.operation summary').first().click().catch(() => {});
    await page.waitForTimeout(500);
    seen.visit = { text: (await page.textContent('main')).slice(0, 2000), operations: await page.locator('details.operation').count() };
    await shot(page, `visit-${plan.visit.replace('/', '-')}`);
  }
  if (plan.brokenBundle) {
    // A bundle the browser cannot load (here: altered on the way): a clear message, not a blank page.
    await page.route(`**/docs/${plan.brokenBundle}/validator.json`, (route) => route.fulfill({
      status: 200, contentType: 'application/json',
      body: JSON.stringify({ apis: [{ name: 'x', bundle: { format: 'kea-bundle/0', operations: 'none' } }], defaults: { api: 'x' } }),
    }));
    await page.goto(`${plan.origin}/docs/#/${plan.brokenBundle}`);
    await page.reload();
    await page.waitForSelector('section.operations');
    await page.locator('details.operation summary').first().click();
    await page.waitForSelector('details.operation[open] [data-role=browser-verdict][data-verdict]');
    seen.brokenBundle = await page.textContent('details.operation[open] [data-role=browser-verdict]');
    await shot(page, 'broken-bundle');
  }
  seen.banner = await page.textContent('#banner');
  console.log(JSON.stringify(seen));
} catch (error) {
  console.log(JSON.stringify({ ...seen, error: String(error) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
