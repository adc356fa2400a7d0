// UI test in a real VS Code: code-server with the built .vsix installed, driven by
// playwright-core in Debian's chromium, everything on 127.0.0.1 and offline.
//
// It opens a copy of test/fixture, waits for the status bar to show the indexed chunks, runs
// **Code Search: Search** from the command palette, types a query, checks the expected row
// (symbol, path:line, score), accepts it and checks that the editor shows the right file at the
// right line. Then **Go to Symbol in Workspace** with a plain-language query. Screenshots go to
// test-results/ (CI artifacts). Run `bash test/ui/setup.sh` and `npm run package` first.
//
// Environment: CODESEARCH_PYTHON (default: the repository's .venv/bin/python),
// CODESEARCH_UI_TIMEOUT_S (default 240, for the whole run), CHROMIUM (default /usr/bin/chromium).

import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = path.dirname(fileURLToPath(import.meta.url));
const extensionDir = path.resolve(here, "../..");
const repo = path.resolve(extensionDir, "..");
const require = createRequire(path.join(here, "package.json"));
const { chromium } = require("playwright-core");

const codeServer = path.join(here, "node_modules/code-server/out/node/entry.js");
const vsix = path.join(extensionDir, "codesearch.vsix");
const python = process.env.CODESEARCH_PYTHON ?? path.join(repo, ".venv/bin/python");
const browserPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const artifacts = path.join(extensionDir, "test-results");
fs.rmSync(artifacts, { recursive: true, force: true });
const deadline = Date.now() + 1000 * Number(process.env.CODESEARCH_UI_TIMEOUT_S ?? 240);

const QUERY = "give the customer their money back";
const EXPECTED = { symbol: "refund_payment", file: "payments.py", path: "shop/payments.py" };
// VS Code keeps only the workspace symbols whose name fuzzy-matches the query's first word, so
// Go to Symbol takes words of a name; plain-language queries belong in Code Search: Search.
const SYMBOL_QUERY = "login";
const SYMBOL_EXPECTED = { name: "handleLogin", container: "web/routes.js" };

function need(file, hint) {
  if (!fs.existsSync(file)) {
    console.error(`ui test: ${file} is missing: ${hint}`);
    process.exit(2);
  }
}
need(codeServer, "run `bash test/ui/setup.sh`");
need(vsix, "run `npm run package`");
need(python, "set CODESEARCH_PYTHON to a python with codesearch installed (make install)");
need(browserPath, "apt-get install chromium");

function remaining() {
  return Math.max(1000, deadline - Date.now());
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** 1-based line of the first line of `file` that contains `text`. */
function lineOf(file, text) {
  const index = fs.readFileSync(file, "utf8").split("\n").findIndex((line) => line.includes(text));
  if (index < 0) throw new Error(`${text} not in ${file}`);
  return index + 1;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "codesearch-ui-"));
const workspace = path.join(work, "shop-workspace");
const userData = path.join(work, "user-data");
const extensions = path.join(work, "extensions");
fs.cpSync(path.join(extensionDir, "test/fixture"), workspace, { recursive: true });
fs.mkdirSync(path.join(userData, "User"), { recursive: true });
fs.mkdirSync(artifacts, { recursive: true });
fs.writeFileSync(
  path.join(userData, "User/settings.json"),
  JSON.stringify(
    {
      "codesearch.pythonPath": python,
      "workbench.startupEditor": "none",
      "workbench.tips.enabled": false,
      "workbench.enableExperiments": false,
      "security.workspace.trust.enabled": false,
      "telemetry.telemetryLevel": "off",
      "update.mode": "none",
      "extensions.autoCheckUpdates": false,
      "extensions.autoUpdate": false,
      "chat.disableAIFeatures": true,
      "window.commandCenter": false,
    },
    null,
    2,
  ),
);

const env = {
  ...process.env,
  XDG_DATA_HOME: path.join(work, "data"), // the fixture's index lives in the temp folder
  XDG_CONFIG_HOME: path.join(work, "config"),
  HF_HUB_OFFLINE: "1",
  LANCEDB_LOG: "error",
};
const common = ["--user-data-dir", userData, "--extensions-dir", extensions];

const install = spawnSync(process.execPath, [codeServer, ...common, "--install-extension", vsix], {
  env,
  encoding: "utf8",
});
if (install.status !== 0 || !/successfully installed/i.test(install.stdout + install.stderr)) {
  console.error(`ui test: installing the .vsix failed:\n${install.stdout}\n${install.stderr}`);
  process.exit(1);
}
console.log(`ui test: installed ${path.basename(vsix)}`);

const port = await freePort();
const logFile = path.join(artifacts, "code-server.log");
const log = fs.createWriteStream(logFile);
const server = spawn(
  process.execPath,
  [
    codeServer,
    ...common,
    "--bind-addr",
    `127.0.0.1:${port}`,
    "--auth",
    "none",
    "--disable-telemetry",
    "--disable-update-check",
    "--disable-workspace-trust",
    "--disable-getting-started-override",
    "--ignore-last-opened",
    workspace,
  ],
  { env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
);
server.stdout.pipe(log);
server.stderr.pipe(log);
await new Promise((resolve, reject) => {
  let seen = "";
  const timer = setTimeout(() => reject(new Error(`code-server did not start; see ${logFile}`)), 60_000);
  server.stdout.on("data", (chunk) => {
    seen += chunk;
    if (seen.includes("HTTP server listening")) {
      clearTimeout(timer);
      resolve();
    }
  });
  server.once("exit", (code) => reject(new Error(`code-server exited with ${code}; see ${logFile}`)));
});
console.log(`ui test: code-server on 127.0.0.1:${port}`);

const browser = await chromium.launch({
  executablePath: browserPath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = await browser.newPage({
  viewport: { width: 1400, height: 900 },
  permissions: ["clipboard-read", "clipboard-write"], // the settings edit pastes
});
const consoleErrors = [];
page.on("console", (message) => {
  if (message.type() === "error") consoleErrors.push(message.text());
});

let step = "";
async function stepTo(name, fn) {
  step = name;
  const started = Date.now();
  await fn();
  console.log(`ui test: ok  ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

/** Waits until the status bar item shows the index's chunk count. */
async function statusShowsChunks(ms) {
  await page.waitForFunction(
    () => [...document.querySelectorAll(".statusbar-item")].some((item) => /\d+ chunks$/.test(item.textContent.trim())),
    null,
    { timeout: Math.min(remaining(), ms) },
  );
}

/** Waits until the quick input box's `property` (value, placeholder) contains `text`. */
async function inputHas(property, text) {
  await page.waitForFunction(
    ([property, text]) => document.querySelector(".quick-input-widget .quick-input-box input")?.[property]?.includes(text),
    [property, text],
    { timeout: 15_000 },
  );
}

/** Runs a command by its palette title. */
async function palette(title) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget .quick-input-box input");
  await input.waitFor({ state: "visible", timeout: 15_000 });
  await input.fill(`>${title}`);
  const row = page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first();
  await row.waitFor({ state: "visible", timeout: 15_000 });
  await input.press("Enter");
}

let failed = false;
try {
  await stepTo("open the workspace", async () => {
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
    await page.locator(".monaco-workbench").waitFor({ timeout: 60_000 });
  });

  const statusItem = page.locator(".statusbar-item", { hasText: "chunks" }).first();
  await stepTo("status bar shows the indexed chunk count", async () => {
    await statusItem.waitFor({ state: "visible", timeout: Math.min(remaining(), 180_000) });
    await statusShowsChunks(180_000);
    console.log(`ui test:     status bar: ${(await statusItem.textContent()).trim()}`);
  });

  const row = page.locator(".quick-input-list .monaco-list-row", { hasText: EXPECTED.symbol }).first();
  await stepTo("Code Search: Search shows the expected result row", async () => {
    await palette("Code Search: Search");
    const input = page.locator(".quick-input-widget .quick-input-box input");
    await inputHas("placeholder", "Describe");
    await input.pressSequentially(QUERY, { delay: 20 });
    await row.waitFor({ state: "visible", timeout: Math.min(remaining(), 60_000) });
    const line = lineOf(path.join(workspace, EXPECTED.path), `def ${EXPECTED.symbol}`);
    const text = (await row.innerText()).replace(/\s+/g, " "); // label, description and detail, spaced
    for (const part of [EXPECTED.symbol, `${EXPECTED.path}:${line}`, "def refund_payment"]) {
      if (!text.includes(part)) throw new Error(`the result row lacks ${JSON.stringify(part)}: ${text}`);
    }
    if (!/(^|\s)[01]\.\d{3}\s/.test(text)) throw new Error(`the result row shows no score: ${text}`);
    const title = (await page.locator(".quick-input-title").textContent()).trim();
    if (!/\d+ results? in \d+ ms/.test(title)) throw new Error(`unexpected title: ${title}`);
    console.log(`ui test:     row: ${text.trim()}\nui test:     title: ${title}`);
    // the highlighted row is previewed behind the picker, the chunk's lines highlighted
    await page.locator(".tab.active", { hasText: EXPECTED.file }).waitFor({ timeout: 15_000 });
    await page.locator(".view-line", { hasText: `def ${EXPECTED.symbol}` }).first().waitFor({ timeout: 15_000 });
    await page.screenshot({ path: path.join(artifacts, "search-results.png") });
  });

  await stepTo("accepting the row opens the file at the chunk's first line", async () => {
    await row.click();
    const line = lineOf(path.join(workspace, EXPECTED.path), `def ${EXPECTED.symbol}`);
    await page.locator(".tab.active", { hasText: EXPECTED.file }).waitFor({ timeout: 15_000 });
    await page.locator(".statusbar-item", { hasText: `Ln ${line}, Col 1` }).first().waitFor({ timeout: 15_000 });
    await page.locator(".view-line", { hasText: `def ${EXPECTED.symbol}` }).first().waitFor({ timeout: 15_000 });
    await page.screenshot({ path: path.join(artifacts, "opened-result.png") });
  });

  await stepTo("Find Similar Code lists code like the selection, the selection left out", async () => {
    await page.locator(".view-line", { hasText: `def ${EXPECTED.symbol}` }).first().click();
    await page.keyboard.press("Home");
    for (let i = 0; i < 8; i++) await page.keyboard.press("Shift+ArrowDown");
    await palette("Code Search: Find Similar Code");
    const similar = page.locator(".quick-input-list .monaco-list-row", { hasText: "capture" }).first();
    await similar.waitFor({ state: "visible", timeout: Math.min(remaining(), 60_000) });
    const title = (await page.locator(".quick-input-title").textContent()).trim();
    if (!title.startsWith("Code like shop/payments.py:27")) throw new Error(`unexpected title: ${title}`);
    const rows = await page.locator(".quick-input-list .monaco-list-row").allInnerTexts();
    if (rows.some((text) => text.includes(`${EXPECTED.path}:27`))) throw new Error("the selection itself is listed");
    await page.screenshot({ path: path.join(artifacts, "similar.png") });
    await page.keyboard.press("Escape");
  });

  await stepTo("the status bar item opens the index status", async () => {
    await statusItem.click();
    const folder = page.locator(".quick-input-list .monaco-list-row", { hasText: "shop-workspace" }).first();
    await folder.waitFor({ state: "visible", timeout: 15_000 });
    const text = (await folder.innerText()).replace(/\s+/g, " ");
    if (!/ready .*\d+ files · 17 chunks · 17 embedded/.test(text)) throw new Error(`unexpected status row: ${text}`);
    console.log(`ui test:     status: ${text.trim()}`);
    await page.keyboard.press("Escape");
  });

  await stepTo("Go to Symbol in Workspace answers from the index", async () => {
    await palette("Go to Symbol in Workspace");
    const input = page.locator(".quick-input-widget .quick-input-box input");
    await inputHas("value", "#");
    await input.fill(`#${SYMBOL_QUERY}`); // VS Code prefills the word under the cursor
    const symbol = page.locator(".quick-input-list .monaco-list-row", { hasText: SYMBOL_EXPECTED.name }).first();
    await symbol.waitFor({ state: "visible", timeout: Math.min(remaining(), 60_000) });
    const text = (await symbol.innerText()).replace(/\s+/g, " ");
    if (!text.includes(SYMBOL_EXPECTED.container)) throw new Error(`the symbol row lacks its file: ${text}`);
    console.log(`ui test:     symbol: ${text.trim()}`);
    await page.screenshot({ path: path.join(artifacts, "workspace-symbol.png") });
    await input.press("Escape");
  });

  await stepTo("a server that cannot start gives one notification with the fix; fixing the setting restarts it", async () => {
    const settingsFile = path.join(userData, "User/settings.json");
    const good = JSON.parse(fs.readFileSync(settingsFile, "utf8"));
    const bad = { ...good, "codesearch.pythonPath": path.join(work, "no-such-venv/bin/python") };
    // as a user would: Preferences: Open User Settings (JSON), edit, save
    const edit = async (settings) => {
      await page.evaluate((text) => navigator.clipboard.writeText(text), JSON.stringify(settings, null, 2));
      await page.keyboard.press("Control+A");
      await page.keyboard.press("Control+V");
      await page.keyboard.press("Control+S");
    };
    await palette("Preferences: Open User Settings (JSON)");
    await page.locator(".tab.active", { hasText: "settings.json" }).waitFor({ timeout: 15_000 });
    await page.locator(".monaco-editor.focused").waitFor({ timeout: 15_000 });
    await edit(bad);
    const toast = page.locator(".notification-toast", { hasText: "could not start its server" }).first();
    await toast.waitFor({ state: "visible", timeout: 30_000 });
    const text = (await toast.innerText()).replace(/\s+/g, " ");
    for (const part of ["no-such-venv/bin/python -m lsp", "codesearch.pythonPath", "Open Settings", "Show Log"]) {
      if (!text.includes(part)) throw new Error(`the notification lacks ${JSON.stringify(part)}: ${text}`);
    }
    const toasts = await page.locator(".notification-toast").count();
    if (toasts !== 1) throw new Error(`${toasts} notifications instead of one`);
    await page.screenshot({ path: path.join(artifacts, "cannot-start.png") });
    await page.locator(".monaco-editor .view-lines").first().click();
    await edit(good);
    await statusShowsChunks(60_000);
  });
} catch (error) {
  failed = true;
  console.error(`ui test: FAILED at "${step}": ${error.message}`);
  await page.screenshot({ path: path.join(artifacts, "failure.png") }).catch(() => undefined);
  const errors = consoleErrors.filter((text) => !/Failed to load resource|ERR_|favicon/.test(text));
  if (errors.length) console.error(`ui test: browser console errors:\n  ${errors.slice(-10).join("\n  ")}`);
  console.error(`ui test: code-server log: ${logFile}`);
  // VS Code's own logs, the Code Search output channel (the server's stderr) among them:
  fs.cpSync(path.join(userData, "logs"), path.join(artifacts, "vscode-logs"), { recursive: true });
  for (const file of fs.readdirSync(path.join(artifacts, "vscode-logs"), { recursive: true })) {
    if (String(file).endsWith("Code Search.log")) {
      const text = fs.readFileSync(path.join(artifacts, "vscode-logs", String(file)), "utf8");
      console.error(`ui test: the Code Search output channel:\n${text.split("\n").slice(-40).join("\n")}`);
    }
  }
} finally {
  await browser.close().catch(() => undefined);
  try {
    process.kill(-server.pid, "SIGTERM"); // code-server, its extension host and our language server
  } catch {
    // already gone
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  fs.rmSync(work, { recursive: true, force: true, maxRetries: 3 });
}
console.log(`ui test: ${failed ? "FAILED" : "passed"}; screenshots in ${path.relative(repo, artifacts)}/`);
process.exit(failed ? 1 : 0);
