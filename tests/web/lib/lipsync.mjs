// Lip sync measured in a real browser — one implementation for tests/web/client_sync.mjs (the test) and
// hack/bench/av_sync.py (the benchmark). While the avatar speaks one reply, sample at ~100 Hz both the loudness of
// the reply audio as the page plays it (a WebAudio analyser on the received track, after the jitter buffer) and the
// jawOpen weight the app hands the renderer for that instant; the lag of their cross-correlation peak is the A/V
// offset. The analyser sees a sample (baseLatency + outputLatency) before the speakers play it, so that is added
// back: the lag reported is against the sound as heard. Positive lag: the mouth moves after the sound.

/** Type `text`, wait for the whole spoken reply, and return the offset analysis of that one turn. */
export async function measureTurn(page, text, { timeoutMs = 90000 } = {}) {
  const repliesBefore = await page.evaluate(() => document.querySelectorAll(".line.avatar").length);
  await page.evaluate(startSampler);
  await page.fill("#text", text);
  await page.click("#send");
  // A new avatar line, then back to listening: the reply was spoken.
  await page.waitForFunction((before) => document.querySelectorAll(".line.avatar").length > before &&
    document.querySelector("#chat-state").dataset.state === "listening", repliesBefore, { timeout: timeoutMs });
  await page.waitForTimeout(1500); // the tail of the audio is still in the jitter buffer
  const { samples, analyserLeadMs } = await page.evaluate(() => {
    clearInterval(window.lipSync.timer);
    window.lipSync.ctx.close();
    return { samples: window.lipSync.samples, analyserLeadMs: window.lipSync.leadMs };
  });
  const result = analyse(samples);
  result.analyserLeadMs = +analyserLeadMs.toFixed(1);
  result.measuredLagMs = result.jawLagMs; // against the analyser
  result.jawLagMs = Math.round(result.measuredLagMs - analyserLeadMs); // against the sound as heard
  result.onArrivalLagMs = Math.round(result.onArrivalLagMs - analyserLeadMs);
  return result;
}

/** In the page: an analyser on the reply track, and a 10 ms sampler of (time, rms, jawOpen shown, delay, jaw on arrival). */
function startSampler() {
  const app = window.gaussianAvatar;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(document.getElementById("voice").srcObject).connect(analyser);
  const buf = new Float32Array(512);
  const jaw = app.names.indexOf("jawOpen");
  const state = { ctx, samples: [], leadMs: 0 };
  state.timer = setInterval(() => {
    state.leadMs = ((ctx.baseLatency || 0) + (ctx.outputLatency || 0)) * 1000;
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (let i = 256; i < 512; i++) sum += buf[i] * buf[i]; // the newest ~5 ms
    const now = performance.now();
    const shown = app.player.sample(now)[jaw];
    // For comparison: what playing each frame on arrival (no playout-delay compensation) would show now.
    const onArrival = app.player.sample(now + app.player.playoutDelayMs)[jaw];
    state.samples.push([now, Math.sqrt(sum / 256), shown, app.player.playoutDelayMs, onArrival]);
  }, 10);
  window.lipSync = state;
}

/** Resample both signals to a 5 ms grid and find the lag (jaw relative to sound) of the correlation peak. */
export function analyse(samples) {
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
    jawLagMs: best.lagMs,
    peakCorrelation: +best.corr.toFixed(3),
    correlationAtZeroLag: curve.find(([l]) => l === 0)[1],
    onArrivalLagMs: naive.lagMs, // the same frames played on arrival, without the measured playout delay
    playoutDelayMs: delays.length ? { p50: Math.round(delays[delays.length >> 1]), max: Math.round(delays[delays.length - 1]) } : null,
    curve: curve.filter((_, i) => i % 4 === 0),
  };
}
