// Lip sync measured in a real browser (the measurement: ./lib/lipsync.mjs): the app's text box asks a question,
// the reply's loudness as heard is correlated with the jawOpen handed to the renderer. --turns N repeats it (the
// benchmark hack/bench/av_sync.py); the top-level fields are the first turn's, `turns` holds every turn.
// The 3D avatar is off: software WebGL stalls the page's main thread for up to seconds, which would measure this
// machine, not the client. Prints ONE JSON line.
//   node client_sync.mjs --url URL --wav silence.wav [--turns 1]
import { report } from "./lib/browser.mjs";
import { args, close, openClient, pageText } from "./lib/client.mjs";
import { measureTurn } from "./lib/lipsync.mjs";

const QUESTIONS = ["Please tell me about yourself.", "What can you do for me?", "How does your face move?"];
const { url, wav, turns = "1" } = args();
const client = await openClient(`${url}/?avatar=off`, { fakeAudio: wav, width: 640, height: 480 });
const { page } = client;
const result = { turns: [] };
try {
  await page.click("#connect");
  await page.waitForFunction(() => document.querySelector("#connection").dataset.state === "connected");
  for (let i = 0; i < Number(turns); i++) {
    const turn = await measureTurn(page, QUESTIONS[i % QUESTIONS.length]);
    process.stderr.write(`turn ${i + 1}: jaw lag ${turn.jawLagMs} ms (peak correlation ${turn.peakCorrelation})\n`);
    result.turns.push(turn);
  }
  Object.assign(result, result.turns[0]);
  result.stats = await page.evaluate(() => window.gaussianAvatar.stats());
  result.text = await pageText(page);
} catch (e) {
  result.error = String(e.stack || e);
}
await close(client);
report(result);
