"""The service: the daemon loop, its config, logs, metrics and systemd notifications."""
