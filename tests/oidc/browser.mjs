// The single sign-on flow in a real browser: headless Chromium driven by Playwright logs in at the
// gateway (through the provider's login and consent pages), uses two APIs and a script's fetch,
// then logs out at the gateway and the provider.
//   node browser.mjs GATEWAY_ORIGIN   prints one JSON object of observations; exits 1 on failure
// KEA_CHROMIUM names the browser binary (default /usr/bin/chromium).
import { chromium } from 'playwright-core';

const origin = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.KEA_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  // No sandbox as root; no background connections (this machine's network is closed).
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const seen = {};
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const json = async () => JSON.parse(await page.textContent('body'));
  const submit = async () => Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);

  await page.goto(`${origin}/echo/orders/7?view=full`);
  seen.loginPage = page.url();
  await page.fill('input[name=login]', 'carol');
  await page.fill('input[name=password]', 'any');
  await submit();
  if (await page.$('input[name=prompt][value=consent]')) await submit();
  seen.landed = page.url();
  seen.first = await json();
  const cookie = (await context.cookies(origin)).find((c) => c.name === 'kea_session');
  seen.cookie = cookie && { httpOnly: cookie.httpOnly, secure: cookie.secure, sameSite: cookie.sameSite, path: cookie.path };

  await page.goto(`${origin}/echo/invoices`);
  seen.second = await json();
  // A script's fetch carries the session like a navigation does.
  seen.fetched = await page.evaluate(async () => (await fetch('/echo/api')).json());

  await page.goto(`${origin}/oauth2/logout`);
  seen.logoutPage = page.url();
  await Promise.all([page.waitForNavigation(), page.click('button[value=yes]')]);
  seen.afterLogout = page.url();
  seen.cookiesAfterLogout = (await context.cookies(origin)).map((c) => c.name);
  await page.goto(`${origin}/echo/orders`);
  seen.loginAgain = (await page.$('input[name=login]')) !== null;
  console.log(JSON.stringify(seen));
} catch (error) {
  console.log(JSON.stringify({ ...seen, error: String(error) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
