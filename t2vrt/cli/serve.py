"""`t2vrt serve DIR`: the asynchronous video job API, in one process or on Ray Serve (--ray)."""

from __future__ import annotations

from t2vrt.cli.batch import add_ray_args, add_request_args, ray_options, request_defaults
from t2vrt.cli.options import HELP, load_options


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="HTTP video job API (POST /v1/videos), standalone or on Ray Serve",
                       formatter_class=HELP)
    p.add_argument("dir", help="engine directory")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    p.add_argument("-o", "--output-dir", default="videos", help="where finished videos are kept")
    p.add_argument("--max-queued", type=int, default=16, help="waiting jobs before POST answers 429")
    p.add_argument("--grace", type=float, default=30.0, help="seconds a running job gets to finish at shutdown")
    add_request_args(p)
    add_ray_args(p, "the service's replicas")
    p.set_defaults(func=run, retries=0)


def run(args) -> int:
    from t2vrt.errors import InputError

    if args.max_queued < 1 or args.grace < 0 or not 0 <= args.port < 65536:
        raise InputError(f"--max-queued {args.max_queued} must be >= 1, --grace {args.grace:g} >= 0 and --port "
                         f"{args.port} in [0, 65535]")
    from dataclasses import replace

    from t2vrt.runtime.media.paths import check_fps
    from t2vrt.serve.request import RequestChecker

    check_fps(args.fps)

    defaults = request_defaults(args)  # checked once here: a request that leaves a key out gets this default
    RequestChecker(args.dir)(replace(defaults, prompt="defaults"))
    common = dict(host=args.host, port=args.port, max_queued=args.max_queued, fps=args.fps,
                  options=load_options(args), defaults=defaults)
    if not args.ray:
        from t2vrt.serve.http import Service

        service = Service(args.dir, args.output_dir, **common)
        print(f"serving at {service.url}/v1/videos (Ctrl-C stops; running jobs get {args.grace:g} s)", flush=True)
        service.serve_until_signal(args.grace)
        return 0
    return serve_on_ray(args, common)


def serve_on_ray(args, common: dict) -> int:
    import signal
    import threading

    from t2vrt.serve.ray_batch import connect, resources

    ray = connect(None if args.ray == "local" else args.ray)
    workers, gpus = resources(ray, ray_options(args))
    from t2vrt.serve import ray_serve
    from t2vrt.serve.http import wait_for_signal

    board = ray_serve.start(args.dir, args.output_dir, replicas=workers, gpus_per_replica=gpus, grace_s=args.grace,
                            **common)
    print(f"serving at http://{args.host}:{args.port}/v1/videos on {workers} Ray Serve replicas (Ctrl-C stops)",
          flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    wait_for_signal(done)
    # A cluster that died with the signal (Ctrl-C reaches a local cluster's processes too) must not hang the exit.
    stopper = threading.Thread(target=ray_serve.stop, args=(board, args.grace), daemon=True)
    stopper.start()
    stopper.join(args.grace + 30)
    return 0
