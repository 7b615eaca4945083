"""Wolt's own BlurHash encoder (C, through blurhash-python) on raw RGB: one JSON request per stdin line.

generate.py runs it with PYTHONPATH pointing at a temporary `pip install --target` of
blurhash-python==1.2.2, which would clash with the pure-Python `blurhash` the tests use.
"""

import base64
import json
import sys

import blurhash
from PIL import Image

for line in sys.stdin:
    request = json.loads(line)
    size = (request["width"], request["height"])
    image = Image.frombytes("RGB", size, base64.b64decode(request["rgb"]))
    hashes = {f"{x}x{y}": blurhash.encode(image.copy(), x, y) for x, y in request["components"]}
    print(json.dumps({"name": request["name"], "blurhash": hashes}))
