import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from lib import teachers as T
from lib.common import ReproError
from lib.data import Example, load_dataset

SECRET = "sk-test-4f9c2e7a1b"  # must never reach a file


def numeric(i):  # the result also occurs mid-chain: only the final one may change
    a, b = 3 + i % 7, 10 + i % 5
    return Example(f"n{i}", "gsm8k", "numeric", f"Tom has {a} and gets {b}. How many?", str(a + b),
                   rationale=f"Tom has {a}. He gets {b}, {a + b} in all. {a} + {b} = {a + b}.")


def mc(i):  # no gold rationale, like CommonsenseQA / ARC
    return Example(f"m{i}", "commonsense_qa", "mc", f"Which is a fruit {i}?", "apple", ["saw", "apple", "red", "dog"], 1)


@pytest.fixture
def tcache(monkeypatch, tmp_path):
    monkeypatch.setattr(T, "cache_dir", lambda: tmp_path)
    return tmp_path


class Counting(T.SimulatedTeacher):
    """A simulated teacher that records every batch it is asked (to see cache hits)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.asked = []
        self.batch_size = 2

    def answer(self, examples):
        self.asked.append([e.id for e in examples])
        return super().answer(examples)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3, 1.0])
def test_simulated_error_rate_is_honoured_on_average(eps):
    exs = [numeric(i) for i in range(1000)] + [mc(i) for i in range(1000)]
    demos = T.SimulatedTeacher(eps, seed=3).answer(exs)
    wrong = sum(not d.true_correct for d in demos) / len(demos)
    # binomial standard error; 4 sigma (exact at eps 0 and 1)
    assert abs(wrong - eps) <= 4 * (eps * (1 - eps) / len(demos)) ** 0.5


def test_simulated_is_deterministic_per_id_and_nested_across_rates():
    exs = [numeric(i) for i in range(300)]
    a = T.SimulatedTeacher(0.3, seed=1).answer(exs)
    b = T.SimulatedTeacher(0.3, seed=1).answer(exs[::-1])[::-1]  # order / batch does not matter
    assert a == b
    c = T.SimulatedTeacher(0.3, seed=2).answer(exs)
    assert [d.true_correct for d in a] != [d.true_correct for d in c]
    low = T.SimulatedTeacher(0.1, seed=1).answer(exs)
    assert {d.id for d in low if not d.true_correct} <= {d.id for d in a if not d.true_correct}


def test_simulated_true_correct_matches_what_was_written():
    exs = [numeric(i) for i in range(200)] + [mc(i) for i in range(200)]
    for d, e in zip(T.SimulatedTeacher(0.5, seed=0).answer(exs), exs):
        assert d.correct == d.true_correct == (d.answer == e.answer)
        if e.kind == "numeric":
            assert d.rationale == (e.rationale if d.true_correct else e.rationale[: e.rationale.rindex(e.answer)] + f"{d.answer}.")
        else:
            assert d.answer in e.choices and d.answer in d.rationale  # templated rationale names its answer
        assert d.raw.endswith(f"So the answer is {d.answer}.")
    # a corrupted step keeps the answer: right vs gold, yet not a true demonstration
    step = T.SimulatedTeacher(0.5, seed=0, corrupt="step").answer(exs[:200])
    bad = [(d, e) for d, e in zip(step, exs) if not d.true_correct]
    assert bad and all(d.correct and d.answer == e.answer and d.rationale != e.rationale for d, e in bad)


def test_second_annotate_asks_nothing(tcache):
    exs = [numeric(i) for i in range(5)]
    t = Counting(0.4, seed=0)
    first = T.annotate(t, exs, "gsm8k", progress=False)
    assert sum(map(len, t.asked)) == 5
    t2 = Counting(0.4, seed=0)
    assert T.annotate(t2, exs, "gsm8k", progress=False) == first and t2.asked == []
    # same ids, other content (e.g. smoke vs offline data) is a different prompt: asked again
    changed = [Example(e.id, e.dataset, e.kind, e.question + " Exactly?", e.answer, rationale=e.rationale) for e in exs]
    T.annotate(t2, changed, "gsm8k", progress=False)
    assert sum(map(len, t2.asked)) == 5


def test_truncated_last_line_is_ignored_and_recomputed(tcache):
    exs = [numeric(i) for i in range(5)]
    first = T.annotate(Counting(0.4), exs, "gsm8k", progress=False)
    path = T.cache_path(Counting(0.4), "gsm8k")
    text = path.read_text()
    path.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])  # kill mid-line: no newline
    t = Counting(0.4)
    assert T.annotate(t, exs, "gsm8k", progress=False) == first
    assert t.asked == [[exs[-1].id]]
    # the new line did not glue onto the broken one: a third run asks nothing
    t3 = Counting(0.4)
    assert T.annotate(t3, exs, "gsm8k", progress=False) == first and t3.asked == []


@pytest.mark.parametrize("answer_by", ["generate", "options"])
def test_lm_teacher_on_tiny_llama_never_crashes_on_garbage(tcache, answer_by):
    exs = [e for d in ("strategyqa", "commonsense_qa", "gsm8k") for e in load_dataset(d, "smoke")[:3]]
    t = T.LMTeacher("tiny-llama", answer_by=answer_by, max_new_tokens=10, n_shots=4, batch_size=4)
    demos = T.annotate(t, exs, "mixed", progress=False)
    assert len(demos) == len(exs) and all(isinstance(d, T.Demo) for d in demos)
    for d, e in zip(demos, exs):
        assert d.correct == (d.answer is not None and d.answer.lower() == e.answer.lower())
        if answer_by == "options" and e.choices:
            assert d.answer in e.choices
        else:
            assert d.unparsed == (d.answer is None)
    # cache hit: a fresh teacher never even loads the model
    t2 = T.LMTeacher("tiny-llama", answer_by=answer_by, max_new_tokens=10, n_shots=4, batch_size=4)
    assert T.annotate(t2, exs, "mixed", progress=False) == demos and t2._lm is None


def test_lm_teacher_options_takes_the_best_scored_option(tiny_causal):
    from lib.evaluation import option_scores

    exs = [e for d in ("strategyqa", "commonsense_qa") for e in load_dataset(d, "smoke")[:3]]
    t = T.LMTeacher("tiny-llama", answer_by="options", max_new_tokens=6, n_shots=4, batch_size=16,
                    lm=tiny_causal)
    got = [d.answer for d in t.answer(exs)]
    assert got == [e.choices[int(s.argmax())] for e, s in zip(exs, option_scores(tiny_causal, exs))]


# ---------------------------------------------------------------- OpenAI-compatible endpoint, real local server

@pytest.fixture
def server():
    state = {"n": 0, "auth": [], "fail_first": 1, "code": 500}

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            state["n"] += 1
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["auth"].append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != f"Bearer {SECRET}" or self.path != "/v1/chat/completions":
                return self._send(401, {"error": "bad key"})
            if state["fail_first"] > 0:
                state["fail_first"] -= 1
                return self._send(state["code"], {"error": "try again"})
            assert body["messages"][-1]["role"] == "user"
            self._send(200, {"choices": [{"message": {"role": "assistant", "content": "Pears float. So the answer is no."}}]})

        def _send(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()
    httpd.server_close()


YN = [Example("y1", "strategyqa", "yesno", "Would a pear sink in water?", "no", ["yes", "no"], 1),
      Example("y2", "strategyqa", "yesno", "Do fish swim?", "yes", ["yes", "no"], 0)]


def test_openai_teacher_retries_caches_and_never_stores_the_key(tcache, server, monkeypatch):
    url, state = server
    monkeypatch.setenv("TEST_TEACHER_KEY", SECRET)
    t = T.get_teacher("openai:tiny-chat", base_url=url, api_key_env="TEST_TEACHER_KEY", backoff=0.01)
    demos = T.annotate(t, YN, "strategyqa", progress=False)
    assert state["n"] == 3  # one 500, retried, then one request per example
    assert set(state["auth"]) == {f"Bearer {SECRET}"}
    assert [d.answer for d in demos] == ["no", "no"] and [d.correct for d in demos] == [True, False]
    assert demos[0].rationale == "Pears float."
    t2 = T.get_teacher("openai:tiny-chat", base_url=url, api_key_env="TEST_TEACHER_KEY", backoff=0.01)
    assert T.annotate(t2, YN, "strategyqa", progress=False) == demos and state["n"] == 3  # cache hit: no request
    files = [p for p in tcache.rglob("*") if p.is_file()]
    assert files and all(SECRET.encode() not in p.read_bytes() for p in files)
    assert SECRET not in repr(vars(t)) + json.dumps(t.config())


def test_openai_teacher_errors_are_one_line(tcache, server, monkeypatch):
    url, state = server
    monkeypatch.delenv("TEST_TEACHER_KEY", raising=False)
    t = T.OpenAITeacher(url, "m", api_key_env="TEST_TEACHER_KEY", backoff=0.01, max_retries=2)
    with pytest.raises(ReproError, match=r"set \$TEST_TEACHER_KEY"):
        t.answer(YN[:1])
    monkeypatch.setenv("TEST_TEACHER_KEY", "wrong")
    with pytest.raises(ReproError, match="HTTP 401"):  # a client error is not retried
        t.answer(YN[:1])
    assert state["n"] == 1
    monkeypatch.setenv("TEST_TEACHER_KEY", SECRET)
    state.update(fail_first=5, code=429)
    with pytest.raises(ReproError, match=r"after 3 attempts \(last: HTTP 429\)"):
        t.answer(YN[:1])
    assert state["n"] == 4


def test_get_teacher_specs():
    assert isinstance(T.get_teacher("simulated:0.2"), T.SimulatedTeacher) and T.get_teacher("simulated:0.2").error_rate == 0.2
    assert isinstance(T.get_teacher("lm:gemma-3-270m", preset="offline"), T.LMTeacher)  # lazy: nothing loaded
    assert isinstance(T.get_teacher("openai:gpt-4o-mini", base_url="http://x"), T.OpenAITeacher)
    with pytest.raises(ReproError, match="unknown teacher 'gpt:4'; valid kinds: simulated:EPS, lm:MODEL, openai:MODEL"):
        T.get_teacher("gpt:4")
    with pytest.raises(ReproError, match="error rate"):
        T.get_teacher("simulated:high")
    with pytest.raises(ReproError, match=r"error_rate must be in \[0, 1\]"):
        T.get_teacher("simulated:1.5")
