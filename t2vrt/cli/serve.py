"""`t2vrt serve DIR`: OpenAI's /v1/videos protocol (and a page at /), in one process or on Ray Serve (--ray)."""

from __future__ import annotations

from t2vrt.cli.batch import add_ray_args, add_request_args, ray_options, request_defaults
from t2vrt.cli.options import HELP, load_options


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="OpenAI's /v1/videos API and a page at /, standalone or on Ray Serve",
                       formatter_class=HELP)
    p.add_argument("dir", help="engine directory")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    p.add_argument("-o", "--output-dir", default="videos", help="where finished videos and the job table are kept")
    p.add_argument("--keep-hours", type=float, default=24.0,
                   help="finished videos are kept (across restarts) this long, then removed")
    p.add_argument("--served-model-name", default=None,
                   help="the model name clients send and /v1/models lists; default: the engine directory's name")
    p.add_argument("--max-queued", type=int, default=16, help="waiting jobs before POST answers 429")
    p.add_argument("--grace", type=float, default=30.0, help="seconds a running job gets to finish at shutdown")
    add_request_args(p, "request")
    add_ray_args(p, "the service's replicas")
    p.set_defaults(func=run, retries=0, seed=None)  # a request without a seed: --seed, else a random one


def run(args) -> int:
    from t2vrt.errors import InputError

    if args.max_queued < 1 or args.grace < 0 or not 0 <= args.port < 65536 or not args.keep_hours > 0:
        raise InputError(f"--max-queued {args.max_queued} must be >= 1, --grace {args.grace:g} >= 0, --keep-hours "
                         f"{args.keep_hours:g} > 0 and --port {args.port} in [0, 65535]")
    from t2vrt.runtime.media.paths import check_fps
    from t2vrt.serve.api import APIError, parse_create
    from t2vrt.serve.service import served_model

    check_fps(args.fps)
    defaults = request_defaults(args)  # checked once here: a request that leaves a key out gets this default
    try:
        parse_create({"prompt": "the defaults"}, served_model(args.dir, None, defaults, args.fps), has_file=False)
    except APIError as e:
        raise InputError(f"the request defaults: {e.args[0]}") from None
    common = dict(host=args.host, port=args.port, max_queued=args.max_queued, fps=args.fps,
                  options=load_options(args), defaults=defaults, keep_hours=args.keep_hours,
                  model_name=args.served_model_name)
    if not args.ray:
        from t2vrt.serve.service import Service

        service = Service(args.dir, args.output_dir, **common)
        print(f"serving at {service.url}/v1/videos, the page at {service.url}/ (Ctrl-C stops; the running job gets "
              f"{args.grace:g} s, a second Ctrl-C stops it at once)", flush=True)
        service.serve_until_signal(args.grace)
        return 0
    return serve_on_ray(args, common)


def serve_on_ray(args, common: dict) -> int:
    import signal
    import threading
    import time

    from t2vrt.serve.ray_batch import connect, resources

    ray = connect(None if args.ray == "local" else args.ray)
    workers, gpus = resources(ray, ray_options(args))
    from t2vrt.serve import ray_serve
    from t2vrt.serve.service import wait_for_signal

    board = ray_serve.start(args.dir, args.output_dir, replicas=workers, gpus_per_replica=gpus, grace_s=args.grace,
                            **common)
    print(f"serving at http://{args.host}:{args.port}/v1/videos on {workers} Ray Serve replicas (Ctrl-C stops; a "
          "second Ctrl-C cancels the running jobs)", flush=True)
    done, hurry = threading.Event(), threading.Event()

    def on_signal(*_):
        if done.is_set():
            hurry.set()  # the second signal: the running jobs are cancelled at their next step
        done.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    wait_for_signal(done)
    # A cluster that died with the signal (Ctrl-C reaches a local cluster's processes too) must not hang the exit.
    stopper = threading.Thread(target=ray_serve.stop, args=(board, args.grace), daemon=True)
    stopper.start()
    end = time.monotonic() + args.grace + 30
    while stopper.is_alive() and time.monotonic() < end and not hurry.is_set():
        stopper.join(0.5)
    if stopper.is_alive() and hurry.is_set():
        threading.Thread(target=ray_serve.hurry, args=(board,), daemon=True).start()
        stopper.join(30)
    return 0
