// Open a page in real headless Chromium (Debian's, driven by playwright-core) and report what rendered:
// every svg.chart's size and visible bars, every network request, every script error, the visible text.
// Usage: node render_check.mjs URL SCREENSHOT.png   (CHROMIUM overrides /usr/bin/chromium)
import { chromium } from "playwright-core";

const [, , url, screenshot] = process.argv;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const requests = [];
  const errors = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url, { waitUntil: "load" });
  const charts = await page.$$eval("svg.chart", (els) => els.map((el) => {
    const box = el.getBoundingClientRect();
    // A bar must have an area; a marker is a vertical line (zero width, some height).
    const visible = (q, area = true) => [...el.querySelectorAll(q)].filter((n) => {
      const b = n.getBoundingClientRect();
      return area ? b.width > 0 && b.height > 0 : b.height > 0;
    }).length;
    return { kind: el.dataset.chart, label: el.getAttribute("aria-label"), width: box.width, height: box.height,
             bars: visible("rect.bar"), markers: visible("line.marker", false) };
  }));
  const text = await page.evaluate(() => document.body.innerText);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ title: await page.title(), charts, requests, errors, text }));
} finally {
  await browser.close();
}
