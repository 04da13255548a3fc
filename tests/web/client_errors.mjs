// Error paths of the browser client, each a scenario against a runtime the pytest side configured for it.
// Prints ONE JSON line with what the page showed; test_browser_client.py asserts on it.
//   node client_errors.mjs --scenario full|nomic|lost|auth --url URL [--wav silence.wav] [--token T] [--out DIR]
//   full:  limit 1; a first page holds the slot, a second is refused (503): banner, countdown, auto-retry after
//          the first page hangs up (the runtime has no LLM configured: the offline notice shows too).
//   nomic: microphone denied → text-only mode → typed question answered → a second reply cut by Interrupt.
//   lost:  the session is deleted behind the page's back → "connection lost" banner → Reconnect works.
//   shutdown: the pytest side ends every session as a draining server does (`error server_shutdown`) → the page
//          says so and reconnects by itself (a new session, no banner) → a typed question is answered.
//   auth:  the server wants a token → 401 banner with the token field → with the token, it connects.
//   nowebgl, noavatar: the avatar cannot be shown (no WebGL2 / the server's avatar is missing) → its message,
//          and the conversation works without it (typed question, spoken and written answer).
// Except for the last two, the 3D avatar is off (?avatar=off): these paths are about the conversation, and
// software WebGL would only slow them down.
import { report } from "./lib/browser.mjs";
import { args, close, openClient, pageText, shot } from "./lib/client.mjs";

const { scenario, url, wav, token, out } = args();
const page_url = ["nowebgl", "noavatar"].includes(scenario) ? `${url}/` : `${url}/?avatar=off`;
const result = { scenario, steps: [] };
const clients = [];
const connected = (page, timeout = 30000) =>
  page.waitForFunction(() => document.querySelector("#connection").dataset.state === "connected", null, { timeout });
const banner = (page, kind, timeout = 30000) =>
  page.waitForFunction((k) => document.querySelector("#alert:not([hidden])")?.dataset.kind === k, kind, { timeout });
const step = async (name, page) => result.steps.push({ name, ...(await pageText(page)) });
const save = (page, name) => (out ? shot(page, { path: `${out}/web_${name}.png` }) : null);

async function open(options = {}) {
  const client = await openClient(page_url, { fakeAudio: wav, width: 800, height: 600, ...options });
  clients.push(client);
  return client;
}

async function typedTurn(page, text) {
  await page.fill("#text", text);
  await page.click("#send");
  await page.waitForFunction(() => /You said|\w{3,}/.test(document.querySelector(".line.avatar .text")?.textContent ?? ""),
    null, { timeout: 60000 });
  await page.waitForFunction(() => document.querySelector("#chat-state").dataset.state === "listening", null, { timeout: 60000 });
}

try {
  if (scenario === "full") {
    const first = await open();
    result.notice = (await pageText(first.page)).notice;
    await first.page.click("#connect");
    await connected(first.page);
    await step("first connected", first.page);
    const second = await open();
    await second.page.click("#connect");
    await banner(second.page, "capacity");
    await step("second refused", second.page);
    result.countdownText = await second.page.textContent(".alert-countdown");
    await save(second.page, "server_full");
    await close(first); // frees the slot: the countdown's automatic retry must then get in
    const t = Date.now();
    await connected(second.page, 60000);
    result.retriedAfterS = (Date.now() - t) / 1000;
    await step("second connected after retry", second.page);
  } else if (scenario === "nomic") {
    const { page } = await open({ denyMicrophone: true });
    await page.click("#connect");
    await banner(page, "microphone");
    await step("microphone refused", page);
    await save(page, "no_microphone");
    await page.click("#text-only");
    await connected(page);
    result.modeVisible = await page.isVisible("#mode");
    await typedTurn(page, "Hello from the keyboard");
    await step("typed turn answered", page);
    await save(page, "text_only");
    await page.fill("#text", "Tell me more");
    await page.click("#send");
    await page.waitForFunction(() => document.querySelector("#chat-state").dataset.state === "speaking", null, { timeout: 60000 });
    await page.click("#interrupt");
    await page.waitForSelector(".line.avatar.interrupted", { timeout: 30000 });
    await page.waitForFunction(() => document.querySelector("#chat-state").dataset.state === "listening", null, { timeout: 30000 });
    await step("second reply interrupted", page);
  } else if (scenario === "lost") {
    const { page } = await open();
    await page.click("#connect");
    await connected(page);
    // The server ends the session (as an operator or a crash would); the page must say so and offer a way back.
    await page.evaluate(() => fetch(`/api/sessions/${window.gaussianAvatar.session.sessionId}`, { method: "DELETE" }));
    await banner(page, "lost");
    await step("lost", page);
    await save(page, "connection_lost");
    await page.click("#reconnect");
    await connected(page);
    await typedTurn(page, "Are you back?");
    await step("reconnected", page);
  } else if (scenario === "shutdown") {
    const { page } = await open();
    await page.click("#connect");
    await connected(page);
    const first = await page.evaluate(() => window.gaussianAvatar.session.sessionId);
    await page.waitForFunction(() => [...document.querySelectorAll(".line.system")].some((e) => /shutting down/.test(e.textContent)),
      null, { timeout: 60000 });
    await page.waitForFunction((id) => document.querySelector("#connection").dataset.state === "connected"
      && window.gaussianAvatar.session?.sessionId && window.gaussianAvatar.session.sessionId !== id, first, { timeout: 30000 });
    result.sessions = [first, await page.evaluate(() => window.gaussianAvatar.session.sessionId)];
    result.system = await page.evaluate(() => [...document.querySelectorAll(".line.system")].map((e) => e.textContent));
    await typedTurn(page, "Are you back?");
    await step("reconnected by itself", page);
  } else if (scenario === "auth") {
    const { page } = await open();
    result.tokenFieldVisible = await page.isVisible("#token");
    await page.click("#connect");
    await banner(page, "auth");
    await step("no token", page);
    await page.fill("#token", "wrong-token");
    await page.click("#retry");
    await banner(page, "auth");
    await step("wrong token", page);
    await save(page, "bad_token");
    await page.fill("#token", token);
    await page.click("#retry");
    await connected(page);
    await step("right token", page);
  } else if (scenario === "nowebgl" || scenario === "noavatar") {
    const { page } = await open({ noWebGL2: scenario === "nowebgl" });
    await page.waitForFunction(() => window.gaussianAvatar.stats().avatar === "failed", null, { timeout: 60000 });
    await step("avatar failed", page);
    await save(page, `avatar_${scenario}`);
    await page.click("#connect");
    await connected(page);
    await typedTurn(page, "Can you hear me?");
    result.framesReceived = (await page.evaluate(() => window.gaussianAvatar.stats())).framesReceived;
    await step("conversation without the avatar", page);
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
} catch (e) {
  result.error = String(e.stack || e);
  for (const c of clients) result.steps.push({ name: "at error", ...(await pageText(c.page).catch(() => ({}))) });
}
result.pageErrors = clients.flatMap((c) => c.logs.filter((l) => l.startsWith("pageerror")));
for (const c of clients) await close(c).catch(() => {});
report(result);
