"""Reading a model's free-text answer: yes/no on ghost probing (鬼探头) and the event time, in Chinese or English.

Models rarely answer with the bare word the prompt asks for: they write "是的，视频中出现了鬼探头", "**Answer: No**",
"This is not a ghost probing event" or "约在第4秒". The parsers here turn such answers into `True`/`False`/`None`
and seconds; `None` means "no usable answer" and the metrics count it as such, never as a "no".
"""

from __future__ import annotations

import re
import unicodedata

# Words that name the event. English phrases need the verb forms models use ("emerges", "darted out").
_EVENT_RE = re.compile(
    r"鬼探头|突然(?:冲出|窜出|闯出|跑出|出现|钻出|蹿出)|冲出|窜出|蹿出"
    r"|ghost[\s-]*prob\w*"
    r"|sudden(?:ly)?\s+(?:emerg\w*|appear\w*|dart\w*|run\w*|rush\w*|burst\w*|step\w*|jump\w*|pop\w*|cross\w*)"
    r"|(?:dart\w*|burst\w*|jump\w*|pop\w*)\s+out"
)
# A negation in the same clause before the event words ("there is no ghost probing", "没有出现鬼探头").
_NEGATION_BEFORE_RE = re.compile(
    r"\b(?:no|not|never|none|without|neither|nor|absence|absent|lack\w*)\b|n't|没|未|无|不|并非|否"
)
# The clause right after the event words says whether it happened ("鬼探头：否", "ghost probing is not present").
_VERDICT_AFTER_RE = re.compile(
    r"^\s*[:=-]?\s*(?:(?P<no>no\b|none\b|absent\b|false\b|(?:is|was|does|did)\s*(?:not|n't)\b|not\b|never\b"
    r"|否|无|没|未|不)"
    r"|(?P<yes>yes\b|true\b|present\b|detected\b|observed\b|occur\w*|happen\w*|是|有|存在|出现|发生))"
)
# Words that put the event in a question rather than a statement ("determine whether ghost probing occurs").
_QUESTION_CONTEXT_RE = re.compile(r"\b(?:whether|if|determine|judge|check|asked?)\b|判断|确定|问")
# Labelled answers, anywhere in the text ("Final answer: yes", "答案是否定的"); the last label wins.
_LABEL_RE = re.compile(
    r"(?:final\s+answer|answer|verdict|conclusion|答案|回答|结论|判断结果|结果)\s*(?:is\s*)?[:：]?\s*(?:是)?\s*[:：]?\s*"
    r"(?P<word>yes|no|肯定|否定|不是|不存在|没有|是|否|存在|有|无)"
)
_UNCERTAIN_START_RE = re.compile(
    r"^(?:i\s+(?:cannot|can't|can\s+not|am\s+unable\s+to|am\s+not\s+able\s+to)\s+(?:determine|tell|say|judge|be\s+sure"
    r"|confirm|answer|identify|assess|analy[sz]e|view|access|process|help)"
    r"|i\s+am\s+not\s+sure|i\s+don't\s+know|unable|not\s+sure"
    r"|(?:it\s+is|it's)\s+(?:unclear|uncertain|hard|difficult|impossible|not\s+possible)|unclear|uncertain"
    r"|hard\s+to|difficult\s+to|cannot\s+(?:determine|tell|say)|insufficient"
    r"|无法|不确定|不能确定|难以|不清楚|看不清|不好说|说不清|不知道)"
)
_UNCERTAIN_ANYWHERE_RE = re.compile(
    r"cannot\s+(?:determine|tell|say)|can't\s+(?:determine|tell|say)|unable\s+to|not\s+sure|unclear|uncertain"
    r"|insufficient|无法|不确定|难以判断|不清楚|看不清"
)
_LEADING_YES_RE = re.compile(
    r"^(?:yes|yeah|yep|yup|correct\b|true\b|affirmative|(?:absolutely|definitely|certainly)\b(?!\s+not)|y$"
    r"|肯定|是(?!不)|对的?(?=[,.!。，！\s]|$)|存在|有(?!可能|没有|无))"
)
_LEADING_NO_RE = re.compile(
    r"^(?:no\b|none\b|nope|false\b|negative\b|(?:absolutely|definitely|certainly)\s+not\b|n$"
    r"|不是|不存在|没有|没|无|否|不|未|并没有|并不|并未)"
)
_CLAUSE_SPLIT_RE = re.compile(r"[.,;!?。，；！？、\n]|\bbut\b|\bhowever\b|但|然而")


def _normalize(text: str) -> str:
    # NFKC folds full-width letters, digits and colons ("Ｙｅｓ", "：") into ASCII; markdown emphasis means nothing.
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[*_`#>\"'“”‘’「」【】\[\]()]", lambda m: "'" if m.group() in "'’‘" else " ", text)
    # "是否" means "whether" and must not read as 是 (yes) or 否 (no); "是否定的" is "is negative".
    text = re.sub(r"是否(?!定)", " whether ", text)
    return re.sub(r"[ \t]+", " ", text).strip()


def _from_word(word: str) -> bool:
    return word in {"yes", "肯定", "是", "存在", "有"}


def _event_verdict(text: str) -> bool | None:
    """Yes/no from the first statement (not question) that names the event, by the negations around it."""
    for match in _EVENT_RE.finditer(text):
        after = _CLAUSE_SPLIT_RE.split(text[match.end() :], maxsplit=1)[0]
        before = _CLAUSE_SPLIT_RE.split(text[: match.start()])[-1]
        before = before[-40:]  # a negation further back belongs to something else
        verdict = _VERDICT_AFTER_RE.match(after)
        if _QUESTION_CONTEXT_RE.search(before):
            # "whether ghost probing occurred" asks; only "是否存在鬼探头：否" answers, with its colon.
            if verdict and after.lstrip()[:1] in (":", "=", "-"):
                return verdict.group("yes") is not None
            continue
        if verdict:
            return verdict.group("yes") is not None
        return _NEGATION_BEFORE_RE.search(before) is None
    return None


def parse_yes_no(text: str | None) -> bool | None:
    """Whether an answer says ghost probing happened: True, False, or None when it is unclear or missing.

    Reads, in this order: uncertainty at the start ("I cannot determine…", "无法判断" -> None), a labelled answer
    ("Answer: yes", "答案：否"), a leading yes/no word ("是的，…", "No.", "没有发现…"), then the first statement naming
    the event ("this is not a ghost probing", "视频中出现了鬼探头", "a cyclist suddenly emerges"), then a bare
    "yes"/"no" word. Hedged answers ("有可能是鬼探头") count as what they lean to.
    """
    if not text or not text.strip():
        return None
    text = _normalize(text)
    if _UNCERTAIN_START_RE.match(text):
        return None
    labels = list(_LABEL_RE.finditer(text))
    if labels:
        return _from_word(labels[-1].group("word"))
    if _LEADING_NO_RE.match(text):
        return False
    if _LEADING_YES_RE.match(text):
        return True
    verdict = _event_verdict(text)
    if verdict is not None:
        return verdict
    if _UNCERTAIN_ANYWHERE_RE.search(text):
        return None
    bare = re.search(r"\b(yes|no)\b", text)
    return bare.group(1) == "yes" if bare else None


_ZH_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_NUMBER = r"\d+(?:\.\d+)?|[零〇一二两三四五六七八九十]+(?:点[零〇一二三四五六七八九]+)?"
_UNIT_S = r"(?:s|sec|secs|second|seconds|秒钟?)\b|秒"
_UNIT_MS = r"(?:ms|millisecond|milliseconds)\b|毫秒"
_CLOCK_RE = re.compile(r"(?<![\d.:])(?:(\d{1,2}):)?(\d{1,2}):(\d{2}(?:\.\d+)?)(?![\d:])")
_RANGE_RE = re.compile(
    rf"({_NUMBER})\s*(?:{_UNIT_S})?\s*(?:-|–|~|〜|至|到|and|to)\s*(?:第)?\s*({_NUMBER})\s*(?:{_UNIT_S})"
)
_WITH_UNIT_RE = re.compile(rf"({_NUMBER})\s*-?\s*(?:(?P<ms>{_UNIT_MS})|(?:{_UNIT_S}))(?P<half>半)?")
_T_EQUALS_RE = re.compile(r"\bt\s*[=≈]\s*(\d+(?:\.\d+)?)")
_BARE_NUMBER_RE = re.compile(r"^(?:约|大约|about|around|at|~)?\s*(\d+(?:\.\d+)?)\s*[.。]?$")


def _number(token: str) -> float:
    """Arabic ("3.5") or Chinese ("三", "十二", "二十三", "三点五") numerals below 100."""
    if token[0].isdigit():
        return float(token)
    whole, _, decimals = token.partition("点")
    if "十" in whole:
        tens, _, ones = whole.partition("十")
        value = (_ZH_DIGITS[tens] if tens else 1) * 10 + (_ZH_DIGITS[ones] if ones else 0)
    else:
        value = int("".join(str(_ZH_DIGITS[ch]) for ch in whole))
    if decimals:
        value += float("0." + "".join(str(_ZH_DIGITS[ch]) for ch in decimals))
    return float(value)


def parse_event_time_s(text: str | None) -> float | None:
    """The event time in seconds an answer gives, or None ("无", "no ghost probing", no time in the text).

    Understands "at 3.2 seconds", "3.5s", "around 4 s", "00:03" (mm:ss, also hh:mm:ss), "在2.5秒时", "约在第4秒",
    "第三秒", "3200 ms", "t=3.2" and a bare number; a range ("3-4秒", "between 3 and 4 seconds") gives its midpoint.
    The first time mentioned wins. Frame numbers ("第5帧") are not times and give None.
    """
    if not text or not text.strip():
        return None
    text = unicodedata.normalize("NFKC", text).lower().replace("**", "")
    candidates = []  # (position in text, seconds): the earliest mention wins whatever its form
    clock = _CLOCK_RE.search(text)
    if clock:
        hours, minutes, seconds = clock.groups()
        candidates.append((clock.start(), int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)))
    span = _RANGE_RE.search(text)
    if span:
        candidates.append((span.start(), (_number(span.group(1)) + _number(span.group(2))) / 2))
    unit = _WITH_UNIT_RE.search(text)
    if unit:
        value = _number(unit.group(1))
        value = value / 1000 if unit.group("ms") else value + (0.5 if unit.group("half") else 0.0)
        candidates.append((unit.start(), value))
    t_equals = _T_EQUALS_RE.search(text)
    if t_equals:
        candidates.append((t_equals.start(), float(t_equals.group(1))))
    if not candidates:
        bare = _BARE_NUMBER_RE.match(text.strip())
        return float(bare.group(1)) if bare else None
    return min(candidates, key=lambda candidate: candidate[0])[1]  # ties: the order above (a range before its end)


def read_answer(text: str | None, question: str) -> tuple[bool | None, float | None]:
    """(parsed yes/no, event time in seconds) of one free-text answer to the "detect" or "when" question: the one
    reader every backend (Video-LLaMA, HF-native, API) uses.

    For "when", an answer that says no has no event time ("No ghost probing in this 10 s clip" names a duration, not
    a time), and one that gives a time is a yes ("约在第4秒").
    """
    if question not in ("detect", "when"):
        raise ValueError(f"question must be 'detect' or 'when', got {question!r}")
    parsed = parse_yes_no(text)
    if question == "detect":
        return parsed, None
    event_time_s = parse_event_time_s(text)
    if parsed is False:
        return False, None
    if event_time_s is not None:
        return True, event_time_s
    return parsed, None
