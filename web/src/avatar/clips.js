// One-shot body clips on the LAM renderer (npm gaussian-splat-renderer-for-lam 0.0.8): the `hello` wave that a
// `gesture {name: "hello"}` event asks for. The renderer's AnimationManager loads the avatar's hello clips into a
// Hello state but never plays them: its update() only dispatches to idle, listen, think and speak. So this module
// plays one, handing the body over the way the manager's own states do (the state that leaves sets the static
// AnimationManager.LastAction; the one that starts cross-fades from it):
//   start: cross-fade from the clip on screen to the wave, mark only the Hello state as playing. The manager then
//          reports 'Idle' as playing, and its Idle state does nothing while it is not the one playing, so the
//          chat state may change meanwhile without cutting the wave short;
//   end:   half a second before the wave's end, leave it as LastAction with nothing playing: on its next update the
//          manager starts the clip of the chat state of that moment, cross-fading from the wave.
// No import of the renderer here (it is 4 MB and needs a browser): the manager comes in as an object, so Node tests
// drive this against the renderer's own AnimationManager source and a real three.js mixer.

/** three.js's LoopOnce: the renderer bundles three 0.173 without exporting its constants. */
export const LOOP_ONCE = 2200;

/** The manager's states that play the chat states' clips (the Hello state is the fifth). */
const CHAT_CLIP_STATES = ["idle", "listen", "think", "speak"];

/**
 * The wave among the Hello state's actions: the first whose clip is named like one, else the last. (LAM's p2-1 export
 * puts a 10 s 'head_test' clip before 'yumi_h5_a3_hello' in the hello slots.)
 * @param {object[]} actions three.js AnimationActions
 * @returns {object|null}
 */
export function pickHelloAction(actions) {
  const named = actions.find((action) => /hello|wave/i.test(action.getClip?.().name ?? ""));
  return named ?? actions[actions.length - 1] ?? null;
}

/** Plays the avatar's hello clip on demand; one per renderer (see the module comment for how). */
export class HelloClip {
  /** @param {object} manager the renderer's `animManager` (its class, the static state, is `manager.constructor`) */
  constructor(manager) {
    this.manager = manager;
    this.Manager = manager.constructor;
    this.action = pickHelloAction(manager.hello?.actions ?? []);
    this._playing = false;
    // The manager picks each frame's clips in update(): see first whether the wave is over, so that the very same
    // update starts the chat state's clip.
    const update = manager.update;
    manager.update = (state) => {
      this.tick();
      return update.call(manager, state);
    };
  }

  /** Whether the wave is playing (from play() until the chat state's clip takes over). */
  get playing() {
    return this._playing;
  }

  /**
   * Start the wave now, cross-fading from what the body shows.
   * @returns {boolean} false when the avatar has no hello clip, one is playing, or the body clips are frozen
   */
  play() {
    const { manager, Manager, action } = this;
    const hello = manager.hello;
    if (!action || this._playing || manager.mixer?.timeScale === 0) return false; // frozen: it would never end
    const states = CHAT_CLIP_STATES.map((name) => manager[name]).filter(Boolean);
    const current = states.find((state) => state.isPlaying);
    const from = current ? current.actions[current.stage] : Manager.LastAction;
    for (const state of states) state.isPlaying = false;
    // As the manager's own states start a clip (Hello.update), but once instead of looping.
    action.reset();
    Manager.SetWeight(action, 1);
    action.loop = LOOP_ONCE;
    action.clampWhenFinished = true; // hold the last pose until the hand-over's cross-fade has taken it away
    action.play();
    if (from && from !== action) Manager.PrepareCrossFade(from, action, hello.blendingTime);
    hello.stage = Math.max(0, hello.actions.indexOf(action));
    hello.isPlaying = true;
    this._playing = true;
    return true;
  }

  /** Hand the body back to the chat state's clips once the wave is nearly over (called before each update). */
  tick() {
    if (!this._playing) return;
    const { manager, Manager, action } = this;
    const hello = manager.hello;
    if (!hello.isPlaying) { // something else took the body (a reset of the manager): nothing to hand back
      this._playing = false;
      return;
    }
    if (action.time >= action.getClip().duration - hello.blendingTime) {
      hello.isPlaying = false;
      Manager.LastAction = action;
      this._playing = false;
    }
  }
}
