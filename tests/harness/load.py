"""A small, bounded HTTP load generator, run as a process of its own.

    python tests/harness/load.py --port 8000 --host obcms.example.org --threads 8 \
        --duration 10 --max-requests 2000 --slow-every 3 --slow-path /slow/?seconds=2.5 \
        --fast-path /db/ --out results.jsonl

Each thread opens a new connection per request (no keep-alive), so that every
request is a connection attempt too, and writes one JSON line per request:
when it started, when the connection was established and the request written
(monotonic clock, comparable across processes on Linux), and the outcome:
"ok" (the status is in "status"), "refused", "reset", "timeout" or "error".
Each line is written to --out as soon as its request ends, so that a test
can watch the load progress; lines are in the order requests ended. It stops
after --duration seconds or --max-requests requests, whichever comes first
(a thread also stops after --stop-after-refused refusals in a row), and
exits 0. It prints "started" on stdout once its threads run.
"""

import argparse
import http.client
import itertools
import json
import sys
import threading
import time


def one_request(args, path):
    record = {"path": path, "start": time.monotonic(), "connected": None, "sent": None, "end": None}
    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=args.timeout)
    try:
        try:
            connection.connect()
        except ConnectionRefusedError:
            record["outcome"] = "refused"
            return record
        record["connected"] = time.monotonic()
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", args.host)
        connection.putheader("X-Forwarded-Proto", "https")
        connection.putheader("Connection", "close")
        connection.endheaders()
        record["sent"] = time.monotonic()
        response = connection.getresponse()
        response.read()
        record["outcome"], record["status"] = "ok", response.status
    except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
        record["outcome"] = "reset"
    except TimeoutError:
        record["outcome"] = "timeout"
    except OSError as error:
        record["outcome"], record["error"] = "error", repr(error)
    finally:
        record["end"] = time.monotonic()
        connection.close()
    return record


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--slow-every", type=int, default=3, help="every n-th request of a thread is slow (0: none)")
    parser.add_argument("--slow-path", default="/slow/?seconds=2.5")
    parser.add_argument("--fast-path", default="/db/")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between a thread's requests")
    parser.add_argument("--stop-after-refused", type=int, default=0, help="a thread stops after n refusals in a row")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    deadline = time.monotonic() + args.duration
    counter = itertools.count()
    lock = threading.Lock()
    out = open(args.out, "w")  # noqa: SIM115 - written by every thread until the end

    def run(thread_number):
        refused = 0
        for n in itertools.count(thread_number):
            if time.monotonic() > deadline or next(counter) >= args.max_requests:
                return
            slow = args.slow_every and n % args.slow_every == 0
            record = one_request(args, args.slow_path if slow else args.fast_path)
            with lock:
                out.write(json.dumps(record) + "\n")
                out.flush()
            refused = refused + 1 if record["outcome"] == "refused" else 0
            if args.stop_after_refused and refused >= args.stop_after_refused:
                return
            time.sleep(args.pause)

    threads = [threading.Thread(target=run, args=(number,)) for number in range(args.threads)]
    for thread in threads:
        thread.start()
    print("started", flush=True)
    for thread in threads:
        # Bounded: every request ends within its timeout after the deadline.
        thread.join(args.duration + 2 * args.timeout)
    with lock:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
