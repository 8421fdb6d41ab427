"""A visitor's process for bench/cpu_overhead.py: gradio_client calls timed on command, away from the server's GIL.

    python bench/api_client.py URL FLOOR_URL TOKEN MODEL STEPS

Reads one command per line on stdin (`plain`, `reusing`, `noop`; an empty line ends it) and answers each with one JSON
line: the call's wall time and the CPU time gradio_client spent building its httpx clients during it (each builds a
certificate-verifying TLS context unless it is given one). A visitor's client runs on another machine; in the server's
process it would share the interpreter lock with the pipeline and slow both.
"""
from __future__ import annotations

import json
import ssl
import sys
import time


def main(argv: list[str]) -> int:
    import httpx
    from gradio_client import Client

    url, floor_url, token, model, steps = argv
    building = [0.0]
    original = httpx.Client.__init__

    def timed_init(self, *args, **kwargs):  # counts what gradio_client's own clients cost to build, nothing else
        started = time.perf_counter()
        original(self, *args, **kwargs)
        building[0] += time.perf_counter() - started

    httpx.Client.__init__ = timed_init
    plain = Client(url, verbose=False)
    reusing = Client(url, verbose=False, ssl_verify=ssl.create_default_context())  # one TLS context, built here
    floor = Client(floor_url, verbose=False, ssl_verify=ssl.create_default_context())
    calls = {
        "plain": lambda: plain.predict(prompt="a lighthouse at dusk", model=model, seed=7, steps=int(steps), guidance=5.0,
                                       token=token, api_name="/text_to_image"),
        "reusing": lambda: reusing.predict(prompt="a lighthouse at dusk", model=model, seed=7, steps=int(steps),
                                           guidance=5.0, token=token, api_name="/text_to_image"),
        "noop": lambda: floor.predict("x", api_name="/noop"),
    }
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if not command:
            break
        building[0] = 0.0
        started = time.perf_counter()
        calls[command]()
        print(json.dumps({"s": time.perf_counter() - started, "building_s": building[0]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
