"""A tiny GGUF language model written by the tests themselves (no weights downloaded).

:func:`write_chain_model` writes a one-layer LLaMA-architecture model whose attention and
feed-forward weights are zero, so each next-token logit depends only on the current
token: a bigram table. The table makes greedy decoding spell ``reply`` after the chat
template's generation prompt, then end. The vocabulary is SentencePiece-style: the
special tokens, 256 byte tokens (so any text, the prompt included, can be tokenized)
and one token per chunk of ``reply``, each chunk used once, so the bigram chain is
unambiguous. The model answers the same ``reply`` to every prompt; the grammar that
the server derives from a tool's JSON schema must admit it (the tests check that
the server returns it as that tool's call).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: ChatML, the template llama-cpp-python's server renders the messages with.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_SPECIAL = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
_NORMAL, _CONTROL, _BYTE = 1, 3, 6


def _chunks(reply: str) -> list[str]:
    """``reply`` cut into distinct chunks of up to 8 characters (a repeated chunk is cut
    shorter until it is new), so every chunk is its own token, used once."""
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(reply):
        size = min(8, len(reply) - i)
        while size > 1 and reply[i : i + size] in seen:
            size -= 1
        piece = reply[i : i + size]
        if piece in seen:  # a single repeated character: take a longer, new piece
            size = 2
            while reply[i : i + size] in seen and i + size < len(reply):
                size += 1
            piece = reply[i : i + size]
        seen.add(piece)
        out.append(piece)
        i += len(piece)
    return out


def write_chain_model(path: Path, reply: str, *, context: int = 4096) -> Path:
    """Write the model that greedily answers ``reply`` to ``path`` (a ``.gguf``)."""
    import gguf

    chunks = _chunks(reply)
    tokens = (
        _SPECIAL + [f"<0x{b:02X}>" for b in range(256)] + [c.replace(" ", "\u2581") for c in chunks]
    )
    types = [_CONTROL] * len(_SPECIAL) + [_BYTE] * 256 + [_NORMAL] * len(chunks)
    # chunks score above bytes, so the tokenizer prefers them
    scores = [0.0] * len(_SPECIAL) + [-1000.0] * 256 + [-1.0 * k for k in range(len(chunks))]
    vocab = len(tokens)
    first_chunk = len(_SPECIAL) + 256
    newline = len(_SPECIAL) + 0x0A
    eos = _SPECIAL.index("</s>")
    table = np.full((vocab, vocab), -10.0, dtype=np.float32)  # logit[next, current]
    table[first_chunk, newline] = 10.0  # "<|im_start|>assistant\n" ends with a newline
    for k in range(len(chunks) - 1):
        table[first_chunk + k + 1, first_chunk + k] = 10.0
    table[eos, first_chunk + len(chunks) - 1] = 10.0
    table[_SPECIAL.index("<|im_end|>"), first_chunk + len(chunks) - 1] = 9.0

    embd = vocab + vocab % 2  # one-hot embeddings (RoPE wants an even width)
    heads = 1
    ff = 4
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(context)
    writer.add_embedding_length(embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(embd // heads)
    writer.add_file_type(0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(_SPECIAL.index("<s>"))
    writer.add_eos_token_id(eos)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)
    zeros = np.zeros
    writer.add_tensor("token_embd.weight", np.eye(vocab, embd, dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(embd, dtype=np.float32))
    # RMS-normalised one-hot input is sqrt(embd) e_i: scale the table back
    output = np.zeros((vocab, embd), dtype=np.float32)
    output[:, :vocab] = table / np.sqrt(embd)
    writer.add_tensor("output.weight", output)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(embd, dtype=np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        writer.add_tensor(f"blk.0.{name}.weight", zeros((embd, embd), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(embd, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_gate.weight", zeros((ff, embd), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", zeros((ff, embd), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_down.weight", zeros((embd, ff), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def server_config(models: Sequence[tuple[str, Path]], host: str, port: int) -> dict[str, object]:
    """llama-cpp-python's server config: one entry per (alias, model file)."""
    return {
        "host": host,
        "port": port,
        "models": [
            {
                "model": str(path),
                "model_alias": alias,
                "n_ctx": 4096,
                "n_threads": 1,
                "verbose": False,
            }
            for alias, path in models
        ],
    }


BELL = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n'
    "h q[0];\ncx q[0], q[1];\nc = measure q;\n"
)
#: A draft QMK refuses: a two-qubit gate on one qubit.
BROKEN = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\ncx q[0], q[0];\n'


def step(action: str, program: str, text: str) -> str:
    """A structured step, as the ``step`` tool's grammar admits it (its keys in order)."""
    import json

    return json.dumps({"action": action, "program": program, "text": text}, separators=(",", ":"))


#: The tests' models, by alias: what each answers to every prompt.
REPLIES = {
    "drafts-bell": step("answer", BELL, "A Bell pair."),
    "drafts-broken": step("answer", BROKEN, "Here it is."),
    "runs-bell": step("run", BELL, ""),
    "costs-file": step("estimate", "file", ""),
    "writes-fenced": "Here is a Bell pair:\n```qasm\n" + BELL + "```\nIt entangles two qubits.",
}


#: llama-cpp-python's server (its ``python -m llama_cpp.server --config_file`` reads the
#: same file) on the listening socket whose descriptor it is given.
SERVE = """
import socket, sys, uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ConfigFileSettings, ServerSettings
with open(sys.argv[1], "rb") as f:
    config = ConfigFileSettings.model_validate_json(f.read())
server = ServerSettings.model_validate(config)
app = create_app(server_settings=server, model_settings=config.models)
listener = socket.socket(fileno=int(sys.argv[2]))
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listener])
"""


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server on the tests' models (a real process
    on a real socket)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: Any = None
        self.url = ""

    def start(self, timeout_s: float = 120.0) -> LlamaServer:
        import json
        import socket
        import subprocess
        import sys
        import time
        import urllib.request

        from support.children import die_with_us

        models = [
            (alias, write_chain_model(self.root / f"{alias}.gguf", reply))
            for alias, reply in REPLIES.items()
        ]
        # the listening socket made here and handed to the server: its port is never free
        # for another process (a test worker's) to take between a probe and the bind
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        config = self.root / "llama.json"
        config.write_text(json.dumps(server_config(models, "127.0.0.1", port)))
        log = (self.root / "llama.log").open("wb")
        with listener:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVE, str(config), str(listener.fileno())],
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[listener.fileno()],
                preexec_fn=die_with_us(),
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the llama server exited: {self.output()}")
            try:
                urllib.request.urlopen(self.url + "/v1/models", timeout=5).read()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"the llama server did not listen: {self.output()}")

    def output(self) -> str:
        path = self.root / "llama.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        from support.children import terminate

        if self.proc is not None:
            terminate(self.proc, 30)
