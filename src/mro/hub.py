"""Is the Hugging Face hub reachable? One cheap probe per process.

Offline, ``huggingface_hub`` retries every request with back-off and logs each retry, so loading
a name that is not a local folder takes ~25 s and prints a wall of warnings before failing. The
loaders ask :func:`hub_offline` first and, when it says so, load with ``local_files_only=True``:
models and data sets already in the Hugging Face cache still load, and anything else fails at
once with the loaders' one-line error.

The hub counts as offline when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE`` /
``HF_DATASETS_OFFLINE``) is set, or when a TCP connection to the endpoint (``HF_ENDPOINT``, or
the HTTPS proxy when one is configured) does not open within :data:`PROBE_TIMEOUT` seconds. The
probe runs in a daemon thread, so a name lookup that hangs cannot stall the caller either.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import urllib.request
from urllib.parse import urlparse

#: seconds the reachability probe may take before the hub counts as unreachable.
PROBE_TIMEOUT = 2.0
_TRUE = {"1", "ON", "YES", "TRUE"}
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def offline_by_env() -> bool:
    """True when the user switched the hub off (``HF_HUB_OFFLINE=1`` and friends)."""
    return any(os.environ.get(v, "").strip().upper() in _TRUE for v in _OFFLINE_VARS)


def _probe_address() -> tuple[str, int]:
    """Host and port a hub request connects to first: the HTTPS proxy if any, else the endpoint."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    proxy = urllib.request.getproxies().get(endpoint.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        if parsed.hostname:
            return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    return host, port


def reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds (lookup included)."""
    result: list[bool] = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True, name="mro-hub-probe")
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


@functools.lru_cache(maxsize=1)
def hub_offline() -> bool:
    """True when the hub is switched off or unreachable; probed once per process."""
    return offline_by_env() or not reachable(*_probe_address())
