"""What makes a process: settings, logs, metrics, health, signals, command line, clock."""
