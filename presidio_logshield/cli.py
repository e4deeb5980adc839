"""``logshield`` console script: ``reveal`` decrypts ``enc:`` tokens, ``scan`` counts what would be redacted."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from typing import IO

from .config import ConfigError, load_redaction_config

__all__ = ["main"]

EXIT_USAGE = 2


def _open_lines(path: str) -> Iterator[str]:
    if path == "-":
        yield from sys.stdin
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        yield from handle


def _audit_reveal(path: str) -> None:
    # TODO(issue 4): presidio_logshield.audit.access records who revealed what before anything is decrypted.
    try:
        from .audit.access import audit_reveal  # type: ignore[import-not-found]
    except ImportError:
        return
    audit_reveal(source=path, command="reveal")


def _reveal(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .operators import reveal_text

    try:
        config = load_redaction_config()
    except ConfigError as exc:
        print(f"logshield reveal: {exc}", file=err)
        return EXIT_USAGE
    if config.encryption_key is None:
        print("logshield reveal: no decryption key: set LOGSHIELD_ENCRYPTION_KEY or "
              "LOGSHIELD_ENCRYPTION_KEY_FILE", file=err)
        return EXIT_USAGE
    _audit_reveal(args.file)
    total = 0
    for line in _open_lines(args.file):
        text, count = reveal_text(line.rstrip("\n"), config)
        total += count
        out.write(text + "\n")
    print(f"logshield reveal: {total} value(s) decrypted", file=err)
    return 0


def _scan(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .redactor import RedactionSummary, Redactor

    try:
        config = load_redaction_config(**({"detection": args.mode} if args.mode else {}))
    except ConfigError as exc:
        print(f"logshield scan: {exc}", file=err)
        return EXIT_USAGE
    redactor = Redactor(config)
    total = RedactionSummary()
    lines = changed = 0
    batch: list[object] = []

    def flush() -> None:
        nonlocal changed
        for _, summary in redactor.redact_batch(batch):
            changed += bool(summary)
            total.merge(summary)
        batch.clear()

    for line in _open_lines(args.file):
        lines += 1
        raw = line.rstrip("\n")
        try:
            batch.append(json.loads(raw) if raw.startswith(("{", "[")) else raw)
        except ValueError:
            batch.append(raw)
        if len(batch) >= 256:
            flush()
    flush()
    report = {"lines": lines, "lines_with_findings": changed, **(total.as_dict() or {"entities": {}, "rules": []})}
    out.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = argparse.ArgumentParser(prog="logshield", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    reveal = sub.add_parser("reveal", help="decrypt enc: tokens made with LOGSHIELD_ENCRYPTION_KEY(_FILE)")
    reveal.add_argument("file", nargs="?", default="-", help="JSON-lines or text file, '-' for stdin")
    scan = sub.add_parser("scan", help="dry run: count what would be redacted (never prints values)")
    scan.add_argument("file", help="JSON-lines or text file, '-' for stdin")
    scan.add_argument("--mode", choices=("patterns", "full"), help="override LOGSHIELD_DETECTION")
    args = parser.parse_args(argv)
    if args.command == "reveal":
        return _reveal(args, out, err)
    return _scan(args, out, err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
