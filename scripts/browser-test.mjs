// Drives JupyterLab in headless Chromium: Edit > Clear Outputs of All Cells, Run > Run All
// Cells, then waits for every cell to finish and the charts to appear. Exits non-zero on a
// timeout, an error output, a compile error or a panic.
import { createRequire } from "module";
const require = createRequire(process.env.NODE_PATH + "/");
const { chromium } = require("playwright-core");

const [url, outDir] = process.argv.slice(2);
const minCharts = 4;
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
let page;
try {
  page = await (await browser.newContext({ viewport: { width: 1400, height: 1100 } })).newPage();
  await page.goto(url);
  await page.waitForSelector(".jp-Notebook .jp-Cell", { timeout: 120_000 });
  await page.waitForSelector("text=/Rust \\| Idle/", { timeout: 120_000 });
  // The committed outputs (an untrusted notebook here) must already show the charts.
  const chartSel = '.jp-OutputArea-output img[src^="data:image/svg+xml"]';
  const loaded = () => page.$$eval(chartSel, (imgs) => imgs.filter((i) => i.complete && i.naturalWidth > 0).length);
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length > 0, chartSel, { timeout: 60_000 });
  await page.waitForTimeout(2000);
  const committed = await loaded();
  console.log(`committed outputs: ${committed} charts shown before running`);
  if (committed < minCharts) throw new Error(`only ${committed} committed charts rendered`);
  await page.locator(chartSel).first().scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${outDir}/notebook01-committed.png` });
  const menu = async (top, item) => {
    await page.click(`.lm-MenuBar-itemLabel:text-is("${top}")`);
    await page.click(`.lm-Menu-itemLabel:text-is("${item}")`);
  };
  await menu("Edit", "Clear Outputs of All Cells");
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 0, chartSel);
  const started = Date.now();
  await menu("Run", "Run All Cells");
  // Running: some prompt shows [*]. Done: no [*] left and the charts are in the page.
  await page.waitForFunction(([n, sel]) => {
    const prompts = [...document.querySelectorAll(".jp-InputPrompt")].map((p) => p.textContent);
    const busy = prompts.some((t) => t.includes("*"));
    return !busy && document.querySelectorAll(sel).length >= n;
  }, [minCharts, chartSel], { timeout: 40 * 60_000, polling: 2000 });
  // The charts must be drawn, not just present: every chart image has loaded with a size.
  await page.waitForFunction((sel) => [...document.querySelectorAll(sel)]
    .every((img) => img.complete && img.naturalWidth > 0), chartSel, { timeout: 60_000 });
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  const errors = await page.$$eval(".jp-OutputArea-output", (nodes) => nodes
    .map((n) => n.textContent)
    .filter((t) => t.includes("error[") || t.includes("panicked") || t.includes("Error:")));
  const charts = await loaded();
  console.log(`notebook 01 ran all cells in ${seconds} s in the browser; ${charts} charts in the page`);
  if (errors.length) {
    console.log("errors in outputs:\n" + errors.join("\n---\n"));
    failed = true;
  }
  await page.screenshot({ path: `${outDir}/notebook01-top.png` });
  await page.locator(chartSel).nth(1).scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${outDir}/notebook01-charts.png` });
  await page.locator(chartSel).last().scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${outDir}/notebook01-end.png` });
} catch (e) {
  console.log(`browser test failed: ${e.message}`);
  failed = true;
  if (page) await page.screenshot({ path: `${outDir}/failure.png` }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
