// The body follows the conversation: which of the renderer's chat states ('Idle' | 'Listening' | 'Thinking' |
// 'Responding', each its own body clips) shows what the avatar is doing. Pure logic with injectable timers, so Node
// tests cover it.

/**
 * After the user stops talking, how long the body keeps listening unless the server's next state comes sooner. The
 * server says 'thinking' only once the words are transcribed (and that state is shown after the audio playout
 * delay), so without this tail the body would flash to Idle between the user's last word and the thinking clip.
 */
export const LISTEN_TAIL_MS = 1500;

/**
 * The chat state for the renderer. The user talking wins (the avatar attends to them, even over its own reply
 * while a barge-in takes effect); otherwise the server's turn-taking state, where its 'listening' (nobody talks)
 * is the idle body.
 * @param {{state: ?string, userSpeaking: boolean}} conversation state: the server's last `state` as heard (after
 *   the playout delay); userSpeaking: the server's VAD hears the user (`user_speech` events)
 * @returns {'Idle'|'Listening'|'Thinking'|'Responding'}
 */
export function chatStateFor({ state, userSpeaking }) {
  if (userSpeaking) return "Listening";
  if (state === "thinking") return "Thinking";
  if (state === "speaking") return "Responding";
  return "Idle";
}

/** Tracks the server state and the user's speech, and reports the chat state whenever it changes. */
export class ChatStateTracker {
  /**
   * @param {{onChange?: (chatState: string) => void, tailMs?: number, setTimer?: typeof setTimeout,
   *          clearTimer?: typeof clearTimeout}} [options]
   */
  constructor({ onChange = () => {}, tailMs = LISTEN_TAIL_MS, setTimer, clearTimer } = {}) {
    this.onChange = onChange;
    this.tailMs = tailMs;
    // Called as plain functions: a browser's setTimeout throws "Illegal invocation" as a method of another object.
    this._setTimer = setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this._clearTimer = clearTimer ?? ((id) => clearTimeout(id));
    this.state = null;
    this.userSpeaking = false;
    this.chatState = "Idle";
    this._tail = null;
  }

  /** The server's turn-taking state, when its audio is heard (the caller applies the playout delay). */
  serverState(state) {
    this.state = state;
    if (this._tail !== null) this._stopListening(); // the server has moved on: the tail has done its job
    this._update();
  }

  /**
   * The user started or stopped talking. No playout delay: it is the user's own voice, and the avatar should attend
   * at once. Stopping keeps the listening body for the tail.
   * @param {boolean} speaking
   */
  userSpeech(speaking) {
    this._cancelTail();
    if (speaking) {
      this.userSpeaking = true;
      this._update();
    } else if (this.userSpeaking) {
      this._tail = this._setTimer(() => {
        this._tail = null;
        this._stopListening();
        this._update();
      }, this.tailMs);
    }
  }

  /** Back to a session's start (or its end): no state, nobody talking, Idle. Reports no change. */
  reset() {
    this._cancelTail();
    this.state = null;
    this.userSpeaking = false;
    this.chatState = "Idle";
  }

  _stopListening() {
    this._cancelTail();
    this.userSpeaking = false;
  }

  _cancelTail() {
    if (this._tail !== null) this._clearTimer(this._tail);
    this._tail = null;
  }

  _update() {
    const next = chatStateFor(this);
    if (next === this.chatState) return;
    this.chatState = next;
    this.onChange(next);
  }
}
