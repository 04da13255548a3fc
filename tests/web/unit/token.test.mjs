// Unit tests of web/src/session.js's fetchSessionToken against a real HTTP server on loopback (node:http): the page
// asks the deployer's backend (`server.token_url`) for a fresh one-use token before each session.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { SessionError, fetchSessionToken } from "../../../web/src/session.js";

async function tokenService(answer) {
  const requests = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method, cookie: req.headers.cookie });
    const [status, body, type = "text/plain"] = answer(requests.length);
    res.writeHead(status, { "content-type": type });
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { requests, url: `http://127.0.0.1:${server.address().port}/avatar-token`, close: () => new Promise((r) => server.close(r)) };
}

test("each call gets a fresh token, as text or JSON", async () => {
  const service = await tokenService((n) => (n === 1 ? [200, "v1.100.first-nonce-aaaaaaa.sig\n"] : [200, JSON.stringify({ token: `v1.100.n${n}.sig` }), "application/json"]));
  try {
    assert.equal(await fetchSessionToken(service.url), "v1.100.first-nonce-aaaaaaa.sig");
    assert.equal(await fetchSessionToken(service.url), "v1.100.n2.sig");
    assert.deepEqual(service.requests.map((r) => r.method), ["GET", "GET"]);
  } finally {
    await service.close();
  }
});

test("a refusal, an empty answer or no service at all is an auth error saying so", async () => {
  const service = await tokenService((n) => [[403, "no"], [200, ""], [200, "{\"nope\": 1}", "application/json"]][n - 1]);
  try {
    for (const expected of [/HTTP 403/, /sent no token/, /sent no token/]) {
      await assert.rejects(fetchSessionToken(service.url), (e) => e instanceof SessionError && e.kind === "auth" && expected.test(e.message));
    }
  } finally {
    await service.close();
  }
  await assert.rejects(fetchSessionToken(service.url), (e) => e instanceof SessionError && /could not be reached/.test(e.message));
});
