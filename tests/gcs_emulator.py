"""Run gcp-storage-emulator on 127.0.0.1:PORT, in memory: ``python gcs_emulator.py PORT``.

Three changes to gcp-storage-emulator (2026.7), nothing else:

- it does not send an object's Content-Encoding with its media downloads,
  which real GCS does and which cloud-files needs to know that a stored
  object is gzipped; this adds that header;
- after every write it re-serialises its whole object catalogue as indented
  JSON (pure-Python ``json.dumps``) into an in-memory ``.meta`` file that
  only a restart would read, and an in-memory emulator is never restarted:
  each write cost time proportional to every object the session had stored
  (~0.1 s per write at a few thousand objects, growing without bound),
  which made long GCS runs quadratic and, with clients queueing behind its
  single thread, time out. That dump is skipped (the catalogue stays in
  the emulator's own dicts, as before);
- its single-threaded ``HTTPServer`` listens with socketserver's backlog of
  5, so bursts of 64+ concurrent client connections were dropped and
  retried by TCP (seconds each) or reset; the backlog is raised to 512.

Started and stopped by the ``gcs_server`` fixture (tests/gcs_server.py).
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

    from http import server

    from gcp_storage_emulator import storage as emulator_storage

    plain_write_config = emulator_storage.Storage._write_config_to_file

    def write_config(self: Any) -> None:
        if not self._use_memory_fs:
            plain_write_config(self)

    emulator_storage.Storage._write_config_to_file = write_config
    server.HTTPServer.request_queue_size = 512
    from gcp_storage_emulator.__main__ import main

    main(["start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"])


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
