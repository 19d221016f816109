"""Runs gcp-storage-emulator on 127.0.0.1:PORT (in memory, one bucket) for the gs:// tests.

  python tests/train/gcs_emulator.py PORT BUCKET

The emulator (2026.7.19) leaves out the `x-goog-generation` / `x-goog-metageneration`
headers that Cloud Storage sends with every object download
(https://cloud.google.com/storage/docs/xml-api/reference-headers#xgooggeneration).
tensorstore's gcs driver takes an object's generation from that header and then conditions
its next write on it (OCDBT's manifest), so without it Orbax's second write to a checkpoint
fails with "Malformed StorageGeneration". This adds the two headers from the object's own
metadata; nothing else is changed.
"""

import sys
import time

from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

_download = objects.download


def _download_with_generation(request, response, storage, *args, **kwargs):
    try:
        obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        response["x-goog-generation"] = str(obj["generation"])
        response["x-goog-metageneration"] = str(obj.get("metageneration", "1"))
    except NotFound:
        pass
    return _download(request, response, storage, *args, **kwargs)


objects.download = _download_with_generation  # before the emulator builds its handler table

from gcp_storage_emulator.server import create_server  # noqa: E402

if __name__ == "__main__":
    port, bucket = int(sys.argv[1]), sys.argv[2]
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)
