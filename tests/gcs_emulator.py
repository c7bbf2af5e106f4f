"""Run gcp-storage-emulator on 127.0.0.1:PORT, in memory: ``python gcs_emulator.py PORT``.

gcp-storage-emulator (2026.7) does not send an object's Content-Encoding with
its media downloads, which real GCS does and which cloud-files needs to know
that a stored object is gzipped; this adds that header (nothing else
changes). Started and stopped by the ``gcs_server`` fixture (tests/gcs_server.py).
"""

from __future__ import annotations

import sys


def _serve(port: int) -> None:
    """Run the emulator, in memory, with downloads carrying their Content-Encoding."""
    from http import HTTPStatus
    from typing import Any

    from gcp_storage_emulator.handlers import objects

    plain_download = objects.download

    def download(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
        plain_download(request, response, storage, *args, **kwargs)
        if response.status not in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
            return
        try:
            obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        except Exception:
            return
        if obj.get("contentEncoding"):
            response["Content-Encoding"] = obj["contentEncoding"]

    objects.download = download  # before the server module builds its routes
    from gcp_storage_emulator.__main__ import main

    main(["start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"])


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
