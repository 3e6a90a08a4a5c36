"""An event type's booking questions: the caller's answers checked against them before anything is
written, in the form Cal.com takes as `bookingFieldsResponses` (NOTES §3.2, §12.2).

Cal.com refuses a booking without an answer to each required question ("Missing required booking field
response: <slug>"); we refuse it first, naming the question to ask, so nothing is recorded or sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial

from appt_tools.errors import InvalidArgument, Problems
from appt_tools.models import AnswerValue, EventType, Question

MAX_ANSWER_LENGTH = 1000
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})


def check(
    event_type: EventType, answers: Mapping[str, object], *, kept: Mapping[str, AnswerValue] | None = None
) -> dict[str, AnswerValue]:
    """`answers` over `kept` (those already given), each in its question's form; InvalidArgument on
    `answers.<slug>` for an unknown question, a wrong value, or a required question left unanswered."""
    questions = {q.slug: q for q in event_type.questions}
    result: dict[str, AnswerValue] = dict(kept or {})  # an answer to a question since removed is kept
    problems = Problems()  # every wrong or missing answer at once
    wrong: set[str] = set()  # answered, but not in a form the question takes
    for slug, raw in answers.items():
        question = questions.get(slug)
        if question is None:
            problems.add(
                InvalidArgument(
                    f"answers.{slug}", f"{event_type.title} has no question {slug!r}; {_listing(event_type)}"
                )
            )
            continue
        refused = len(problems.found)
        value = problems.check(partial(_value, question, raw))
        if len(problems.found) > refused:
            wrong.add(slug)
        elif value is None:
            result.pop(slug, None)
        else:
            result[slug] = value
    for question in event_type.questions:
        if question.required and question.slug not in result and question.slug not in wrong:
            problems.add(
                InvalidArgument(
                    f"answers.{question.slug}",
                    f"{event_type.title} needs an answer to this question. Ask the caller: {question.label}"
                    f"{_choices(question)} Then call again with answers {{{question.slug!r}: <their answer>}}.",
                    ask=question.label,
                )
            )
    problems.raise_any()
    return result


def _value(question: Question, raw: object) -> AnswerValue | None:
    """The answer in the question's form (None: no answer), or InvalidArgument saying what is valid."""
    field = f"answers.{question.slug}"
    if raw is None or raw == [] or (isinstance(raw, str) and not raw.strip()):
        return None
    if question.type == "boolean":
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise InvalidArgument(field, f"answer true or false (the question: {question.label}).")
    if question.type == "number":
        try:
            number = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else float(str(raw))
        except ValueError:
            number = float("nan")
        if not math.isfinite(number):
            raise InvalidArgument(field, f"{raw!r} is not a number; answer with digits, e.g. 3.")
        return number
    if question.multiple:
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise InvalidArgument(
                field,
                f"answer with a list of options, e.g. [{question.options[0]!r}]."
                if question.options
                else "answer with a list of texts.",
            )
        return [_option(question, item) for item in items] if question.options else [_text(field, i) for i in items]
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise InvalidArgument(field, f"answer with text (the question: {question.label}).")
    if question.options:
        return _option(question, str(raw))
    return _text(field, str(raw))


def _option(question: Question, raw: str) -> str:
    """The option `raw` names (any case, spaces trimmed), else InvalidArgument listing the options."""
    wanted = raw.strip().casefold()
    for option in question.options:
        if option.casefold() == wanted:
            return option
    allowed = ", ".join(repr(o) for o in question.options)
    raise InvalidArgument(
        f"answers.{question.slug}", f"{raw!r} is not one of the options; answer with one of: {allowed}."
    )


def _text(field: str, raw: str) -> str:
    cleaned = raw.strip()
    if len(cleaned) > MAX_ANSWER_LENGTH:
        raise InvalidArgument(field, f"is {len(cleaned)} characters long; the limit is {MAX_ANSWER_LENGTH}.")
    return cleaned


def _choices(question: Question) -> str:
    if not question.options:
        return ""
    return " (" + ", ".join(question.options) + ")"


def _listing(event_type: EventType) -> str:
    if not event_type.questions:
        return "it asks no questions, so leave answers out."
    return "its questions are: " + ", ".join(f"{q.slug} ({q.label})" for q in event_type.questions) + "."
