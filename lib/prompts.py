"""Prompt formats and answer parsing, shared by zero-shot evaluation, teachers and students.

Plain "Question: ...\\nAnswer:" prompts (the base teacher is not chat-tuned). Options are *not* listed in
the scoring prompt: each option text is scored as the continuation (the "rc" format of OLMo evals),
which is what small models do best at. Chain-of-thought prompts end their demonstrations with
"So the answer is X." and `parse_answer` reads that (or, failing it, the last number / option named).
"""

from __future__ import annotations

import re

from .data import Example

# Four public chain-of-thought exemplars per task kind (Wei et al. 2022 style; not benchmark test items).
FEWSHOT = {
    "numeric": [
        (
            (
                "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After "
                "they are done, there will be 21 trees. How many trees did the grove workers plant today?"
            ),
            (
                "There are 15 trees originally. Then there were 21 trees after some more were planted. So "
                "there must have been 21 - 15 = 6."
            ),
            "6",
        ),
        (
            (
                "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the "
                "parking lot?"
            ),
            "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5.",
            "5",
        ),
        (
            (
                "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have "
                "left in total?"
            ),
            (
                "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. "
                "After eating 35, they had 74 - 35 = 39."
            ),
            "39",
        ),
        (
            "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
            (
                "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has "
                "23 - 15 = 8 dollars left."
            ),
            "8",
        ),
    ],
    "yesno": [
        (
            "Do hamsters provide food for any animals?",
            "Hamsters are prey animals. Prey are food for predators.",
            "yes",
        ),
        (
            "Could Brooke Shields succeed at University of Pennsylvania?",
            (
                "Brooke Shields went to Princeton University. Princeton University is about as academically "
                "rigorous as the University of Pennsylvania."
            ),
            "yes",
        ),
        (
            "Yes or no: Is it common to see frost during some college commencements?",
            (
                "College commencement ceremonies can happen in December, May, and June. December is in the "
                "winter, so there can be frost."
            ),
            "yes",
        ),
        (
            "Yes or no: Would a pear sink in water?",
            (
                "The density of a pear is about 0.6 g/cm^3, which is less than water. Objects less dense "
                "than water float."
            ),
            "no",
        ),
    ],
    "mc": [
        (
            (
                "What do people use to absorb extra ink from a fountain pen? Options: shirt pocket, "
                "calligrapher's hand, inkwell, desk drawer, blotter"
            ),
            (
                "The answer must be an item that can absorb ink. Of the above choices, only blotters are "
                "used to absorb ink."
            ),
            "blotter",
        ),
        (
            (
                "What home entertainment equipment requires cable? Options: radio shack, substation, "
                "television, cabinet"
            ),
            "The answer must require cable. Of the above choices, only television requires cable.",
            "television",
        ),
        (
            (
                "The fox walked from the city into the forest, what was it looking for? Options: pretty "
                "flowers, hen house, natural habitat, storybook"
            ),
            (
                "The answer must be something in the forest. Of the above choices, only natural habitat is "
                "in the forest."
            ),
            "natural habitat",
        ),
        (
            (
                "Where do you put your grapes just before checking out? Options: mouth, grocery cart, super "
                "market, fruit basket, fruit market"
            ),
            (
                "The answer should be the place where grocery items are placed before checking out. Of the "
                "above choices, grocery cart makes the most sense."
            ),
            "grocery cart",
        ),
    ],
}


def question_text(e: Example, with_options: bool = False) -> str:
    q = e.question
    if with_options and e.choices and e.kind == "mc":
        q += " Options: " + ", ".join(e.choices)
    return q


def answer_prompt(e: Example) -> str:
    """Zero-shot prompt whose continuation is scored: each option text, or the answer."""
    return f"Question: {question_text(e)}\nAnswer:"


def cot_prompt(e: Example, n_shots: int = 4) -> str:
    """Few-shot chain-of-thought prompt for the example's task kind (options listed for mc)."""
    shots = FEWSHOT[e.kind][:n_shots]
    demo = "".join(f"Question: {q}\nAnswer: {r} So the answer is {a}.\n\n" for q, r, a in shots)
    return demo + f"Question: {question_text(e, with_options=True)}\nAnswer:"


def demonstration(rationale: str, answer: str) -> str:
    """The target text a student learns from: rationale then the final answer in the parseable form."""
    rationale = (rationale or "").strip()
    return f"{rationale} So the answer is {answer}." if rationale else f"So the answer is {answer}."


_NUM = re.compile(r"-?\d[\d,]*\.?\d*")
_ANS = re.compile(r"answer is\s*:?\s*(.+?)(?:\.\s|\.$|\n|$)", re.I)


def _num(s: str) -> str | None:
    m = _NUM.findall(s)
    if not m:
        return None
    x = m[-1].replace(",", "").rstrip(".")
    try:
        v = float(x)
    except ValueError:
        return None
    return str(int(v)) if v.is_integer() else f"{v:g}"


def parse_answer(text: str, e: Example) -> str | None:
    """Final answer in canonical form (number string, "yes"/"no", or an option text); None if unparseable."""
    m = _ANS.search(text)
    tail = m.group(1).strip() if m else text.strip()
    if e.kind == "numeric":
        return _num(tail) if m else _num(text)
    if e.kind == "yesno":
        w = re.findall(r"\b(yes|no)\b", tail.lower()) or re.findall(r"\b(yes|no)\b", text.lower())
        return w[0] if m and w else (w[-1] if w else None)
    # mc: exact option, then an option contained in the answer tail, then a letter
    low = tail.lower().strip(" .\"'")
    for c in e.choices or []:
        if low == c.lower():
            return c
    hits = [c for c in (e.choices or []) if c.lower() in low]
    if hits:
        return max(hits, key=len)
    lm = re.fullmatch(r"\(?([a-j])\)?", low)
    if lm and e.choices and "abcdefghij".index(lm.group(1)) < len(e.choices):
        return e.choices["abcdefghij".index(lm.group(1))]
    return None


def is_correct(pred: str | None, e: Example) -> bool:
    if pred is None:
        return False
    if e.kind == "numeric":
        try:
            return abs(float(pred) - float(e.answer)) < 1e-6
        except ValueError:
            return False
    return pred.strip().lower() == e.answer.strip().lower()
