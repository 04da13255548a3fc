// Lip sync measured in a real browser: while the avatar speaks, sample at ~100 Hz both the loudness of the reply
// audio as the page plays it (a WebAudio analyser on the received track, after the jitter buffer) and the jawOpen
// weight the app hands the renderer for that instant; the lag of their cross-correlation peak is the A/V offset.
// The analyser sees a sample (baseLatency + outputLatency) before the speakers play it, so that is added back:
// the lag reported is against the sound as heard.
// The 3D avatar is off: software WebGL stalls the page's main thread for up to seconds, which would measure this
// machine, not the client. Prints ONE JSON line.
//   node client_sync.mjs --url URL --wav silence.wav
import { report } from "./lib/browser.mjs";
import { args, close, openClient, pageText } from "./lib/client.mjs";

const { url, wav } = args();
const client = await openClient(`${url}/?avatar=off`, { fakeAudio: wav, width: 640, height: 480 });
const { page } = client;
const result = {};
try {
  await page.click("#connect");
  await page.waitForFunction(() => document.querySelector("#connection").dataset.state === "connected");
  await page.evaluate(() => {
    const app = window.gaussianAvatar;
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    ctx.createMediaStreamSource(document.getElementById("voice").srcObject).connect(analyser);
    const buf = new Float32Array(512);
    window.analyserLeadMs = () => ((ctx.baseLatency || 0) + (ctx.outputLatency || 0)) * 1000;
    const jaw = app.names.indexOf("jawOpen");
    window.samples = [];
    window.sampler = setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (let i = 256; i < 512; i++) sum += buf[i] * buf[i]; // the newest ~5 ms
      const now = performance.now();
      const shown = app.player.sample(now)[jaw];
      // For comparison: what playing each frame on arrival (no playout-delay compensation) would show now.
      const onArrival = app.player.sample(now + app.player.playoutDelayMs)[jaw];
      window.samples.push([now, Math.sqrt(sum / 256), shown, app.player.playoutDelayMs, onArrival]);
    }, 10);
  });
  await page.fill("#text", "Please tell me about yourself.");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector(".line.avatar") &&
    document.querySelector("#chat-state").dataset.state === "listening", null, { timeout: 90000 });
  await page.waitForTimeout(1500); // the tail of the audio is still in the jitter buffer
  const { samples, analyserLeadMs } = await page.evaluate(() => {
    clearInterval(window.sampler);
    return { samples: window.samples, analyserLeadMs: window.analyserLeadMs() };
  });
  Object.assign(result, analyse(samples));
  result.analyserLeadMs = +analyserLeadMs.toFixed(1);
  result.measuredLagMs = result.jawLagMs; // against the analyser
  result.jawLagMs = Math.round(result.measuredLagMs - analyserLeadMs); // against the sound as heard
  result.onArrivalLagMs = Math.round(result.onArrivalLagMs - analyserLeadMs);
  result.stats = await page.evaluate(() => window.gaussianAvatar.stats());
  result.text = await pageText(page);
} catch (e) {
  result.error = String(e.stack || e);
}
await close(client);
report(result);

/** Resample both signals to a 5 ms grid and find the lag (jaw relative to sound) of the correlation peak. */
function analyse(samples) {
  const STEP = 5;
  const t0 = samples[0][0];
  const n = Math.floor((samples[samples.length - 1][0] - t0) / STEP);
  const grid = (k) => {
    const out = new Float64Array(n);
    for (let i = 0, j = 0; i < n; i++) {
      while (j + 1 < samples.length && samples[j + 1][0] <= t0 + i * STEP) j++;
      out[i] = samples[j][k];
    }
    return out;
  };
  const rms = grid(1);
  // Loudness envelope over ~33 ms: one expression frame's worth of audio.
  const env = rms.map((_, i) => {
    let s = 0, c = 0;
    for (let k = Math.max(0, i - 3); k <= Math.min(n - 1, i + 3); k++) { s += rms[k]; c++; }
    return s / c;
  });
  const normalise = (a) => {
    const mean = a.reduce((x, y) => x + y, 0) / a.length;
    const d = a.map((x) => x - mean);
    const norm = Math.sqrt(d.reduce((x, y) => x + y * y, 0)) || 1;
    return d.map((x) => x / norm);
  };
  const A = normalise(env);
  const peak = (jaw) => {
    const B = normalise(jaw);
    const curve = [];
    let best = { corr: -Infinity, lagMs: 0 };
    for (let lag = -100; lag <= 100; lag++) { // ±500 ms
      let s = 0;
      for (let i = 0; i < n; i++) if (i + lag >= 0 && i + lag < n) s += A[i] * B[i + lag];
      curve.push([lag * STEP, +s.toFixed(3)]);
      if (s > best.corr) best = { corr: s, lagMs: lag * STEP };
    }
    return { best, curve };
  };
  const { best, curve } = peak(grid(2));
  const naive = peak(grid(4)).best;
  const delays = samples.map((s) => s[3]).filter((d) => d > 0).sort((a, b) => a - b);
  return {
    samples: samples.length,
    seconds: +((samples[samples.length - 1][0] - t0) / 1000).toFixed(1),
    speechFraction: +(rms.filter((r) => r > 0.01).length / n).toFixed(3),
    // Positive lag: the mouth moves after the sound; negative: before it.
    jawLagMs: best.lagMs,
    peakCorrelation: +best.corr.toFixed(3),
    correlationAtZeroLag: curve.find(([l]) => l === 0)[1],
    onArrivalLagMs: naive.lagMs, // the same frames played on arrival, without the measured playout delay
    playoutDelayMs: delays.length ? { p50: Math.round(delays[delays.length >> 1]), max: Math.round(delays[delays.length - 1]) } : null,
    curve: curve.filter((_, i) => i % 4 === 0),
  };
}
