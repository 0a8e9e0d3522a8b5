import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from lib import config
from lib import teachers as T
from lib.common import ReproError
from lib.data import Example, load_dataset

SECRET = "sk-test-4f9c2e7a1b"  # must never reach a file


def numeric(i):  # the result also occurs mid-chain: only the final one may change
    a, b = 3 + i % 7, 10 + i % 5
    return Example(
        f"n{i}",
        "gsm8k",
        "numeric",
        f"Tom has {a} and gets {b}. How many?",
        str(a + b),
        rationale=f"Tom has {a}. He gets {b}, {a + b} in all. {a} + {b} = {a + b}.",
    )


def mc(i):  # no gold rationale, like CommonsenseQA / ARC
    return Example(
        f"m{i}", "commonsense_qa", "mc", f"Which is a fruit {i}?", "apple", ["saw", "apple", "red", "dog"], 1
    )


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
            assert d.rationale == (
                e.rationale
                if d.true_correct
                else e.rationale[: e.rationale.rindex(e.answer)] + f"{d.answer}."
            )
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
    changed = [
        Example(e.id, e.dataset, e.kind, e.question + " Exactly?", e.answer, rationale=e.rationale)
        for e in exs
    ]
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
    exs = [e for d in ("boolq", "commonsense_qa", "gsm8k") for e in load_dataset(d, "smoke")[:3]]
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

    exs = [e for d in ("boolq", "commonsense_qa") for e in load_dataset(d, "smoke")[:3]]
    t = T.LMTeacher(
        "tiny-llama", answer_by="options", max_new_tokens=6, n_shots=4, batch_size=16, lm=tiny_causal
    )
    got = [d.answer for d in t.answer(exs)]
    assert got == [e.choices[int(s.argmax())] for e, s in zip(exs, option_scores(tiny_causal, exs))]


# ---------------------------------------------------------------- OpenAI-compatible API, real local server


class ChatServer:
    """A /v1/chat/completions server on a free 127.0.0.1 port, one thread per request. It answers
    numeric(i) questions right after a delay that depends on the question (so replies finish out of order),
    unless `plan` holds scripted (status, headers, body) replies, which go first. It records each request's
    arrival time and Authorization header and the most requests it had in flight at once."""

    def __init__(self):
        self.plan, self.times, self.auth, self.paths = [], [], [], []
        self.inflight = self.max_inflight = 0
        self.slow = 0.0  # extra seconds before each unscripted reply
        self.reject = None  # a question "Tom has <reject> ..." gets an HTTP 400 at once
        self.lock = threading.Lock()
        srv = self

        class H(BaseHTTPRequestHandler):
            timeout = 5  # a stuck client cannot hold a handler thread

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with srv.lock:
                    srv.times.append(time.monotonic())
                    srv.auth.append(self.headers.get("Authorization"))
                    srv.paths.append(self.path)
                    scripted = srv.plan.pop(0) if srv.plan else None
                    srv.inflight += 1
                    srv.max_inflight = max(srv.max_inflight, srv.inflight)
                try:
                    reply = scripted or self._answer(body)
                finally:  # out of flight before the reply is written: the client may ask again at once
                    with srv.lock:
                        srv.inflight -= 1
                self._send(*reply)

            def _answer(self, body):
                prompt = body["messages"][-1]["content"]
                asked = re.findall(r"Question: Tom has (\d+) and gets (\d+)", prompt)
                a, b = map(int, asked[-1])  # the last question; the ones before are the few-shot demos
                if a == srv.reject:
                    return 400, {}, {"error": f"no questions about {a}"}
                time.sleep(srv.slow + 0.05 * (a % 4))
                text = f"Tom has {a}. He gets {b}. So the answer is {a + b}."
                return 200, {}, {"choices": [{"message": {"role": "assistant", "content": text}}]}

            def _send(self, code, headers, obj):
                data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
                self.send_response(code)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None  # a reply to a client that gave up is no test failure
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.bound = threading.Timer(60, self.httpd.shutdown)  # stops by itself even if teardown never runs
        self.bound.daemon = True
        self.bound.start()

    def close(self):
        self.bound.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = ChatServer()
    yield srv
    srv.close()


@pytest.fixture
def nokey(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TEST_TEACHER_KEY"):
        monkeypatch.delenv(var, raising=False)


def one_line_error(excinfo) -> str:
    """The message of a ReproError that is one line, with no chained traceback (e.g. of a JSONDecodeError)."""
    err = excinfo.value
    assert type(err) is ReproError and "\n" not in str(err) and err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__
    return str(err)


def test_openai_teacher_concurrent_in_order_cached_and_never_stores_the_key(
    tcache, server, nokey, monkeypatch
):
    monkeypatch.setenv("TEST_TEACHER_KEY", SECRET)
    batches = []
    append = T._append
    monkeypatch.setattr(T, "_append", lambda path, recs: (batches.append(len(recs)), append(path, recs)))
    exs = [numeric(i) for i in range(12)]
    t = T.get_teacher(
        "openai:tiny-chat", base_url=server.url, api_key_env="TEST_TEACHER_KEY", concurrency=4, batch_size=8
    )
    demos = T.annotate(t, exs, "gsm8k", progress=False)
    assert 1 < server.max_inflight <= 4 and batches == [8, 4] and len(server.times) == 12
    assert set(server.paths) == {"/v1/chat/completions"} and set(server.auth) == {f"Bearer {SECRET}"}
    for d, e in zip(demos, exs):  # in input order although the replies finished out of order
        a, b = e.question.split()[2], e.question.split()[5].rstrip(".")
        assert (d.id, d.rationale, d.answer) == (e.id, f"Tom has {a}. He gets {b}.", e.answer) and d.correct
    t2 = T.get_teacher("openai:tiny-chat", base_url=server.url, api_key_env="TEST_TEACHER_KEY", concurrency=2)
    n = len(server.times)
    assert T.annotate(t2, exs, "gsm8k", progress=False) == demos and len(server.times) == n  # cache hit
    files = [p for p in tcache.rglob("*") if p.is_file()]
    assert files and all(SECRET.encode() not in p.read_bytes() for p in files)
    assert SECRET not in repr(vars(t)) + json.dumps(t.config())


@pytest.mark.parametrize("code", [429, 503])
def test_openai_teacher_waits_as_long_as_retry_after_says(server, nokey, code):
    server.plan = [(code, {"Retry-After": "1"}, {"error": "slow down"})]
    t = T.OpenAITeacher("m", base_url=server.url, max_retries=2)
    [d] = t.answer([numeric(3)])
    assert d.answer == "19" and len(server.times) == 2
    # the client's own backoff would wait at most 0.5 s: this wait is the header's
    assert 0.95 <= server.times[1] - server.times[0] < 3


@pytest.mark.parametrize(
    "body",
    [
        b"<html>Bad gateway</html>",
        b'{"choices": [{"mess',
        {"id": "x"},
        {"choices": []},
        {"choices": [{"message": None}]},
    ],
)
def test_openai_teacher_malformed_reply_is_one_line_error(server, nokey, body):
    server.plan = [(200, {}, body)]
    with pytest.raises(ReproError) as ex:
        T.OpenAITeacher("m", base_url=server.url).answer([numeric(1)])
    what = r"(that is not JSON|without choices\[0\]\.message\.content)"
    assert re.match(rf"http://127\.0\.0\.1:\d+/v1 sent a reply {what}: ", one_line_error(ex))
    assert len(server.times) == 1


def test_openai_teacher_client_errors_fail_at_once_and_never_show_the_key(server, nokey, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    t = T.OpenAITeacher("m", base_url=server.url, max_retries=3)
    server.plan = [(400, {}, {"error": {"message": f"unknown model 'm'\nfor key {SECRET}"}})]
    with pytest.raises(ReproError) as ex:
        t.answer([numeric(1)])
    msg = one_line_error(ex)
    assert re.search(r"answered HTTP 400 after 1 attempt: .*unknown model 'm' ?.*for key \*\*\*", msg)
    server.plan = [(401, {}, {"error": f"Incorrect API key provided: {SECRET}"})]
    with pytest.raises(ReproError) as ex:
        t.answer([numeric(1)])
    assert one_line_error(ex).endswith("refused the key (HTTP 401 after 1 attempt); check $OPENAI_API_KEY")
    assert len(server.times) == 2  # neither was retried
    # a failure is raised at once, without waiting for the other requests in flight
    server.reject, server.slow = 6, 5  # numeric(3) (Tom has 6), the last of four, refused; the rest take 5 s
    start = time.monotonic()
    with pytest.raises(ReproError, match="HTTP 400 after 1 attempt: .*no questions about 6"):
        T.OpenAITeacher("m", base_url=server.url, concurrency=4).answer([numeric(i) for i in range(4)])
    assert time.monotonic() - start < 2


def test_openai_teacher_gives_up_after_max_retries(server, nokey):
    server.plan = [(500, {}, {"error": "boom"})] * 3
    with pytest.raises(ReproError) as ex:
        T.OpenAITeacher("m", base_url=server.url, max_retries=1).answer([numeric(1)])
    assert re.search(r"answered HTTP 500 after 2 attempts: .*boom", one_line_error(ex))
    assert len(server.times) == 2
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ReproError) as ex:
        T.OpenAITeacher("m", base_url=f"http://127.0.0.1:{port}", max_retries=1).answer([numeric(1)])
    assert re.match(
        rf"could not reach http://127\.0\.0\.1:{port}/v1 after 2 attempts \(ConnectError", one_line_error(ex)
    )


def test_openai_teacher_needs_no_key_for_a_local_server(tcache, server, nokey, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    t = T.get_teacher("openai:local")
    assert t.base_url == server.url + "/v1" and t.api_root == server.url + "/v1"
    demos = T.annotate(t, [numeric(1), numeric(2)], "gsm8k", progress=False)
    assert [d.answer for d in demos] == ["15", "17"]
    assert len(server.auth) == 2 and all(a and a.startswith("Bearer ") for a in server.auth)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-set-later")  # a server run with --api-key: its key is sent
    assert t.answer([numeric(3)])[0].answer == "19" and server.auth[-1] == "Bearer sk-set-later"
    for url, local in [
        ("http://localhost:8080", True),
        ("http://[::1]:8000/v1", True),
        ("http://127.0.0.1", True),
        ("https://api.openai.com", False),
        ("http://localhost.example.com/v1", False),
        ("http://10.0.0.5:8000/v1", False),
    ]:
        assert T.OpenAITeacher("m", base_url=url).is_local() == local, url


def test_openai_teacher_remote_without_key_asks_for_it(nokey):
    t = T.get_teacher("openai:gpt-4o-mini", base_url="https://api.openai.com", api_key_env="TEST_TEACHER_KEY")
    with pytest.raises(ReproError) as ex:
        t.answer([numeric(1)])
    assert one_line_error(ex).startswith(
        "set $TEST_TEACHER_KEY to use the teacher at https://api.openai.com/v1 "
    )
    assert T.get_teacher("openai:gpt-4o-mini").base_url == "https://api.openai.com"  # the default endpoint


def test_get_teacher_specs():
    assert (
        isinstance(T.get_teacher("simulated:0.2"), T.SimulatedTeacher)
        and T.get_teacher("simulated:0.2").error_rate == 0.2
    )
    settings = config.params("offline", "teachers").teacher_settings
    assert isinstance(T.get_teacher("lm:gemma-3-270m", settings), T.LMTeacher)  # lazy: nothing loaded
    assert isinstance(T.get_teacher("openai:gpt-4o-mini", base_url="http://x"), T.OpenAITeacher)
    with pytest.raises(
        ReproError, match="unknown teacher 'gpt:4'; valid kinds: simulated:EPS, lm:MODEL, openai:MODEL"
    ):
        T.get_teacher("gpt:4")
    with pytest.raises(ReproError, match="error rate"):
        T.get_teacher("simulated:high")
    with pytest.raises(ReproError, match=r"error_rate must be in \[0, 1\]"):
        T.get_teacher("simulated:1.5")


def test_the_hard_simulated_teacher_errs_on_the_questions_its_reference_ranks_hardest():
    exs = [
        Example(f"q{i}", "commonsense_qa", "mc", f"Question {i}?", "apple", ["apple", "pear", "plum"], 0)
        for i in range(10)
    ]
    difficulty = {e.id: i / 10 for i, e in enumerate(exs)}  # q9 hardest, q0 easiest
    plausible = {e.id: 2 for e in exs}  # the reference finds "plum" the likeliest wrong option
    t = T.SimulatedTeacher(0.3, mode="hard", difficulty=difficulty, plausible=plausible)
    demos = t.answer(exs)
    assert [d.id for d in demos if not d.true_correct] == ["q7", "q8", "q9"]  # round(0.3 * 10) hardest
    for d in demos:
        assert d.answer == ("plum" if not d.true_correct else "apple") and d.correct == d.true_correct
        assert d.answer in d.rationale  # the rationale argues for the answer it gives
    with pytest.raises(ReproError, match="knows the difficulty of its pool only"):
        t.answer([Example("x", "commonsense_qa", "mc", "?", "a", ["a", "b"], 0)])
    with pytest.raises(ReproError, match="needs its pool"):
        T.get_teacher("simulated:0.3:hard")
    assert T.get_teacher("simulated:0.3").config() == T.get_teacher("simulated:0.3:random").config()


def test_reference_difficulty_by_hand(tiny_causal, tmp_path, monkeypatch):
    from lib.evaluation import option_scores

    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    exs = [
        Example("a", "commonsense_qa", "mc", "Which is a fruit?", "apple", ["saw", "apple", "red"], 1),
        Example("b", "boolq", "yesno", "Is 9 larger than 4?", "yes", ["yes", "no"], 0),
    ]
    diff, plaus = T.reference_difficulty(tiny_causal, exs)
    for e, s in zip(exs, option_scores(tiny_causal, exs)):
        p = np.exp(s) / np.exp(s).sum()
        assert diff[e.id] == pytest.approx(1 - p[e.label], rel=1e-6)
        assert plaus[e.id] == max((i for i in range(len(s)) if i != e.label), key=lambda i: s[i])
