// The page's controller: loads /api/config, mounts the avatar, runs conversations and routes their events to the
// lip sync (sync.js), the renderer (avatar/view.js) and the controls (ui.js). Every failure ends in a message with
// a way out — the conversation works without the avatar, and typing works without a microphone.
import { HeadMotion } from "./avatar/head.js";
import { mountAvatar, AvatarLoadError } from "./avatar/view.js";
import { ChatStateTracker } from "./chatstate.js";
import { ARKIT_BLENDSHAPES, heardLabels, moodLabel, weightsToObject } from "./protocol.js";
import { AvatarSession, SessionError, fetchConfig, fetchSessionToken, openMicrophone } from "./session.js";
import { ExpressionPlayer, PlayoutDelayMeter, measureOutputLatencyMs } from "./sync.js";
import { Ui } from "./ui.js";

const BACKGROUND = "#1f2430";

export class App {
  /** @param {Ui} ui @param {URLSearchParams} params `avatar=off` skips the 3D avatar */
  constructor(ui, params) {
    this.ui = ui;
    this.params = params;
    this.audio = /** @type {HTMLAudioElement} */ (document.getElementById("voice"));
    this.config = null;
    this.names = ARKIT_BLENDSHAPES;
    this.player = new ExpressionPlayer({ size: ARKIT_BLENDSHAPES.length });
    /** What the renderer is told ('Idle' | 'Listening' | 'Thinking' | 'Responding'): see chatstate.js. */
    this.chatState = "Idle";
    /** The head's own motion (idle life, nods, the listening tilt), added to the body clip by the renderer. */
    this.head = new HeadMotion();
    this.body = new ChatStateTracker({
      onChange: (state) => {
        if (!this.session) return;
        this.chatState = state;
        this.head.setListening(state === "Listening"); // the head attends while the body listens
      },
    });
    /** @type {AvatarSession|null} */
    this.session = null;
    /** @type {PlayoutDelayMeter|null} */
    this.meter = null;
    this.textOnly = false;
    this.avatar = { state: "loading", view: null, error: null };
    this.framesReceived = 0;
    this.ambientFramesReceived = 0;
    this.outputLatencyMs = null;
    this._weights = {};
    this._stateDue = 0;
    this._stateTimers = new Set();
    this._attempt = 0; // bumped by every connect and hang-up: a slower, older attempt then gives way
    this._latencyProbe = null;
  }

  async init() {
    this.ui.bind({
      onConnect: () => this.connect({ textOnly: false }), // a fresh start tries the microphone again
      onHangUp: () => this.hangUp(),
      onSend: (text) => this.send(text),
      onInterrupt: () => this.interrupt(),
    });
    this.ui.token = sessionStorage.getItem("avatar-token") || "";
    try {
      this.config = await fetchConfig();
    } catch (e) {
      this.ui.setAvatarStatus(null);
      this.ui.showError({ kind: "network", message: e.message, actions: [{ label: "Retry", run: () => location.reload() }] });
      return;
    }
    this.names = this.config.blendshapes || ARKIT_BLENDSHAPES;
    this.ui.showToken(Boolean(this.config.authRequired));
    if (this.config.llm?.embedded) this.ui.showNotice(this.config.llm.notice || "No language model is configured: replies come from a simple offline responder.");
    const listed = this.config.avatars || [];
    this.ui.showAvatars(listed, this.params.get("avatar") || this.config.avatar?.name, (name) => {
      this.params.set("avatar", name); // the choice survives a reload
      history.replaceState(null, "", `?${this.params}`);
      this.loadAvatar();
    });
    this.loadAvatar(); // in parallel: a conversation need not wait for the 3D head
  }

  /** The avatar to show: `?avatar=NAME` if the server lists it, else the one the server's config chooses. */
  chosenAvatar() {
    const wanted = this.params.get("avatar");
    return (this.config.avatars || []).find((a) => a.name === wanted) || this.config.avatar || {};
  }

  async loadAvatar() {
    if (this.params.get("avatar") === "off") {
      this.avatar.state = "off";
      this.ui.setAvatarStatus("Avatar display is off: you hear the avatar and read the transcript.");
      return;
    }
    const info = this.chosenAvatar();
    try {
      if (info.error || !info.url) throw new AvatarLoadError(info.error || "the server names no avatar to show");
      this.avatar.state = "loading";
      this.ui.setAvatarStatus("Loading the avatar…");
      this.avatar.view = await mountAvatar(document.getElementById("stage"), {
        zipUrl: info.url,
        background: BACKGROUND,
        getChatState: () => this.chatState,
        getWeights: () => this.weights(),
        onProgress: (f) => this.ui.setAvatarStatus(`Loading the avatar… ${Math.round(f * 100)} %`),
        timeoutMs: 120000, // software WebGL (no GPU) takes tens of seconds; a GPU takes a few
      });
      this.avatar.view.setHeadMotion(this.head);
      this.avatar.state = "ready";
      this.ui.setAvatarStatus(null);
    } catch (e) {
      if (e.reason === "superseded") return; // the user picked another avatar meanwhile: that load speaks now
      this.avatar.state = "failed";
      this.avatar.error = e.message;
      const why = (e instanceof AvatarLoadError ? e.message : `it failed to load (${e.message || e})`).replace(/\.$/, "");
      // Transient causes (network, slow machine) deserve a retry; a missing WebGL2 or a broken file does not.
      const retry = ["network", "timeout", "http"].includes(e.reason) ? () => this.loadAvatar() : null;
      this.ui.setAvatarStatus(`The avatar cannot be shown: ${why}. The conversation still works: you hear the avatar ` +
        "and read the transcript.", { error: true, retry });
      console.error("avatar:", e);
    }
  }

  /** ARKit weights for this animation frame: what the user hears now (called by the renderer every frame). */
  weights() {
    return weightsToObject(this.player.sample(performance.now()), this.names, this._weights);
  }

  /** Start a conversation (microphone unless text-only). Errors become banners with a retry path. */
  async connect({ textOnly = this.textOnly } = {}) {
    if (this.session || this.ui.el.connect.dataset.action === "hangup") return; // already on, or on its way
    const attempt = ++this._attempt;
    this.ui.clearError();
    this.ui.setConnection("connecting");
    let token = this.ui.token;
    if (this.config.tokenUrl) {
      // One-use tokens from the deployer's backend: a fresh one for every session, reconnects included.
      try {
        token = await fetchSessionToken(this.config.tokenUrl);
      } catch (e) {
        if (attempt !== this._attempt) return;
        this.ui.setConnection("idle");
        this.ui.showError({ kind: "auth", message: e.message, actions: [{ label: "Try again", run: () => this.connect() }] });
        return;
      }
    } else if (token) sessionStorage.setItem("avatar-token", token);
    // Started inside the click (an AudioContext may run only after a gesture); it resolves while we connect.
    this._latencyProbe ??= measureOutputLatencyMs().then((ms) => {
      this.outputLatencyMs = ms;
      if (this.meter) this.meter.outputLatencyMs = ms;
    });
    let microphone = null;
    if (!textOnly) {
      try {
        microphone = await openMicrophone();
      } catch (e) {
        if (attempt !== this._attempt) return;
        this.ui.setConnection("idle");
        this.ui.showError({
          kind: "microphone",
          message: `${e.message} Allow the microphone and try again, or continue by typing.`,
          actions: [
            { id: "retry-mic", label: "Try the microphone again", run: () => this.connect({ textOnly: false }) },
            { id: "text-only", label: "Continue with text only", run: () => this.connect({ textOnly: true }) },
          ],
        });
        return;
      }
    }
    if (attempt !== this._attempt) {
      microphone?.getTracks().forEach((t) => t.stop()); // hung up while the permission prompt was open
      return;
    }
    this.textOnly = textOnly;
    const session = new AvatarSession({ config: this.config, audio: this.audio, token });
    this.session = session;
    this._wire(session);
    try {
      await session.start({ microphone });
    } catch (e) {
      if (attempt !== this._attempt) return; // the user hung up or started over meanwhile
      if (this.session === session) this._ended();
      this._startFailed(e);
    }
  }

  _wire(session) {
    const mine = (fn) => (e) => this.session === session && fn(e.detail);
    session.addEventListener("connection", mine(({ state }) => {
      if (state === "connected") {
        this.ui.setConnection("connected", { textOnly: this.textOnly });
        this.body.serverState("listening");
      }
    }));
    session.addEventListener("server", mine((event) => this._onServerEvent(event)));
    session.addEventListener("frame", mine(({ frame, arrivalMs }) => {
      this.framesReceived++;
      if (frame.ambient) this.ambientFramesReceived++;
      this.player.push(frame, arrivalMs);
    }));
    session.addEventListener("track", mine(({ receiver }) => {
      this.meter?.stop();
      this.meter = new PlayoutDelayMeter(() => receiver.getStats(), {
        outputLatencyMs: this.outputLatencyMs || 0,
        onUpdate: (meter) => {
          this.player.playoutDelayMs = meter.delayMs;
          this.ui.showPlayoutDelay(meter.delayMs);
        },
      }).start();
    }));
    session.addEventListener("lost", mine(({ error }) => {
      this._ended();
      if (this._reconnectWhenLost) {
        this._reconnectWhenLost = false;
        this.connect();
        return;
      }
      this.ui.showError({
        kind: "lost",
        message: `${error.message} Your conversation ended.`,
        actions: [{ id: "reconnect", label: "Reconnect", run: () => this.connect() }],
      });
    }));
  }

  _onServerEvent(event) {
    const ui = this.ui;
    switch (event.type) {
      case "hello":
        if (Array.isArray(event.blendshapes)) this.names = event.blendshapes;
        if (event.llm?.embedded && !this.config.llm?.embedded) ui.showNotice(this.config.llm?.notice || "Replies come from the offline responder.");
        break;
      case "state":
        ui.setConversationState(event.state);
        // The body follows what is heard: the state changes with the audio, which plays after the playout delay.
        this._atPlayout(() => this.body.serverState(event.state));
        break;
      case "user_speech": // the user's own voice: no playout delay (the head's listening follows the body's)
        this.body.userSpeech(event.speaking === true);
        break;
      case "mood": // sent with the audio it colours: shown when that is heard
        this._atPlayout(() => ui.setMood(moodLabel(event), event));
        break;
      case "gesture":
        // The face of every gesture is in the expression frames; the body has a clip for the hello (a wave) only.
        if (event.name === "hello") this._atPlayout(() => this.avatar.view?.playHello());
        // The "mm-hm" at the user's pauses: about the user's voice, so at once; the head nods (rate-limited).
        else if (event.name === "acknowledge") this.head.nod();
        break;
      case "transcript":
        ui.userSaid(event.turn, event.text, heardLabels(event));
        if (event.final !== false) this.head.nod(); // "got it": the user has finished
        break;
      case "reply":
        ui.replyDelta(event.turn, event.text);
        break;
      case "turn_end":
        ui.endTurn(event.turn, event.reason);
        this.player.endTurn(event.turn);
        break;
      case "latency":
        ui.showLatency(event.turn, event.ms || {}, this.meter ? this.meter.delayMs : null);
        break;
      case "session_ending":
        ui.systemLine(`This conversation ends in ${event.seconds_left} s: the server limits how long one lasts.`);
        break;
      case "error":
        if (event.code === "session_expired") {
          ui.systemLine("This conversation reached its time limit. Reconnect to start a new one.");
          break;
        }
        if (event.code === "server_shutdown") {
          // This server is being replaced (scale-down, upgrade): the next session lands on another one.
          this._reconnectWhenLost = true;
          ui.systemLine("This avatar server is shutting down: reconnecting to another one…");
          break;
        }
        ui.systemLine(`The avatar could not answer: ${event.message}`);
        break;
      default: // events added to the contract later are ignored
    }
  }

  /**
   * Run `apply` when the audio that arrives now is heard (after `delayMs`, by default the measured playout delay),
   * never before one scheduled earlier: states, moods and gestures stay in the order the server sent them.
   * Dropped when the session ends first.
   */
  _atPlayout(apply, delayMs = this.player.playoutDelayMs) {
    const now = performance.now();
    this._stateDue = Math.max(now + delayMs, this._stateDue);
    const timer = setTimeout(() => {
      this._stateTimers.delete(timer);
      if (this.session) apply();
    }, this._stateDue - now);
    this._stateTimers.add(timer);
  }

  _startFailed(e) {
    const ui = this.ui;
    const retry = { id: "retry", label: "Retry now", run: () => this.connect() };
    if (!(e instanceof SessionError)) {
      ui.showError({ kind: "network", message: `Could not connect: ${e.message || e}`, actions: [retry] });
      return;
    }
    if (e.kind === "capacity" || e.kind === "not_ready") {
      ui.showError({
        kind: e.kind,
        message: e.message,
        countdownS: e.retryAfterS || 10,
        onCountdownEnd: () => this.connect(),
        actions: [retry, { label: "Cancel", run: () => ui.clearError() }],
      });
    } else if (e.kind === "auth") {
      ui.showToken(true);
      const hint = this.ui.token ? "The access token was not accepted." : "This server needs an access token.";
      ui.showError({ kind: "auth", message: `${hint} Enter it in the Token field and connect again.`, actions: [retry] });
      ui.focusToken();
    } else {
      ui.showError({ kind: e.kind, message: e.message, actions: [retry] });
    }
  }

  /** @returns {boolean} whether the text went out */
  send(text) {
    return Boolean(this.session?.sendText(text));
  }

  interrupt() {
    if (this.session?.interrupt()) this.player.interrupt(performance.now());
  }

  async hangUp() {
    this._attempt++;
    const session = this.session;
    this._ended();
    this.ui.clearError();
    await session?.hangUp();
  }

  /** Back to the idle page: no session, neutral face, Idle body. */
  _ended() {
    this.session = null;
    this.meter?.stop();
    this.meter = null;
    for (const timer of this._stateTimers) clearTimeout(timer);
    this._stateTimers.clear();
    this._stateDue = 0;
    this.body.reset();
    this.chatState = "Idle";
    this.head.setListening(false);
    this.player.reset();
    this.ui.setConnection("idle");
  }

  /** Diagnostics (also read by the browser tests): the lip sync's measurements and what has loaded. */
  stats() {
    return {
      connection: this.session?.state ?? "idle",
      avatar: this.avatar.state,
      avatarError: this.avatar.error,
      chatState: this.chatState,
      mood: this.ui.el.mood.dataset.mood || null,
      framesReceived: this.framesReceived,
      ambientFramesReceived: this.ambientFramesReceived,
      playoutDelayMs: this.meter ? this.meter.delayMs : null,
      jitterBufferMs: this.meter ? this.meter.jitterMs : null,
      outputLatencyMs: this.outputLatencyMs,
      arrivalOffsetMs: this.player.clock.offsetMs,
    };
  }
}

const app = new App(new Ui(), new URLSearchParams(location.search));
window.gaussianAvatar = app; // for the console and the browser tests
app.init().catch((e) => {
  console.error(e);
  app.ui.showError({ kind: "internal", message: `The page failed to start: ${e.message}`, actions: [{ label: "Reload", run: () => location.reload() }] });
});
