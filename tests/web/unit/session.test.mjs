// Unit tests of web/src/session.js's offer POST against a real HTTP server on loopback (node:http): a refusal for
// lack of room (503 capacity / draining) is retried with fresh requests ~300 ms apart before the page says "full".
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { AvatarSession, OFFER_RETRIES, SessionError, offerRetryDelayMs } from "../../../web/src/session.js";

/**
 * A server that answers POST /api/sessions with `answers[i]` for the i-th request (the last one repeats), and
 * records each request's arrival time and body.
 */
async function sessionServer(answers) {
  const requests = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (piece) => (body += piece));
    req.on("end", () => {
      requests.push({ at: performance.now(), method: req.method, url: req.url, body: JSON.parse(body) });
      const [status, json, headers = {}] = answers[Math.min(requests.length - 1, answers.length - 1)];
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(json));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const close = () => new Promise((resolve) => server.close(resolve));
  return { requests, baseUrl: `http://127.0.0.1:${server.address().port}`, close };
}

const FULL = [503, { error: "capacity", message: "all 1 conversation slots are busy; try again in 7 s" }, { "retry-after": "7" }];
const DRAINING = [503, { error: "draining", message: "this server is shutting down" }, { "retry-after": "2" }];
const CREATED = [201, { session_id: "abc", sdp: "v=0 answer", type: "answer" }];

const gaps = (requests) => requests.slice(1).map((r, i) => r.at - requests[i].at);

test("a refused offer is POSTed again, ~300 ms later each time, and the third try gets in", async () => {
  const server = await sessionServer([FULL, DRAINING, CREATED]);
  try {
    const session = new AvatarSession({ config: {}, audio: null, baseUrl: server.baseUrl });
    const answer = await session._post("v=0 offer");
    assert.equal(answer.session_id, "abc");
    assert.equal(server.requests.length, 3);
    for (const request of server.requests) {
      assert.deepEqual([request.method, request.url, request.body], ["POST", "/api/sessions", { sdp: "v=0 offer", type: "offer" }]);
    }
    for (const gap of gaps(server.requests)) assert.ok(gap >= 195 && gap < 600, `retry after ${gap} ms`);
  } finally {
    await server.close();
  }
});

test("after the retries the page is told the server is full, with its Retry-After", async () => {
  const server = await sessionServer([FULL]);
  try {
    const session = new AvatarSession({ config: {}, audio: null, baseUrl: server.baseUrl });
    const error = await session._post("v=0 offer").then(() => null, (e) => e);
    assert.ok(error instanceof SessionError);
    assert.equal(error.kind, "capacity");
    assert.match(error.message, /^The avatar server is full: all 1 conversation slots are busy/);
    assert.equal(error.retryAfterS, 7);
    assert.equal(server.requests.length, 1 + OFFER_RETRIES);
  } finally {
    await server.close();
  }
});

test("a draining server that stays so is reported like a full one (count down, then reconnect)", async () => {
  const server = await sessionServer([DRAINING]);
  try {
    const session = new AvatarSession({ config: {}, audio: null, baseUrl: server.baseUrl });
    const error = await session._post("v=0 offer").then(() => null, (e) => e);
    assert.equal(error.kind, "capacity");
    assert.equal(error.code, "draining");
    assert.equal(error.retryAfterS, 2);
    assert.match(error.message, /restarting/);
    assert.equal(server.requests.length, 1 + OFFER_RETRIES);
  } finally {
    await server.close();
  }
});

test("other refusals are not retried", async () => {
  for (const [answer, kind] of [
    [[503, { error: "not_ready", message: "models are still loading" }], "not_ready"],
    [[401, { error: "unauthorized", message: "a token is required" }], "auth"],
    [[400, { error: "bad_sdp", message: "no audio" }], "rejected"],
  ]) {
    const server = await sessionServer([answer]);
    try {
      const session = new AvatarSession({ config: {}, audio: null, baseUrl: server.baseUrl });
      const error = await session._post("v=0 offer").then(() => null, (e) => e);
      assert.equal(error.kind, kind);
      assert.equal(server.requests.length, 1, `${answer[1].error} was retried`);
    } finally {
      await server.close();
    }
  }
});

test("hanging up while a retry waits sends no further request", async () => {
  const server = await sessionServer([FULL]);
  try {
    const session = new AvatarSession({ config: {}, audio: null, baseUrl: server.baseUrl });
    const posting = session._post("v=0 offer").then(() => null, (e) => e);
    while (server.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    session._ending = true; // what hangUp() sets first
    assert.equal((await posting).kind, "capacity");
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(server.requests.length, 1);
  } finally {
    await server.close();
  }
});

test("the retry delay is 300 ms ± 100 ms", () => {
  assert.equal(offerRetryDelayMs(() => 0), 200);
  assert.equal(offerRetryDelayMs(() => 0.5), 300);
  assert.ok(offerRetryDelayMs(() => 0.999) < 400);
  for (let i = 0; i < 100; i++) {
    const delay = offerRetryDelayMs();
    assert.ok(delay >= 200 && delay < 400, delay);
  }
});
