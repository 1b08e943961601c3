"""Records of the MMAD ``mmad.json`` format, validated with pydantic.

The official file is a JSON object keyed by the query image path (relative to the data root); each
value holds the image's questions (``conversation``), its mask and its normal templates. Unknown keys
are kept (``extra="allow"``) so a newer release of the file still loads and nothing is lost.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: the option letters MMAD uses (and that answer extraction recognises)
LETTERS = "ABCDEFGH"


def first_problem(exc: ValidationError) -> tuple[str, str]:
    """(field, reason) of a validation error's first complaint, the field as a dotted path ("record" when none)."""
    err = exc.errors()[0]
    return ".".join(str(p) for p in err["loc"]) or "record", err["msg"].removeprefix("Value error, ")


class ConversationItem(BaseModel):
    """One multiple-choice question as stored in ``conversation``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    question: str = Field(alias="Question")
    answer: str = Field(alias="Answer")
    options: dict[str, str] = Field(alias="Options")
    type: str

    @field_validator("options")
    @classmethod
    def _options_ok(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) < 2:
            raise ValueError(f"needs at least 2 options, got {len(v)}")
        bad = [k for k in v if len(k) != 1 or k not in LETTERS]
        if bad:
            raise ValueError(f"option keys must be single letters {LETTERS[0]}-{LETTERS[-1]}, got {bad}")
        empty = [k for k, t in v.items() if not str(t).strip()]
        if empty:
            raise ValueError(f"option(s) {empty} have empty text")
        return v

    @model_validator(mode="after")
    def _answer_among_options(self) -> ConversationItem:
        if self.answer not in self.options:
            raise ValueError(f"answer '{self.answer}' is not among the options {sorted(self.options)}")
        return self


class ImageRecord(BaseModel):
    """The value stored under one image key."""

    model_config = ConfigDict(extra="allow")

    conversation: list[ConversationItem]
    mask_path: str | None = None
    similar_templates: list[str] = Field(default_factory=list)
    random_templates: list[str] = Field(default_factory=list)
    image_path: str | None = None

    @field_validator("conversation")
    @classmethod
    def _not_empty(cls, v: list[ConversationItem]) -> list[ConversationItem]:
        if not v:
            raise ValueError("conversation is empty")
        return v


class OfficialAnswer(BaseModel):
    """One entry of an answers file written by the official MMAD scripts."""

    model_config = ConfigDict(extra="allow")

    image: str
    question: dict | str | None = None
    question_type: str
    correct_answer: str
    gpt_answer: str | None = None
