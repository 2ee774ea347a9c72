"""A signal that lands on another thread (ONNX Runtime's, torch's) still stops `t2vrt serve`: the main thread
waits in short slices, so Python runs the handler within half a second (an untimed wait never woke)."""

import signal
import threading
import time

from t2vrt.serve.service import wait_for_signal


def test_a_signal_delivered_to_another_thread_is_seen():
    done = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda *_: done.set())

    def elsewhere():
        time.sleep(0.2)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # to this thread, not the main one

    watchdog = threading.Timer(5.0, done.set)  # without the fix the main thread would sleep until this
    try:
        watchdog.start()
        threading.Thread(target=elsewhere, daemon=True).start()
        t0 = time.monotonic()
        wait_for_signal(done)
        assert time.monotonic() - t0 < 2.0
    finally:
        watchdog.cancel()
        signal.signal(signal.SIGUSR1, previous)
