"""``python -m treasury.sandbox``: run the sandbox exchange until Ctrl-C / SIGTERM.

Prints exactly one line, ``sandbox listening on http://HOST:PORT``, once it accepts
connections, so a test or a script can wait for it; errors go to stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from treasury.sandbox.configreader import ConfigError
from treasury.sandbox.ledger import JournalInUse
from treasury.sandbox.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m treasury.sandbox", description="Local Binance capital API sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only)")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one")
    parser.add_argument("--config", help="JSON config file (default: the built-in config)")
    parser.add_argument("--state", help="journal file; replayed on start (default: in memory)")
    parser.add_argument("--faults", help="JSON file of faults to set at start")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback host")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    try:
        serve(
            args.host,
            args.port,
            args.config,
            args.state,
            args.faults,
            allow_remote=args.allow_remote,
            access_log=args.access_log,
            on_ready=lambda url: print(f"sandbox listening on {url}", flush=True),
        )
    except (ConfigError, JournalInUse, ValueError, OSError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
