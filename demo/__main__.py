"""Run the whole data path on embedded defaults: app → PIIRedactingHandler → rotating files → agent → archive."""

from __future__ import annotations

import collections
import gzip
import io
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import zstandard

from presidio_logshield import PIIRedactingHandler, log_context

FIRST = ["Alice Johnson", "Bob Martinez", "Chen Wei", "Daniela Rossi", "Erik Larsen", "Fatima Khan"]
CITIES = ["Berlin", "Chicago", "Lisbon", "Toronto", "Osaka"]
CARDS = ["4111111111111111", "5500005555555559", "340000000000009"]


def traffic(log: logging.Logger, raw: list[str], n: int, rng: random.Random) -> None:
    """Sign-ups, payments, support tickets and errors with tracebacks, as a real service would log them."""
    for i in range(n):
        name = rng.choice(FIRST)
        email = name.lower().replace(" ", ".") + f"{i}@example.com"
        ip = f"203.0.113.{rng.randint(1, 254)}"
        with log_context(request_id=f"req-{i:05d}", session_id=f"s-{i % 17:03d}", actor=email):
            kind = i % 5
            if kind == 0:
                msg = ("signup from %s: %s <%s>, phone +1 415 555 %04d", ip, name, email, rng.randint(0, 9999))
                log.info(*msg, extra={"plan": "pro", "password": "S3cr3t!" + str(i)})
            elif kind == 1:
                msg = ("payment card %s accepted for order %d", rng.choice(CARDS), 1000 + i)
                log.info(*msg, extra={"amount_cents": rng.randint(100, 99999), "currency": "EUR"})
            elif kind == 2:
                msg = ("support ticket: '%s from %s says the invoice is wrong, call me back'", name,
                       rng.choice(CITIES))
                log.warning(*msg)
            elif kind == 3:
                msg = ("GET /api/v1/orders/%d 200 in %.1f ms", 1000 + i, rng.uniform(2, 80))
                log.info(*msg)
            else:
                msg = ("charge failed for %s", email)
                try:
                    raise ConnectionError(f"upstream https://svc:hunter2@payments.internal/charge refused {email}")
                except ConnectionError:
                    log.exception(*msg)
            raw.append(msg[0] % msg[1:])


def read_archive(root: Path) -> list[dict]:
    docs = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.endswith(".meta.json") or ".tmp" in path.name:
            continue
        data = path.read_bytes()
        if path.suffix == ".zst":
            data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
        elif path.suffix == ".gz":
            data = gzip.decompress(data)
        docs.extend(json.loads(line) for line in data.decode().splitlines() if line.strip())
    return docs


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="logshield-demo-"))
    logs, state = work / "logs", work / "state"
    print(f"demo directory: {work}\n")

    handler = PIIRedactingHandler(filename=logs / "app.log", service="shop-api", max_bytes=64 * 1024,
                                  backup_count=20)
    log = logging.getLogger("shop.api")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    raw: list[str] = []
    print("1. the application logs 600 requests through PIIRedactingHandler (NER mode, rotating files)…")
    traffic(log, raw, 600, random.Random(7))
    log.removeHandler(handler)
    handler.close()
    files = sorted(p.name for p in logs.iterdir())
    print(f"   wrote {len(files)} files: {', '.join(files[:4])}{' …' if len(files) > 4 else ''}\n")

    print("2. the agent ships them once (logshield-agent --once, embedded default sink: a local archive)…")
    env = dict(os.environ, LOGSHIELD_PATHS=str(logs / "app.log*"), LOGSHIELD_STATE_DIR=str(state),
               LOGSHIELD_SERVICE="shop-api", LOGSHIELD_HTTP_ADDR="off")
    agent = Path(sys.executable).with_name("logshield-agent")
    done = subprocess.run([str(agent), "--once"], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        print(done.stderr[-2000:])
        return done.returncode
    archive = state / "archive"
    objects = [p for p in archive.rglob("*") if p.is_file() and not p.name.endswith(".meta.json")]
    docs = read_archive(archive)
    print(f"   {len(objects)} objects, {len(docs)} records in {archive}\n")

    print("3. what the application logged vs what reached the archive:")
    by_message = {d.get("request_id"): d for d in docs}
    for i in (0, 1, 2, 4):
        doc = by_message.get(f"req-{i:05d}", {})
        print("   app    : " + textwrap.shorten(raw[i], 110))
        print("   archive: " + textwrap.shorten(doc.get("message", "?"), 110))
        if "exception" in doc:
            print("            exception: " + textwrap.shorten(doc["exception"]["message"], 96))
        print()

    counts: collections.Counter[str] = collections.Counter()
    for doc in docs:
        counts.update(doc.get("redaction", {}).get("entities", {}))
    print("4. redactions by entity type:")
    for entity, count in counts.most_common():
        print(f"   {entity:<22}{count:>6}")
    leaked = [d for d in docs if "hunter2" in json.dumps(d) or "@example.com" in json.dumps(d)]
    lost = len(raw) - len(docs)
    print(f"\nrecords logged {len(raw)}, archived {len(docs)} (lost {lost}); raw secrets or e-mails in archive: "
          f"{len(leaked)}")
    return 0 if not leaked and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
