// Launches Debian's Chromium through playwright-core the way every browser test and benchmark here needs it.
// Usage from a script: const { browser, page } = await launch({ fakeAudio: "/path/to.wav" });
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

export async function launch({ fakeAudio = null, denyMicrophone = false, width = 640, height = 480 } = {}) {
  const args = [
    "--no-sandbox",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    // Without this aiortc cannot resolve Chrome's .local mDNS candidates and stalls ~1 s.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
  ];
  if (!denyMicrophone) args.push("--use-fake-ui-for-media-stream");
  args.push("--use-fake-device-for-media-stream");
  if (fakeAudio) args.push(`--use-file-for-fake-audio-capture=${fakeAudio}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  const context = await browser.newContext({ viewport: { width, height } });
  if (denyMicrophone) await context.clearPermissions();
  const page = await context.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  return { browser, context, page, logs };
}

// Scripts print exactly one JSON line on stdout as their result; everything else goes to stderr.
export function report(result) {
  process.stdout.write(JSON.stringify(result) + "\n");
}
