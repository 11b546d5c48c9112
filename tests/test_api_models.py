"""OpenAI and Gemini baselines through their real client libraries, against local fake servers (no internet).

Most tests run once per backend (the `api` fixture): what is sent, how P(ghost probing) is read, retries, timeouts,
rate limit, cost, and that the API key never shows up anywhere but in the request header.
"""

import logging
import math
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from fake_api_servers import FakeGeminiServer, FakeOpenAIServer, Scripted
from ghostprobe.models.api.common import p_yes_from_logprobs, redactor
from ghostprobe.models.api.retry import ApiModelError, RateLimiter
from ghostprobe.models.base import ClipInput, build_model
from ghostprobe.prompts import Prompt

CONF_MODEL = Path(__file__).resolve().parents[1] / "conf" / "model"
CONFIG_FILE = {"openai": "gpt4o.yaml", "gemini": "gemini.yaml"}
KEY_ENV = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
KEY = {"openai": "sk-test-Qw7Zr2sekret9k1LmN0pX", "gemini": "AIzaSyTest-sekret-4Hq9xV2mB7"}

PROMPT_EN = Prompt(
    name="en_basic",
    language="en",
    system="You are a driving-safety analyst reviewing dashcam footage.",
    question="Is there ghost probing in this video? Answer Yes or No.",
    when_question="When does the ghost probing happen? Answer in seconds.",
    yes_word="Yes",
    no_word="No",
)
PROMPT_ZH = Prompt(
    name="zh_basic",
    language="zh",
    system="你是一名分析行车记录仪视频的驾驶安全专家。",
    question="视频中是否出现鬼探头？请回答是或否。",
    when_question="鬼探头发生在第几秒？",
    yes_word="是",
    no_word="否",
)


def make_clip(clip_id="clip_000", num_frames=12, height=96, width=128, fps=4.0, seed=0) -> ClipInput:
    frames = np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    return ClipInput(clip_id, frames, tuple(i / fps for i in range(num_frames)))


class Api:
    """One backend under test: its fake server, and models built from its conf/model YAML pointed at the server."""

    def __init__(self, backend, server):
        self.backend, self.server, self.key = backend, server, KEY[backend]
        self._models = []

    def config(self, **overrides) -> dict:
        cfg = OmegaConf.to_container(OmegaConf.load(CONF_MODEL / CONFIG_FILE[self.backend]))
        # Tiny waits so that retry tests take milliseconds; one clip at a time unless a test says otherwise.
        cfg.update(
            base_url=self.server.base_url,
            backoff_initial_s=0.01,
            backoff_max_s=2.0,
            timeout_s=5,
            requests_per_minute=None,
            max_concurrency=1,
        )
        cfg.update(overrides)
        return cfg

    def model(self, **overrides):
        model = build_model(self.config(**overrides))
        self._models.append(model)
        return model

    def close(self):
        for model in self._models:
            model.close()


@pytest.fixture(params=["openai", "gemini"])
def api(request, monkeypatch):
    backend = request.param
    monkeypatch.setenv(KEY_ENV[backend], KEY[backend])
    with (FakeOpenAIServer if backend == "openai" else FakeGeminiServer)() as server:
        api = Api(backend, server)
        yield api
        api.close()


def p_hand(logprob_yes, logprob_no):
    return math.exp(logprob_yes) / (math.exp(logprob_yes) + math.exp(logprob_no))


# ---------------------------------------------------------------------------------------------------------------
# Building


@pytest.mark.parametrize("backend", ["openai", "gemini"])
def test_every_model_config_builds(backend, monkeypatch):
    monkeypatch.setenv(KEY_ENV[backend], KEY[backend])
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_MODEL / CONFIG_FILE[backend]))
    assert cfg["kind"] == backend and cfg["api_key_env"] == KEY_ENV[backend] and cfg["base_url"] is None
    assert cfg["temperature"] == 0
    model = build_model(cfg)
    assert model.name == cfg["name"]
    model.close()


@pytest.mark.parametrize("backend", ["openai", "gemini"])
def test_missing_key_is_a_clear_error_naming_the_variable(backend, monkeypatch):
    monkeypatch.delenv(KEY_ENV[backend], raising=False)
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_MODEL / CONFIG_FILE[backend]))
    with pytest.raises(ApiModelError, match=KEY_ENV[backend]):
        build_model(cfg)


def test_unknown_setting_is_rejected(api):
    with pytest.raises(TypeError, match="max_frame"):
        api.model(max_frame=4)


# ---------------------------------------------------------------------------------------------------------------
# What is sent, and how P(ghost probing) is read


def test_score_sends_frames_prompt_and_key_and_reads_logprobs(api):
    api.server.default = Scripted(
        text="Yes",
        top_logprobs=[[("Yes", -0.2), ("No", -1.8), ("The", -4.0)]],
        prompt_tokens=1234,
        completion_tokens=1,
        thoughts_tokens=0,
    )
    model = api.model(max_frames=5, image_size=64)
    clip = make_clip(num_frames=12, height=96, width=128, fps=4.0)
    [out] = model.score([clip], PROMPT_EN)

    [request] = api.server.requests
    images = api.server.images(request.body)
    assert len(images) == 5
    assert all(image.format == "JPEG" and image.size == (64, 48) for image in images)  # shrunk to image_size
    system, text = api.server.texts(request.body)
    assert system == PROMPT_EN.system
    # 5 of the 12 frames, evenly spaced, first and last included: frames 0, 3, 6, 8, 11 at 4 fps
    assert text == "The video contains 5 frames sampled at 0, 0.75, 1.5, 2, 2.75 seconds.\n" + PROMPT_EN.question
    if api.backend == "openai":
        assert request.headers["authorization"] == f"Bearer {api.key}"
        assert request.body["logprobs"] is True and request.body["top_logprobs"] == 20
        assert request.body["temperature"] == 0 and request.body["max_tokens"] == 5
    else:
        assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
        assert request.headers["x-goog-api-key"] == api.key
        generation = request.body["generationConfig"]
        assert generation["responseLogprobs"] is True and generation["temperature"] == 0
        assert generation["maxOutputTokens"] == 5

    assert out.clip_id == clip.clip_id
    assert out.p_ghost_probing == pytest.approx(p_hand(-0.2, -1.8))
    assert out.extra["score_source"] == "logprobs" and out.parsed_answer is True and out.answer == "Yes"
    assert (out.tokens_in, out.tokens_out) == (1234, 1)
    cfg = api.config()
    assert out.cost_usd == pytest.approx(
        (1234 * cfg["price_per_1m_input_usd"] + 1 * cfg["price_per_1m_output_usd"]) / 1e6
    )
    assert out.latency_s > 0 and out.extra["attempts"] == 1


def test_chinese_prompt_sends_chinese_frame_line_and_matches_chinese_answer_tokens(api):
    api.server.default = Scripted(text="否", top_logprobs=[[("否", -0.1), ("是", -2.5), ("不", -3.0)]])
    [out] = api.model(max_frames=3).score([make_clip(num_frames=3, fps=2.0)], PROMPT_ZH)
    _, text = api.server.texts(api.server.requests[0].body)
    assert text.startswith("视频包含3帧，采样时间为 0, 0.5, 1 秒。\n")
    assert text.endswith(PROMPT_ZH.question)
    assert out.p_ghost_probing == pytest.approx(p_hand(-2.5, -0.1))
    assert out.parsed_answer is False


@pytest.mark.parametrize(
    "times,sent",
    [
        ((0.05, 0.15, 0.25, 2.675, 10.45), "0.05, 0.15, 0.25, 2.67, 10.45"),
        ((12.0, 100.5, 3600.25, 123456.789), "12, 100.5, 3600.25, 123457"),
    ],
)
def test_frame_times_are_sent_in_hundredths_as_before(api, times, sent):
    # What these baselines were sent before the frames message had one home (commit 5c9d31f, run on these clips).
    clip = ClipInput("odd_times", np.zeros((len(times), 16, 16, 3), np.uint8), times)
    api.model(max_frames=len(times)).generate([clip], PROMPT_EN, "when")
    _, text = api.server.texts(api.server.requests[0].body)
    assert text == f"The video contains {len(times)} frames sampled at {sent} seconds.\n{PROMPT_EN.when_question}"


def test_all_spellings_of_the_answer_word_add_up(api):
    alternatives = [("Yes", -1.0), ("No", -0.9), (" yes", -2.0), ("YES", -3.0)]
    api.server.default = Scripted(text="Yes", top_logprobs=[alternatives])
    [out] = api.model().score([make_clip()], PROMPT_EN)
    p_yes = math.exp(-1.0) + math.exp(-2.0) + math.exp(-3.0)
    assert out.p_ghost_probing == pytest.approx(p_yes / (p_yes + math.exp(-0.9)))


def test_p_yes_skips_leading_markup_tokens():
    steps = [{"**": -0.01, "The": -5.0}, {"No": -0.3, "Yes": -1.5}]
    p, index = p_yes_from_logprobs(steps, "Yes", "No")
    assert index == 1 and p == pytest.approx(p_hand(-1.5, -0.3))
    assert p_yes_from_logprobs([{"The": -0.1}], "Yes", "No") is None
    assert p_yes_from_logprobs(None, "Yes", "No") is None


@pytest.mark.parametrize(
    "answer,p_expected,source",
    [
        ("是的，视频中出现了鬼探头", 1.0, "parsed"),
        ("没有发现鬼探头现象", 0.0, "parsed"),
        ("I cannot determine this from the frames.", None, "none"),
    ],
)
def test_score_without_logprobs_falls_back_to_the_parsed_answer(api, answer, p_expected, source):
    api.server.default = Scripted(text=answer, top_logprobs=None)
    [out] = api.model().score([make_clip()], PROMPT_ZH)
    assert out.extra["score_source"] == source
    if p_expected is None:
        assert math.isnan(out.p_ghost_probing) and out.parsed_answer is None  # unreadable is not "no"
    else:
        assert out.p_ghost_probing == p_expected


def test_gemini_model_refusing_logprobs_is_asked_again_without_them(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY["gemini"])
    with FakeGeminiServer() as server:
        server.reject_logprobs = True
        server.default = Scripted(text="Yes, a cyclist emerges.", top_logprobs=[[("Yes", -0.2), ("No", -1.8)]])
        model = Api("gemini", server).model()
        outs = model.score([make_clip("a"), make_clip("b")], PROMPT_EN)
        model.close()
    asked = [r.body["generationConfig"].get("responseLogprobs") for r in server.requests]
    assert asked == [True, None, None]  # refused once, then never asked again
    assert [o.p_ghost_probing for o in outs] == [1.0, 1.0]
    assert all(o.extra["score_source"] == "parsed" for o in outs)


def test_generate_when_returns_text_answer_and_event_time(api):
    api.server.default = Scripted(text="约在第4秒，一名行人从停放的车辆后突然冲出。", completion_tokens=20)
    [out] = api.model().generate([make_clip()], PROMPT_ZH, question="when")
    request = api.server.requests[0].body
    _, text = api.server.texts(request)
    assert text.endswith(PROMPT_ZH.when_question)
    if api.backend == "openai":
        assert "logprobs" not in request and request["max_tokens"] == 256
    else:
        assert "responseLogprobs" not in request["generationConfig"]
    assert out.event_time_s == 4.0 and out.parsed_answer is True
    assert out.answer.startswith("约在第4秒") and math.isnan(out.p_ghost_probing)
    assert out.tokens_out == 20


def test_outputs_keep_input_order_with_concurrent_requests(api):
    # Each answer names the number of images it got, and the server answers later clips first.
    def responder(body):
        count = len(api.server.images(body))
        return Scripted(text=f"Yes, at {count} seconds.", delay_s=0.05 * (6 - count))

    api.server.responder = responder
    clips = [make_clip(f"clip_{n}", num_frames=n) for n in range(1, 6)]
    outs = api.model(max_concurrency=4).generate(clips, PROMPT_EN, question="when")
    assert [o.clip_id for o in outs] == [c.clip_id for c in clips]
    assert [o.event_time_s for o in outs] == [1.0, 2.0, 3.0, 4.0, 5.0]


# ---------------------------------------------------------------------------------------------------------------
# Retries, timeouts, failures


def test_429_is_retried_after_the_servers_retry_after(api):
    api.server.script = [Scripted(status=429, headers={"Retry-After": "0.3"}, error_message="rate limited")]
    api.server.default = Scripted(text="No", top_logprobs=[[("No", -0.1), ("Yes", -2.4)]])
    [out] = api.model().score([make_clip()], PROMPT_EN)
    first, second = api.server.requests
    assert second.received_s - first.received_s >= 0.3  # the backoff alone would be ~0.01 s
    assert out.p_ghost_probing == pytest.approx(p_hand(-2.4, -0.1))
    assert out.extra["attempts"] == 2 and "error" not in out.extra


def test_gemini_429_retry_delay_in_the_body_is_honoured(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY["gemini"])
    retry_info = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.3s"}]
    with FakeGeminiServer() as server:
        server.script = [Scripted(status=429, error_message="Quota exceeded", error_details=retry_info)]
        model = Api("gemini", server).model()
        [out] = model.generate([make_clip()], PROMPT_EN)
        model.close()
    assert server.requests[1].received_s - server.requests[0].received_s >= 0.3
    assert out.parsed_answer is True


def test_500_then_success(api):
    api.server.script = [Scripted(status=500), Scripted(status=503)]
    [out] = api.model(max_retries=2).generate([make_clip()], PROMPT_EN)
    assert len(api.server.requests) == 3 and out.parsed_answer is True and out.extra["attempts"] == 3


def test_timeouts_are_retried_then_the_clip_gets_nan_and_the_next_clip_goes_on(api):
    slow = Scripted(delay_s=2.0)
    api.server.script = [slow] * 4  # clip a: the first try and both retries time out; clip b: its first try
    api.server.default = Scripted(text="Yes", top_logprobs=[[("Yes", -0.2), ("No", -1.8)]])
    start = time.monotonic()
    failed, recovered = api.model(timeout_s=0.25, max_retries=2).score([make_clip("a"), make_clip("b")], PROMPT_EN)
    assert time.monotonic() - start < 2.0
    assert math.isnan(failed.p_ghost_probing) and failed.parsed_answer is None
    assert "timed out" in failed.extra["error"] and failed.extra["attempts"] == 3
    assert recovered.p_ghost_probing == pytest.approx(p_hand(-0.2, -1.8)) and recovered.extra["attempts"] == 2
    assert len(api.server.requests) == 5


def test_refused_connections_are_retried_then_the_clip_fails(api):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    base_url = api.server.base_url.replace(str(api.server.port), str(closed_port))
    [out] = api.model(base_url=base_url, max_retries=2).score([make_clip()], PROMPT_EN)
    assert math.isnan(out.p_ghost_probing) and out.extra["attempts"] == 3
    assert "Connect" in out.extra["error"]


def test_a_rejected_request_is_not_retried(api):
    api.server.script = [Scripted(status=400, error_message="Invalid image data")]
    bad, good = api.model().score([make_clip("bad"), make_clip("good")], PROMPT_EN)
    assert len(api.server.requests) == 2
    assert math.isnan(bad.p_ghost_probing) and "Invalid image data" in bad.extra["error"]
    assert good.parsed_answer is True


def test_a_clip_with_malformed_frames_fails_alone(api):
    broken = ClipInput("broken", np.zeros((4, 32, 32), np.uint8), (0.0, 0.5, 1.0, 1.5))
    broken_out, good = api.model().generate([broken, make_clip("good")], PROMPT_EN)
    assert "broken" in broken_out.extra["error"] and "uint8 [T, H, W, 3]" in broken_out.extra["error"]
    assert good.parsed_answer is True and len(api.server.requests) == 1


def test_many_failed_clips_in_a_row_stop_the_run(api):
    api.server.default = Scripted(status=500, error_message="backend down")
    with pytest.raises(ApiModelError, match="3 clips in a row failed"):
        api.model(max_retries=0, abort_after_failed_clips=3).score([make_clip(str(i)) for i in range(6)], PROMPT_EN)
    assert len(api.server.requests) == 3


def test_failed_clips_in_a_row_are_counted_across_calls(api):
    # eval hands clips over a batch at a time (one clip per call at batch_size=1): an outage must still stop the run.
    api.server.default = Scripted(status=500, error_message="backend down")
    model = api.model(max_retries=0, abort_after_failed_clips=3)
    for clip_id in ("0", "1"):
        [out] = model.score([make_clip(clip_id)], PROMPT_EN)
        assert "backend down" in out.extra["error"]
    with pytest.raises(ApiModelError, match=r"3 clips in a row failed, the last \(2\)"):
        model.score([make_clip("2")], PROMPT_EN)
    # An answered clip starts the count again.
    api.server.script = [Scripted(status=200)]
    [answered] = model.score([make_clip("3")], PROMPT_EN)
    assert answered.parsed_answer is True
    [failed] = model.score([make_clip("4")], PROMPT_EN)
    assert "backend down" in failed.extra["error"]


@pytest.mark.parametrize("max_concurrency", [1, 3])
def test_rejected_key_stops_the_run_with_an_error_free_of_the_key(api, max_concurrency):
    # Servers echo (parts of) a bad key back; that must not travel into our messages.
    status = 401 if api.backend == "openai" else 400
    api.server.default = Scripted(status=status, error_message=f"API key not valid: {api.key}", delay_s=0.05)
    model = api.model(max_concurrency=max_concurrency)
    with pytest.raises(ApiModelError) as caught:
        model.score([make_clip(str(i)) for i in range(12)], PROMPT_EN)
    # Not retried, and the clips not in flight yet are never sent.
    assert len(api.server.requests) <= max_concurrency
    message = str(caught.value)
    assert KEY_ENV[api.backend] in message and "[redacted]" in message and api.key not in message
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_key_is_sent_but_never_in_reprs_outputs_or_logs(api, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, the client libraries' included
    api.server.script = [
        Scripted(status=429, headers={"Retry-After": "0"}, error_message=f"slow down {api.key}"),
        Scripted(status=400, error_message=f"bad request from key {api.key}"),
    ]
    model = api.model(max_concurrency=1)
    outs = model.score([make_clip("a"), make_clip("b")], PROMPT_EN)
    outs += model.generate([make_clip("c")], PROMPT_EN, question="when")
    sent = [r.headers.get("authorization", r.headers.get("x-goog-api-key")) for r in api.server.requests]
    assert all(api.key in header for header in sent)
    assert "bad request from key [redacted]" in outs[0].extra["error"]
    assert api.key not in repr(model) and api.key not in str(model.config)
    assert all(api.key not in repr(out) for out in outs)
    assert caplog.records and api.key not in caplog.text


# ---------------------------------------------------------------------------------------------------------------
# Rate limit


def test_a_cut_error_message_keeps_no_part_of_the_key():
    redact = redactor("sk-secret-0123456789", max_chars=24)
    assert redact("HTTP 400: sk-secret-0123456789 is bad") == "HTTP 400: [redacted] is "
    assert "sk-" not in redact("x" * 20 + "sk-secret-0123456789")  # cut inside the key: blanked before the cut


def test_rate_limiter_spaces_requests_across_threads():
    """Six requests from three threads at one instant get the slots 0, 0.1, ... 0.5 s at 600/min, each exactly once
    (a frozen clock: the schedule is checked, not the threads' wake-up times, which a loaded machine delays)."""
    slept = []
    limiter = RateLimiter(requests_per_minute=600, clock=lambda: 100.0, sleep=slept.append)  # one every 0.1 s
    waits = []

    def take():
        for _ in range(2):
            waits.append(limiter.acquire())

    threads = [threading.Thread(target=take) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert sorted(slept) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])  # the first request does not sleep


def test_rate_limiter_refills_with_time_up_to_its_burst():
    now = [0.0]
    limiter = RateLimiter(requests_per_minute=60, burst=2, clock=lambda: now[0], sleep=lambda s: None)  # 1 per s
    assert [limiter.acquire() for _ in range(3)] == pytest.approx([0.0, 0.0, 1.0])  # a burst of 2, then in debt
    now[0] = 10.0  # a long pause refills to the burst, not beyond
    assert [limiter.acquire() for _ in range(3)] == pytest.approx([0.0, 0.0, 1.0])
    assert RateLimiter(None).acquire() == 0.0


def test_model_requests_respect_requests_per_minute(api):
    # Four clips in flight at once would all arrive within milliseconds; 600 requests/min lets one in every 0.1 s.
    api.model(requests_per_minute=600, max_concurrency=4).generate([make_clip(str(i)) for i in range(4)], PROMPT_EN)
    arrivals = sorted(r.received_s for r in api.server.requests)
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] >= 0.2  # 3 intervals, less the first request's slower start
