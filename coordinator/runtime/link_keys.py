"""The coordinator's CurveZMQ keys, and who may connect with which key.

With coordinator.secret_key_file every link is CurveZMQ, local ones included: a worker the coordinator starts
gets a key pair of its own, generated once into state_dir/keys/local/NAME.key_secret (owner-only) and found
there by the worker itself (``protocol.curve.local_worker_key_path``). A remote terminal's key is its
public_key_file. Called at start-up and again at a reload (``Hub.allow_keys``).
"""

from __future__ import annotations

from loguru import logger

from config import AppConfig
from protocol.curve import (
    PUBLIC_SUFFIX,
    CurveKeyPair,
    KeyFileError,
    create_key_pair,
    load_public_key_file,
    load_secret_key_file,
    local_worker_key_path,
)


def prepare_link_keys(config: AppConfig) -> tuple[CurveKeyPair | None, dict[bytes, str]]:
    """(the coordinator's key pair, public key (Z85) -> the terminal it may speak as); (None, {}) without
    coordinator.secret_key_file. Generates the missing key pairs of local workers.

    Raises ``KeyFileError`` for a key file that cannot be used (a configuration error), ``OSError`` when a
    local worker's key pair cannot be written.
    """
    secret_key_file = config.coordinator.secret_key_file
    if secret_key_file is None:
        return None, {}
    coordinator_keys = load_secret_key_file(secret_key_file)
    allowed: dict[bytes, str] = {}
    for terminal in config.terminals():
        if terminal.remote:
            if terminal.public_key_file is None:  # the config's checks refuse this; said again for a hand-built one
                raise KeyFileError(f"terminal {terminal.name} is remote and has no public_key_file: with "
                                   "coordinator.secret_key_file every remote terminal needs one")
            key = load_public_key_file(terminal.public_key_file)
        else:
            key = _local_worker_keys(config, terminal.name).public
        allowed[key] = terminal.name
    return coordinator_keys, allowed


def _local_worker_keys(config: AppConfig, name: str) -> CurveKeyPair:
    secret_path = local_worker_key_path(config.coordinator.state_dir, name)
    if not secret_path.exists():
        folder = secret_path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A public half without its secret (a crash between the two writes) is useless: make the pair anew.
        (folder / f"{name}{PUBLIC_SUFFIX}").unlink(missing_ok=True)
        create_key_pair(folder, name)
        logger.info("generated the CURVE key pair of local worker {} in {}", name, folder)
    return load_secret_key_file(secret_path)
