"""Write a random-weight llama GGUF model of a small real model's size, for load.sh's time to first
token: the test model reads a 200-token prompt in some 4 ms, far less than any model a NAS would
serve, so the proxy's fixed cost (TLS, the key, admission) would weigh more than it does in use.

The shape is SmolLM-135M's width, depth and feed-forward (576, 30 layers, 9 heads, 1536) with full
attention and the test model's byte vocabulary: about 120 M parameters, F32 (some 480 MB). Made by
the test model's own writer with other dimensions; its output is random bytes, as the test model's.

    sized_gguf.py OUT.gguf
"""

import importlib.util
import pathlib
import sys

WRITER = pathlib.Path(__file__).resolve().parent.parent / "tests" / "images" / "llama" / "make_tiny_gguf.py"
SHAPE = {"N_EMBD": 576, "N_HEAD": 9, "N_LAYER": 30, "N_FF": 1536, "N_CTX": 2048}


def main():
    spec = importlib.util.spec_from_file_location("make_tiny_gguf", WRITER)
    writer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writer)
    for name, value in SHAPE.items():
        setattr(writer, name, value)
    sys.argv = [str(WRITER), sys.argv[1]]
    writer.main()


if __name__ == "__main__":
    main()
