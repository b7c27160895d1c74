// Drives code-server's workbench in headless Chromium, for tests/editors/test_vscode.py.
// One JSON command per line on stdin ({op, ...args}); one JSON line back on stdout
// per command: {ok: true, value} or {ok: false, error}. Every wait polls the page
// until a condition holds (or times out with what it saw last): no fixed sleeps.
// playwright-core comes from NODE_PATH (set up by .ci/setup-code-server).
'use strict';
const readline = require('readline');
const { chromium } = require('playwright-core');

let browser;
let page;

// Monaco draws spaces as no-break spaces.
const plain = (text) => text.replace(/\u00a0/g, ' ');

async function texts(selector) {
  return (await page.locator(selector).allInnerTexts()).map(plain);
}

async function poll(what, check, timeout) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last.done) {
      return last.value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last seen: ${JSON.stringify(last.value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const ops = {
  async open({ url, executablePath, width = 1280, height = 800 }) {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width, height } });
    await page.goto(url);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
    return true;
  },

  async press({ keys }) {
    for (const key of keys) {
      await page.keyboard.press(key);
    }
    return true;
  },

  // Types like a person: `delay` ms between keystrokes.
  async type({ text, delay = 0 }) {
    await page.keyboard.type(text, { delay });
    return true;
  },

  // Waits until the text of every element matching `selector`, run together (ghost
  // text comes in one element per token), contains `text`.
  async waitText({ selector, text, timeout = 20000 }) {
    return poll(`"${text}" in ${selector}`, async () => {
      const seen = (await texts(selector)).join('');
      return { done: seen.includes(text), value: seen };
    }, timeout);
  },

  async waitNoText({ selector, text, timeout = 20000 }) {
    return poll(`"${text}" to leave ${selector}`, async () => {
      const seen = (await texts(selector)).join('');
      return { done: !seen.includes(text), value: seen };
    }, timeout);
  },

  async waitVisible({ selector, timeout = 20000 }) {
    await page.locator(selector).first().waitFor({ state: 'visible', timeout });
    return true;
  },

  async click({ selector, timeout = 20000 }) {
    await page.locator(selector).first().click({ timeout });
    return true;
  },

  async texts({ selector }) {
    return texts(selector);
  },

  // Opens a workspace file with Quick Open and waits for its editor to have focus.
  async openFile({ name, timeout = 20000 }) {
    await page.keyboard.press('Control+p');
    await quickInput(name, name, timeout);
    return ops.waitEditor({ name, timeout });
  },

  // Waits until the active editor is the file `name` and has the keyboard focus.
  async waitEditor({ name, timeout = 20000 }) {
    await page.locator(`.tab.active[aria-label^="${name}"]`).waitFor({ timeout });
    await page.locator('.editor-group-container.active .monaco-editor.focused').waitFor({ timeout });
    return true;
  },

  // Runs a command by its title from the command palette.
  async command({ title, timeout = 20000 }) {
    await page.keyboard.press('F1');
    await quickInput(title, title, timeout);
    return true;
  },

  // Picks the row labelled `label` in the quick pick shown now or next.
  async pick({ label, timeout = 20000 }) {
    await poll(`a quick-pick row "${label}"`, async () => {
      const rows = await texts('.quick-input-widget .quick-input-list .monaco-list-row');
      return { done: rows.some((row) => row.includes(label)), value: rows };
    }, timeout);
    await quickInput(label, label, timeout);
    return true;
  },

  // Answers an input box (showInputBox) once it is shown, titled `title`.
  async answerInput({ title, text, timeout = 20000 }) {
    await poll(`an input box titled "${title}"`, async () => {
      const visible = await page.locator('.quick-input-widget').isVisible();
      const seen = visible ? (await texts('.quick-input-widget .quick-input-title')).join('') : '';
      return { done: seen.includes(title), value: seen };
    }, timeout);
    await page.keyboard.type(text);
    await page.keyboard.press('Enter');
    return true;
  },

  async screenshot({ path }) {
    await page.mouse.move(700, 650); // off any button, whose tooltip would show
    await page.screenshot({ path });
    return path;
  },

  async close() {
    await browser?.close();
    return true;
  },
};

// Types into the open quick input and picks the row whose label contains `label`.
async function quickInput(text, label, timeout) {
  const input = page.locator('.quick-input-widget .quick-input-box input');
  await input.waitFor({ state: 'visible', timeout });
  await page.keyboard.type(text);
  await poll(`a quick-input row "${label}"`, async () => {
    const rows = await texts('.quick-input-widget .quick-input-list .monaco-list-row.focused');
    return { done: rows.some((row) => row.includes(label)), value: rows };
  }, timeout);
  const rows = async () => (await texts('.quick-input-widget .quick-input-list .monaco-list-row')).join('\n');
  const before = await rows();
  await page.keyboard.press('Enter');
  // Done when the widget closed or shows something else (the next step of a command).
  await poll('the quick input to move on', async () => {
    const visible = await page.locator('.quick-input-widget').isVisible();
    const now = visible ? await rows() : '';
    return { done: !visible || now !== before, value: now };
  }, timeout);
}

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on('line', (line) => {
  // One command at a time, in order.
  queue = queue.then(async () => {
    let answer;
    try {
      const { op, ...args } = JSON.parse(line);
      if (!ops[op]) {
        throw new Error(`unknown op ${op}`);
      }
      answer = { ok: true, value: await ops[op](args) };
    } catch (error) {
      answer = { ok: false, error: String(error && error.stack ? error.stack : error) };
    }
    process.stdout.write(JSON.stringify(answer) + '\n');
  });
});
lines.on('close', () => queue.then(() => browser?.close()).then(() => process.exit(0)));
