"""The embedded default behind ``--dev``: moto's Secrets Manager emulator, seeded from a file.

- ``emulator``: starting, seeding and resetting it; the shipped example files.
"""

from .emulator import Emulator, default_secrets_file, example_pipeline_file, read_seed, reset_moto, start_emulator

__all__ = ["Emulator", "default_secrets_file", "example_pipeline_file", "read_seed", "reset_moto", "start_emulator"]
