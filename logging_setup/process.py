"""Per-process logging configuration (DESIGN.md L1, L2)."""


def configure_process(sender, level="INFO"):
    """Remove every root handler this process inherited and install exactly
    one QueueHandler that sends through ``sender``. Safe to call twice and
    after fork. Every non-listener process calls it first."""
    raise NotImplementedError
