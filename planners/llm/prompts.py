"""How a sentence becomes a question for the LLM, one form per API, and how its answer is read back.

* :class:`ChatPrompt` (``--llm_api chat``, the paper's form): the task description and one worked example
  as the system message, the mediator's sentence as the user message; the answer is the model's text.
* :class:`FewShotPrompt` (``--llm_api completions``, for base models that were never tuned to follow
  instructions): one text made of the task description, several worked examples
  (``Observation: <sentence>`` / ``Action: {<plan>}``) and the new sentence, ending in ``Action: {``. The
  model continues it and the server stops at ``}`` or at the end of the line, so the answer is the plan
  alone; it is read back as ``Action: {<answer>}`` so that one parser serves both APIs.

Each form has a ``cache_text``: the text that identifies it in the answer cache's key (the system message,
or the few-shot text with the sentence left out), so answers from different prompts never mix.
"""
from __future__ import annotations

from planners.llm.client import DroppedAnswer

__all__ = ["ChatPrompt", "FewShotPrompt", "prompt_for", "system_prompt", "few_shot_prompt"]

_SENTENCE_SLOT = "<<the sentence>>"


class ChatPrompt:
    """The chat form: ``request(sentence)`` is a list of chat messages."""

    api = "chat"
    stop: tuple[str, ...] = ()

    def __init__(self, system: str):
        self.system = system
        self.cache_text = system

    def request(self, sentence: str) -> list[dict]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": sentence}]

    def answer(self, text: str) -> str:
        return text


class FewShotPrompt:
    """The completions form: ``request(sentence)`` is a text that the model continues after ``Action: {``."""

    api = "completions"
    stop = ("}", "\n")  # the plan ends at its closing brace; a line break means the model went on without one
    opening = "Action: {"

    def __init__(self, description: str, examples: list[tuple[str, str]]):
        if not examples:
            raise ValueError("a few-shot prompt needs at least one worked example")
        shots = "".join(f"Observation: {sentence}\n{self.opening}{plan}}}\n\n" for sentence, plan in examples)
        self._head = f"{description.strip()}\n\n{shots}Observation: "
        self.cache_text = self.request(_SENTENCE_SLOT)

    def request(self, sentence: str) -> str:
        return f"{self._head}{sentence}\n{self.opening}"

    def answer(self, text: str) -> str:
        if isinstance(text, DroppedAnswer):  # a note standing in for an answer refused for its size
            return text
        return f"{self.opening}{text.strip()}}}"


def system_prompt(prompt: dict | None) -> str:
    """The chat system message: the task description followed by one worked example."""
    if not prompt or not prompt.get("description"):
        raise ValueError("the task config has no prompt: add prompt.description and prompt.example to its yaml")
    text = prompt["description"].strip()
    if prompt.get("example"):
        text += "\n\nExample:\n" + prompt["example"].strip()
    return text


def few_shot_prompt(prompt: dict | None) -> FewShotPrompt:
    """The completions prompt of a task config: its description and its ``examples`` (sentence -> plan)."""
    if not prompt or not prompt.get("description"):
        raise ValueError("the task config has no prompt: add prompt.description and prompt.examples to its yaml")
    examples = prompt.get("examples") or []
    if not examples or not all(isinstance(e, dict) and isinstance(e.get("sentence"), str)
                               and isinstance(e.get("plan"), str) for e in examples):
        raise ValueError("--llm_api completions needs worked examples: add prompt.examples to the task's yaml, "
                         "a list of {sentence: ..., plan: ...}")
    return FewShotPrompt(prompt["description"], [(e["sentence"], e["plan"]) for e in examples])


def prompt_for(api: str, prompt: dict | None) -> ChatPrompt | FewShotPrompt:
    """The prompt form of ``api`` ("chat" or "completions") built from a task config's ``prompt``."""
    if api == "chat":
        return ChatPrompt(system_prompt(prompt))
    if api == "completions":
        return few_shot_prompt(prompt)
    raise ValueError(f"unknown LLM API {api!r}; choose chat or completions")
