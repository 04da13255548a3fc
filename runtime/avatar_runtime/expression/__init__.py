"""The expression layer: what the face does besides lip-sync.

Audio2Expression makes the mouth speak; this package adds the rest, as ordinary ARKit-52 weights:
`catalogue` (moods and gestures as blendshape offsets), `cues` (how the LLM asks for them: tool calls or inline
tags), `ambient` (idle life and listening while the avatar is silent) and `layer` (one per session: blends it all
onto the speech frames with smooth onsets and decays). Pure code: the session feeds it times and events.
"""
