"""The text a Video-LLaMA-2 model is shown around a clip: by default the original `Chat` path, character for character.

What the original code (DAMO-NLP-SG/Video-LLaMA, `demo_video.py` and `video_llama/conversation/
conversation_video.py`) builds for one clip and one question, proven against its outputs (scripts/check_parity.py):
- `load_video` writes "The video contains N frames sampled at t1, t2, ... seconds. ": English whatever the language
  of the question, times `str(round(frame_index / average_fps, 1))`, and a trailing space (the sentence is
  ghostprobe.prompts.frames_message, whose "original" time format is this one);
- `Chat.upload_video_without_audio` opens the user turn with "<Video><ImageHere></Video> " + that message, and
  `Chat.ask` joins the question to it with " " (hence two spaces before the question);
- `conv_llava_llama_2.get_prompt()` wraps it as "[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user turn} [/INST]";
- `Chat.get_context_emb` splits that prompt at "<ImageHere>" and tokenizes the two pieces separately (BOS on the
  first only), so the second piece starts with sentencepiece's word-start "▁</"; the video embeddings go between.

`localized_frames` is this project's variant: the same layout with the frames message in the prompt's language
(Chinese for zh prompts). It changes what the model sees (case b of the parity fixture: P(yes) 0.896 -> 0.996), so
metrics.json and the report name the format a run used.
"""

from __future__ import annotations

from collections.abc import Sequence

from ghostprobe.prompts import Prompt, frames_message

PROMPT_FORMATS = ("original", "localized_frames")
VIDEO_PLACEHOLDER = "<ImageHere>"  # the original's DEFAULT_IMAGE_PATCH_TOKEN
PROMPT_END = "[/INST]"  # every prompt ends so; answers are tokenized as its continuation


def prompt_segments(
    prompt_format: str, prompt: Prompt, timestamps_s: Sequence[float], question_text: str
) -> tuple[str, str]:
    """The prompt's text before and after the video embeddings, as `Chat.get_context_emb` splits it."""
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
    for field, text in (("system", prompt.system), ("question", question_text)):
        if VIDEO_PLACEHOLDER in text:
            raise ValueError(
                f"prompt {prompt.name!r}: the {field} contains {VIDEO_PLACEHOLDER}, which marks where "
                "the video goes; remove it"
            )
    language = "en" if prompt_format == "original" else prompt.language
    # Two spaces before the question: load_video's message ends in one and Chat.ask joins with another.
    user_turn = f"<Video>{VIDEO_PLACEHOLDER}</Video> {frames_message(timestamps_s, language)}  {question_text}"
    text = f"[INST] <<SYS>>\n{prompt.system}\n<</SYS>>\n\n{user_turn} {PROMPT_END}"
    before, after = text.split(VIDEO_PLACEHOLDER)
    return before, after
