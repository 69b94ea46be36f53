"""Running the server: the command line, start and stop, metrics, logs, admin."""
