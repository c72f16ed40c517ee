"""The supervisor: starts the tree in order, keeps it running, stops it."""


def run_service(config):
    """Run the tree until SIGTERM/SIGINT; return the process exit status."""
    raise NotImplementedError
