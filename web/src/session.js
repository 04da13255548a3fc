// One WebRTC conversation with the runtime (DESIGN.md §3–4): microphone up, the avatar's voice down, and the
// `avatar` data channel for events and expression frames. Knows nothing about the page: it dispatches events.
import { decodeFrame, parseEvent, ProtocolError } from "./protocol.js";

/** Why a session could not start or ended; `kind` picks the UI's message and retry path. */
export class SessionError extends Error {
  /**
   * @param {'microphone'|'capacity'|'auth'|'not_ready'|'rejected'|'network'|'lost'} kind
   * @param {string} message a sentence for the user
   * @param {{status?: number, code?: string, retryAfterS?: number, cause?: unknown}} [details]
   */
  constructor(kind, message, { status, code, retryAfterS, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "SessionError";
    this.kind = kind;
    this.status = status;
    this.code = code;
    this.retryAfterS = retryAfterS;
  }
}

/**
 * Refusals that mean "no room on this server right now" (full, or shutting down). The server did not use the offer,
 * so the same POST may go again; behind a round-robin proxy (Service, ingress) it reaches another server.
 */
const RETRYABLE_REFUSALS = new Set(["capacity", "draining"]);
/** Fresh POSTs after such a refusal, before the page says the server is full. */
export const OFFER_RETRIES = 3;

/** 300 ms ± 100 ms: jittered, so pages refused together do not come back together. */
export function offerRetryDelayMs(random = Math.random) {
  return 200 + 200 * random();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The SessionError for a refused POST /api/sessions. */
function refusalError(res, body) {
  const message = body.message || `The server refused the session (HTTP ${res.status}).`;
  const retryAfterS = Number(res.headers.get("retry-after")) || undefined;
  const details = { status: res.status, code: body.error, retryAfterS };
  const sentence = (prefix) => `${prefix}: ${message}.`.replace(/\.\.$/, ".");
  if (res.status === 401) return new SessionError("auth", message, details);
  // Both mean "come back in Retry-After seconds": the UI's capacity path counts down and reconnects.
  if (res.status === 503 && body.error === "capacity") {
    return new SessionError("capacity", sentence("The avatar server is full"), details);
  }
  if (res.status === 503 && body.error === "draining") {
    return new SessionError("capacity", sentence("The avatar server is restarting"), details);
  }
  if (res.status === 503) return new SessionError("not_ready", message, details);
  return new SessionError("rejected", message, details);
}

/** Microphone constraints: the avatar's own voice must not come back as user speech (that would barge in). */
export const MIC_CONSTRAINTS = { audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } };

/**
 * GET /api/config.
 * @param {string} [baseUrl] '' for the page's own origin
 * @returns {Promise<object>}
 */
export async function fetchConfig(baseUrl = "") {
  let res;
  try {
    res = await fetch(`${baseUrl}/api/config`, { cache: "no-store" });
  } catch (e) {
    throw new SessionError("network", `The avatar server cannot be reached (${e.message}).`, { cause: e });
  }
  if (!res.ok) throw new SessionError("network", `The avatar server answered /api/config with HTTP ${res.status}.`);
  return res.json();
}

/**
 * Ask for the microphone; a SessionError('microphone') says why it is unavailable.
 * @returns {Promise<MediaStream>}
 */
export async function openMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new SessionError("microphone", "This page has no microphone access (it needs HTTPS or localhost).");
  }
  try {
    return await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
  } catch (e) {
    const why = {
      NotAllowedError: "Microphone permission was denied.",
      SecurityError: "Microphone permission was denied.",
      NotFoundError: "No microphone was found.",
      NotReadableError: "The microphone is in use by another program or could not be opened.",
    }[e?.name] || `The microphone could not be opened (${e?.name || e}).`;
    throw new SessionError("microphone", why, { code: e?.name, cause: e });
  }
}

/** Resolve once ICE gathering is complete (non-trickle offer), or after `timeoutMs` with what was gathered. */
function iceGatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs); // an unreachable STUN/TURN server must not hang the connect
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * A conversation. Events (all `CustomEvent`, payload in `detail`):
 * - `server`: a JSON event from the server (`detail` is the event: hello, state, transcript, reply, …)
 * - `frame`: `{frame, arrivalMs}` a decoded expression frame and its local arrival time
 * - `connection`: `{state}` 'connecting' | 'connected' | 'closed'
 * - `lost`: `{error}` a SessionError('lost'): the connection broke (not after hangUp())
 * - `track`: `{receiver, stream}` the avatar's voice arrived
 */
/**
 * A fresh one-use session token from the deployer's backend (`server.token_url`, sent with the page's cookies):
 * the answer is the token as text, or JSON `{"token": ...}`. Throws a SessionError of kind "auth" saying why.
 */
export async function fetchSessionToken(url, fetchImpl = fetch) {
  let response;
  try {
    response = await fetchImpl(url, { credentials: "include", cache: "no-store" });
  } catch (e) {
    throw new SessionError("auth", `The sign-in service at ${url} could not be reached (${e.message}).`);
  }
  if (!response.ok) {
    throw new SessionError("auth", `The sign-in service at ${url} refused a conversation token (HTTP ${response.status}).`);
  }
  const text = (await response.text()).trim();
  let token = text;
  if (text.startsWith("{")) {
    try {
      token = String(JSON.parse(text).token ?? "");
    } catch {
      token = "";
    }
  }
  if (!token || /\s/.test(token)) throw new SessionError("auth", `The sign-in service at ${url} sent no token.`);
  return token;
}

export class AvatarSession extends EventTarget {
  /**
   * @param {{config: object, audio: HTMLAudioElement, token?: string, baseUrl?: string,
   *          disconnectGraceMs?: number, iceTimeoutMs?: number}} options
   *   disconnectGraceMs: how long an ICE 'disconnected' may last before it counts as lost (it often recovers)
   */
  constructor({ config, audio, token = "", baseUrl = "", disconnectGraceMs = 4000, iceTimeoutMs = 5000 }) {
    super();
    this.config = config;
    this.audio = audio;
    this.token = token;
    this.baseUrl = baseUrl;
    this.disconnectGraceMs = disconnectGraceMs;
    this.iceTimeoutMs = iceTimeoutMs;
    /** @type {RTCPeerConnection|null} */
    this.pc = null;
    /** @type {RTCDataChannel|null} */
    this.channel = null;
    /** @type {MediaStream|null} */
    this.microphone = null;
    /** @type {RTCRtpReceiver|null} the avatar's voice: its stats give the playout delay */
    this.receiver = null;
    this.sessionId = null;
    this.state = "idle";
    this._ending = false;
    this._graceTimer = null;
    this._onPageHide = () => this.hangUp({ keepalive: true });
  }

  /**
   * Connect. With `microphone` false the session is text-only: an audio transceiver that only receives, so the
   * offer still has the audio section the server requires and the avatar can still speak.
   * @param {{microphone?: MediaStream|null}} [options] an open microphone stream (see openMicrophone()) or null
   * @throws {SessionError}
   */
  async start({ microphone = null } = {}) {
    this._setState("connecting");
    this.microphone = microphone;
    const pc = new RTCPeerConnection({ iceServers: this.config.iceServers || [] });
    this.pc = pc;
    // The channel must exist before the offer, so the offer carries the SCTP section (DESIGN §4).
    const channel = pc.createDataChannel("avatar", { ordered: true });
    channel.binaryType = "arraybuffer";
    this.channel = channel;
    channel.addEventListener("message", (e) => this._onMessage(e));
    channel.addEventListener("open", () => this._setState("connected"));
    channel.addEventListener("close", () => this._lost("The connection to the avatar closed (the server ended the session or the network dropped)."));
    if (microphone) {
      for (const track of microphone.getAudioTracks()) pc.addTrack(track, microphone);
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    pc.addEventListener("track", (e) => this._onTrack(e));
    pc.addEventListener("connectionstatechange", () => this._onConnectionState());
    window.addEventListener("pagehide", this._onPageHide);
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringDone(pc, this.iceTimeoutMs);
      const answer = await this._post(pc.localDescription.sdp);
      this.sessionId = answer.session_id;
      if (this._ending) {
        this._deleteSession(); // hung up while the offer was in flight: free the slot the server just gave us
        return;
      }
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    } catch (e) {
      if (this._ending) return; // hung up meanwhile: nothing to report
      this._teardown();
      if (e instanceof SessionError) throw e;
      throw new SessionError("network", `Could not connect: ${e.message || e}`, { cause: e });
    }
  }

  /**
   * POST the offer; a refusal for lack of room is retried (OFFER_RETRIES times, ~300 ms apart) before it counts.
   * @throws {SessionError} every refusal, as a kind the UI knows how to explain
   */
  async _post(sdp) {
    for (let attempt = 0; ; attempt++) {
      const { res, body } = await this._postOnce(sdp);
      if (res.status === 201) return body;
      if (res.status === 503 && RETRYABLE_REFUSALS.has(body.error) && attempt < OFFER_RETRIES && !this._ending) {
        await sleep(offerRetryDelayMs());
        if (!this._ending) continue; // hung up while waiting: report this refusal (start() then stays quiet)
      }
      throw refusalError(res, body);
    }
  }

  /** One POST /api/sessions: the response and its JSON body ({} when it has none). */
  async _postOnce(sdp) {
    const headers = { "content-type": "application/json" };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res;
    try {
      res = await fetch(`${this.baseUrl}/api/sessions`, {
        method: "POST",
        headers,
        body: JSON.stringify({ sdp, type: "offer" }),
      });
    } catch (e) {
      throw new SessionError("network", `The avatar server cannot be reached (${e.message}).`, { cause: e });
    }
    let body = {};
    try {
      body = await res.json();
    } catch {
      /* a proxy's HTML error page: the status alone must do */
    }
    return { res, body };
  }

  _onTrack(event) {
    if (event.track.kind !== "audio") return;
    this.receiver = event.receiver;
    const stream = event.streams[0] || new MediaStream([event.track]);
    this.audio.srcObject = stream;
    // The connect click is the user gesture that allows playback; a rejection here is autoplay policy.
    this.audio.play().catch((e) => console.warn("reply audio did not start:", e));
    this.dispatchEvent(new CustomEvent("track", { detail: { receiver: event.receiver, stream } }));
  }

  _onMessage(event) {
    const arrivalMs = performance.now(); // as early as possible: the lip sync's timeline is built from it
    try {
      if (typeof event.data === "string") {
        this.dispatchEvent(new CustomEvent("server", { detail: parseEvent(event.data) }));
      } else {
        this.dispatchEvent(new CustomEvent("frame", { detail: { frame: decodeFrame(event.data), arrivalMs } }));
      }
    } catch (e) {
      // One bad message must not end the conversation: log it and go on.
      if (e instanceof ProtocolError) console.warn("avatar channel:", e.message);
      else throw e;
    }
  }

  _onConnectionState() {
    const state = this.pc?.connectionState;
    clearTimeout(this._graceTimer);
    if (state === "failed") this._lost("The network connection to the avatar failed.");
    else if (state === "disconnected") {
      this._graceTimer = setTimeout(() => this._lost("The network connection to the avatar was lost."),
        this.disconnectGraceMs);
    }
  }

  _lost(message) {
    if (this._ending || this.state === "closed") return;
    this._teardown();
    this.dispatchEvent(new CustomEvent("lost", { detail: { error: new SessionError("lost", message) } }));
  }

  /** @returns {boolean} whether the event was sent (the channel is open) */
  send(event) {
    if (this.channel?.readyState !== "open") return false;
    this.channel.send(JSON.stringify(event));
    return true;
  }

  /** Type instead of speaking: starts a turn. */
  sendText(text) {
    return this.send({ type: "text", text });
  }

  /** Stop the avatar's current reply. */
  interrupt() {
    return this.send({ type: "interrupt" });
  }

  /**
   * End the conversation: `bye` on the channel, DELETE the session, close everything. Idempotent.
   * @param {{keepalive?: boolean}} [options] keepalive: the page is going away (the DELETE must outlive it)
   */
  async hangUp({ keepalive = false } = {}) {
    if (this._ending) return;
    this._ending = true;
    this.send({ type: "bye" });
    this._teardown();
    await this._deleteSession({ keepalive });
  }

  /** DELETE /api/sessions/{id}; `keepalive` lets the request outlive a closing page. */
  async _deleteSession({ keepalive = false } = {}) {
    const id = this.sessionId;
    if (!id) return;
    this.sessionId = null;
    const headers = this.token ? { authorization: `Bearer ${this.token}` } : {};
    try {
      await fetch(`${this.baseUrl}/api/sessions/${encodeURIComponent(id)}`, { method: "DELETE", headers, keepalive });
    } catch {
      /* the server may already be gone; the bye or its idle timeout ends the session there */
    }
  }

  _teardown() {
    clearTimeout(this._graceTimer);
    window.removeEventListener("pagehide", this._onPageHide);
    const wasEnding = this._ending;
    this._ending = true; // the channel's close event below is ours, not a lost connection
    try {
      this.channel?.close();
      this.pc?.close();
    } catch {
      /* closing twice is harmless */
    }
    this.microphone?.getTracks().forEach((t) => t.stop());
    if (this.audio) this.audio.srcObject = null;
    this._ending = wasEnding;
    this._setState("closed");
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("connection", { detail: { state } }));
  }
}
