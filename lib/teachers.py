"""Teachers that write demonstrations (rationale + answer), behind one interface, cached on disk.

Three kinds (`get_teacher("kind:arg")`):
  lm:NAME         a local LM with a few-shot chain-of-thought prompt (lib.prompts.cot_prompt), batched greedy
                  generation; the final answer is parsed from the text (unparseable = wrong, counted in
                  `Demo.unparsed`). `answer_by="options"` (mc / yes-no only) keeps the generated rationale but
                  takes the answer from option log-likelihood given the question alone
                  (lib.evaluation.option_scores, the zero-shot method of notebook 00): small teachers rarely
                  end their chains in a parseable or right answer (Gemma-3-270M: 0/16 CommonsenseQA answers
                  right when the options are scored after its own rationale, against about 40 % zero-shot),
                  so the answer can disagree with the rationale.
  simulated:EPS   the gold rationale / answer, made wrong for a known share EPS of examples (controlled
                  experiments: the true quality of every demonstration is known, `Demo.true_correct`).
  openai:MODEL    an OpenAI-compatible /v1/chat/completions endpoint through the `openai` package,
                  `concurrency` requests at a time (default 8), retried on 408/409/429/5xx and connection
                  errors with `Retry-After` honoured (`max_retries`, default 5). URL: `base_url`, else
                  $OPENAI_BASE_URL, else https://api.openai.com ("/v1" appended when missing). The key
                  comes from $OPENAI_API_KEY (or `api_key_env`) only, read when a batch is sent, never
                  stored, logged or cached; a local server (127.0.0.1, localhost, ::1) needs none.
                  A local llama.cpp server (8 parallel slots; any model name works):
                      llama-server -m M.gguf --port 8080 -np 8
                      export OPENAI_BASE_URL=http://127.0.0.1:8080/v1    teacher "openai:local"
                  (pip's llama-cpp-python[server]: `python -m llama_cpp.server --model M.gguf --port 8080`.)
                  vLLM: `vllm serve MODEL --port 8000`, OPENAI_BASE_URL=http://127.0.0.1:8000/v1,
                  teacher "openai:MODEL". Failures (HTTP 4xx, retries used up, a reply that is not a chat
                  completion) raise a one-line ReproError.

Cache: one append-only JSONL file per (teacher name, dataset) under <cache>/teachers/. A line holds one
example's Demo, keyed by the example id and a hash of the exact prompt plus the teacher's config (so the
same id with other content, e.g. smoke vs offline data, never collides). Each line is written whole with one
write() and flushed; a line that does not parse (the tail of a killed run) is ignored and its example is
asked again. A rerun asks the teacher nothing it already answered.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import urllib.parse
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .common import ReproError, cache_dir, check_choice, stable_hash
from .config import TeacherSettings
from .data import Example, format_number
from .evaluation import option_scores
from .prompts import answer_prompt, cot_prompt, demonstration, is_correct, parse_answer

CACHE_VERSION = 4  # bump when a teacher's output for the same prompt and config changes (meaning or text)


@dataclass
class Demo:
    id: str
    rationale: str
    answer: str | None  # parsed final answer in canonical form; None = unparseable (counts as wrong)
    raw: str  # the teacher's text as produced
    correct: bool  # answer == gold
    true_correct: bool | None = None  # simulated teacher: the demonstration was not corrupted
    unparsed: bool = (
        False  # the generated text had no parseable final answer (answer_by="options" still answers)
    )

    def text(self) -> str:
        """The target a student learns from (rationale, then the answer in the parseable form)."""
        return demonstration(self.rationale, self.answer if self.answer is not None else "unknown")


_SO = re.compile(r"\s*So the answer is.*$", re.I | re.S)


def split_rationale(text: str) -> str:
    """The rationale part of a chain-of-thought output: everything before "So the answer is"."""
    return _SO.sub("", text).strip()


def _demo(e: Example, rationale: str, answer: str | None, raw: str, **kw) -> Demo:
    return Demo(id=e.id, rationale=rationale, answer=answer, raw=raw, correct=is_correct(answer, e), **kw)


class Teacher:
    """name: cache folder; config(): everything besides the prompt that determines the output;
    prompt(e): the exact input; answer(examples): uncached Demos for a batch."""

    name = "teacher"
    batch_size = 16
    slow = True  # show a progress bar while annotating

    def config(self) -> dict:
        return {}

    def prompt(self, e: Example) -> str:
        return cot_prompt(e)

    def answer(self, examples: list[Example]) -> list[Demo]:
        raise NotImplementedError


# ---------------------------------------------------------------- local LM teacher


class LMTeacher(Teacher):
    def __init__(
        self,
        model_name: str,
        *,
        answer_by: str,
        max_new_tokens: int,
        n_shots: int,
        batch_size: int,
        precision: str = "fp32",
        lm=None,
    ):
        if answer_by not in ("generate", "options"):
            raise ReproError(f"unknown answer_by {answer_by!r}; valid: generate, options")
        self.model_name, self.answer_by, self.max_new_tokens, self.n_shots = (
            model_name,
            answer_by,
            max_new_tokens,
            n_shots,
        )
        self.batch_size, self.precision = batch_size, precision
        self._lm = lm  # loaded lazily: a full cache hit never loads the model
        self.name = f"lm-{model_name.replace('/', '--')}"

    def config(self) -> dict:
        cfg = {"model": self.model_name, "answer_by": self.answer_by, "max_new_tokens": self.max_new_tokens}
        return cfg if self.precision == "fp32" else {**cfg, "precision": self.precision}  # bf16: other text

    @property
    def lm(self):
        if self._lm is None:
            from .models import load_model

            self._lm = load_model(self.model_name, self.precision)
        return self._lm

    def prompt(self, e: Example) -> str:
        return cot_prompt(e, self.n_shots)

    def answer(self, examples: list[Example]) -> list[Demo]:
        gens = self.lm.generate(
            [self.prompt(e) for e in examples], max_new_tokens=self.max_new_tokens, batch_size=self.batch_size
        )
        parsed = [parse_answer(g, e) for g, e in zip(gens, examples)]
        rats = [split_rationale(g) for g in gens]
        answers = list(parsed)
        if self.answer_by == "options":  # the rc-format option scores of lib.evaluation, as in notebook 00
            idx = [i for i, e in enumerate(examples) if e.choices]
            scores = option_scores(self.lm, [examples[i] for i in idx], batch_size=self.batch_size)
            for i, sc in zip(idx, scores):
                answers[i] = examples[i].choices[int(sc.argmax())]
        return [
            _demo(e, r, a, g, unparsed=p is None)
            for e, r, a, g, p in zip(examples, rats, answers, gens, parsed)
        ]


# ---------------------------------------------------------------- simulated teacher

CORRUPT = ("answer", "step", "both")
# random: errors on questions drawn by a hash; hard: on the questions a reference model finds least likely
SIM_MODES = ("random", "hard")


def _template_rationale(e: Example, answer: str) -> str:
    """Stand-in rationale where the dataset has none (CommonsenseQA, ARC): it names the options and the
    answer, so it carries no reasoning beyond the answer itself (documented in the notebooks)."""
    return (
        f"The answer must fit the question. Of the options {', '.join(e.choices or [])}, {answer} fits best."
    )


_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")


def _corrupt_step(rationale: str, rng: random.Random) -> str | None:
    """Change one number in the rationale (a wrong intermediate step); None if it has no number."""
    hits = list(_NUMBER.finditer(rationale))
    if not hits:
        return None
    m = rng.choice(hits)
    v = float(m.group())
    new = format_number(v + rng.choice([-1, 1]) * rng.randint(1, max(2, int(abs(v) * 0.5) or 2)))
    return rationale[: m.start()] + new + rationale[m.end() :]


def _wrong_answer(e: Example, rng: random.Random) -> str:
    if e.choices:
        return rng.choice([c for c in e.choices if c.lower() != e.answer.lower()])
    v = float(e.answer)
    off = rng.randint(1, max(3, int(abs(v) * 0.5)))
    # keep counts non-negative
    return format_number(v - off if rng.random() < 0.5 and v - off >= 0 else v + off)


class SimulatedTeacher(Teacher):
    """Gold demonstrations with a controlled error rate.

    Example i is made wrong iff u_i < error_rate, u_i uniform from a hash of (seed, dataset, id):
    deterministic, independent of order and batch, and nested across rates (the wrong set at 0.2 lies inside
    the one at 0.4). corrupt="answer": another option / gold ± a random offset (numbers; the gold result in
    the rationale is replaced too, so the chain ends in the wrong number); "step": one number in the rationale
    changed, answer kept (correct vs gold, but true_correct False; falls back to "answer" when the rationale
    has no number); "both": wrong answer and a corrupted step."""

    batch_size, slow = 10_000, False

    def __init__(
        self,
        error_rate: float,
        seed: int = 0,
        corrupt: str = "answer",
        mode: str = "random",
        difficulty: dict[str, float] | None = None,
        plausible: dict[str, int | None] | None = None,
    ):
        if not 0 <= error_rate <= 1:
            raise ReproError(f"error_rate must be in [0, 1], got {error_rate!r}")
        if corrupt not in CORRUPT:
            raise ReproError(f"unknown corrupt {corrupt!r}; valid: {', '.join(CORRUPT)}")
        check_choice("simulated teacher mode", mode, SIM_MODES)
        if mode == "hard" and not difficulty:
            raise ReproError(
                "a hard simulated teacher needs the difficulty of its pool (reference_difficulty)"
            )
        self.error_rate, self.seed, self.corrupt, self.mode = float(error_rate), seed, corrupt, mode
        self.difficulty, self.plausible = difficulty or {}, plausible or {}
        # hard: the round(eps * n) questions the reference model finds least likely are the wrong ones
        hardest = sorted(self.difficulty, key=lambda i: (-self.difficulty[i], i))
        self._wrong = set(hardest[: round(self.error_rate * len(hardest))])
        self.name = f"simulated-{self.error_rate:g}-{corrupt}-s{seed}"
        if mode == "hard":
            self.name += f"-hard-{stable_hash(self.difficulty, 8)}"

    def config(self) -> dict:
        cfg = {"error_rate": self.error_rate, "seed": self.seed, "corrupt": self.corrupt}
        if self.mode == "hard":
            cfg.update(
                mode="hard", difficulty=stable_hash(self.difficulty), plausible=stable_hash(self.plausible)
            )
        return cfg

    def prompt(self, e: Example) -> str:  # the "input" is the gold example itself
        return json.dumps(e.to_dict(), sort_keys=True)

    def answer(self, examples: list[Example]) -> list[Demo]:
        return [self._one(e) for e in examples]

    def _one(self, e: Example) -> Demo:
        u = int(stable_hash(["u", self.seed, e.dataset, e.id], 12), 16) / 16**12
        rng = random.Random(stable_hash(["c", self.seed, e.dataset, e.id]))
        if self.mode == "hard":
            if e.id not in self.difficulty:
                raise ReproError(
                    f"the hard simulated teacher knows the difficulty of its pool only, not {e.id}"
                )
            return self._hard(e, e.id in self._wrong, rng)
        wrong = u < self.error_rate
        answer = e.answer
        rationale = e.rationale or (_template_rationale(e, e.answer) if e.choices else "")
        mode = self.corrupt
        if wrong and mode == "step":
            stepped = _corrupt_step(rationale, rng)
            if stepped is None:
                mode = "answer"
            else:
                rationale = stepped
        if wrong and mode in ("answer", "both"):
            answer = _wrong_answer(e, rng)
            if e.rationale is None and e.choices:
                rationale = _template_rationale(e, answer)
            elif e.kind == "numeric":  # the chain now ends in the wrong result: its last gold number replaced
                hits = list(re.finditer(rf"(?<![\w.]){re.escape(e.answer)}(?![\w]|\.\d)", rationale))
                if hits:
                    rationale = rationale[: hits[-1].start()] + answer + rationale[hits[-1].end() :]
            if mode == "both":
                rationale = _corrupt_step(rationale, rng) or rationale
        return _demo(e, rationale, answer, demonstration(rationale, answer), true_correct=not wrong)

    def _hard(self, e: Example, wrong: bool, rng: random.Random) -> Demo:
        """Right: the gold demonstration. Wrong: the reference model's most plausible wrong option (a random
        nearby number for free-form questions), with a rationale that argues for it."""
        rationale = e.rationale or (_template_rationale(e, e.answer) if e.choices else "")
        if not wrong:
            return _demo(e, rationale, e.answer, demonstration(rationale, e.answer), true_correct=True)
        idx = self.plausible.get(e.id)
        answer = e.choices[idx] if e.choices and idx is not None else _wrong_answer(e, rng)
        if e.choices:
            rationale = _template_rationale(e, answer)
        elif e.rationale:  # the chain ends in the wrong result
            hits = list(re.finditer(rf"(?<![\w.]){re.escape(e.answer)}(?![\w]|\.\d)", rationale))
            if hits:
                rationale = rationale[: hits[-1].start()] + answer + rationale[hits[-1].end() :]
        return _demo(e, rationale, answer, demonstration(rationale, answer), true_correct=False)


def reference_difficulty(lm, examples: list[Example], batch_size: int = 16) -> tuple[dict, dict]:
    """How hard each question is for a reference model, and its most plausible wrong option: difficulty =
    1 - the model's probability of the gold option among the options (zero-shot option log-likelihood, as
    notebook 00 scores), or for a free-form question 1 - exp(mean log-prob of the gold answer). Cached."""
    from .common import cached_json

    def compute():
        diff, plaus = {}, {}
        opt = [e for e in examples if e.choices]
        for e, s in zip(opt, option_scores(lm, opt, batch_size=batch_size)):
            p = np.exp(s - s.max())
            p /= p.sum()
            diff[e.id] = float(1 - p[e.label])
            wrong = [i for i in range(len(s)) if i != e.label]
            plaus[e.id] = int(max(wrong, key=lambda i: s[i])) if wrong else None
        free = [e for e in examples if not e.choices]
        if free:
            lps = lm.score(
                [answer_prompt(e) for e in free], [" " + e.answer for e in free], batch_size=batch_size
            )
            for e, lp in zip(free, lps):
                diff[e.id], plaus[e.id] = float(1 - np.exp(float(lp.mean()))), None
        return {"difficulty": diff, "plausible": plaus}

    key = {
        "model": lm.name,
        **({"precision": "bf16"} if lm.bf16 else {}),
        "examples": stable_hash([e.to_dict() for e in examples], 20),
    }
    r = cached_json("reference_difficulty", key, compute)
    return r["difficulty"], r["plausible"]


# ---------------------------------------------------------------- OpenAI-compatible chat endpoint

SYSTEM = (
    "You are a careful teacher. Reason step by step in a few sentences, then end with "
    "'So the answer is X.' where X is the final answer (for multiple choice, the option text)."
)


class OpenAITeacher(Teacher):
    """A chat model behind an OpenAI-compatible /v1/chat/completions endpoint (OpenAI, vLLM, llama.cpp, ...).

    base_url: the API root (".../v1"; appended when missing); None = $OPENAI_BASE_URL, else
    https://api.openai.com. Pointing it at a local server is enough to use one, e.g. llama.cpp's
    `llama-server -m M.gguf --port 8080 -np 8` (8 parallel slots) with base_url="http://127.0.0.1:8080/v1".
    api_key_env: the variable the key is read from, each time a batch is sent (the key never enters the
    teacher, its config, the cache or the logs). A local base_url (127.0.0.1, localhost, ::1) works without
    it: a placeholder is sent then, and the variable's value when it is set (a server run with --api-key).
    concurrency: requests in flight at once, over one HTTP client; demos come back in input order. A local
    server answers at most as many at a time as it has slots, so more only queue there.
    batch_size: examples per annotate() batch, i.e. per cache append (default 4 x concurrency: a killed run
    loses at most that many answers, while slow requests do not leave the other threads idle for long).
    max_retries: retries per request on 408, 409, 429, 5xx and connection errors, by the openai client:
    it waits what the server's Retry-After (-ms) header says (over 2 min: no retry), else a backoff
    doubling from 0.5 s to 8 s. Other 4xx fail at once. Every failure is a one-line ReproError.
    timeout: seconds per request; generous because a local CPU server queues requests behind its slots."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        n_shots: int = 4,
        max_tokens: int = 256,
        temperature: float = 0.0,
        concurrency: int = 8,
        batch_size: int | None = None,
        max_retries: int = 5,
        timeout: float = 300.0,
    ):
        if concurrency < 1:
            raise ReproError(f"concurrency must be >= 1, got {concurrency!r}")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com"
        self.base_url, self.model, self.api_key_env = base_url.rstrip("/"), model, api_key_env
        self.n_shots, self.max_tokens, self.temperature = n_shots, max_tokens, temperature
        self.concurrency, self.max_retries, self.timeout = concurrency, max_retries, timeout
        self.batch_size = batch_size or 4 * concurrency
        self.name = f"openai-{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}"

    def config(self) -> dict:  # no key here: config goes into cache keys
        return {
            "base_url": self.base_url,
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "system": SYSTEM,
        }

    def prompt(self, e: Example) -> str:
        return cot_prompt(e, self.n_shots)

    @property
    def api_root(self) -> str:
        return self.base_url if self.base_url.endswith("/v1") else self.base_url + "/v1"

    def is_local(self) -> bool:
        host = urllib.parse.urlsplit(self.api_root).hostname or ""
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return host == "localhost"

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if self.is_local():
            return "no-key-for-a-local-server"  # the client insists on some key; a local server ignores it
        raise ReproError(
            f"set ${self.api_key_env} to use the teacher at {self.api_root} "
            "(a local server, e.g. OPENAI_BASE_URL=http://127.0.0.1:8080/v1, needs no key)"
        )

    def answer(self, examples: list[Example]) -> list[Demo]:
        import openai  # imported here: ~1 s that notebooks using other teachers do not pay

        key = self._api_key()
        with openai.OpenAI(
            api_key=key, base_url=self.api_root, max_retries=self.max_retries, timeout=self.timeout
        ) as client:
            pool = ThreadPoolExecutor(max(1, min(self.concurrency, len(examples))))
            try:
                futures = [pool.submit(self._ask, client, e) for e in examples]
                for f in as_completed(futures):  # the first failure is raised as soon as it happens
                    f.result()
                texts = [f.result() for f in futures]
            except openai.OpenAIError as err:
                raise ReproError(_one_line(self._explain(err, openai), key)) from None
            finally:  # on a failure or an interrupt: send nothing more, wait for nothing in flight
                pool.shutdown(wait=False, cancel_futures=True)
        out = []
        for e, text in zip(examples, texts):
            p = parse_answer(text, e)
            out.append(_demo(e, split_rationale(text), p, text, unparsed=p is None))
        return out

    def _ask(self, client, e: Example) -> str:
        raw = client.chat.completions.with_raw_response.create(
            model=self.model,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": self.prompt(e)}],
        )
        body = raw.http_response.text  # parsed here, not by the client: any malformed reply is a ReproError
        try:
            content = json.loads(body)["choices"][0]["message"]["content"]
        except json.JSONDecodeError:
            raise ReproError(f"{self.api_root} sent a reply that is not JSON: {body[:200]!r}") from None
        except (KeyError, IndexError, TypeError):
            raise ReproError(
                f"{self.api_root} sent a reply without choices[0].message.content: {body[:200]!r}"
            ) from None
        if content is not None and not isinstance(content, str):
            raise ReproError(f"{self.api_root} sent a message content that is not text: {body[:200]!r}")
        return content or ""

    def _explain(self, err, openai) -> str:
        """The user-facing line for an exception of the openai client."""
        request = getattr(err, "request", None)
        tries = 1 + int(request.headers.get("x-stainless-retry-count", 0)) if request is not None else None
        after = f" after {tries} attempt{'s' * (tries != 1)}" if tries else ""
        if isinstance(err, openai.APIStatusError):
            code = err.response.status_code
            if code in (401, 403):  # the body may quote (part of) the key
                return f"{self.api_root} refused the key (HTTP {code}{after}); check ${self.api_key_env}"
            return f"{self.api_root} answered HTTP {code}{after}: {err.response.text[:200]}"
        if isinstance(err, openai.APITimeoutError):
            return f"{self.api_root} did not answer within {self.timeout:g} s{after}"
        if isinstance(err, openai.APIConnectionError):
            cause = err.__cause__
            why = f"{type(cause).__name__}: {cause}" if cause else str(err)
            return f"could not reach {self.api_root}{after} ({why})"
        return f"{self.api_root}: {type(err).__name__}: {err}"


def _one_line(msg: str, secret: str) -> str:
    return " ".join(msg.replace(secret, "***").split())


# ---------------------------------------------------------------- factory, cache, annotate

KINDS = {"simulated": "simulated:EPS", "lm": "lm:MODEL", "openai": "openai:MODEL"}


def get_teacher(spec: str, settings: TeacherSettings | None = None, *, pool=None, **kwargs) -> Teacher:
    """'simulated:0.2[:random|hard]' | 'lm:gemma-3-270m' | 'openai:gpt-4o-mini' -> a teacher. `settings` (the
    preset's, resolved by lib.config) say how an LM teacher answers and which model ranks the `pool` questions
    of a simulated ...:hard teacher; kwargs go to the teacher's constructor and win. openai: base_url defaults
    to $OPENAI_BASE_URL or https://api.openai.com."""
    kind, _, arg = spec.partition(":")
    if kind not in KINDS or not arg:
        raise ReproError(f"unknown teacher {spec!r}; valid kinds: {', '.join(KINDS.values())}")
    if kind == "simulated":
        rate, _, mode = arg.partition(":")
        try:
            eps = float(rate)
        except ValueError:
            raise ReproError(
                f"simulated teacher needs an error rate, e.g. simulated:0.2, got {spec!r}"
            ) from None
        mode = check_choice("simulated teacher mode", mode or "random", SIM_MODES)
        if mode == "hard" and "difficulty" not in kwargs:
            if pool is None or settings is None or settings.reference is None:
                raise ReproError(f"{spec!r} needs its pool and a reference LM teacher to rank the questions")
            from .models import load_shared

            ref = load_shared(settings.reference, settings.precision)  # independent of the student and the TA
            kwargs["difficulty"], kwargs["plausible"] = reference_difficulty(ref, pool)
        return SimulatedTeacher(eps, mode=mode, **kwargs)
    if kind == "lm":
        if settings is not None:
            kwargs = {
                "answer_by": settings.answer_by,
                "max_new_tokens": settings.max_new_tokens,
                "n_shots": settings.n_shots,
                "batch_size": settings.batch_size,
                "precision": settings.precision,
                **kwargs,
            }
        return LMTeacher(arg, **kwargs)
    return OpenAITeacher(model=arg, **kwargs)


def cache_path(teacher: Teacher, dataset: str) -> Path:
    return cache_dir() / "teachers" / teacher.name / f"{dataset}.jsonl"


def _key(teacher: Teacher, e: Example) -> str:
    return stable_hash({"prompt": teacher.prompt(e), "config": teacher.config(), "v": CACHE_VERSION}, 16)


def _read_cache(path: Path) -> dict[tuple[str, str], Demo]:
    done = {}
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
                done[(rec["id"], rec["key"])] = Demo(**rec["demo"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a truncated tail of a killed run, or a foreign line: recompute that example
    return done


def _append(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        if f.tell() > 0:  # a killed run may have left a line without its newline: never glue onto it
            with open(path, "rb") as r:
                r.seek(-1, os.SEEK_END)
                if r.read(1) != b"\n":
                    f.write(b"\n")
        for rec in records:
            f.write((json.dumps(rec) + "\n").encode())  # one whole line per write
            f.flush()
        os.fsync(f.fileno())


def annotate(teacher: Teacher, examples: list[Example], dataset: str, progress: bool = True) -> list[Demo]:
    """Demos for `examples` in order; only examples missing from the cache go to the teacher, in batches,
    each batch appended to the cache as soon as it is answered (a killed run loses at most one batch)."""
    from tqdm.auto import tqdm

    path = cache_path(teacher, dataset)
    done = _read_cache(path)
    keys = [(e.id, _key(teacher, e)) for e in examples]
    todo = [(e, k) for e, k in zip(examples, keys) if k not in done]
    todo = list({k: (e, k) for e, k in todo}.values())  # a repeated example is asked once
    bs = max(1, teacher.batch_size)
    with tqdm(
        total=len(examples),
        initial=len(examples) - len(todo),
        disable=not (progress and todo and teacher.slow),
        desc=f"{teacher.name} {dataset}",
        leave=False,
    ) as bar:
        for s in range(0, len(todo), bs):
            chunk = todo[s : s + bs]
            demos = teacher.answer([e for e, _ in chunk])
            _append(path, [{"id": k[0], "key": k[1], "demo": asdict(d)} for (_, k), d in zip(chunk, demos)])
            done.update({k: d for (_, k), d in zip(chunk, demos)})
            bar.update(len(chunk))
    return [done[k] for k in keys]
