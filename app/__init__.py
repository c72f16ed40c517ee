"""The edgesense program: cli, config, supervisor, worker entry, systemd notify."""
