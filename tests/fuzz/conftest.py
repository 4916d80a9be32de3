"""The fuzz tests: hypothesis in the suite; atheris_fuzz.py is make fuzz's driver, not a
test module (it imports atheris, an optional extra, and instruments qmk when imported)."""

collect_ignore = ["atheris_fuzz.py"]
