"""The assistant (``qmk assist``, ``POST /v1/assist``): a local model that works through
QMK's own tools and never shows an unverified program.

- :mod:`qmk.assist.tools` -- the tools the model calls (validate, info, estimate, plan,
  run), each QMK's own;
- :mod:`qmk.assist.backends` -- Ollama's API and the OpenAI-compatible one;
- :mod:`qmk.assist.loop` -- the loop: tool calls answered, drafts verified first;
- :mod:`qmk.assist.advice` -- the deterministic advice given when no model is configured.
"""
