// The page's controls and text: control bar, transcript, latency overlay, notices and error banners.
// Only DOM here; what the buttons do is wired by main.js, so this stays a thin, replaceable view.

const CONNECTION_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  closed: "Not connected",
};
const STATE_TEXT = { listening: "Listening", thinking: "Thinking…", speaking: "Speaking" };
/** Stage names of `latency` events, in pipeline order, with labels for the overlay. */
const STAGES = [
  ["vad", "end of speech"], ["asr", "speech → text"], ["llm_first_token", "LLM first token"],
  ["tts_first_audio", "TTS first audio"], ["a2e_first_frame", "face first frame"], ["voice_to_voice", "voice → voice"],
];

/** Shorthand for getElementById that fails loudly when index.html and this file disagree. */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return el;
}

/**
 * @typedef {object} Action a button in an error banner
 * @property {string} label
 * @property {() => void} run
 * @property {string} [id] element id (lets tests and assistive tech find it)
 */

export class Ui {
  constructor() {
    this.el = {
      stage: byId("stage"), avatarStatus: byId("avatar-status"), connect: byId("connect"), connection: byId("connection"),
      chatState: byId("chat-state"), mood: byId("mood"), form: byId("composer"), text: byId("text"), send: byId("send"),
      interrupt: byId("interrupt"), latencyToggle: byId("latency-toggle"), latency: byId("latency"),
      transcript: byId("transcript"), notice: byId("notice"), alert: byId("alert"), token: byId("token"),
      tokenField: byId("token-field"), mode: byId("mode"), avatarPicker: byId("avatar-picker"),
    };
    this._turns = new Map(); // turn → {user, reply} elements
    this._countdown = null;
    this.el.latencyToggle.addEventListener("click", () => this.toggleLatency());
  }

  /**
   * Offer the avatars the server lists (every LAM zip in its avatar directory); broken ones stay visible but
   * disabled, with the server's check result as their tooltip, so a dropped-in file that fails is explained.
   * @param {{name: string, ok: boolean, error: ?string}[]} avatars @param {string} selected
   * @param {(name: string) => void} onPick
   */
  showAvatars(avatars, selected, onPick) {
    const picker = this.el.avatarPicker;
    picker.replaceChildren(...avatars.map((a) => {
      const option = new Option(a.ok ? a.name : `${a.name} (broken)`, a.name, false, a.name === selected);
      option.disabled = !a.ok;
      option.title = a.error || "";
      return option;
    }));
    picker.hidden = avatars.length < 2;
    picker.onchange = () => onPick(picker.value);
  }

  /** Wire the user's actions. */
  bind({ onConnect, onHangUp, onSend, onInterrupt }) {
    this.el.connect.addEventListener("click", () => (this.el.connect.dataset.action === "hangup" ? onHangUp() : onConnect()));
    this.el.form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = this.el.text.value.trim();
      if (text && onSend(text)) this.el.text.value = "";
    });
    this.el.interrupt.addEventListener("click", () => onInterrupt());
    this.el.tokenField.addEventListener("submit", (e) => {
      e.preventDefault(); // Enter in the token field connects
      if (this.el.connect.dataset.action === "connect") onConnect();
    });
  }

  /**
   * @param {'idle'|'connecting'|'connected'|'closed'} state
   * @param {{textOnly?: boolean}} [mode] text-only: no microphone in this session
   */
  setConnection(state, { textOnly = false } = {}) {
    const { connect, connection, text, send, interrupt, mode } = this.el;
    connection.textContent = CONNECTION_TEXT[state] || state;
    connection.dataset.state = state;
    const live = state === "connected";
    const busy = state === "connecting";
    connect.dataset.action = live || busy ? "hangup" : "connect";
    connect.textContent = live || busy ? "Hang up" : "Connect";
    connect.setAttribute("aria-pressed", String(live));
    for (const el of [text, send, interrupt]) el.disabled = !live;
    text.placeholder = live ? (textOnly ? "Type a message" : "Type instead of speaking") : "Connect to chat";
    mode.hidden = !(live && textOnly);
    if (!live) {
      this.setConversationState(null);
      this.setMood(null);
    }
  }

  /** @param {'listening'|'thinking'|'speaking'|null} state the server's turn-taking state */
  setConversationState(state) {
    this.el.chatState.textContent = state ? STATE_TEXT[state] || state : "";
    this.el.chatState.dataset.state = state || "";
    this.el.chatState.hidden = !state;
  }

  /**
   * The avatar's current mood next to the conversation state ("😊 happy"); null hides it (neutral).
   * @param {string|null} label from protocol.js moodLabel()
   * @param {{mood?: string, intensity?: number}} [event] the `mood` event, for the tooltip and tests
   */
  setMood(label, event = {}) {
    const el = this.el.mood;
    el.textContent = label || "";
    el.hidden = !label;
    el.dataset.mood = label ? String(event.mood ?? "") : "";
    const strength = typeof event.intensity === "number" ? ` (intensity ${Math.round(event.intensity * 100)} %)` : "";
    el.title = label ? `The avatar's mood: ${event.mood}${strength}` : "";
  }

  /** The offline-LLM notice (or any standing notice); null hides it. */
  showNotice(text) {
    // Server sentences start in lower case (they are log lines too); a banner reads better capitalised.
    this.el.notice.textContent = text ? text[0].toUpperCase() + text.slice(1) : "";
    this.el.notice.hidden = !text;
  }

  /** Loading progress or why the avatar cannot be shown (with an optional retry); null hides it. */
  setAvatarStatus(text, { error = false, retry = null } = {}) {
    const el = this.el.avatarStatus;
    el.textContent = text || "";
    el.hidden = !text;
    el.classList.toggle("error", error);
    if (retry) {
      const button = document.createElement("button");
      button.type = "button";
      button.id = "avatar-retry";
      button.textContent = "Load the avatar again";
      button.addEventListener("click", retry);
      el.append(document.createElement("br"), button);
    }
  }

  /** Show the token field (the server requires a bearer token). */
  showToken(visible) {
    this.el.tokenField.hidden = !visible;
  }

  get token() {
    return this.el.token.value.trim();
  }

  set token(value) {
    this.el.token.value = value || "";
  }

  focusToken() {
    this.el.token.focus();
  }

  /**
   * An error banner with ways out. With `countdownS`, `onCountdownEnd` runs when it reaches 0 (auto-retry).
   * @param {{kind: string, message: string, actions?: Action[], countdownS?: number, onCountdownEnd?: () => void}} e
   */
  showError({ kind, message, actions = [], countdownS, onCountdownEnd }) {
    this.clearError();
    const { alert } = this.el;
    alert.dataset.kind = kind;
    const text = document.createElement("p");
    text.className = "alert-message";
    text.textContent = message;
    alert.append(text);
    if (countdownS) {
      const count = document.createElement("p");
      count.className = "alert-countdown";
      alert.append(count);
      let left = Math.ceil(countdownS);
      const tick = () => {
        count.textContent = `Retrying in ${left} s…`;
        if (left-- <= 0) {
          this._stopCountdown();
          onCountdownEnd?.();
        }
      };
      tick();
      this._countdown = setInterval(tick, 1000);
    }
    const row = document.createElement("div");
    row.className = "alert-actions";
    for (const action of actions) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = action.label;
      if (action.id) button.id = action.id;
      button.addEventListener("click", () => action.run());
      row.append(button);
    }
    alert.append(row);
    alert.hidden = false;
  }

  clearError() {
    this._stopCountdown();
    this.el.alert.replaceChildren();
    this.el.alert.hidden = true;
    delete this.el.alert.dataset.kind;
  }

  _stopCountdown() {
    clearInterval(this._countdown);
    this._countdown = null;
  }

  _turn(turn) {
    let entry = this._turns.get(turn);
    if (!entry) {
      entry = { user: null, reply: null };
      this._turns.set(turn, entry);
    }
    return entry;
  }

  _line(who, turn) {
    const p = document.createElement("p");
    p.className = `line ${who}`;
    p.dataset.turn = String(turn);
    const label = document.createElement("span");
    label.className = "who";
    label.textContent = who === "user" ? "You" : "Avatar";
    const text = document.createElement("span");
    text.className = "text";
    p.append(label, text);
    this.el.transcript.append(p);
    return p;
  }

  /** The user's words for `turn` (spoken and transcribed, or typed), with what else the ASR heard (labels). */
  userSaid(turn, text, labels = []) {
    const entry = this._turn(turn);
    entry.user ??= this._line("user", turn);
    // The user line goes before the avatar's reply to it, even if a reply delta arrived first.
    if (entry.reply) this.el.transcript.insertBefore(entry.user, entry.reply);
    entry.user.querySelector(".text").textContent = text;
    entry.user.querySelector(".heard")?.remove();
    if (labels.length) {
      const heard = document.createElement("span");
      heard.className = "heard";
      heard.textContent = ` (${labels.join(", ")})`;
      entry.user.append(heard);
    }
    this._scroll();
  }

  /** A streamed piece of the avatar's reply to `turn`. */
  replyDelta(turn, delta) {
    const entry = this._turn(turn);
    entry.reply ??= this._line("avatar", turn);
    entry.reply.querySelector(".text").textContent += delta;
    this._scroll();
  }

  /** @param {'done'|'interrupted'|'error'} reason */
  endTurn(turn, reason) {
    const reply = this._turns.get(turn)?.reply;
    if (reply && reason !== "done") {
      reply.classList.add(reason);
      const mark = document.createElement("span");
      mark.className = "mark";
      mark.textContent = reason === "interrupted" ? " (interrupted)" : " (failed)";
      reply.append(mark);
    }
    if (this._turns.size > 200) this._turns.delete(this._turns.keys().next().value); // long chats: bounded map
  }

  /** A short line in the transcript for things that are not words (connected, errors from the server). */
  systemLine(text) {
    const p = document.createElement("p");
    p.className = "line system";
    p.textContent = text;
    this.el.transcript.append(p);
    this._scroll();
  }

  clearTranscript() {
    this.el.transcript.replaceChildren();
    this._turns.clear();
  }

  _scroll() {
    const t = this.el.transcript;
    t.scrollTop = t.scrollHeight;
  }

  toggleLatency(show = this.el.latency.hidden) {
    this.el.latency.hidden = !show;
    this.el.latencyToggle.setAttribute("aria-pressed", String(show));
  }

  /**
   * One turn's latencies: the server's stages and the audio playout delay measured in this browser.
   * @param {number} turn
   * @param {Record<string, number>} ms
   * @param {number|null} playoutMs
   */
  showLatency(turn, ms, playoutMs) {
    const rows = [`turn ${turn}`];
    for (const [key, label] of STAGES) if (typeof ms[key] === "number") rows.push(`${label.padEnd(18)} ${fmt(ms[key])}`);
    for (const key of Object.keys(ms)) if (!STAGES.some(([k]) => k === key)) rows.push(`${key.padEnd(18)} ${fmt(ms[key])}`);
    if (typeof ms.voice_to_voice === "number" && playoutMs !== null) {
      // What the user experiences: the server's voice-to-voice plus the time the audio waits in this browser.
      rows.push(`${"heard after".padEnd(18)} ${fmt(ms.voice_to_voice + playoutMs)}`);
    }
    this._latencyRows = rows;
    this.showPlayoutDelay(playoutMs);
  }

  /** Refresh the live "audio playout" line (the lip sync's measured delay), keeping the last turn's rows. */
  showPlayoutDelay(playoutMs) {
    const rows = [...(this._latencyRows || [])];
    if (playoutMs !== null) rows.push(`${"audio playout".padEnd(18)} ${fmt(playoutMs)}`);
    this.el.latency.textContent = rows.join("\n");
  }
}

function fmt(ms) {
  return `${Math.round(ms)} ms`.padStart(8);
}
