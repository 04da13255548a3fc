// The avatar picker: every zip in the server's avatar directory is offered, a broken one disabled with the
// server's reason; picking another avatar loads it, and the page URL remembers the choice.
//   node client_avatars.mjs --url URL --pick NAME
import { report } from "./lib/browser.mjs";
import { args, close, openClient } from "./lib/client.mjs";

const { url, pick } = args();
const client = await openClient(`${url}/`, { width: 800, height: 600 });
const { page } = client;
const zipRequests = [];
page.on("request", (request) => {
  const match = /\/avatars\/([^/]+)\.zip/.exec(request.url());
  if (match) zipRequests.push(match[1]);
});
const avatarReady = (timeout) =>
  page.waitForFunction(() => window.gaussianAvatar?.avatar?.state === "ready", null, { timeout });
try {
  await page.waitForFunction(() => document.querySelector("#avatar-picker").options.length > 0, null, { timeout: 30000 });
  const options = await page.$$eval("#avatar-picker option", (all) =>
    all.map((o) => ({ name: o.value, label: o.textContent, disabled: o.disabled, title: o.title, selected: o.selected })));
  const visible = await page.isVisible("#avatar-picker");
  await avatarReady(120000);
  await page.selectOption("#avatar-picker", pick);
  await page.waitForFunction((name) => window.gaussianAvatar.avatar.state === "ready" &&
    new URLSearchParams(location.search).get("avatar") === name, pick, { timeout: 120000 });
  report({ options, visible, zipRequests, search: await page.evaluate(() => location.search),
    avatarState: await page.evaluate(() => window.gaussianAvatar.avatar.state) });
} finally {
  await close(client);
}
